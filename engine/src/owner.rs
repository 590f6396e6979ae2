//! The owner task: the one place that holds and changes the working map.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use solostate_commands::{Event, State};
use solostate_queries::Publisher;

use crate::batch::{Batch, Reply};
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
}

/// The owner loop. Each turn it waits for a command, takes everything else
/// already queued, and applies it in batches of at most `max_batch` events:
/// one published snapshot per batch, then the acks.
///
/// It ends when the gate is closed and drained (shutdown) or when every
/// handle is gone. Either way, everything that entered the queue is
/// answered first.
#[tracing::instrument(name = "solostate_owner", skip_all)]
pub(crate) async fn run<E: Event>(
    rx: Intake<E>,
    map: State<E>,
    publisher: Publisher<E>,
    config: OwnerConfig,
) {
    let shared = Arc::clone(&rx.shared);
    let mut state = Working {
        last_seq: publisher.seq(),
        map,
        batch: Batch::with_capacity(config.max_batch),
        publisher,
        max_batch: config.max_batch,
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
        state.process(inbox.drain(..), &shared);

        if shared.gate.is_closed() {
            // Intake is closed. Keep draining until no admitted send is
            // still running; after that nothing new can arrive.
            loop {
                let drained = shared.gate.is_drained();
                state.process(rx.drain(), &shared);
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
    shared.clean_exit.store(true, Ordering::Release);
    tracing::debug!(last_seq = state.last_seq, "owner stopped");
    // Dropping `state.publisher` tells readers the engine has stopped.
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
    max_batch: usize,
}

impl<E: Event> Working<E> {
    /// Applies the commands in batches of at most `max_batch` events.
    fn process(&mut self, commands: impl Iterator<Item = Command<E>>, shared: &Shared) {
        let mut in_batch = 0;
        let mut span = None;
        for command in commands {
            let Command::Submit { event, reply } = command else {
                continue; // a wake-up; `run` checks the gate's flag
            };
            if span.is_none() {
                span = Some(tracing::trace_span!("batch", first_seq = self.last_seq + 1).entered());
            }
            self.batch.offer(&mut self.map, event, reply);
            in_batch += 1;
            if in_batch == self.max_batch {
                self.commit(shared);
                in_batch = 0;
                span = None;
            }
        }
        if in_batch > 0 {
            self.commit(shared);
        }
    }

    fn commit(&mut self, shared: &Shared) {
        self.batch.commit(
            &self.map,
            &mut self.last_seq,
            &self.publisher,
            &shared.counters,
        );
    }
}
