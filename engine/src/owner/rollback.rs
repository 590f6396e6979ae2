//! A rollback, committed through the owner as one new step.

use std::sync::Arc;

use solostate_commands::Event;
use solostate_queries::CommittedBatch;

use super::Owner;
use crate::error::{AsOfError, RollbackError};
use crate::message::Ack;
use crate::shared::{JournalFailure, Shared};

impl<E: Event> Owner<E> {
    /// Commits a rollback to the state at `target` as one new step: the
    /// state is found (window, or checkpoint plus journal), checkpoints
    /// after `target` are deleted, the journal archives the undone records
    /// and gains a rollback marker (flushed), and then the state is
    /// published. A failure before the journal changed leaves everything
    /// as it was; a failed journal write stops the engine.
    pub(super) async fn rollback(
        &mut self,
        target: u64,
        shared: &Arc<Shared>,
    ) -> Result<Ack, RollbackError> {
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
