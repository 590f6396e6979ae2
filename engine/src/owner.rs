//! The owner task: the one place that holds and changes the working state.

mod backup;
mod commit;
mod rollback;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use solostate_commands::Event;
use solostate_persistence::codec;
use solostate_persistence::journal::{Journal, PendingFlush};
use solostate_queries::{Publisher, SnapshotOf};

use crate::batch::{Batch, Sealed, WorkingOf};
use crate::checkpointer::Checkpointer;
use crate::durability::Durability;
use crate::guard::{Digest, HashGuard};
use crate::history::History;
use crate::message::Command;
use crate::metrics::{ApplyTimer, Stamp};
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
        apply_timer: ApplyTimer::new(),
    };
    let mut inbox: Vec<Command<E>> = Vec::new();
    tracing::debug!(
        last_seq = owner.last_seq,
        max_batch = config.max_batch,
        "owner started"
    );

    while let Ok(first) = owner.next_command(&rx, &shared).await {
        shared.counters.metrics.queue_depth(|| rx.len());
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
    /// The time spent applying the open batch, for its metric.
    apply_timer: ApplyTimer,
}

/// A sealed batch waiting for its flush, while the owner applies the next.
struct InFlight<E: Event> {
    sealed: Sealed<E>,
    flush: PendingFlush,
    /// Its journal record's size.
    bytes: u64,
    /// When its append started: its flush metric runs from here.
    appending: Stamp,
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
            let submission = match command {
                Command::Submit(submission) => submission,
                Command::Rollback { target, reply } => {
                    self.apply_timer.pause();
                    // Everything queued before the rollback commits first.
                    if self.batch.len() > 0 {
                        self.commit(false, shared).await;
                    }
                    let outcome = self.rollback(target, shared).await;
                    // The caller may have stopped waiting; that is fine.
                    let _ = reply.send(outcome);
                    continue;
                }
                Command::Backup { reply } => {
                    self.apply_timer.pause();
                    // Everything queued before the backup is in it.
                    if self.batch.len() > 0 {
                        self.commit(false, shared).await;
                    }
                    // The caller may have stopped waiting; that is fine.
                    let _ = reply.send(self.backup_source(shared).await);
                    continue;
                }
                Command::Wake => continue, // `run` checks the gate's flag
            };
            if let Some(failure) = &self.failed {
                // The submitter may be gone; nothing else to do.
                let _ = submission.reply.send(Err(failure.ack_error()));
                continue;
            }
            // Capped by bytes too: an event that would take a record of
            // several events past the limit starts the next batch.
            if let Some(encoded) = &submission.encoded
                && !codec::fits(self.batch.len(), self.batch.bytes(), encoded.len())
            {
                self.commit(true, shared).await;
            }
            self.apply_timer.resume();
            let (in_flight, publisher) = (&self.in_flight, &self.publisher);
            self.batch.offer(
                &mut self.state,
                submission,
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
                self.apply_timer.pause();
                self.settle(shared).await;
            }
        }
        // Events left open (or all refused) go on counting toward the
        // next batch that commits; waiting does not.
        self.apply_timer.pause();
        if self.batch.len() > 0 && self.in_flight.is_none() {
            self.commit(!queue.is_empty(), shared).await;
        }
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
