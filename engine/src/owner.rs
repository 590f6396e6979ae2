//! The owner task: the one place that holds and changes the working map.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use solostate_commands::{Event, State};
use solostate_persistence::journal::Journal;
use solostate_queries::Publisher;

use crate::batch::{Batch, Reply};
use crate::durability::Durability;
use crate::error::AckError;
use crate::handle::Shared;

/// A message to the owner task.
pub(crate) enum Command<E: Event> {
    /// Apply `event` and answer on `reply`.
    Submit { event: E, reply: Reply<E> },
    /// Wake up: the gate is closed, finish and stop. The gate's flag is the
    /// real signal; this only interrupts the wait for the next command.
    Wake,
}

impl<E: Event> Command<E> {
    /// The event inside a command that could not be sent.
    pub(crate) fn into_event(self) -> E {
        match self {
            Command::Submit { event, .. } => event,
            Command::Wake => unreachable!("only Submit commands carry events back"),
        }
    }
}

/// Tuning that the owner loop needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerConfig {
    /// The most events applied before a snapshot is published.
    pub(crate) max_batch: usize,
    /// When journaled batches are flushed.
    pub(crate) durability: Durability,
}

/// The owner loop. Each turn it waits for a command, takes everything else
/// already queued, and applies it in batches of at most `max_batch` events:
/// per batch one journal record (and flush, under `Durability::Always`),
/// one published snapshot, then the acks.
///
/// It ends when the gate is closed and drained (shutdown), when every
/// handle is gone, or after a journal failure. Every way, everything that
/// entered the queue is answered first.
#[tracing::instrument(name = "solostate_owner", skip_all)]
pub(crate) async fn run<E: Event>(
    rx: Intake<E>,
    map: State<E>,
    journal: Option<Arc<Journal>>,
    publisher: Publisher<E>,
    config: OwnerConfig,
) {
    let shared = Arc::clone(&rx.shared);
    let mut state = Working {
        last_seq: publisher.seq(),
        map,
        batch: Batch::with_capacity(config.max_batch),
        publisher,
        journal,
        config,
        failed: None,
    };
    let mut inbox: Vec<Command<E>> = Vec::new();
    tracing::debug!(
        last_seq = state.last_seq,
        max_batch = config.max_batch,
        "owner started"
    );

    while let Ok(first) = rx.recv_async().await {
        inbox.push(first);
        inbox.extend(rx.drain());
        state.process(inbox.drain(..), &shared).await;

        if state.failed.is_some() {
            shared.gate.close();
        }
        if shared.gate.is_closed() {
            // Intake is closed. Keep draining until no admitted send is
            // still running; after that nothing new can arrive.
            loop {
                let drained = shared.gate.is_drained();
                let queued: Vec<_> = rx.drain().collect();
                state.process(queued.into_iter(), &shared).await;
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
    if let Some(journal) = &state.journal
        && state.failed.is_none()
        && let Err(error) = journal.flush_async().await
    {
        state.failed = Some(error.to_string());
    }
    if let Some(journal) = state.journal.take() {
        close_journal(journal).await;
    }
    if let Some(message) = state.failed.take() {
        tracing::error!(%message, "owner stopped after a journal failure");
        let _ = shared.failure.set(message);
    }
    shared.clean_exit.store(true, Ordering::Release);
    tracing::debug!(last_seq = state.last_seq, "owner stopped");
    // Dropping `state.publisher` tells readers the engine has stopped.
}

/// Closes the journal before readers are told the engine stopped, so that
/// once `shutdown` returns the directory is unlocked and can be reopened.
/// The periodic flusher may hold a reference for the length of one flush;
/// wait for it to let go, then drop sled's handle off the runtime (dropping
/// it joins sled's background thread).
async fn close_journal(mut journal: Arc<Journal>) {
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
    // A failed join means the drop panicked; nothing is left to close.
    let _ = tokio::task::spawn_blocking(move || drop(journal)).await;
}

/// Flushes the journal every `interval` for `Durability::Every`, until the
/// owner (the journal's only strong holder) is gone.
pub(crate) async fn flush_every(journal: Weak<Journal>, interval: Duration, shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let Some(journal) = journal.upgrade() else {
            return;
        };
        if let Err(error) = journal.flush_async().await {
            tracing::error!(%error, "periodic journal flush failed; closing the engine");
            let _ = shared.failure.set(error.to_string());
            shared.gate.close();
            return;
        }
    }
}

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

/// The owner's working state. It lives on `run`'s stack and nowhere else.
struct Working<E: Event> {
    map: State<E>,
    last_seq: u64,
    batch: Batch<E>,
    publisher: Publisher<E>,
    journal: Option<Arc<Journal>>,
    config: OwnerConfig,
    /// Set when a journal write failed: from then on every command is
    /// answered with that error and the owner stops.
    failed: Option<String>,
}

impl<E: Event> Working<E> {
    /// Applies the commands in batches of at most `max_batch` events.
    async fn process(&mut self, commands: impl Iterator<Item = Command<E>>, shared: &Shared) {
        let mut in_batch = 0;
        for command in commands {
            let Command::Submit { event, reply } = command else {
                continue; // a wake-up; `run` checks the gate's flag
            };
            if let Some(message) = &self.failed {
                // The submitter may be gone; nothing else to do.
                let _ = reply.send(Err(AckError::Journal {
                    message: message.clone(),
                }));
                continue;
            }
            self.batch
                .offer(&mut self.map, event, reply, &shared.counters);
            in_batch += 1;
            if in_batch == self.config.max_batch {
                self.commit(shared).await;
                in_batch = 0;
            }
        }
        if in_batch > 0 {
            self.commit(shared).await;
        }
    }

    /// Journals the batch (flushing it under `Durability::Always`), then
    /// publishes and acks it. If the journal fails, nobody in the batch is
    /// acked, the working map goes back to the published one, and the
    /// owner stops taking events.
    async fn commit(&mut self, shared: &Shared) {
        if let Err(error) = self.journal_batch().await {
            let message = error.to_string();
            tracing::error!(%message, first_seq = self.last_seq + 1, "journal write failed; the engine stops");
            self.batch.abort(&message);
            self.map = self.publisher.snapshot().map().clone();
            self.failed = Some(message);
            return;
        }
        tracing::trace!(events = self.batch.events().len(), "commit");
        self.batch.commit(
            &self.map,
            &mut self.last_seq,
            &self.publisher,
            &shared.counters,
        );
    }

    async fn journal_batch(&self) -> Result<(), solostate_persistence::journal::JournalError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        if self.batch.events().is_empty() {
            return Ok(());
        }
        journal.append(self.last_seq + 1, self.batch.events())?;
        if self.config.durability == Durability::Always {
            journal.flush_async().await?;
        }
        Ok(())
    }
}
