//! As-of reads: the exact state at any past seq.
//!
//! Recent history comes from a window of published snapshots with the
//! batches between them, kept by the owner as it publishes. Because the map
//! is persistent, holding a snapshot costs only the nodes later writes
//! copied, and the state in the middle of a batch is the snapshot before it
//! plus a few re-applied events. Anything older is rebuilt from the newest
//! checkpoint at or before the seq plus the journal after it, on a
//! blocking thread, so neither the caller's runtime nor the owner stalls.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use solostate_commands::{Event, State};
use solostate_persistence::checkpoint::Checkpoints;
use solostate_persistence::journal::{Journal, JournalError};
use solostate_persistence::recovery::ReplayError;
use solostate_persistence::replay;
use solostate_queries::{Change, CommittedBatch, Snapshot, SnapshotOf};

use crate::batch::Committed;
use crate::catch_up::{CatchUpError, Fetched};
use crate::error::AsOfError;
use crate::key_changes::{ChangesError, Coalesced, KeyChanges};

/// The as-of window and the way to the disk, shared by the owner (which
/// appends) and the handles (which read).
pub(crate) struct History<E: Event> {
    window: Mutex<Window<E>>,
    disk: Option<Disk>,
    /// A sequence lock over the journal's history: odd while a rollback is
    /// rewriting it. A rebuild that overlapped a rollback retries.
    rollbacks: AtomicU64,
}

/// Where older states are rebuilt from.
pub(crate) struct Disk {
    /// Weak, so that a handle does not keep the journal (and its directory
    /// lock) alive after the owner closes it.
    pub(crate) journal: Weak<Journal>,
    pub(crate) checkpoints: Arc<Checkpoints>,
}

/// A published snapshot with the batch that led to it from the one before
/// (none for a base: the first entry, or the state a rollback restored),
/// and that batch's key-level changes when they are kept.
struct Version<E: Event> {
    snapshot: Arc<SnapshotOf<E>>,
    batch: Option<Arc<CommittedBatch<E>>>,
    keys: Option<Arc<KeyChanges<E>>>,
}

impl<E: Event> Version<E> {
    /// A version with no batch before it.
    fn base(snapshot: Arc<SnapshotOf<E>>) -> Self {
        Version {
            snapshot,
            batch: None,
            keys: None,
        }
    }
}

struct Window<E: Event> {
    /// Published versions in seq order.
    entries: VecDeque<Version<E>>,
    /// How many seqs back from the newest the window must reach.
    span: u64,
    /// Seqs undone by rollbacks since the engine opened, so that an
    /// in-memory engine answers `RolledBack` for them rather than
    /// `Forgotten` (a journaled engine also learns it from the journal).
    undone: Vec<std::ops::RangeInclusive<u64>>,
}

impl<E: Event> History<E> {
    /// A history starting at `base`, keeping at least `span` seqs in memory.
    pub(crate) fn new(base: Arc<SnapshotOf<E>>, span: u64, disk: Option<Disk>) -> Self {
        History {
            window: Mutex::new(Window {
                entries: VecDeque::from([Version::base(base)]),
                span,
                undone: Vec::new(),
            }),
            disk,
            rollbacks: AtomicU64::new(0),
        }
    }

    /// Whether the engine has a disk (a journal and checkpoints): its
    /// handles check and encode every event for the journal.
    pub(crate) fn is_durable(&self) -> bool {
        self.disk.is_some()
    }

    /// Records a published batch and the snapshot it produced, and forgets
    /// what falls out of the window.
    ///
    /// The versions that leave are freed after the lock is released: a
    /// version's last holder frees every node that later writes replaced,
    /// long after they were last touched, and `as_of` callers should not
    /// wait for that.
    pub(crate) fn push(&self, snapshot: Arc<SnapshotOf<E>>, committed: Committed<E>) {
        let mut forgotten = Vec::new();
        {
            let mut window = self.lock();
            window.entries.push_back(Version {
                snapshot,
                batch: Some(committed.batch),
                keys: committed.keys,
            });
            let newest = window.entries.back().map_or(0, |v| v.snapshot.seq());
            while window.entries.len() > 1
                && newest - window.entries[1].snapshot.seq() >= window.span
            {
                forgotten.extend(window.entries.pop_front());
            }
        }
        drop(forgotten);
    }

    /// Marks the start of a rollback: rebuilds that overlap it will retry.
    pub(crate) fn begin_rollback(&self) {
        self.rollbacks.fetch_add(1, Ordering::AcqRel);
    }

    /// Ends a rollback. `undone` is the range of seqs the rollback undid
    /// (none when it failed, and then nothing changed). The versions up to
    /// the rollback's target are still history, so they stay: with the
    /// first version after the target, whose batch's prefix holds the
    /// states between them. Every later version was undone and leaves, and
    /// `snapshot`, the restored state at its new seq, starts the window's
    /// new branch.
    ///
    /// (The window used to restart from `snapshot` alone, so an in-memory
    /// engine forgot every state before a rollback, and `as_of` then
    /// advised widening a window that had not been too narrow.)
    pub(crate) fn end_rollback(
        &self,
        snapshot: Arc<SnapshotOf<E>>,
        undone: Option<std::ops::RangeInclusive<u64>>,
    ) {
        let forgotten = {
            let mut window = self.lock();
            match undone {
                Some(undone) => {
                    let target = undone.start() - 1;
                    let first_after = window
                        .entries
                        .partition_point(|v| v.snapshot.seq() <= target);
                    let keep = (first_after + 1).min(window.entries.len());
                    let forgotten = window.entries.split_off(keep);
                    window.entries.push_back(Version::base(snapshot));
                    window.undone.push(undone);
                    forgotten
                }
                None => VecDeque::new(),
            }
        };
        drop(forgotten); // outside the lock, as in `push`
        self.rollbacks.fetch_add(1, Ordering::AcqRel);
    }

    /// The state at `seq` if the window holds it.
    pub(crate) fn recent(&self, seq: u64) -> Option<Result<Arc<SnapshotOf<E>>, AsOfError>> {
        let (before, batch) = {
            let window = self.lock();
            let at = window.entries.partition_point(|v| v.snapshot.seq() < seq);
            let version = window.entries.get(at)?;
            if version.snapshot.seq() == seq {
                return Some(Ok(Arc::clone(&version.snapshot)));
            }
            let batch = Arc::clone(version.batch.as_ref()?);
            let before = Arc::clone(&window.entries.get(at.checked_sub(1)?)?.snapshot);
            (before, batch)
        };
        // `before` ends right where `batch` starts; re-apply its prefix.
        if before.seq() + 1 != batch.first_seq() || batch.rollback_target().is_some() {
            return None;
        }
        let mut map = before.to_map();
        let upto = (seq - batch.first_seq() + 1) as usize;
        for (offset, event) in batch.events()[..upto].iter().enumerate() {
            let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                event.apply_to(&mut map).map_err(|e| e.to_string())
            }));
            if let Err(message) = applied.unwrap_or_else(|_| Err("apply panicked".into())) {
                return Some(Err(AsOfError::Rebuild {
                    seq,
                    message: format!(
                        "event at seq {} applied live but failed when re-applied: {message}",
                        batch.first_seq() + offset as u64
                    ),
                }));
            }
        }
        Some(Ok(Arc::new(Snapshot::new(seq, map))))
    }

    /// The oldest seq the window can answer.
    fn oldest(&self) -> u64 {
        self.lock().entries.front().map_or(0, |v| v.snapshot.seq())
    }

    /// The newest seq the window holds.
    fn newest(&self) -> u64 {
        self.lock().entries.back().map_or(0, |v| v.snapshot.seq())
    }

    /// The state at `seq`, from the window or else rebuilt from the disk on
    /// a blocking thread. `last` is the newest published seq.
    pub(crate) async fn state_at(
        &self,
        seq: u64,
        last: u64,
    ) -> Result<Arc<SnapshotOf<E>>, AsOfError> {
        if seq > last {
            return Err(AsOfError::NotYet { seq, last });
        }
        if self
            .lock()
            .undone
            .iter()
            .any(|undone| undone.contains(&seq))
        {
            return Err(AsOfError::RolledBack { seq });
        }
        loop {
            if let Some(found) = self.recent(seq) {
                return found;
            }
            if seq <= self.newest() {
                break;
            }
            // Published a moment ago; the owner records it right after.
            tokio::task::yield_now().await;
        }
        let Some(disk) = &self.disk else {
            return Err(AsOfError::Forgotten {
                seq,
                oldest: self.oldest(),
            });
        };
        loop {
            let before = self.rollbacks.load(Ordering::Acquire);
            if before % 2 == 1 {
                tokio::task::yield_now().await; // a rollback is rewriting history
                continue;
            }
            let journal = disk.journal.upgrade().ok_or(AsOfError::Closed)?;
            let checkpoints = Arc::clone(&disk.checkpoints);
            let rebuilt =
                tokio::task::spawn_blocking(move || rebuild::<E>(&journal, &checkpoints, seq))
                    .await
                    .map_err(|error| AsOfError::Rebuild {
                        seq,
                        message: format!("rebuild task failed: {error}"),
                    })?;
            if self.rollbacks.load(Ordering::Acquire) == before {
                return rebuilt.map(|map| Arc::new(Snapshot::new(seq, map)));
            }
        }
    }

    /// Every key the events in `after + 1..=through` wrote, with its value
    /// at `through` (`None`: removed), from the window's key-level changes.
    /// `last` is the newest published seq.
    pub(crate) async fn changes_between(
        &self,
        after: u64,
        through: u64,
        last: u64,
    ) -> Result<Coalesced<E>, ChangesError> {
        if after > through {
            return Err(ChangesError::Backward { after, through });
        }
        if through > last {
            return Err(ChangesError::NotYet { through, last });
        }
        // Published a moment ago, the batch reaches the window right after.
        while self.newest() < through {
            tokio::task::yield_now().await;
        }
        let window = self.lock();
        if let Some(undone) = window
            .undone
            .iter()
            .find(|undone| *undone.start() <= through && *undone.end() > after)
        {
            return Err(ChangesError::RolledBack {
                seq: undone.end() + 1,
                target: undone.start() - 1,
            });
        }
        let oldest = window.entries.front().map_or(0, |v| v.snapshot.seq());
        let mut changes = Coalesced::<E>::new();
        let mut next = after + 1;
        for version in &window.entries {
            let Some(batch) = &version.batch else {
                continue; // a base: the state before the batches after it
            };
            if batch.last_seq() < next || batch.first_seq() > through {
                continue;
            }
            if batch.first_seq() > next {
                // The events from `next` left the window (or a rollback
                // cut the timeline there).
                return Err(ChangesError::Forgotten { after, oldest });
            }
            if let Some(target) = batch.rollback_target() {
                return Err(ChangesError::RolledBack {
                    seq: batch.first_seq(),
                    target,
                });
            }
            let keys = version.keys.as_ref().ok_or(ChangesError::Off)?;
            for (seq, key, value) in keys.iter() {
                if (next..=through).contains(seq) {
                    changes.insert(key.clone(), value.clone());
                }
            }
            next = batch.last_seq() + 1;
        }
        if next <= through {
            return Err(ChangesError::Forgotten { after, oldest });
        }
        Ok(changes)
    }

    /// The journal of a durable engine: `None` in memory, `Some(None)`
    /// once the owner has closed it.
    pub(crate) fn journal(&self) -> Option<Option<Arc<Journal>>> {
        self.disk.as_ref().map(|disk| disk.journal.upgrade())
    }

    /// Up to `max` committed events after `after`, through `through`, from
    /// the window (see [`crate::catch_up`]); `None` when the window does not
    /// hold them all. `through` must be published.
    pub(crate) async fn window_after(
        &self,
        after: u64,
        through: u64,
        max: usize,
    ) -> Option<Result<Fetched<E>, CatchUpError>> {
        // Published a moment ago, the batch reaches the window right after.
        while self.newest() < through {
            tokio::task::yield_now().await;
        }
        let window = self.lock();
        if let Some(undone) = window.undone.iter().find(|u| u.contains(&after)) {
            return Some(Err(CatchUpError::Undone {
                seq: after,
                rollback: undone.end() + 1,
                target: undone.start() - 1,
            }));
        }
        // The first rollback after `after` that undid events up to
        // `through` ends what may be delivered: the window still holds the
        // batch whose tail it undid. (One that undid only later events is
        // the live feed's to report.)
        let rollback = window
            .undone
            .iter()
            .map(|u| (u.end() + 1, u.start() - 1))
            .filter(|&(seq, target)| seq > after && target < through)
            .min();
        let last = rollback.map_or(through, |(_, target)| target);
        let mut fetched = Fetched::default();
        let mut next = after + 1;
        for version in &window.entries {
            if next > last || fetched.changes.len() >= max {
                break;
            }
            let Some(batch) = &version.batch else {
                continue; // a base: the state before the batches after it
            };
            if batch.last_seq() < next {
                continue;
            }
            if batch.first_seq() > next || batch.rollback_target().is_some() {
                return None; // the events from `next` left the window
            }
            while next <= last.min(batch.last_seq()) && fetched.changes.len() < max {
                let index = (next - batch.first_seq()) as usize;
                fetched.changes.extend(Change::at(Arc::clone(batch), index));
                next += 1;
            }
        }
        if next <= last && fetched.changes.len() < max {
            return None;
        }
        if next > last {
            fetched.rollback = rollback;
        }
        Some(Ok(fetched))
    }

    /// The rollback sequence lock's value: odd while a rollback rewrites
    /// the journal; a read that saw it change must read again.
    pub(crate) fn rollback_epoch(&self) -> u64 {
        self.rollbacks.load(Ordering::Acquire)
    }

    /// The oldest seq after which the window can deliver events.
    pub(crate) fn oldest_kept(&self) -> u64 {
        self.oldest()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window<E>> {
        // The window holds no invariant a panic could break mid-way.
        self.window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The state at `seq`: the newest checkpoint at or before it, plus the
/// journal up to it. Blocking.
fn rebuild<E: Event>(
    journal: &Journal,
    checkpoints: &Checkpoints,
    seq: u64,
) -> Result<State<E>, AsOfError> {
    replay::state_at::<E>(journal, Some(checkpoints), seq).map_err(|error| match error {
        ReplayError::RolledBack { seq, .. } => AsOfError::RolledBack { seq },
        ReplayError::Journal(JournalError::Pruned { first, .. }) => {
            AsOfError::Pruned { seq, first }
        }
        other => AsOfError::Rebuild {
            seq,
            message: other.to_string(),
        },
    })
}
