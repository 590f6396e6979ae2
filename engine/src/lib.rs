//! solostate: an embeddable, single-writer, CQRS state engine.
//!
//! Every change is an [`Event`] sent over a bounded queue to **one owner
//! task**, which applies it to the state (a persistent [`imbl::HashMap`],
//! or the versioned store: [`StoreKind`]), publishes an immutable
//! [`Snapshot`] once per batch, and acknowledges each event with
//! its sequence number. Any number of [`Reader`]s load the latest snapshot
//! lock-free, wait for a sequence number (read-your-writes), or follow the
//! committed events.
//!
//! **A snapshot reflects every event acknowledged before it was loaded.**
//!
//! # Architecture
//!
//! ```text
//!  Engine (handles) --send--> [ bounded flume queue ] --drain--> owner task
//!                                                                  | apply each event to the map
//!                                                                  | publish one snapshot per batch
//!  Reader (any task) <--lock-free load-- ArcSwap<Snapshot> <-------+
//!  ChangeFeed        <--committed batches-- broadcast <------------+ then ack each event
//! ```
//!
//! * [`Engine`] is a cheap-to-clone handle that holds only the sending end
//!   of the queue. [`Engine::submit`] awaits the ack, [`Engine::send`]
//!   returns a [`Pending`] ack for pipelining, [`Engine::try_submit`] fails
//!   fast when the queue is full, and the `_blocking` variants serve plain
//!   threads.
//! * The owner task is the only code that holds the working map. There is
//!   no lock on the state anywhere. Sequence numbers are dense: +1 per
//!   applied event.
//! * `apply` reads and writes the state through a [`Txn`] that records the
//!   event's write set. A rejected event is answered with its reason and
//!   changes nothing: the engine undoes its writes from the write set. A
//!   panicking `apply` rejects only its own command the same way, and the
//!   engine keeps serving.
//! * [`Engine::shutdown`] stops intake, applies and acks everything already
//!   queued, publishes, and returns. Dropping every handle stops the engine
//!   the same way.
//!
//! The write vocabulary lives in `solostate-commands`, the read side in
//! `solostate-queries`; this crate re-exports both.
//!
//! # Trade-offs
//!
//! * One writer means writes never contend, but their throughput is one
//!   core's. Batching (one snapshot per batch) is what makes it fast.
//! * Snapshots of the default, persistent store are versions of a
//!   persistent map: an O(1) clone to publish, and a write copies only the
//!   nodes on its path (several microseconds at a million keys). Readers
//!   holding old snapshots keep those replaced nodes alive.
//!   [`Builder::store`]`(`[`StoreKind::Versioned`]`)` keeps the state in
//!   an MVCC store over a lock-free hash map instead: writes cost a hash
//!   map insert, and a held snapshot keeps the versions written after it.
//!   Everything else (events, journal, checkpoints, reads) is the same.
//! * With [`Builder::path`], every committed batch is one record in the
//!   journal (a frame of its segment log by default, or a sled record:
//!   [`Builder::journal_backend`]) and, under the default
//!   [`Durability::Always`], one flush (an `fdatasync` of the segment, or
//!   sled's flush and then an `fdatasync` of its log) before the batch is
//!   published and acked: an
//!   ack means durable through a power cut, and the ack waits for the
//!   disk. Opening loads the newest checkpoint that verifies and replays the
//!   journal after it; it never deletes a checkpoint because the journal
//!   disagrees, never panics on what it finds, and reports everything it
//!   decides on its own in [`Recovery`] (see
//!   [`Builder::on_damaged_journal`] for a journal that cannot be used).
//!   Checkpoints are written from an O(1) clone of the
//!   map on a blocking thread, so the writer does not stall on them.
//! * [`Engine::as_of`] reads any past seq: recent ones from an in-memory
//!   window of snapshots (cheap, since they share structure), older ones
//!   rebuilt from disk. [`Engine::rollback_to`] restores an earlier state as
//!   one new, durable step; seqs are never reused and the undone events are
//!   archived, not deleted.
//! * [`Engine::backup`] writes an openable copy of a running engine at
//!   one seq (a checkpoint of the snapshot there, plus a journal that
//!   begins after it) off the owner task, durable when it returns.
//! * Replay trusts `apply` to be deterministic; the determinism guard
//!   ([`Builder::state_hash_every`]) checks it. After every batch (by
//!   default) the state's hash is recorded in the journal, and recovery,
//!   `as_of` and replay fail with [`OpenError::Diverged`] (naming the
//!   first checked seq) when the replayed state hashes differently. The
//!   hash follows each event's write set, live and at replay, so a check
//!   costs two entry encodings per write and one small journal record per
//!   batch, not a pass over the state.
//!
//! # Example
//!
//! ```
//! use solostate::{Engine, StateEvent, SubmitError};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let engine = Engine::<StateEvent<String, u64>>::builder().open().await?;
//!     let reader = engine.reader();
//!
//!     let ack = engine.submit(StateEvent::put("alice".into(), 100)).await?;
//!     assert_eq!(ack.seq, 1);
//!
//!     // A failed compare-and-swap is rejected and takes no seq.
//!     let cas = StateEvent::compare_and_swap("alice".into(), Some(7), Some(8));
//!     assert!(matches!(engine.submit(cas).await, Err(SubmitError::Rejected(_))));
//!
//!     let snapshot = reader.wait_for(ack.seq).await?;
//!     assert_eq!(snapshot.get("alice").as_deref(), Some(&100));
//!
//!     engine.shutdown().await?;
//!     Ok(())
//! }
//! ```
//!
//! # Crate features
//!
//! * `fault-injection` (off by default): `Builder::faults` and the
//!   re-exported `FaultPlan`, which fails chosen journal writes, flushes or
//!   checkpoint files (or slows flushes) so that tests can drive the
//!   engine's failure paths: a failed batch is answered with
//!   [`AckError::Journal`] (with the I/O error's kind) and the engine
//!   stops. A testing tool; production builds leave it off.
//! * `metrics` (off by default): counters, gauges and histograms through
//!   the [`metrics`](https://docs.rs/metrics/0.24) facade, listed under
//!   [Metrics](#metrics), and `Builder::metrics_label`. The
//!   application installs the recorder (exporter) it wants. Off, the
//!   engine has no `metrics` dependency and records nothing: the call
//!   sites compile to nothing, no clock is read.
//!
//! # Metrics
//!
//! With the `metrics` feature, the engine records the metrics below into
//! whatever recorder the application installed (for example
//! `metrics-exporter-prometheus`; `examples/metrics.rs` serves its
//! Prometheus text). The engine registers them once, when it opens: install
//! the recorder first. `Builder::metrics_label` adds the label
//! `engine="<name>"` to every one, for several engines in one process. The
//! names are stable; each carries its unit, and each is described (with
//! its unit) to the recorder.
//!
//! | name | kind | unit | meaning |
//! |---|---|---|---|
//! | `solostate_events_applied_total` | counter | events | events applied and acknowledged; counted before their acks are sent, as [`Stats::applied`] |
//! | `solostate_events_rejected_total` | counter | events | events whose `apply` returned `Err` ([`Stats::rejected`]) |
//! | `solostate_events_panicked_total` | counter | events | events refused because `apply` panicked, or because restoring the state after a later panic in their batch panicked ([`Stats::panicked`]) |
//! | `solostate_events_refused_total` | counter | events | events a handle refused before queueing them ([`Stats::refused`]) |
//! | `solostate_batch_size_events` | histogram | events | events per committed batch (one journal record, one snapshot); its count is the number of batches |
//! | `solostate_queue_depth` | gauge | commands | commands waiting in the queue when the owner last took from it (sampled once per owner turn, before it drains the queue) |
//! | `solostate_apply_duration_seconds` | histogram | seconds | owner time applying one batch's events, rejected ones included; waits (for a flush, for commands) excluded |
//! | `solostate_flush_duration_seconds` | histogram | seconds | under [`Durability::Always`]: for each batch, from the start of its journal append to the end of its flush, pipelined batches included (for those, the end as the owner saw it: at once when it was waiting, else within 16 applied events). Under [`Durability::Every`]: each periodic flush. Nothing under [`Durability::Never`] or in memory |
//! | `solostate_ack_latency_seconds` | histogram | seconds | for each acknowledged event, from its handle queueing it (after encoding it, and including any wait for room in the queue) to its ack being sent |
//! | `solostate_reader_lag_batches` | gauge | batches | committed batches that the slowest [`ChangeFeed`] subscriber had not received yet, sampled right after each publish (the batch just published included, so a subscriber keeping up shows 1; 0 without subscribers). It reaches the change capacity ([`Builder::change_capacity`]) just before that subscriber lags. Plain snapshot readers have no lag: each load sees the latest snapshot |
//! | `solostate_journal_bytes_total` | counter | bytes | bytes of batch records appended to the journal (a durable engine's; 0 in memory) |
//! | `solostate_checkpoint_duration_seconds` | histogram | seconds | writing one checkpoint (on its blocking thread), pruning included; its count is [`Stats::checkpoints`] |
//! | `solostate_checkpoint_failures_total` | counter | checkpoints | checkpoints that failed to write ([`Stats::checkpoint_failures`]) |
//! | `solostate_recovery_duration_seconds` | histogram | seconds | recovery at open: loading the newest checkpoint that verifies and replaying the journal after it (one sample per durable open) |
//!
//! The cost with the feature on: a clock read per submitted event on the
//! submitter's thread, and per event on the owner one histogram record
//! (its ack latency), after its batch's acks are sent; per batch a few
//! clock reads, atomic adds and histogram records, a read of the queue's
//! length per owner turn, and, with change-feed subscribers, a look at
//! the feed's buffer per publish.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backup;
mod batch;
mod builder;
mod catch_up;
mod checkpointer;
mod durability;
mod error;
mod flusher;
mod gate;
mod guard;
mod handle;
mod history;
mod key_changes;
mod message;
mod metrics;
mod owner;
mod policy;
mod recovery;
mod shared;
mod stats;

pub use backup::BackupReport;
pub use builder::Builder;
pub use catch_up::{CatchUp, CatchUpError};
pub use durability::Durability;
pub use error::{
    AckError, AsOfError, BackupError, OpenCause, OpenError, Refusal, RollbackError, SendError,
    ShutdownError, SubmitError, TrySubmitError,
};
pub use handle::{Engine, Pending};
pub use key_changes::{ChangesError, Coalesced};
pub use message::Ack;
pub use policy::{CheckpointPolicy, Retention};
pub use recovery::{
    DamagedJournal, JournalUnusable, MovedJournal, Recovery, ReplayProgress, SetAsideCheckpoint,
    SetAsideWhy, SkippedCheckpoint,
};
/// What a durable engine's journal is stored on (see
/// [`Builder::journal_backend`]).
pub use solostate_persistence::journal::{Backend as JournalBackend, TornTail};
pub use stats::Stats;

/// The fault plan for [`Builder::faults`] (feature `fault-injection`).
#[cfg(feature = "fault-injection")]
pub use solostate_persistence::faults::{FaultPlan, Injected};

pub use solostate_commands::{
    Event, State, StateEvent, StateRejection, Store, Txn, Write, undo_writes,
};
pub use solostate_queries::{
    Change, ChangeError, ChangeFeed, CommittedBatch, Reader, Ref, Snapshot, SnapshotOf, View,
    WaitError,
};
pub use solostate_store::StoreKind;

/// The persistent map crate, re-exported so that your code uses the same
/// version as the engine.
pub use imbl;

/// The durable side: the journal, checkpoints, state hashes and the
/// read-only [`Replay`](solostate_persistence::replay::Replay) of an
/// engine's directory, re-exported so that a replay tool needs only this
/// crate.
///
/// **What is supported here, and what is machinery.** The supported
/// entry points are [`replay::Replay`](solostate_persistence::replay::Replay)
/// (read a directory's steps, archive and past states) and
/// [`hash::state_hash`](solostate_persistence::hash::state_hash) (compare
/// states across builds and machines), with the error types they return.
/// The rest (`journal`, `checkpoint`, `codec`, `recovery`, `sync`,
/// `aside`) is the engine's own machinery, public so that the admin tool
/// and the test harnesses can reach it; it follows the engine's needs and
/// may change in any release. Writing to a directory through it, beside
/// or instead of an engine, is not supported.
pub use solostate_persistence as persistence;
