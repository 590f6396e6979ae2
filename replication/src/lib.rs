//! Replication for solostate on [openraft]: a cluster of nodes, each a
//! [`ReplicatedEngine`] with its own local engine, that commit every write
//! through a Raft log before any node applies it.
//!
//! # What readers see
//!
//! A node's [`reader`](ReplicatedEngine::reader) snapshot reflects every
//! entry that node has applied (a stale read, at no cost);
//! [`linearizable`](ReplicatedEngine::linearizable) returns one that
//! reflects every write acknowledged anywhere before the call; and
//! [`wait_for`](ReplicatedEngine::wait_for) one that reflects a given
//! [`ReplicatedAck`], on any node.
//!
//! # Architecture
//!
//! ```text
//!  submit(&e) --> leader? --no--> POST /client/write to the leader (one hop)
//!                   | yes
//!                   v
//!  openraft: append to the Raft log (LogStore: segment log + fdatasync)
//!            replicate to a majority (HttpNetwork -> /raft/append)
//!            commit
//!                   v
//!  Machine::apply (every node, in log order):
//!      Logged { log_id, event } --> the node's own Engine<Logged<E>>
//!      (apply, journal the batch with its log ids in one fsynced write,
//!       publish the snapshot, ack)  --> Response::Applied { seq }
//! ```
//!
//! * [`LogStore`]: the Raft log (`RaftLogStorage`) on the journal's own
//!   segment log (`solostate::persistence::seglog`), not on sled, whose
//!   recovery fails the power-cut simulator: entries are durable before
//!   openraft counts them, the vote before `save_vote` returns, and a torn
//!   tail cut at open is reported ([`MachineRecovery::log_tail_cut`]).
//! * [`Machine`]: the `RaftStateMachine`. Each committed event goes to
//!   the local engine as a [`Logged`] event, so the log id of the last
//!   applied entry is durable in the same journal write as its effect: a
//!   restart resumes exactly after it, never applying an entry twice
//!   (openraft PR #441). A rejected event, a panicking `apply` or bytes
//!   that do not decode become [`Response::Rejected`] on every node alike,
//!   never a storage error (which would stop the node); only a failing
//!   journal stops it.
//! * **Snapshots** ([`SnapshotBuilder`]): taken from the engine's
//!   published snapshot (an O(1) clone) when openraft asks, encoded and
//!   written on a blocking thread, never on the engine's owner. The format
//!   carries a crc and the state hash; installing one checks both, saves
//!   the file, writes the state as an engine directory (a checkpoint at
//!   the snapshot's seq), swaps it in for the old engine and reopens, in
//!   an order a crash at any step can finish at the next open
//!   ([`MachineRecovery::finished_install`]).
//! * [`HttpNetwork`] and [`raft_router`]: Raft's RPCs over HTTP/1 (reqwest
//!   and axum) with [`wire`]'s bincode bodies, plus the client routes a
//!   follower forwards writes and read-index requests to.
//! * **The determinism guard across replicas**: every node serves `POST
//!   /client/state_hash` (body: a wire-encoded seq; answer: a
//!   wire-encoded `Result<`[`StateHash`]`, `[`Unavailable`]`>`), the
//!   order-independent hash of its engine's state at exactly that seq,
//!   from the current snapshot or the engine's as-of history.
//!   [`ReplicatedEngine::state_hash`] is the local half;
//!   [`ReplicatedEngine::compare_replicas`] (the membership) and
//!   [`ReplicatedEngine::compare_with`] (any nodes) ask each node and
//!   return a [`GuardReport`]: agreement, or for each node that differs
//!   the first divergent seq, found by bisecting the history both hold.
//! * **Membership changes** through [`ReplicatedEngine::add_learner`] and
//!   [`ReplicatedEngine::change_membership`] on the leader (a follower
//!   answers [`WriteError::LeaderChanged`]), tested end to end: a new
//!   node catches up as a learner, is promoted, and a removed voter
//!   leaves while the others keep committing.
//!
//! # Trade-offs
//!
//! **openraft is pinned `=0.9.25`, the stable line.** A library others
//! depend on should not pull an alpha whose API breaks between releases:
//! 0.10 is at alpha.37 and needs Rust 1.88. Its lease reads and transient
//! state machines are optimizations we can adopt when 0.10 is released;
//! 0.9 has read-index linearizable reads (`ensure_linearizable`), which
//! cost one heartbeat round trip per read.
//!
//! **Installing a snapshot replaces the local engine.** Readers and
//! change feeds taken from the old engine stop (their `wait_for` ends as
//! stopped); take a new [`reader`](ReplicatedEngine::reader). The
//! installed engine's history starts at the snapshot's seq, so as-of reads
//! before it are gone on that node.
//!
//! **Two fsyncs per batch on every node**: the Raft log's and the local
//! journal's. Both are group commits (openraft batches appends; the engine
//! batches applies).
//!
//! **HTTP/1 and bincode rather than gRPC**: tokio's own stack, no code
//! generation, and the client routes share the Raft listener. There is no
//! TLS and no authentication: run it on a trusted network only.
//!
//! # Example
//!
//! A one-node cluster (a real cluster initializes with every member's
//! address; see `cluster-test`):
//!
//! ```
//! use std::collections::BTreeMap;
//! use solostate::StateEvent;
//! use solostate_replication::ReplicatedEngine;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let node = ReplicatedEngine::<StateEvent<String, u64>>::builder()
//!     .id(1)
//!     .path(dir.path())
//!     .listen("127.0.0.1:0".parse()?)
//!     .open()
//!     .await?;
//! node.initialize(BTreeMap::from([(1, node.addr().to_string())])).await?;
//! // The election takes a moment; a write before it waits for it (up to
//! // the builder's timeout, 10 s by default).
//! let ack = node.submit(&StateEvent::put("alice".into(), 100)).await?;
//! let snapshot = node.wait_for(&ack).await?;
//! assert_eq!(snapshot.get("alice").as_deref(), Some(&100));
//! assert_eq!(node.linearizable().await?.seq(), ack.seq);
//! node.shutdown().await?;
//! # Ok(()) }
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # Crate features
//!
//! None.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod compare;
mod error;
mod guard;
mod install;
mod logged;
mod machine;
mod network;
mod ports;
mod replica;
mod replica_error;
mod server;
mod snapshot;
mod store;
mod types;
pub mod wire;

pub use error::{LogStoreError, MachineError, SnapshotError};
pub use guard::{Divergence, GuardError, GuardReport, StateHash, Unavailable};
pub use install::Builder as SnapshotBuilder;
pub use logged::Logged;
pub use machine::{Applied, Machine, MachineRecovery};
pub use network::{HttpConnection, HttpNetwork, HttpNetworkError};
pub use ports::loopback_listener;
pub use replica::{ReplicaBuilder, ReplicatedAck, ReplicatedEngine};
pub use replica_error::{OpenError, ReadError, WriteError};
pub use server::{raft_router, serve};
pub use store::LogStore;
pub use types::{MAX_EVENT_BYTES, Request, Response, TypeConfig};
