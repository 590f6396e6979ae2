//! The owner task: the one place that holds and changes the working state.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use solostate_commands::Event;
use solostate_persistence::codec;
use solostate_persistence::journal::{Journal, JournalError, PendingFlush};
use solostate_queries::{CommittedBatch, Publisher, SnapshotOf};

use crate::batch::{Batch, Sealed, WorkingOf};
use crate::checkpointer::Checkpointer;
use crate::durability::Durability;
use crate::error::{AsOfError, RollbackError};
use crate::guard::{Digest, HashGuard};
use crate::history::History;
use crate::message::{Ack, Command};
use crate::shared::{JournalFailure, Shared};

/// Tuning that the owner loop needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerConfig {
    /// The most events applied before a snapshot is published.
    pub(crate) max_batch: usize,
    /// When journaled batches are flushed.
    pub(crate) durability: Durability,
    /// Whether the per-batch flush of `Durability::Always` runs on the
    /// owner's own thread inside `block_in_place` (multi-thread runtimes)
    /// rather than through `Journal::flush_async` (the journal's flush
    /// thread). Both keep the runtime's other tasks running; the first
    /// saves the hop to that thread and back, which is most of the gap
    /// between an ack and a raw sled insert plus flush.
    pub(crate) flush_in_place: bool,
    /// Whether, under `Durability::Always`, a batch's flush runs while the
    /// owner applies the next one, when more commands are waiting.
    pub(crate) pipelined: bool,
    /// The determinism guard's interval in events (0 = off).
    pub(crate) state_hash_every: u64,
    /// Whether batches keep their key-level changes for the as-of window.
    pub(crate) key_changes: bool,
}

/// The owner loop. Each turn it waits for a command, takes everything else
/// already queued, and applies it in batches of at most `max_batch` events:
/// per batch one journal record (and flush, under `Durability::Always`),
/// one published snapshot, then the acks.
///
/// Pipelining, under `Durability::Always`: when more commands are waiting
/// as a batch is sealed, its flush is started on the journal's flush
/// thread and the owner goes on to apply the next batch, which stays open
/// for new arrivals until the flush ends. The sealed batch is published
/// and acked once its flush has ended (seen between events, while idle,
/// or before the next batch is journaled), so an ack still means durable
/// and a reader still sees only durable batches. At most one batch is in
/// flight: the next is journaled only after it.
///
/// It ends when the gate is closed and drained (shutdown), when every
/// handle is gone, or after a journal failure. Every way, everything that
/// entered the queue is answered first.
#[tracing::instrument(name = "solostate_owner", skip_all)]
pub(crate) async fn run<E: Event>(
    rx: Intake<E>,
    state: WorkingOf<E>,
    disk: Option<(Arc<Journal>, Checkpointer)>,
    publisher: Publisher<E>,
    history: Arc<History<E>>,
    digest: Option<Digest>,
    config: OwnerConfig,
) {
    let (journal, checkpointer) = disk.unzip();
    let shared = Arc::clone(&rx.shared);
    let guard = journal
        .is_some()
        .then(|| HashGuard::new(config.state_hash_every))
        .flatten();
    // The digest is only kept up to date for a guard that records it.
    let digest = digest.filter(|_| guard.is_some());
    let mut owner = Owner {
        guard,
        last_seq: publisher.seq(),
        state,
        batch: Batch::with_capacity(config.max_batch, digest, config.key_changes),
        publisher,
        history,
        journal,
        checkpointer,
        config,
        failed: None,
        in_flight: None,
    };
    let mut inbox: Vec<Command<E>> = Vec::new();
    tracing::debug!(
        last_seq = owner.last_seq,
        max_batch = config.max_batch,
        "owner started"
    );

    while let Ok(first) = owner.next_command(&rx, &shared).await {
        inbox.push(first);
        inbox.extend(rx.drain());
        owner.process(inbox.drain(..), &rx, &shared).await;

        if owner.failed.is_some() {
            shared.gate.close();
        }
        if shared.gate.is_closed() {
            // Intake is closed. Keep draining until no admitted send is
            // still running; after that nothing new can arrive.
            loop {
                let drained = shared.gate.is_drained();
                let queued: Vec<_> = rx.drain().collect();
                owner.process(queued.into_iter(), &rx, &shared).await;
                if drained {
                    break;
                }
                tokio::task::yield_now().await;
            }
            break;
        }
        // Let other tasks on this worker run between bursts.
        tokio::task::consume_budget().await;
    }
    // A batch still in flight, and the one open behind it, are answered
    // before anything closes.
    owner.settle(&shared).await;
    if owner.batch.len() > 0 {
        owner.commit(false, &shared).await;
    }
    if let Some(journal) = &owner.journal
        && owner.failed.is_none()
    {
        if let Err(error) = journal.flush_async().await {
            let through = owner.last_seq;
            owner.failed = Some(JournalFailure::new(
                format_args!("final flush at shutdown (seqs through {through})"),
                &error,
            ));
        } else if let Some(checkpointer) = &mut owner.checkpointer {
            checkpointer
                .finish::<E>(journal, &owner.publisher.snapshot(), &shared)
                .await;
        }
    }
    if let Some(checkpointer) = &mut owner.checkpointer {
        checkpointer.settle().await;
    }
    if let Some(journal) = owner.journal.take() {
        let failed = owner.failed.is_some() || shared.failure.get().is_some();
        close_journal(journal, failed).await;
    }
    if let Some(failure) = owner.failed.take() {
        tracing::error!(message = %failure.message, "owner stopped after a journal failure");
        let _ = shared.failure.set(failure);
    }
    shared.clean_exit.store(true, Ordering::Release);
    tracing::debug!(last_seq = owner.last_seq, "owner stopped");
    // Dropping `owner.publisher` tells readers the engine has stopped.
}

/// Closes the journal before readers are told the engine stopped, so that
/// once `shutdown` returns the directory is unlocked and can be reopened.
/// The periodic flusher may hold a reference for the length of one flush;
/// wait for it to let go, then drop sled's handle off the runtime (dropping
/// it joins sled's background thread). After a journal failure the close
/// is bounded (see the end).
async fn close_journal(mut journal: Arc<Journal>, after_failure: bool) {
    let journal = loop {
        match Arc::try_unwrap(journal) {
            Ok(journal) => break journal,
            Err(shared) => {
                journal = shared;
                // Not a timer: the runtime may have none enabled.
                tokio::task::yield_now().await;
            }
        }
    };
    if !after_failure {
        // A failed join means the drop panicked; nothing is left to close.
        let _ = tokio::task::spawn_blocking(move || drop(journal)).await;
        return;
    }
    // After a real I/O error, sled 0.34's last flush (it flushes when
    // dropped) can wait forever for a write that failed (seen on a full
    // tmpfs). Give it a while on a thread of its own, then let it be:
    // `shutdown` returns with the journal's error instead of hanging, and
    // the directory stays locked until the process exits.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(journal);
        let _ = done.send(()); // nobody may be waiting any more
    });
    let waited = tokio::task::spawn_blocking(move || finished.recv_timeout(CLOSE_AFTER_FAILURE))
        .await
        .is_ok_and(|received| received.is_ok());
    if !waited {
        tracing::error!(
            seconds = CLOSE_AFTER_FAILURE.as_secs(),
            "the journal did not close after its failure; it stays open (and its directory locked) until the process exits"
        );
    }
}

/// How long [`close_journal`] waits for a journal that failed to close.
const CLOSE_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The receiving end of the queue. If the owner task is torn down before it
/// finishes (its runtime shut down, or a bug panicked outside `apply`), this
/// guard closes intake and drops every queued command, so that their
/// submitters get `AckError::Aborted` instead of waiting for the last
/// handle to go away.
///
/// It is made before the owner task is spawned, so that it runs even when
/// the task is dropped before its first poll.
pub(crate) struct Intake<E: Event> {
    pub(crate) rx: flume::Receiver<Command<E>>,
    pub(crate) shared: Arc<Shared>,
    /// The periodic flusher of `Durability::Every`, held here so that it
    /// stops when the owner does, however the owner ends.
    pub(crate) _flusher: Option<crate::flusher::Flusher>,
}

impl<E: Event> std::ops::Deref for Intake<E> {
    type Target = flume::Receiver<Command<E>>;

    fn deref(&self) -> &Self::Target {
        &self.rx
    }
}

impl<E: Event> Drop for Intake<E> {
    fn drop(&mut self) {
        self.shared.gate.close();
        let abandoned = self.rx.drain().len();
        if abandoned > 0 {
            tracing::error!(abandoned, "owner task torn down; queued commands aborted");
        }
    }
}

/// The owner's working state and bookkeeping. It lives on `run`'s stack
/// and nowhere else.
struct Owner<E: Event> {
    state: WorkingOf<E>,
    last_seq: u64,
    batch: Batch<E>,
    publisher: Publisher<E>,
    /// The as-of window, which the owner extends after every publish.
    history: Arc<History<E>>,
    journal: Option<Arc<Journal>>,
    /// Present exactly when `journal` is.
    checkpointer: Option<Checkpointer>,
    /// The determinism guard: present when `journal` is and the guard is on.
    guard: Option<HashGuard>,
    config: OwnerConfig,
    /// Set when a journal write failed: from then on every command is
    /// answered with that error and the owner stops.
    failed: Option<JournalFailure>,
    /// The sealed batch whose flush is under way (pipelining), if any.
    in_flight: Option<InFlight<E>>,
}

/// A sealed batch waiting for its flush, while the owner applies the next.
struct InFlight<E: Event> {
    sealed: Sealed<E>,
    flush: PendingFlush,
    /// Its journal record's size.
    bytes: u64,
}

impl<E: Event> Owner<E> {
    /// The next command. While a batch is in flight, the batch being
    /// built stays open for whatever arrives until the flush ends; then
    /// the batch in flight is finished and the open one committed.
    async fn next_command(
        &mut self,
        rx: &flume::Receiver<Command<E>>,
        shared: &Arc<Shared>,
    ) -> Result<Command<E>, flume::RecvError> {
        loop {
            let Some(in_flight) = &self.in_flight else {
                return rx.recv_async().await;
            };
            // Whichever is ready first, the flush preferred. Both futures
            // are cancel-safe: the one left unfinished loses nothing.
            let flushed = {
                let mut flushed = std::pin::pin!(in_flight.flush.wait());
                let mut command = std::pin::pin!(rx.recv_async());
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(flushed) = flushed.as_mut().poll(cx) {
                        return Poll::Ready(Ok(flushed));
                    }
                    command.as_mut().poll(cx).map(Err)
                })
                .await
            };
            let flushed = match flushed {
                Ok(flushed) => flushed,
                Err(command) => return command,
            };
            self.conclude(flushed, shared);
            if self.batch.len() > 0 {
                self.commit(!rx.is_empty(), shared).await;
            }
        }
    }

    /// Applies the commands in batches of at most `max_batch` events.
    /// `queue` is read only to see whether more commands are waiting,
    /// which is when a batch's flush is worth overlapping with the next.
    ///
    /// A batch left short when the commands run out is committed, unless
    /// a batch is in flight: then it stays open for
    /// [`next_command`](Self::next_command), growing with what arrives
    /// during the flush, as the queue would without pipelining.
    async fn process(
        &mut self,
        commands: impl Iterator<Item = Command<E>>,
        queue: &flume::Receiver<Command<E>>,
        shared: &Arc<Shared>,
    ) {
        let mut commands = commands.peekable();
        let mut offered = 0usize;
        while let Some(command) = commands.next() {
            let (event, encoded, reply) = match command {
                Command::Submit {
                    event,
                    encoded,
                    reply,
                } => (event, encoded, reply),
                Command::Rollback { target, reply } => {
                    // Everything queued before the rollback commits first.
                    if self.batch.len() > 0 {
                        self.commit(false, shared).await;
                    }
                    let outcome = self.rollback(target, shared).await;
                    // The caller may have stopped waiting; that is fine.
                    let _ = reply.send(outcome);
                    continue;
                }
                Command::Wake => continue, // `run` checks the gate's flag
            };
            if let Some(failure) = &self.failed {
                // The submitter may be gone; nothing else to do.
                let _ = reply.send(Err(failure.ack_error()));
                continue;
            }
            // Capped by bytes too: an event that would take a record of
            // several events past the limit starts the next batch.
            if let Some(encoded) = &encoded
                && !codec::fits(self.batch.len(), self.batch.bytes(), encoded.len())
            {
                self.commit(true, shared).await;
            }
            let (in_flight, publisher) = (&self.in_flight, &self.publisher);
            self.batch.offer(
                &mut self.state,
                event,
                encoded,
                reply,
                || base(in_flight, publisher),
                &shared.counters,
            );
            offered += 1;
            if self.batch.len() == self.config.max_batch {
                let more = commands.peek().is_some() || !queue.is_empty();
                self.commit(more, shared).await;
            } else if offered.is_multiple_of(FLUSH_POLL_EVERY)
                && self.in_flight.as_ref().is_some_and(|f| f.flush.is_done())
            {
                // Its acks need not wait for this batch to fill.
                self.settle(shared).await;
            }
        }
        if self.batch.len() > 0 && self.in_flight.is_none() {
            self.commit(!queue.is_empty(), shared).await;
        }
    }

    /// Journals the batch and seals it; under `Durability::Always` it is
    /// flushed first, and then published and acked. With `more` commands
    /// waiting (and pipelining on), the flush is left running and the
    /// batch in flight, to be finished by [`Owner::settle`].
    ///
    /// If the journal fails, nobody in the batch is acked, its record is
    /// taken back out of the journal, the working state goes back to the
    /// published one, and the owner stops taking events.
    async fn commit(&mut self, more: bool, shared: &Arc<Shared>) {
        // One batch in flight at most, and records go in seq order.
        self.settle(shared).await;
        if let Some(failure) = &self.failed {
            // The batch in flight failed: this one, applied after it, goes
            // with it.
            self.batch.abort(failure);
            return;
        }
        let bytes = match self.append() {
            Ok(bytes) => bytes,
            Err(error) => {
                let first = self.last_seq + 1;
                let last = self.last_seq + self.batch.events().len() as u64;
                self.fail(&error, first, last, None);
                return;
            }
        };
        tracing::trace!(events = self.batch.len(), "commit");
        let sealed = self.batch.seal(&mut self.state, &mut self.last_seq);
        if let Some(journal) = &self.journal
            && self.config.durability == Durability::Always
            && sealed.len() > 0
        {
            if more && self.config.pipelined {
                match journal.start_flush() {
                    Ok(flush) => {
                        self.in_flight = Some(InFlight {
                            sealed,
                            flush,
                            bytes,
                        });
                    }
                    Err(error) => {
                        self.fail(&error, sealed.first_seq, sealed.last_seq, Some(sealed))
                    }
                }
                return;
            }
            let flushed = if self.config.flush_in_place {
                tokio::task::block_in_place(|| journal.flush())
            } else {
                journal.flush_async().await
            };
            if let Err(error) = flushed {
                self.fail(&error, sealed.first_seq, sealed.last_seq, Some(sealed));
                return;
            }
        }
        self.finish(sealed, bytes, shared);
    }

    /// Appends the batch to the journal, unflushed. Returns the record's
    /// size in bytes.
    fn append(&self) -> Result<u64, JournalError> {
        let Some(journal) = &self.journal else {
            return Ok(0);
        };
        if self.batch.events().is_empty() {
            return Ok(0);
        }
        let first = self.last_seq + 1;
        let last = self.last_seq + self.batch.events().len() as u64;
        let state_hash = self
            .guard
            .as_ref()
            .filter(|guard| guard.due(first, last))
            .and(self.batch.working_hash());
        let bytes = match self.batch.encoded() {
            Some(encoded) => journal.append_encoded_with_hash(first, encoded, state_hash)?,
            // Not reached: the handles of a durable engine encode every
            // event. Kept so that a batch is never journaled without them.
            None => journal.append(first, self.batch.events())?,
        };
        Ok(bytes as u64)
    }

    /// Waits for the batch in flight, if any, and finishes it (or fails
    /// with it).
    async fn settle(&mut self, shared: &Arc<Shared>) {
        if let Some(in_flight) = &self.in_flight {
            let flushed = in_flight.flush.wait().await;
            self.conclude(flushed, shared);
        }
    }

    /// Finishes the batch in flight after its flush ended with `flushed`.
    fn conclude(&mut self, flushed: Result<(), JournalError>, shared: &Arc<Shared>) {
        let Some(InFlight { sealed, bytes, .. }) = self.in_flight.take() else {
            return;
        };
        match flushed {
            Ok(()) => {
                shared.counters.record_pipelined();
                self.finish(sealed, bytes, shared);
            }
            Err(error) => self.fail(&error, sealed.first_seq, sealed.last_seq, Some(sealed)),
        }
    }

    /// Publishes and acks a durable sealed batch, and hands it to the
    /// as-of window and the checkpointer.
    fn finish(&mut self, sealed: Sealed<E>, bytes: u64, shared: &Arc<Shared>) {
        let events = sealed.len();
        let Some((snapshot, batch)) =
            sealed.finish(&mut self.state, &self.publisher, &shared.counters)
        else {
            return;
        };
        self.history.push(Arc::clone(&snapshot), batch);
        if let (Some(checkpointer), Some(journal)) = (&mut self.checkpointer, &self.journal) {
            checkpointer.after_commit::<E>(events, bytes, journal, &snapshot, shared);
        }
    }

    /// The journal failed writing or flushing seqs `first..=last`: the
    /// batch (`sealed`, or the current one) and the current batch are
    /// refused, the working state goes back to the published snapshot,
    /// and the owner stops taking events.
    fn fail(&mut self, error: &JournalError, first: u64, last: u64, sealed: Option<Sealed<E>>) {
        let failure = JournalFailure::new(
            format_args!("journal write of seqs {first}..={last}"),
            error,
        );
        tracing::error!(message = %failure.message, "journal write failed; the engine stops");
        if let Some(journal) = &self.journal {
            // A record whose flush failed is still in sled's memory, and
            // sled flushes on drop: take it back, or the events we are
            // about to refuse come back on restart. (After a failed append
            // there is nothing to take back, and the removal does
            // nothing.) The batch after it was not journaled yet.
            if let Err(error) = journal.discard(first) {
                tracing::error!(%error, first, "could not take back the failed batch's record; its events may reappear after a restart");
            }
        }
        if let Some(sealed) = sealed {
            sealed.abort(&failure);
        }
        self.batch.abort(&failure);
        self.last_seq = first - 1;
        self.state.reset(&self.publisher.snapshot());
        self.failed = Some(failure);
    }

    /// Commits a rollback to the state at `target` as one new step: the
    /// state is found (window, or checkpoint plus journal), checkpoints
    /// after `target` are deleted, the journal archives the undone records
    /// and gains a rollback marker (flushed), and then the state is
    /// published. A failure before the journal changed leaves everything
    /// as it was; a failed journal write stops the engine.
    async fn rollback(&mut self, target: u64, shared: &Arc<Shared>) -> Result<Ack, RollbackError> {
        self.settle(shared).await;
        if let Some(failure) = &self.failed {
            return Err(failure.rollback_error());
        }
        let unavailable = RollbackError::Unavailable;
        if let Some(checkpointer) = &mut self.checkpointer {
            // No checkpoint may land after the ones we are about to
            // delete, and none may prune the journal between the check
            // below and the rollback: settle the one in flight first.
            // (Checked after it, a rollback raced the prune, and the
            // journal's refusal stopped the engine.)
            checkpointer.settle().await;
        }
        if let Some(journal) = &self.journal {
            // Refuse before anything changes: a rollback behind the
            // compacted prefix would archive every record and delete every
            // checkpoint after the target, leaving nothing that can rebuild
            // it on the next open.
            let first = journal.first_seq().map_err(|error| {
                unavailable(AsOfError::Rebuild {
                    seq: target,
                    message: error.to_string(),
                })
            })?;
            if target + 1 < first {
                return Err(unavailable(AsOfError::Pruned { seq: target, first }));
            }
        }
        // The same lookup as `Engine::as_of`: the window, else the disk.
        let state = self
            .history
            .state_at(target, self.last_seq)
            .await
            .map_err(unavailable)?;
        let seq = self.last_seq + 1;
        self.history.begin_rollback();
        if let (Some(journal), Some(checkpointer)) = (&self.journal, &mut self.checkpointer) {
            let journal = Arc::clone(journal);
            let store = Arc::clone(&checkpointer.store);
            let what = format!("rollback to seq {target} (marker at seq {seq})");
            let written = tokio::task::spawn_blocking(move || -> Result<(), JournalFailure> {
                // Checkpoints first: if we crash between the two steps, the
                // journal still holds the full timeline and an older
                // checkpoint (or none) is used.
                store.remove_after(target).map_err(|error| JournalFailure {
                    message: format!("{what}: {error}"),
                    io: None,
                })?;
                journal
                    .rollback::<E>(target, seq)
                    .map_err(|error| JournalFailure::new(what, &error))?;
                Ok(())
            })
            .await
            .unwrap_or_else(|error| {
                Err(JournalFailure {
                    message: format!("rollback task failed: {error}"),
                    io: None,
                })
            });
            checkpointer.rolled_back(target);
            if let Err(failure) = written {
                self.history.end_rollback(self.publisher.snapshot(), None);
                tracing::error!(message = %failure.message, target, "rollback failed to reach the journal; the engine stops");
                let error = failure.rollback_error();
                self.failed = Some(failure);
                return Err(error);
            }
        }
        self.state.reset(&state);
        if self.batch.working_hash().is_some() {
            // The guard follows the restored state from its full hash,
            // taken off the runtime.
            let restored = Arc::clone(&state);
            let hasher = tokio::task::spawn_blocking(move || {
                solostate_persistence::hash::hasher_of::<E>(&restored.view())
            })
            .await;
            self.batch
                .replace_digest(hasher.ok().and_then(|hasher| hasher.ok()));
        }
        self.last_seq = seq;
        self.publisher.publish(
            self.state.publish(seq),
            Arc::new(CommittedBatch::rollback(seq, target)),
        );
        shared.counters.record_rollback(seq);
        self.history
            .end_rollback(self.publisher.snapshot(), Some(target + 1..=seq - 1));
        tracing::info!(target, seq, "rolled back");
        Ok(Ack { seq })
    }
}

/// The snapshot that the working state equals before the current batch's
/// events: the sealed batch's while one is in flight, else the published.
fn base<E: Event>(in_flight: &Option<InFlight<E>>, publisher: &Publisher<E>) -> Arc<SnapshotOf<E>> {
    in_flight
        .as_ref()
        .and_then(|in_flight| in_flight.sealed.snapshot().cloned())
        .unwrap_or_else(|| publisher.snapshot())
}

/// How often, in events, the owner looks whether the batch in flight has
/// been flushed (a lock of its reply channel), so that its acks go out
/// without waiting for the batch being applied to fill.
const FLUSH_POLL_EVERY: usize = 16;
