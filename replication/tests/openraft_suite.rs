//! openraft 0.9's own storage test suite (`openraft::testing::Suite`) run
//! against [`LogStore`], each case in a fresh temporary directory.
//!
//! The suite needs a state machine too. `TestStateMachine` below exists
//! **only for this test**: it tracks the last applied log id and the
//! membership, and keeps snapshots in memory. It is not solostate's state
//! machine (that is not built yet) and not part of the crate's API.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, SnapshotMeta, StorageError, StoredMembership,
};
use solostate_replication::{LogStore, Response, TypeConfig};

/// A snapshot kept in memory: its meta and its (empty) data.
type StoredSnapshot = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

/// The test-only state machine: applied id, membership, last snapshot.
#[derive(Debug, Clone, Default)]
struct TestStateMachine {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// Shared with the snapshot builders (clones), so a built snapshot
    /// becomes the current one. A lock is fine in this test-only type.
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    snapshots_built: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for TestStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        self.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("snapshot-{}", self.snapshots_built),
        };
        let data = Vec::new();
        *self.snapshot.lock().unwrap() = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for TestStateMachine {
    type SnapshotBuilder = TestStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.applied = Some(entry.log_id);
            if let EntryPayload::Membership(m) = entry.payload {
                self.membership = StoredMembership::new(Some(entry.log_id), m);
            }
            responses.push(Response::Applied {
                seq: entry.log_id.index,
            });
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        *self.snapshot.lock().unwrap() = Some((meta.clone(), snapshot.into_inner()));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .snapshot
            .lock()
            .unwrap()
            .clone()
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}

/// Builds a fresh store in a temporary directory, kept alive by the guard.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, TestStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, TestStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = LogStore::open(dir.path()).map_err(|e| {
            e.into_storage(openraft::ErrorSubject::Store, openraft::ErrorVerb::Read)
        })?;
        Ok((dir, store, TestStateMachine::default()))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft storage suite failed: {e}");
    }
}
