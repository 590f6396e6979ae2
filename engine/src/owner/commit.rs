//! The commit path: journaling a batch, sealing it, flushing it (or
//! leaving its flush in flight while the next batch is applied), then
//! publishing and acking it; and what a journal failure undoes.

use std::sync::Arc;

use solostate_commands::Event;
use solostate_persistence::journal::JournalError;

use super::{InFlight, Owner};
use crate::batch::Sealed;
use crate::durability::Durability;
use crate::metrics::Stamp;
use crate::shared::{JournalFailure, Shared};

impl<E: Event> Owner<E> {
    /// Journals the batch and seals it; under `Durability::Always` it is
    /// flushed first, and then published and acked. With `more` commands
    /// waiting (and pipelining on), the flush is left running and the
    /// batch in flight, to be finished by [`Owner::settle`].
    ///
    /// If the journal fails, nobody in the batch is acked, its record is
    /// taken back out of the journal, the working state goes back to the
    /// published one, and the owner stops taking events.
    pub(super) async fn commit(&mut self, more: bool, shared: &Arc<Shared>) {
        let applying = self.apply_timer.take();
        if self.batch.len() > 0 {
            shared.counters.metrics.applied_in(applying);
        }
        // One batch in flight at most, and records go in seq order.
        self.settle(shared).await;
        if let Some(failure) = &self.failed {
            // The batch in flight failed: this one, applied after it, goes
            // with it.
            self.batch.abort(failure);
            return;
        }
        let appending = Stamp::now();
        let bytes = match self.append() {
            Ok(bytes) => bytes,
            Err(error) => {
                let first = self.last_seq + 1;
                let last = self.last_seq + self.batch.events().len() as u64;
                self.fail(&error, first, last, None);
                return;
            }
        };
        shared.counters.metrics.journal_bytes(bytes);
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
                            appending,
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
            shared.counters.metrics.flushed(appending);
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
    pub(super) async fn settle(&mut self, shared: &Arc<Shared>) {
        if let Some(in_flight) = &self.in_flight {
            let flushed = in_flight.flush.wait().await;
            self.conclude(flushed, shared);
        }
    }

    /// Finishes the batch in flight after its flush ended with `flushed`.
    pub(super) fn conclude(&mut self, flushed: Result<(), JournalError>, shared: &Arc<Shared>) {
        let Some(InFlight {
            sealed,
            bytes,
            appending,
            ..
        }) = self.in_flight.take()
        else {
            return;
        };
        match flushed {
            Ok(()) => {
                // Its end as the owner saw it: at once while it waits,
                // else within `FLUSH_POLL_EVERY` applied events.
                shared.counters.metrics.flushed(appending);
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
        shared
            .counters
            .metrics
            .reader_lag(|| self.publisher.feed_backlog());
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
}
