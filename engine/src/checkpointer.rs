//! The owner's side of checkpoints: decide when one is due and write it on
//! a blocking thread from a published snapshot, one at a time. Holding the
//! snapshot is what keeps its state: an O(1) clone of the persistent map,
//! or a pin on the versioned store's versions, for as long as the write
//! takes.

use std::sync::Arc;

use solostate_commands::Event;
use solostate_persistence::checkpoint::Checkpoints;
use solostate_persistence::journal::Journal;
use solostate_queries::SnapshotOf;
use tokio::task::JoinHandle;

use crate::policy::{CheckpointPolicy, Retention};
use crate::shared::Shared;

/// Checkpoint bookkeeping. It lives inside the owner's working state.
pub(crate) struct Checkpointer {
    pub(crate) store: Arc<Checkpoints>,
    policy: CheckpointPolicy,
    retention: Retention,
    /// Events and record bytes journaled since the last checkpoint began.
    events: u64,
    bytes: u64,
    /// The seq of the newest checkpoint written or being written.
    covered: u64,
    task: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn new(
        store: Arc<Checkpoints>,
        policy: CheckpointPolicy,
        retention: Retention,
        covered: u64,
        replayed: u64,
    ) -> Self {
        Checkpointer {
            store,
            policy,
            retention,
            // The tail replayed at open counts: the next checkpoint comes
            // when the tail, not the events since open, reaches the policy.
            events: replayed,
            bytes: 0,
            covered,
            task: None,
        }
    }

    /// Counts a journaled batch and starts a checkpoint of `snapshot` if
    /// the policy says one is due and none is in flight.
    pub(crate) fn after_commit<E: Event>(
        &mut self,
        events: u64,
        bytes: u64,
        journal: &Arc<Journal>,
        snapshot: &Arc<SnapshotOf<E>>,
        shared: &Arc<Shared>,
    ) {
        self.events += events;
        self.bytes += bytes;
        if !self.policy.due(self.events, self.bytes) {
            return;
        }
        if self.task.as_ref().is_some_and(|task| !task.is_finished()) {
            return; // one at a time; the next commit asks again
        }
        self.start::<E>(journal, Arc::clone(snapshot), shared);
    }

    /// Waits for the checkpoint in flight, if any.
    pub(crate) async fn settle(&mut self) {
        if let Some(task) = self.task.take() {
            // The task logs and counts its own failures; a join error means
            // it panicked, which it has no reason to.
            if let Err(error) = task.await {
                tracing::error!(%error, "checkpoint task failed");
            }
        }
    }

    /// On shutdown: waits for the checkpoint in flight, then writes a last
    /// one of `snapshot` (the last state) if the policy asks for it and the
    /// state moved since.
    pub(crate) async fn finish<E: Event>(
        &mut self,
        journal: &Arc<Journal>,
        snapshot: &Arc<SnapshotOf<E>>,
        shared: &Arc<Shared>,
    ) {
        self.settle().await;
        if self.policy.on_shutdown && snapshot.seq() > self.covered {
            self.start::<E>(journal, Arc::clone(snapshot), shared);
            self.settle().await;
        }
    }

    /// After a rollback to `target`: checkpoints after it are gone, and
    /// the count starts again.
    pub(crate) fn rolled_back(&mut self, target: u64) {
        self.covered = self.covered.min(target);
        self.events = 0;
        self.bytes = 0;
    }

    fn start<E: Event>(
        &mut self,
        journal: &Arc<Journal>,
        snapshot: Arc<SnapshotOf<E>>,
        shared: &Arc<Shared>,
    ) {
        let seq = snapshot.seq();
        self.events = 0;
        self.bytes = 0;
        self.covered = seq;
        let journal = Arc::clone(journal);
        let store = Arc::clone(&self.store);
        let shared = Arc::clone(shared);
        let (keep, retention) = (self.policy.keep, self.retention);
        self.task = Some(tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let written = write::<E>(&journal, &store, &snapshot, keep, retention);
            shared
                .counters
                .metrics
                .checkpoint(started.elapsed(), written.is_ok());
            match written {
                Ok(pruned) => {
                    shared.counters.record_checkpoint(true);
                    tracing::info!(
                        seq,
                        keys = snapshot.len(),
                        pruned_records = pruned,
                        millis = started.elapsed().as_millis() as u64,
                        "checkpoint written"
                    );
                }
                Err(message) => {
                    shared.counters.record_checkpoint(false);
                    tracing::error!(seq, %message, "checkpoint failed; the journal still holds every event");
                }
            }
        }));
    }
}

/// Writes one checkpoint, then prunes old checkpoints and, under
/// [`Retention::SinceOldestCheckpoint`], the journal they cover. Returns
/// how many journal records were pruned.
fn write<E: Event>(
    journal: &Journal,
    store: &Checkpoints,
    snapshot: &SnapshotOf<E>,
    keep: usize,
    retention: Retention,
) -> Result<u64, String> {
    // A checkpoint must never be ahead of the durable journal: under
    // `Every` or `Never` a crash could otherwise leave a checkpoint holding
    // events whose seqs the journal would hand out again.
    journal.flush().map_err(|e| e.to_string())?;
    store
        .write::<E>(snapshot.seq(), &snapshot.view())
        .map_err(|e| e.to_string())?;
    store.prune(keep).map_err(|e| e.to_string())?;
    if retention != Retention::SinceOldestCheckpoint {
        return Ok(0);
    }
    let Some(&oldest) = store.list().map_err(|e| e.to_string())?.first() else {
        return Ok(0);
    };
    let pruned = journal.prune_through(oldest).map_err(|e| e.to_string())?;
    journal.flush().map_err(|e| e.to_string())?;
    Ok(pruned)
}
