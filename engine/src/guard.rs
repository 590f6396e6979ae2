//! The owner's side of the determinism guard: every so many events, hash
//! the state on a blocking thread from an O(1) clone of the map and record
//! the hash in the journal, so that replay and recovery can tell a
//! diverging `apply` from a faithful one.
//!
//! Why a full hash off the owner rather than an incremental one: the state
//! hash is a sum over entries and could follow each change. Each event's
//! write set (the `Txn` it applies through) now names the entries it
//! changed, but the owner does not yet keep it past the event, so the
//! incremental hash is later work (issue 12); `imbl::HashMap` (7.0.2) has
//! no diff that skips shared subtrees (only `OrdMap` has one), so finding
//! the changes afterwards costs as much as hashing everything. Hashing a
//! clone on a blocking thread keeps that cost off the writers; the owner
//! pays one clone per check.

use std::sync::Arc;

use solostate_commands::Event;
use solostate_persistence::hash::entries_hash;
use solostate_persistence::journal::Journal;
use solostate_queries::SnapshotOf;
use tokio::task::JoinHandle;

/// State hash bookkeeping. It lives inside the owner's working state, and
/// only when the engine has a journal and the guard is on.
pub(crate) struct HashGuard {
    /// A check is due when a batch crosses a multiple of this seq.
    every: u64,
    /// The hash in flight: one at a time.
    task: Option<JoinHandle<()>>,
}

impl HashGuard {
    /// A guard checking every `every` events; `None` when `every` is 0.
    pub(crate) fn new(every: u64) -> Option<Self> {
        (every > 0).then_some(HashGuard { every, task: None })
    }

    /// After the batch from `first` to `snapshot`'s seq was journaled: if
    /// it crossed a multiple of `every`, start hashing `snapshot`
    /// unless a hash is still in flight. A skipped check is not made up
    /// later: on a map so large that hashing it takes longer than `every`
    /// events, checks simply come as often as hashing keeps up.
    pub(crate) fn after_commit<E: Event>(
        &mut self,
        journal: &Arc<Journal>,
        snapshot: &Arc<SnapshotOf<E>>,
        first: u64,
    ) {
        let last = snapshot.seq();
        if last / self.every == (first - 1) / self.every {
            return;
        }
        if self.task.as_ref().is_some_and(|task| !task.is_finished()) {
            tracing::debug!(
                seq = last,
                "state hash skipped: the previous one is still running"
            );
            return;
        }
        let journal = Arc::clone(journal);
        let snapshot = Arc::clone(snapshot);
        self.task = Some(tokio::task::spawn_blocking(move || {
            let recorded = entries_hash::<E>(&snapshot.view())
                .map_err(|error| error.to_string())
                .and_then(|hash| {
                    journal
                        .record_state_hash(last, hash)
                        .map_err(|error| error.to_string())
                });
            // A missing check weakens the guard but loses no data, so the
            // engine keeps running; the next journal write would fail too
            // if storage is the trouble.
            if let Err(message) = recorded {
                tracing::warn!(seq = last, %message, "state hash not recorded");
            }
        }));
    }

    /// Waits for the hash in flight, if any: before a rollback (so no hash
    /// lands after the journal dropped its seq) and before the journal is
    /// closed.
    pub(crate) async fn settle(&mut self) {
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(%error, "state hash task failed");
        }
    }
}
