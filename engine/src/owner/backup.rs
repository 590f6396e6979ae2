//! A backup's one step on the owner: pick the seq and hand over the
//! snapshot at it. The copy itself is written off the owner.

use std::sync::Arc;

use solostate_commands::Event;

use super::Owner;
use crate::error::BackupError;
use crate::message::BackupSource;
use crate::shared::Shared;

impl<E: Event> Owner<E> {
    /// The snapshot a backup copies: the published one, once the batch in
    /// flight (if any) is published, so that it is the state after every
    /// command queued before the backup. O(1): an `Arc` of an immutable
    /// snapshot (the persistent map shares its nodes; the versioned store
    /// keeps the versions it pins). Nothing here waits for the copy, and
    /// nothing a later rollback or prune does can change what the copy
    /// reads, because it reads only this snapshot.
    pub(super) async fn backup_source(
        &mut self,
        shared: &Arc<Shared>,
    ) -> Result<BackupSource<E>, BackupError> {
        self.settle(shared).await;
        if let Some(failure) = &self.failed {
            return Err(BackupError::Stopped {
                message: failure.message.clone(),
            });
        }
        let Some(journal) = &self.journal else {
            return Err(BackupError::InMemory);
        };
        Ok(BackupSource {
            snapshot: self.publisher.snapshot(),
            journal: Arc::clone(journal),
        })
    }
}
