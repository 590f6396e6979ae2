//! One batch on the owner task: apply events, undo failures, commit.
//!
//! The fast path applies each event straight to the working map, with no
//! copy. When an event fails (rejected or panicked) its `apply` may have
//! written part of its change, so the map is rebuilt: from a checkpoint (an
//! O(1) clone of the persistent map taken at the start of the batch or
//! after the last failure) plus the events accepted since. Each accepted
//! event is re-applied at most once per failure after it, and a batch with
//! no failures pays nothing. This is what lets `Event::apply` skip undo
//! logic of its own.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use solostate_commands::{Event, State};
use solostate_persistence::codec::EncodedEvent;
use solostate_queries::{CommittedBatch, Publisher};

use crate::error::AckError;
use crate::message::{Ack, Reply};
use crate::shared::JournalFailure;
use crate::stats::Counters;

/// Events accepted in the current batch, with their replies, and what is
/// needed to undo a failure.
pub(crate) struct Batch<E: Event> {
    events: Vec<E>,
    /// The journal bytes of `events`, one for one, from the submitters (a
    /// durable engine's); empty in memory.
    encoded: Vec<EncodedEvent>,
    /// The sum of `encoded`'s lengths: what caps a batch by bytes.
    bytes: usize,
    replies: Vec<Reply<E>>,
    /// The map before `events[since..]` were applied.
    checkpoint: Option<State<E>>,
    since: usize,
}

impl<E: Event> Batch<E> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Batch {
            events: Vec::with_capacity(capacity),
            encoded: Vec::new(),
            bytes: 0,
            replies: Vec::with_capacity(capacity),
            checkpoint: None,
            since: 0,
        }
    }

    /// Applies `event` to `map`. An accepted event waits for `commit`
    /// (with its journal bytes, if any); a failed one is answered now and
    /// leaves `map` as it was.
    pub(crate) fn offer(
        &mut self,
        map: &mut State<E>,
        event: E,
        encoded: Option<EncodedEvent>,
        reply: Reply<E>,
        counters: &Counters,
    ) {
        if self.checkpoint.is_none() {
            self.checkpoint = Some(map.clone());
            self.since = self.events.len();
        }
        match apply_guarded(&event, map) {
            Ok(()) => {
                self.events.push(event);
                if let Some(encoded) = encoded {
                    self.bytes += encoded.len();
                    self.encoded.push(encoded);
                }
                self.replies.push(reply);
            }
            Err(error) => {
                self.restore(map, counters);
                counters.record_refusal(&error);
                // The submitter may be gone; its outcome needs no audience.
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Rebuilds `map` as checkpoint + accepted events since, dropping any
    /// event that fails on re-application (a non-deterministic `apply`).
    fn restore(&mut self, map: &mut State<E>, counters: &Counters) {
        let checkpoint = self
            .checkpoint
            .take()
            .expect("offer sets a checkpoint first");
        loop {
            let mut rebuilt = checkpoint.clone();
            let failed = self.events[self.since..]
                .iter()
                .enumerate()
                .find_map(|(i, event)| apply_guarded(event, &mut rebuilt).err().map(|e| (i, e)));
            let Some((offset, error)) = failed else {
                *map = rebuilt;
                break;
            };
            let index = self.since + offset;
            self.events.remove(index);
            if index < self.encoded.len() {
                self.bytes -= self.encoded.remove(index).len();
            }
            let reply = self.replies.remove(index);
            let message = match error {
                AckError::Panicked { message } => format!("panicked: {message}"),
                other => other.to_string(),
            };
            tracing::error!(%message, "apply is not deterministic: an accepted event failed when re-applied");
            let error = AckError::Diverged { message };
            counters.record_refusal(&error);
            let _ = reply.send(Err(error));
        }
        // The rebuilt map is the new undo point.
        self.checkpoint = Some(map.clone());
        self.since = self.events.len();
    }

    /// The events accepted so far in this batch, in order.
    pub(crate) fn events(&self) -> &[E] {
        &self.events
    }

    /// How many events the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The journal bytes of the events so far (0 in memory).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The journal bytes of every event, in order, when every event came
    /// with them (always, in a durable engine; `None` in memory).
    pub(crate) fn encoded(&self) -> Option<&[EncodedEvent]> {
        (self.encoded.len() == self.events.len()).then_some(self.encoded.as_slice())
    }

    /// Forgets the journal bytes: the batch is answered or journaled.
    fn clear_encoded(&mut self) {
        self.encoded.clear();
        self.bytes = 0;
    }

    /// Gives up on the batch: every accepted event is answered with
    /// `AckError::Journal`. The caller restores the map.
    pub(crate) fn abort(&mut self, failure: &JournalFailure) {
        self.checkpoint = None;
        self.events.clear();
        self.clear_encoded();
        for reply in self.replies.drain(..) {
            // The submitter may be gone; nothing else to do.
            let _ = reply.send(Err(failure.ack_error()));
        }
    }

    /// Publishes `map` as the snapshot at the new last seq, adds the batch
    /// to the counters, and acks every accepted event, in that order: a
    /// caller holding an ack finds it in both the snapshot and the stats.
    /// Returns the published batch (`None` when every event was refused),
    /// for the as-of window.
    pub(crate) fn commit(
        &mut self,
        map: &State<E>,
        last_seq: &mut u64,
        publisher: &Publisher<E>,
        counters: &Counters,
    ) -> Option<Arc<CommittedBatch<E>>> {
        self.checkpoint = None;
        self.clear_encoded();
        let count = self.events.len() as u64;
        let first_seq = *last_seq + 1;
        *last_seq += count;
        let published = (count > 0).then(|| {
            let events = std::mem::replace(&mut self.events, Vec::with_capacity(count as usize));
            let batch = Arc::new(CommittedBatch::new(first_seq, events));
            publisher.publish(map.clone(), Arc::clone(&batch));
            batch
        });
        counters.record_commit(count, *last_seq);
        // Newest first. A submitter with many events in flight waits on its
        // oldest; acked in seq order, it woke at that one, caught up with
        // the acks still being sent, parked again, and was woken again,
        // about once per 30 events (a futex wake each on the owner's
        // thread). Acked newest first, its oldest is acked last, so it
        // wakes once and finds the rest ready. Every ack here is for a
        // published seq, so the order is not visible otherwise.
        for (offset, reply) in self.replies.drain(..).enumerate().rev() {
            // A dropped receiver means the submitter stopped caring.
            let _ = reply.send(Ok(Ack {
                seq: first_seq + offset as u64,
            }));
        }
        published
    }
}

/// Runs `apply`, turning a panic into an error. The map may be half-written
/// after an `Err`; the caller restores it.
fn apply_guarded<E: Event>(event: &E, map: &mut State<E>) -> Result<(), AckError<E::Rejection>> {
    match catch_unwind(AssertUnwindSafe(|| event.apply(map))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(AckError::Rejected(reason)),
        Err(payload) => Err(AckError::Panicked {
            message: panic_message(payload.as_ref()),
        }),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic payload is not a string".to_owned()
    }
}
