//! [`Reader`]: lock-free access to the latest snapshot from any task.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

use arc_swap::ArcSwap;
use solostate_commands::Event;
use tokio::sync::{broadcast, watch};

use crate::changes::{ChangeFeed, CommittedBatch};
use solostate_store::Snapshot;

/// The snapshot type readers of an engine for events `E` receive.
pub type SnapshotOf<E> = Snapshot<<E as Event>::Key, <E as Event>::Value>;

/// A read handle: load snapshots, wait for a sequence number, or subscribe
/// to committed events.
///
/// **A snapshot reflects every event acknowledged before it was loaded**
/// (and possibly a few more that are committed but whose acks are still on
/// their way). Loading is lock-free and takes no channel round trip: readers
/// never wait for the writer, and the writer never waits for readers.
///
/// Clone it into as many tasks and threads as you like; clones are cheap
/// and share everything. A reader does not keep the engine alive.
///
/// Load once per query, then read as much as you need from that one
/// consistent version:
///
/// ```
/// # use solostate_commands::{Event, StateEvent};
/// # use solostate_queries::Publisher;
/// # let (publisher, reader) = Publisher::<StateEvent<String, u64>>::new(
/// #     imbl::HashMap::new(), 16);
/// # publisher.publish(
/// #     solostate_queries::Snapshot::new(2, imbl::hashmap!{"alice".into() => 70, "bob".into() => 30}),
/// #     std::sync::Arc::new(solostate_queries::CommittedBatch::new(1, vec![
/// #         StateEvent::put("alice".into(), 70), StateEvent::put("bob".into(), 30)])));
/// let snapshot = reader.snapshot(); // one lock-free load
/// let view = snapshot.view(); // many reads that borrow from it
/// let alice = view.get("alice").map_or(0, |balance| *balance);
/// let bob = view.get("bob").map_or(0, |balance| *balance);
/// assert_eq!(alice + bob, 100); // both reads see the same version
/// assert_eq!(snapshot.seq(), 2);
/// ```
pub struct Reader<E: Event> {
    current: Arc<ArcSwap<SnapshotOf<E>>>,
    published: watch::Receiver<u64>,
    changes: broadcast::WeakSender<Arc<CommittedBatch<E>>>,
}

impl<E: Event> Clone for Reader<E> {
    fn clone(&self) -> Self {
        Reader {
            current: Arc::clone(&self.current),
            published: self.published.clone(),
            changes: self.changes.clone(),
        }
    }
}

impl<E: Event> std::fmt::Debug for Reader<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("seq", &self.seq())
            .finish_non_exhaustive()
    }
}

/// Why [`Reader::wait_for`] returned no snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The engine stopped before publishing `requested`; the last published
    /// sequence number is `last`.
    #[error("engine stopped at seq {last} before reaching seq {requested}")]
    Stopped {
        /// The sequence number waited for.
        requested: u64,
        /// The final published sequence number.
        last: u64,
    },
}

impl<E: Event> Reader<E> {
    pub(crate) fn new(
        current: Arc<ArcSwap<SnapshotOf<E>>>,
        published: watch::Receiver<u64>,
        changes: broadcast::WeakSender<Arc<CommittedBatch<E>>>,
    ) -> Self {
        Reader {
            current,
            published,
            changes,
        }
    }

    /// Loads the latest snapshot. Lock-free; hold it as long as you like.
    pub fn snapshot(&self) -> Arc<SnapshotOf<E>> {
        self.current.load_full()
    }

    /// Runs `f` on the latest snapshot without taking a reference count:
    /// the fastest way to answer one query. Do not hold the loan long (do
    /// not `.await` inside); use [`Reader::snapshot`] for that.
    pub fn read<R>(&self, f: impl FnOnce(&SnapshotOf<E>) -> R) -> R {
        f(&self.current.load())
    }

    /// The sequence number of the latest snapshot.
    pub fn seq(&self) -> u64 {
        self.current.load().seq()
    }

    /// The value for `key` in the latest snapshot, cloned out.
    pub fn get<Q>(&self, key: &Q) -> Option<E::Value>
    where
        E::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Through a view: the versioned store then borrows the value
        // instead of counting a reference to its version.
        let snapshot = self.current.load();
        let view = snapshot.view();
        view.get(key).as_deref().cloned()
    }

    /// Whether `key` is present in the latest snapshot.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        E::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.current.load().contains_key(key)
    }

    /// The number of keys in the latest snapshot.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// Whether the latest snapshot is empty.
    pub fn is_empty(&self) -> bool {
        self.current.load().is_empty()
    }

    /// Whether the engine has stopped; its last snapshot stays readable.
    pub fn is_stopped(&self) -> bool {
        self.published.has_changed().is_err()
    }

    /// Waits until the engine has stopped. Its last snapshot stays
    /// readable afterwards.
    pub async fn stopped(&self) {
        let mut published = self.published.clone();
        while published.changed().await.is_ok() {}
    }

    /// Read-your-writes: waits until a snapshot with `seq() >= seq` is
    /// published, and returns it. Pass the sequence number from an ack.
    ///
    /// It waits as long as the engine runs, so wrap it in
    /// `tokio::time::timeout` if `seq` may never be reached.
    ///
    /// # Errors
    ///
    /// [`WaitError::Stopped`] when the engine stops before reaching `seq`.
    pub async fn wait_for(&self, seq: u64) -> Result<Arc<SnapshotOf<E>>, WaitError> {
        let snapshot = self.snapshot();
        if snapshot.seq() >= seq {
            return Ok(snapshot);
        }
        let mut published = self.published.clone();
        // The owner stores the snapshot before it announces the seq, so a
        // load after the announcement sees at least `seq`.
        let reached = published.wait_for(|&last| last >= seq).await.is_ok();
        let snapshot = self.snapshot();
        if reached || snapshot.seq() >= seq {
            Ok(snapshot)
        } else {
            Err(WaitError::Stopped {
                requested: seq,
                last: snapshot.seq(),
            })
        }
    }

    /// Subscribes to committed events after the current snapshot.
    ///
    /// Use [`Reader::subscribe`] when you also need the state the feed
    /// starts from.
    pub fn changes(&self) -> ChangeFeed<E> {
        self.subscribe().1
    }

    /// A consistent starting point for a subscriber: a snapshot, and a feed
    /// that delivers exactly the events after it, with no gap and no
    /// overlap. This is also how a lagged subscriber resyncs.
    pub fn subscribe(&self) -> (Arc<SnapshotOf<E>>, ChangeFeed<E>) {
        // Subscribe before loading: every batch committed after the load is
        // then in the feed, and the feed skips what the snapshot holds.
        let rx = self.changes.upgrade().map(|tx| tx.subscribe());
        let snapshot = self.snapshot();
        let feed = ChangeFeed::new(rx, snapshot.seq() + 1);
        (snapshot, feed)
    }
}
