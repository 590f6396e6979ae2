//! One batch on the owner task: apply events, undo failures, commit.
//!
//! Each event is applied straight to the working map through a [`Txn`]
//! whose write set is one buffer, reused across every event and batch.
//! After an accepted event the buffer is cleared (one push per write was
//! the whole cost); after a rejected or panicking one its writes are undone
//! from it, newest first, so the map is exactly as it was before the event,
//! at a cost proportional to what the event wrote. The events accepted
//! before it are never re-applied. This is what lets `Event::apply` skip
//! undo logic of its own.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use solostate_commands::{Event, Txn, Write, for_each_key, undo_writes};
use solostate_persistence::codec::EncodedEvent;
use solostate_persistence::hash::StateHasher;
use solostate_queries::{CommittedBatch, Publisher, SnapshotOf};
use solostate_store::Working;

use crate::error::AckError;
use crate::guard::Digest;
use crate::key_changes::KeyChanges;
use crate::message::{Ack, Reply, Submission};
use crate::metrics::{Stamp, Stamps};
use crate::shared::JournalFailure;
use crate::stats::Counters;

/// The owner's working state for events of type `E`, in either store.
pub(crate) type WorkingOf<E> = Working<<E as Event>::Key, <E as Event>::Value>;

/// The write-set capacity kept between events, in writes. Events that write
/// more allocate for themselves; the buffer goes back to this afterwards.
const WRITES_KEPT: usize = 1024;

/// Events accepted in the current batch, with their replies, and the write
/// set buffer that undoes a failure.
pub(crate) struct Batch<E: Event> {
    events: Vec<E>,
    /// The journal bytes of `events`, one for one, from the submitters (a
    /// durable engine's); empty in memory.
    encoded: Vec<EncodedEvent>,
    /// The sum of `encoded`'s lengths: what caps a batch by bytes.
    bytes: usize,
    replies: Vec<Reply<E>>,
    /// When each accepted event was submitted, one for one with
    /// `replies`: what the ack latency is measured from (empty without
    /// the `metrics` feature).
    stamps: Stamps,
    /// The write set of the event being applied. Empty between events, and
    /// its allocation reused (up to [`WRITES_KEPT`] writes), so an accepted
    /// event costs one push per write and no allocation.
    writes: Vec<Write<E::Key, E::Value>>,
    /// The state's hash, following every accepted event's write set, when
    /// the determinism guard is on. Dropped (the guard then records no
    /// more hashes) if an entry cannot be encoded.
    digest: Option<Digest>,
    /// The key-level changes of the events so far, when kept
    /// ([`Builder::key_changes`](crate::Builder::key_changes)); their seqs
    /// are offsets in the batch until it commits.
    key_changes: Option<KeyChanges<E>>,
}

/// A committed batch, for the as-of window: its events, and its key-level
/// changes when they are kept.
pub(crate) struct Committed<E: Event> {
    pub(crate) batch: Arc<CommittedBatch<E>>,
    pub(crate) keys: Option<Arc<KeyChanges<E>>>,
}

impl<E: Event> Batch<E> {
    pub(crate) fn with_capacity(
        capacity: usize,
        digest: Option<Digest>,
        key_changes: bool,
    ) -> Self {
        Batch {
            events: Vec::with_capacity(capacity),
            encoded: Vec::new(),
            bytes: 0,
            replies: Vec::with_capacity(capacity),
            stamps: Stamps::with_capacity(capacity),
            writes: Vec::new(),
            digest,
            key_changes: key_changes.then(Vec::new),
        }
    }

    /// The hash of the state after the events so far, when the guard
    /// follows it.
    pub(crate) fn working_hash(&self) -> Option<u64> {
        self.digest.as_ref().map(Digest::working_hash)
    }

    /// The state was replaced by a rollback: `hasher` is its full hash
    /// (`None`: it could not be computed, and the guard stops).
    pub(crate) fn replace_digest(&mut self, hasher: Option<StateHasher>) {
        match (hasher, &mut self.digest) {
            (Some(hasher), Some(digest)) => digest.replace(hasher),
            (None, digest) => *digest = None,
            (Some(_), None) => {}
        }
    }

    /// Applies the submitted event to `state`. An accepted event waits for
    /// `commit` (with its journal bytes, if any); a failed one is answered
    /// now and leaves `state` as it was.
    ///
    /// `base` gives the snapshot that the working state equals before
    /// this batch's events: the last published one, or the last sealed
    /// one while that waits for its flush. It is called only if the write
    /// set cannot be settled (see [`Batch::reset`]).
    pub(crate) fn offer(
        &mut self,
        state: &mut WorkingOf<E>,
        submission: Submission<E>,
        base: impl FnOnce() -> Arc<SnapshotOf<E>>,
        counters: &Counters,
    ) {
        let Submission {
            event,
            encoded,
            reply,
            submitted,
        } = submission;
        let outcome = apply_guarded(&event, state, &mut self.writes);
        // Forget the write set after success, undo it after a failure. The
        // user's code runs here too (dropping replaced values; `Hash` and
        // `Eq` of the keys while undoing), so it is guarded as well.
        let writes = &mut self.writes;
        let digest = &mut self.digest;
        let (key_changes, offset) = (&mut self.key_changes, self.events.len() as u64);
        let settled = match &outcome {
            Ok(()) => guarded(|| {
                fold::<E>(digest, state, writes);
                if let Some(changes) = key_changes {
                    record::<E>(changes, offset, state, writes);
                }
                writes.clear();
            }),
            Err(_) => guarded(|| state.write(|store| undo_writes(store, writes))),
        };
        // An event that wrote a lot (a `Clear` of a big map) must not pin
        // its write set's allocation for the engine's life.
        if self.writes.capacity() > WRITES_KEPT {
            self.writes.shrink_to(WRITES_KEPT);
        }
        let outcome = match settled {
            Ok(()) => outcome,
            Err(message) => {
                self.reset(state, &base(), &message, counters);
                outcome.and(Err(AckError::Panicked {
                    message: format!("restoring the state after this event panicked: {message}"),
                }))
            }
        };
        match outcome {
            Ok(()) => {
                self.events.push(event);
                if let Some(encoded) = encoded {
                    self.bytes += encoded.len();
                    self.encoded.push(encoded);
                }
                self.replies.push(reply);
                self.stamps.push(submitted);
            }
            Err(error) => {
                counters.record_refusal(&error);
                // The submitter may be gone; its outcome needs no audience.
                let _ = reply.send(Err(error));
            }
        }
    }

    /// The way out when the write set could not be settled: undoing it, or
    /// dropping the values it held, panicked (a `Hash`, `Eq`, `Clone` or
    /// `Drop` of the key or value type), so the working state can no longer
    /// be trusted. It goes back to `base`, the snapshot before this batch,
    /// and the events this batch accepted so far, which were in it, are
    /// refused: none was acked, published or journaled, so nobody was told
    /// of them.
    fn reset(
        &mut self,
        state: &mut WorkingOf<E>,
        base: &SnapshotOf<E>,
        message: &str,
        counters: &Counters,
    ) {
        tracing::error!(%message, refused = self.events.len(), "restoring the state after a failed event panicked; the batch so far is refused");
        // The buffer may hold part of a write set; its values are dropped
        // under the same guard.
        let writes = &mut self.writes;
        let _ = guarded(|| writes.clear());
        state.reset(base);
        if let Some(digest) = &mut self.digest {
            digest.reset();
        }
        if let Some(changes) = &mut self.key_changes {
            changes.clear();
        }
        self.events.clear();
        self.clear_encoded();
        self.stamps.clear();
        for reply in self.replies.drain(..) {
            let error = AckError::Panicked {
                message: format!(
                    "not applied: restoring the state after a later event in its batch panicked: {message}"
                ),
            };
            counters.record_refusal(&error);
            // The submitter may be gone; nothing else to do.
            let _ = reply.send(Err(error));
        }
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
    /// `AckError::Journal`. The caller restores the state.
    pub(crate) fn abort(&mut self, failure: &JournalFailure) {
        if let Some(digest) = &mut self.digest {
            digest.reset();
        }
        if let Some(changes) = &mut self.key_changes {
            changes.clear();
        }
        self.events.clear();
        self.clear_encoded();
        self.stamps.clear();
        for reply in self.replies.drain(..) {
            // The submitter may be gone; nothing else to do.
            let _ = reply.send(Err(failure.ack_error()));
        }
    }

    /// Gives the accepted events their seqs, from `*last_seq + 1` on, and
    /// takes the snapshot of `state` after them, without publishing it:
    /// what is left to do ([`Sealed::finish`]) waits for the batch's
    /// journal record to be durable. The next batch's events may be
    /// applied meanwhile; they are stamped after this snapshot.
    pub(crate) fn seal(&mut self, state: &mut WorkingOf<E>, last_seq: &mut u64) -> Sealed<E> {
        self.clear_encoded();
        let count = self.events.len() as u64;
        let first_seq = *last_seq + 1;
        *last_seq += count;
        let published = (count > 0).then(|| {
            let events = std::mem::replace(&mut self.events, Vec::with_capacity(count as usize));
            let batch = Arc::new(CommittedBatch::new(first_seq, events));
            let keys = self.key_changes.as_mut().map(|changes| {
                let mut changes = std::mem::take(changes);
                for (seq, _, _) in &mut changes {
                    *seq += first_seq; // from an offset in the batch
                }
                Arc::new(changes)
            });
            (
                Arc::new(state.publish(*last_seq)),
                Committed { batch, keys },
            )
        });
        if let Some(digest) = &mut self.digest {
            digest.publish();
        }
        let replies = std::mem::replace(&mut self.replies, Vec::with_capacity(count as usize));
        let stamps = std::mem::replace(&mut self.stamps, Stamps::with_capacity(count as usize));
        Sealed {
            first_seq,
            last_seq: *last_seq,
            published,
            replies,
            stamps,
        }
    }
}

/// A sealed batch: its events have their seqs and its snapshot is taken,
/// but nobody has seen either. It waits for its journal record's flush.
pub(crate) struct Sealed<E: Event> {
    /// The batch's first seq (the one after the last, when it is empty).
    pub(crate) first_seq: u64,
    /// The batch's last seq (the one before the first, when it is empty).
    pub(crate) last_seq: u64,
    /// The snapshot after the batch, and the batch for the as-of window;
    /// `None` when every event was refused.
    published: Option<(Arc<SnapshotOf<E>>, Committed<E>)>,
    replies: Vec<Reply<E>>,
    /// The events' submission stamps, for the ack latency.
    stamps: Stamps,
}

impl<E: Event> Sealed<E> {
    /// The snapshot after the batch: what the working state was before the
    /// next batch's events. `None` when every event was refused.
    pub(crate) fn snapshot(&self) -> Option<&Arc<SnapshotOf<E>>> {
        self.published.as_ref().map(|(snapshot, _)| snapshot)
    }

    /// How many events the batch holds.
    pub(crate) fn len(&self) -> u64 {
        self.replies.len() as u64
    }

    /// Publishes the snapshot, adds the batch to the counters, and acks
    /// every event, in that order: a caller holding an ack finds it in
    /// both the snapshot and the stats. Then it lets the state reclaim
    /// what the snapshot it replaced held. Returns the published snapshot
    /// and batch (`None` when every event was refused), for the as-of
    /// window.
    pub(crate) fn finish(
        self,
        state: &mut WorkingOf<E>,
        publisher: &Publisher<E>,
        counters: &Counters,
    ) -> Option<(Arc<SnapshotOf<E>>, Committed<E>)> {
        if let Some((snapshot, committed)) = &self.published {
            publisher.publish(Arc::clone(snapshot), Arc::clone(&committed.batch));
        }
        counters.record_commit(self.len(), self.last_seq);
        // Newest first. A submitter with many events in flight waits on its
        // oldest; acked in seq order, it woke at that one, caught up with
        // the acks still being sent, parked again, and was woken again,
        // about once per 30 events (a futex wake each on the owner's
        // thread). Acked newest first, its oldest is acked last, so it
        // wakes once and finds the rest ready. Every ack here is for a
        // published seq, so the order is not visible otherwise.
        let acked = Stamp::now();
        for (offset, reply) in self.replies.into_iter().enumerate().rev() {
            // A dropped receiver means the submitter stopped caring.
            let _ = reply.send(Ok(Ack {
                seq: self.first_seq + offset as u64,
            }));
        }
        // After the acks, so that recording delays none of them.
        counters.metrics.acked(&self.stamps, acked);
        // After the acks: reclaiming is the versioned store's cutting of
        // what the replaced snapshot kept, which no submitter waits for.
        state.reclaim();
        self.published
    }

    /// Gives up on the batch: every event is answered with
    /// `AckError::Journal`. The caller restores the state.
    pub(crate) fn abort(self, failure: &JournalFailure) {
        for reply in self.replies {
            // The submitter may be gone; nothing else to do.
            let _ = reply.send(Err(failure.ack_error()));
        }
    }
}

/// Runs `apply` through a transaction over `state` that records its writes
/// in `writes`, turning a panic into an error. After an `Err` the state may
/// be half-written, and `writes` holds every write made before the failure
/// (a `Txn` records each write as the store makes it); the caller undoes
/// them.
fn apply_guarded<E: Event>(
    event: &E,
    state: &mut WorkingOf<E>,
    writes: &mut Vec<Write<E::Key, E::Value>>,
) -> Result<(), AckError<E::Rejection>> {
    match guarded(|| state.write(|store| event.apply(&mut Txn::new(store, writes)))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(AckError::Rejected(reason)),
        Err(message) => Err(AckError::Panicked { message }),
    }
}

/// Folds an accepted event's write set into `digest`; an entry that cannot
/// be encoded drops the digest, and with it the guard's later hashes (the
/// engine keeps serving: the data is fine, only its check is lost).
fn fold<E: Event>(
    digest: &mut Option<Digest>,
    state: &mut WorkingOf<E>,
    writes: &[Write<E::Key, E::Value>],
) {
    let Some(folding) = digest else {
        return;
    };
    if let Err(error) = state.write(|store| folding.fold::<E>(store, writes)) {
        tracing::error!(%error, "an entry cannot be encoded: the determinism guard records no more state hashes");
        *digest = None;
    }
}

/// Records an accepted event's key-level changes: each key its write set
/// touched, once, with its value now. `offset` is the event's place in the
/// batch.
fn record<E: Event>(
    changes: &mut KeyChanges<E>,
    offset: u64,
    state: &mut WorkingOf<E>,
    writes: &[Write<E::Key, E::Value>],
) {
    state.write(|store| {
        let _ = for_each_key(writes, |write| -> Result<(), std::convert::Infallible> {
            let key = write.key();
            changes.push((offset, key.clone(), store.get(key).cloned()));
            Ok(())
        });
    });
}

/// Runs `f`, turning a panic into its message.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(payload.as_ref()))
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
