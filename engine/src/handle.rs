//! [`Engine`]: the cheap-to-clone handle that submits events.

use std::sync::Arc;
use std::sync::atomic::Ordering;

mod pending;

pub use pending::Pending;
use pending::{Site, blocking_site};

use solostate_commands::Event;
use solostate_persistence::codec::{self, EncodedEvent};
use solostate_queries::{Reader, SnapshotOf};
use tokio::sync::oneshot;

use crate::catch_up::{CatchUp, CatchUpError};
use crate::error::{
    AsOfError, Refusal, RollbackError, SendError, ShutdownError, SubmitError, TrySubmitError,
};
use crate::history::History;
use crate::key_changes::{ChangesError, Coalesced};
use crate::message::{Ack, Command, Submission};
use crate::metrics::Stamp;
use crate::recovery::Recovery;
use crate::shared::Shared;
use crate::stats::Stats;

/// Why [`Engine::admit`] did not let an event through; each hands it back.
enum Admission<E> {
    Closed(E),
    Refused(E, Refusal),
}

fn send_error<E>(refused: Admission<E>) -> SendError<E> {
    match refused {
        Admission::Closed(event) => SendError::Closed(event),
        Admission::Refused(event, reason) => SendError::Refused { event, reason },
    }
}

/// A handle to a running engine: submit events, read snapshots, stop it.
///
/// It holds only the sending end of the command queue (and the counters);
/// the state itself lives on the owner task. Clone it freely into tasks and
/// threads. When every clone is dropped, the owner answers what is queued
/// and stops.
///
/// Ways to submit, from simplest to fastest:
///
/// * [`submit`](Engine::submit): send and await the ack.
/// * [`send`](Engine::send): wait for room in the queue and get a
///   [`Pending`] ack to await later. Keep many in flight to pipeline; drop
///   one to fire and forget.
/// * [`try_submit`](Engine::try_submit): never waits; a full queue hands
///   the event back.
/// * [`submit_blocking`](Engine::submit_blocking) and
///   [`send_blocking`](Engine::send_blocking) for threads outside the
///   runtime.
///
/// # What a durable engine refuses
///
/// With a [`path`](crate::Builder::path), every way to submit first encodes the
/// event as the journal stores it (bincode 2 through serde) and decodes it
/// back, on the caller's thread, before anything is queued. An event that
/// fails is handed back in a `Refused` error with its [`Refusal`], takes
/// no seq, and the engine keeps serving:
///
/// * its `Serialize` fails ([`Refusal::Encode`]);
/// * it encodes to more than [`Engine::MAX_EVENT_BYTES`] (256 MiB less 10
///   bytes) ([`Refusal::TooLarge`]);
/// * it does not decode back ([`Refusal::Unreadable`]): bincode is not
///   self-describing, so event types must not use `#[serde(tag = "..")]`,
///   `#[serde(untagged)]` or `#[serde(flatten)]` (which fails to encode),
///   nor hold self-describing values such as `serde_json::Value`.
///
/// The check costs each submitter one encode and one decode of its event
/// (the owner then only copies the bytes into the batch's record), so it
/// runs in parallel across submitters instead of on the one owner thread.
/// An in-memory engine journals nothing and checks nothing.
///
/// Batches are capped by bytes as well as by
/// [`max_batch`](crate::Builder::max_batch): a record of several events holds at
/// most 16 MiB of them, and a bigger event is journaled in a record of its
/// own, so batching never builds a record the journal cannot read back.
pub struct Engine<E: Event> {
    tx: flume::Sender<Command<E>>,
    shared: Arc<Shared>,
    reader: Reader<E>,
    history: Arc<History<E>>,
    /// Whether events are journaled, and so must be checked and encoded
    /// before they are queued.
    durable: bool,
}

impl<E: Event> Clone for Engine<E> {
    fn clone(&self) -> Self {
        Engine {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
            reader: self.reader.clone(),
            history: Arc::clone(&self.history),
            durable: self.durable,
        }
    }
}

impl<E: Event> std::fmt::Debug for Engine<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn command<E: Event>(event: E, encoded: Option<EncodedEvent>) -> (Command<E>, Pending<E>) {
    let (reply, rx) = oneshot::channel();
    (
        Command::Submit(Submission {
            event,
            encoded,
            reply,
            submitted: Stamp::now(),
        }),
        Pending::new(rx),
    )
}

impl<E: Event> Engine<E> {
    /// The most bytes one event may encode to in a durable engine: the
    /// journal's 256 MiB record limit less 10 bytes of framing (the
    /// record's kind byte and its event count). A bigger event is refused
    /// with [`Refusal::TooLarge`]. In-memory engines have no limit.
    pub const MAX_EVENT_BYTES: usize = codec::MAX_EVENT;

    pub(crate) fn from_parts(
        tx: flume::Sender<Command<E>>,
        shared: Arc<Shared>,
        reader: Reader<E>,
        history: Arc<History<E>>,
    ) -> Self {
        // The history has a disk exactly when the owner has a journal.
        let durable = history.is_durable();
        Engine {
            tx,
            shared,
            reader,
            history,
            durable,
        }
    }

    /// Submits `event` and waits until it is applied and visible to readers.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Closed`] (with the event) if the engine no longer
    /// accepts events, [`SubmitError::Refused`] (with the event) if a
    /// durable engine's journal cannot store it (see [`Refusal`]), and
    /// otherwise why the event was not applied.
    pub async fn submit(&self, event: E) -> Result<Ack, SubmitError<E>> {
        Ok(self.send(event).await?.await?)
    }

    /// Queues `event`, waiting for room if the queue is full
    /// (backpressure), and returns its [`Pending`] ack without waiting for
    /// it. Keep many `Pending`s in flight to pipeline.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] if the engine no longer accepts events and
    /// [`SendError::Refused`] if a durable engine's journal cannot store
    /// the event (see [`Refusal`]); both hand the event back.
    pub async fn send(&self, event: E) -> Result<Pending<E>, SendError<E>> {
        let (event, encoded) = self.admit(event).map_err(send_error)?;
        let Some(_pass) = self.shared.gate.enter() else {
            return Err(SendError::Closed(event));
        };
        let (command, pending) = command(event, encoded);
        match self.tx.send_async(command).await {
            Ok(()) => Ok(pending),
            Err(flume::SendError(command)) => Err(SendError::Closed(command.into_event())),
        }
    }

    /// Queues `event` if there is room right now, and returns its
    /// [`Pending`] ack. Never waits.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] when the queue is full,
    /// [`TrySubmitError::Closed`] when the engine no longer accepts events,
    /// and [`TrySubmitError::Refused`] when a durable engine's journal
    /// cannot store the event (see [`Refusal`]); all hand the event back.
    pub fn try_submit(&self, event: E) -> Result<Pending<E>, TrySubmitError<E>> {
        if self.durable && self.tx.is_full() {
            // Spare the encode of an event that cannot go in: a caller
            // retrying on a full queue would pay for it every time.
            return Err(TrySubmitError::Full(event));
        }
        let (event, encoded) = self.admit(event).map_err(|refused| match refused {
            Admission::Closed(event) => TrySubmitError::Closed(event),
            Admission::Refused(event, reason) => TrySubmitError::Refused { event, reason },
        })?;
        let Some(_pass) = self.shared.gate.enter() else {
            return Err(TrySubmitError::Closed(event));
        };
        let (command, pending) = command(event, encoded);
        match self.tx.try_send(command) {
            Ok(()) => Ok(pending),
            Err(flume::TrySendError::Full(command)) => {
                Err(TrySubmitError::Full(command.into_event()))
            }
            Err(flume::TrySendError::Disconnected(command)) => {
                Err(TrySubmitError::Closed(command.into_event()))
            }
        }
    }

    /// As [`Engine::send`], blocking the current thread while the queue is
    /// full. For threads that are not async.
    ///
    /// On a thread of a multi-threaded tokio runtime it blocks inside
    /// [`tokio::task::block_in_place`]. On a thread of a current-thread
    /// runtime it cannot block (the owner would never run): if the queue
    /// is full, the event is handed back with
    /// [`Refusal::BlockingInRuntime`] and nothing is queued.
    ///
    /// # Errors
    ///
    /// As [`Engine::send`], and [`SendError::Refused`] with
    /// [`Refusal::BlockingInRuntime`] as above.
    ///
    /// # Panics
    ///
    /// Inside a `LocalSet` that the multi-threaded runtime's `block_on`
    /// thread drives, when the queue is full (`block_in_place` panics
    /// there), before the event is queued.
    pub fn send_blocking(&self, event: E) -> Result<Pending<E>, SendError<E>> {
        self.send_blocking_at(event, blocking_site())
    }

    fn send_blocking_at(&self, event: E, site: Site) -> Result<Pending<E>, SendError<E>> {
        let (event, encoded) = self.admit(event).map_err(send_error)?;
        let Some(_pass) = self.shared.gate.enter() else {
            return Err(SendError::Closed(event));
        };
        let (command, pending) = command(event, encoded);
        // Try first: with room in the queue there is nothing to block on,
        // and so nothing to hand over to `block_in_place` or to refuse.
        let command = match self.tx.try_send(command) {
            Ok(()) => return Ok(pending),
            Err(flume::TrySendError::Disconnected(command)) => {
                return Err(SendError::Closed(command.into_event()));
            }
            Err(flume::TrySendError::Full(command)) => command,
        };
        if site == Site::Refuse {
            return Err(SendError::Refused {
                event: command.into_event(),
                reason: self.refusal(Refusal::BlockingInRuntime),
            });
        }
        match site.block(|| self.tx.send(command)) {
            Ok(()) => Ok(pending),
            Err(flume::SendError(command)) => Err(SendError::Closed(command.into_event())),
        }
    }

    /// As [`Engine::submit`], blocking the current thread. For threads that
    /// are not async.
    ///
    /// On a thread of a multi-threaded tokio runtime it blocks inside
    /// [`tokio::task::block_in_place`], so the owner keeps running. On any
    /// thread of a current-thread runtime it refuses before anything is
    /// queued: there it would panic or deadlock, and tokio offers no way to
    /// tell that runtime's own thread from its `spawn_blocking` threads.
    /// From `spawn_blocking` there, use
    /// `Handle::current().block_on(engine.submit(event))`.
    ///
    /// # Errors
    ///
    /// As [`Engine::submit`], and [`SubmitError::Refused`] with
    /// [`Refusal::BlockingInRuntime`] (the event handed back, nothing
    /// queued) on a current-thread runtime.
    ///
    /// # Panics
    ///
    /// Inside a `LocalSet` that the multi-threaded runtime's `block_on`
    /// thread drives, when it has to wait: `block_in_place` panics there.
    /// If the queue had room the event is queued by then, and its ack is
    /// lost as with a dropped [`Pending`].
    pub fn submit_blocking(&self, event: E) -> Result<Ack, SubmitError<E>> {
        let site = blocking_site();
        if site == Site::Refuse {
            return Err(SubmitError::Refused {
                event,
                reason: self.refusal(Refusal::BlockingInRuntime),
            });
        }
        Ok(self.send_blocking_at(event, site)?.wait_at(site)?)
    }

    /// Checks `event` for the journal of a durable engine, on the caller's
    /// thread, and returns it with its encoded bytes (none in memory).
    fn admit(&self, event: E) -> Result<(E, Option<EncodedEvent>), Admission<E>> {
        // Closed first: a stopped engine need not pay for the encode.
        if self.shared.gate.is_closed() {
            return Err(Admission::Closed(event));
        }
        if !self.durable {
            return Ok((event, None));
        }
        match codec::encode_event(&event) {
            Ok(encoded) => Ok((event, Some(encoded))),
            Err(error) => {
                let reason = self.refusal(Refusal::from_codec(error));
                Err(Admission::Refused(event, reason))
            }
        }
    }

    /// Counts a refusal, before the caller hears of it.
    fn refusal(&self, reason: Refusal) -> Refusal {
        self.shared.counters.record_refused();
        reason
    }

    /// A reader of this engine's snapshots. Readers do not keep the engine
    /// running.
    pub fn reader(&self) -> Reader<E> {
        self.reader.clone()
    }

    /// The exact state at `seq`, which may be any past seq still in the
    /// history: recent ones come from an in-memory window of snapshots
    /// ([`Builder::as_of_window`](crate::Builder::as_of_window)), older ones are rebuilt from the newest
    /// checkpoint at or before `seq` plus the journal, on a blocking thread
    /// (neither this task's runtime worker nor the owner waits on disk).
    ///
    /// # Errors
    ///
    /// [`AsOfError::NotYet`] for a seq not yet published,
    /// [`AsOfError::RolledBack`] for a seq a rollback undid,
    /// [`AsOfError::Forgotten`] for a seq older than an in-memory engine's
    /// window, [`AsOfError::Pruned`] for one behind a compacted journal
    /// prefix that no kept checkpoint holds, [`AsOfError::Rebuild`] when the disk could not produce it
    /// (naming the seq and path), and [`AsOfError::Closed`] when a
    /// persistent engine has stopped and the seq is not in the window.
    pub async fn as_of(&self, seq: u64) -> Result<Arc<SnapshotOf<E>>, AsOfError> {
        self.history.state_at(seq, self.reader.seq()).await
    }

    /// Every key that the events `after + 1 ..= through` wrote, with its
    /// value at `through` (`None`: removed), coalesced to one entry per
    /// key: how a change-feed subscriber that fell behind catches up
    /// without a whole snapshot. Needs [`Builder::key_changes`], and the
    /// range inside the as-of window.
    ///
    /// The recipe: subscribe first, then ask for the gap up to where the
    /// new feed starts, so nothing is missed or seen twice.
    ///
    /// ```no_run
    /// # async fn resync(engine: solostate::Engine<solostate::StateEvent<String, u64>>, mine: u64)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// let mut feed = engine.reader().changes(); // starts after the current snapshot
    /// let gap = engine.changes_between(mine, feed.next_seq() - 1).await?;
    /// for (key, value) in gap {
    ///     // apply `value` (None: removed) to the subscriber's copy of `key`
    /// #   let _ = (key, value);
    /// }
    /// let next = feed.recv().await?; // continues exactly after the gap
    /// # let _ = next;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ChangesError::Off`] without [`Builder::key_changes`],
    /// [`ChangesError::Backward`] when `after > through`,
    /// [`ChangesError::NotYet`] when `through` is not published yet,
    /// [`ChangesError::Forgotten`] when the range starts before the as-of
    /// window, and [`ChangesError::RolledBack`] when a rollback falls in
    /// it. Each but the first means: resync from a snapshot
    /// ([`Reader::subscribe`](crate::Reader::subscribe)).
    ///
    /// [`Builder::key_changes`]: crate::Builder::key_changes
    pub async fn changes_between(
        &self,
        after: u64,
        through: u64,
    ) -> Result<Coalesced<E>, ChangesError> {
        self.history
            .changes_between(after, through, self.reader.seq())
            .await
    }

    /// A catch-up subscription: every committed event after `seq`, first
    /// from the history (the as-of window, else the journal) and then
    /// live, with no gap and no duplicate at the switch. Pass the seq of
    /// the last event a subscriber applied, also after a restart. See
    /// [`CatchUp`] for the switch point, rollbacks and lag.
    ///
    /// It lives on the engine rather than on [`Reader`] because its
    /// history beyond the window is the journal, and the read side does
    /// not know about persistence.
    ///
    /// # Errors
    ///
    /// [`CatchUpError::NotYet`] for a `seq` after the last committed one,
    /// [`CatchUpError::Undone`] for a `seq` a rollback undid,
    /// [`CatchUpError::Forgotten`] for a `seq` older than an in-memory
    /// engine's window, [`CatchUpError::Pruned`] for one behind a compacted
    /// journal, and [`CatchUpError::History`] or
    /// [`CatchUpError::Stopped`] when the journal could not be read.
    pub async fn changes_from(&self, seq: u64) -> Result<CatchUp<E>, CatchUpError> {
        CatchUp::start(Arc::clone(&self.history), self.reader.clone(), seq).await
    }

    /// Rolls the state back to what it was at `target`, through the single
    /// writer, and returns the ack of the rollback step.
    ///
    /// Sequence numbers are never reused. The rollback is itself one step,
    /// with the next seq `R`: the snapshot at `R` equals the one at
    /// `target`, and new events continue at `R + 1`. The events after
    /// `target` are moved to the journal's archive (a separate tree;
    /// nothing is deleted) and checkpoints after `target` are deleted; the
    /// change is flushed before the new state is published, so a restart
    /// after the ack opens the rolled-back state.
    ///
    /// What this means for readers: `wait_for(n)` for an `n` between
    /// `target` and `R` had already resolved when those events committed,
    /// and `wait_for(R)` resolves with the rolled-back state. A reader that
    /// must tell a rollback from ordinary progress watches the change feed,
    /// which ends with [`ChangeError::RolledBack`](crate::ChangeError).
    /// [`Engine::as_of`] for an undone seq fails with
    /// [`AsOfError::RolledBack`].
    ///
    /// Commands queued before the rollback commit before it. An in-memory
    /// engine can roll back only within its as-of window.
    ///
    /// # Errors
    ///
    /// [`RollbackError::Unavailable`] when the state at `target` cannot be
    /// found (nothing changes), [`RollbackError::Journal`] when writing
    /// the rollback failed (the engine stops), and
    /// [`RollbackError::Closed`] when the engine no longer takes commands.
    pub async fn rollback_to(&self, target: u64) -> Result<Ack, RollbackError> {
        let Some(_pass) = self.shared.gate.enter() else {
            return Err(RollbackError::Closed);
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send_async(Command::Rollback { target, reply })
            .await
            .map_err(|_| RollbackError::Closed)?;
        rx.await.unwrap_or(Err(RollbackError::Closed))
    }

    /// Sends the command that `make` builds around a fresh reply channel,
    /// through the gate as [`Engine::rollback_to`] does, and returns the
    /// reply's receiver; `None` when the engine no longer takes commands.
    /// For commands that live in modules of their own (backup).
    pub(crate) async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command<E>,
    ) -> Option<oneshot::Receiver<T>> {
        let _pass = self.shared.gate.enter()?;
        let (reply, rx) = oneshot::channel();
        self.tx.send_async(make(reply)).await.ok()?;
        Some(rx)
    }

    /// Whether the engine journals (it has a directory).
    pub(crate) fn is_durable(&self) -> bool {
        self.durable
    }

    /// What opening the engine found and did: the checkpoint it loaded,
    /// how much journal it replayed, and any torn or quarantined records.
    pub fn recovery(&self) -> &Recovery {
        &self.shared.recovery
    }

    /// The engine's counters and queue depth.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot(self.tx.len())
    }

    /// Whether the engine has stopped taking events.
    pub fn is_closed(&self) -> bool {
        self.shared.gate.is_closed() || self.tx.is_disconnected()
    }

    /// Stops the engine gracefully: new submissions fail with `Closed` (and
    /// get their event back) from now on, everything already queued is
    /// applied and acknowledged, the final snapshot is published, and then
    /// the owner task ends. Safe to call more than once and from several
    /// handles; every call returns once the owner has stopped.
    ///
    /// # Errors
    ///
    /// [`ShutdownError::OwnerFailed`] if the owner task did not end
    /// normally (for example, its runtime was shut down first), and
    /// [`ShutdownError::Journal`] if it stopped after a journal write or
    /// flush failed (the message names the seqs and the path).
    pub async fn shutdown(&self) -> Result<(), ShutdownError> {
        self.shared.gate.close();
        // Wake the owner if it is idle. An error means it has already
        // stopped, which is what we are waiting for anyway.
        let _ = self.tx.send_async(Command::Wake).await;
        self.reader.stopped().await;
        if let Some(failure) = self.shared.failure.get() {
            Err(ShutdownError::Journal {
                message: failure.message.clone(),
                io: failure.io,
            })
        } else if self.shared.clean_exit.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ShutdownError::OwnerFailed)
        }
    }
}
