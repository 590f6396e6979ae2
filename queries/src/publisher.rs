//! [`Publisher`]: the owner's side of the read path.

use std::sync::Arc;

use arc_swap::ArcSwap;
use solostate_commands::{Event, State};
use tokio::sync::{broadcast, watch};

use crate::changes::CommittedBatch;
use crate::reader::{Reader, SnapshotOf};
use solostate_store::Snapshot;

/// Publishes new snapshots and committed events to every [`Reader`].
///
/// The engine's owner task holds the only one. It cannot change state; it
/// only makes a version the owner already built visible. Dropping it tells
/// readers that the engine has stopped: `wait_for` fails for unreached
/// sequence numbers and change feeds close.
pub struct Publisher<E: Event> {
    current: Arc<ArcSwap<SnapshotOf<E>>>,
    published: watch::Sender<u64>,
    changes: broadcast::Sender<Arc<CommittedBatch<E>>>,
}

impl<E: Event> std::fmt::Debug for Publisher<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("seq", &*self.published.borrow())
            .finish_non_exhaustive()
    }
}

impl<E: Event> Publisher<E> {
    /// Creates the publisher and a first reader, starting from `initial`
    /// at seq 0. A change-feed subscriber may fall up to `change_capacity`
    /// batches behind before it lags.
    ///
    /// # Panics
    ///
    /// If `change_capacity` is 0.
    pub fn new(initial: State<E>, change_capacity: usize) -> (Self, Reader<E>) {
        Self::starting_at(Snapshot::new(0, initial), change_capacity)
    }

    /// As [`Publisher::new`], starting from a snapshot at any seq.
    ///
    /// # Panics
    ///
    /// If `change_capacity` is 0.
    pub fn starting_at(initial: SnapshotOf<E>, change_capacity: usize) -> (Self, Reader<E>) {
        let seq = initial.seq();
        let current = Arc::new(ArcSwap::from_pointee(initial));
        let (published, published_rx) = watch::channel(seq);
        let (changes, _) = broadcast::channel(change_capacity);
        let reader = Reader::new(Arc::clone(&current), published_rx, changes.downgrade());
        let publisher = Publisher {
            current,
            published,
            changes,
        };
        (publisher, reader)
    }

    /// Publishes the state after a committed batch: `snapshot` reflects
    /// every step up to `batch.last_seq()`, its seq, and `batch` goes to
    /// change-feed subscribers. The owner builds the batch once and may
    /// keep it (for as-of reads); nobody copies its events.
    pub fn publish(&self, snapshot: impl Into<Arc<SnapshotOf<E>>>, batch: Arc<CommittedBatch<E>>) {
        let snapshot = snapshot.into();
        let seq = batch.last_seq();
        debug_assert_eq!(
            snapshot.seq(),
            seq,
            "a snapshot published with another batch"
        );
        // Order matters. The snapshot goes first, so that a subscriber that
        // subscribes and then loads misses nothing. The seq goes last, so
        // that `wait_for` finds the snapshot in place when it wakes.
        self.current.store(snapshot);
        if self.changes.receiver_count() > 0 {
            // An error means every subscriber left meanwhile: nobody to tell.
            let _ = self.changes.send(batch);
        }
        self.published.send_replace(seq);
    }

    /// The last published snapshot. The owner restores its working map
    /// from it when a batch cannot be committed.
    pub fn snapshot(&self) -> Arc<SnapshotOf<E>> {
        self.current.load_full()
    }

    /// How many published batches the slowest change-feed subscriber has
    /// not received yet: 0 without subscribers, at most the change
    /// capacity (a subscriber that far behind lags on its next receive).
    /// It takes the feed's locks, so the engine asks only for its
    /// reader-lag metric.
    pub fn feed_backlog(&self) -> usize {
        if self.changes.receiver_count() == 0 {
            return 0;
        }
        self.changes.len()
    }

    /// The sequence number of the last published snapshot.
    pub fn seq(&self) -> u64 {
        *self.published.borrow()
    }

    /// A new reader of this publisher's snapshots.
    pub fn reader(&self) -> Reader<E> {
        Reader::new(
            Arc::clone(&self.current),
            self.published.subscribe(),
            self.changes.downgrade(),
        )
    }
}
