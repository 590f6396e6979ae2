//! [`Working`]: the owner's state, in whichever store the engine runs.

use std::hash::Hash;

use solostate_commands::Store;

use crate::Snapshot;
use crate::versioned::Versioned;

/// Which store holds an engine's state. Both take the same events and give
/// the same snapshots; they differ in cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreKind {
    /// A persistent `imbl::HashMap`: every snapshot is an O(1) clone of
    /// the map, and [`Snapshot::map`] hands it out. Writes copy the path
    /// to their entry (3–6 µs at 1e6 keys while a snapshot shares it).
    #[default]
    Persistent,
    /// MVCC over papaya's lock-free hash map: each key holds its newest
    /// version and, while a snapshot may need them, the versions it
    /// replaced. Writes cost a hash-map insert; reads of a key's newest
    /// version take no lock and touch no reference count.
    Versioned,
}

/// The owner's working state: written by events through
/// [`write`](Self::write), published as a [`Snapshot`] once per batch.
#[derive(Debug)]
pub struct Working<K, V>(Inner<K, V>);

#[derive(Debug)]
enum Inner<K, V> {
    Persistent(imbl::HashMap<K, V>),
    Versioned(Versioned<K, V>),
}

impl<K, V> Working<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// A working state of `kind` holding `map`, the state at `seq`.
    pub fn new(kind: StoreKind, seq: u64, map: imbl::HashMap<K, V>) -> Self {
        Working(match kind {
            StoreKind::Persistent => Inner::Persistent(map),
            StoreKind::Versioned => Inner::Versioned(Versioned::from_entries(seq, map)),
        })
    }

    /// Which store this is.
    pub fn kind(&self) -> StoreKind {
        match &self.0 {
            Inner::Persistent(_) => StoreKind::Persistent,
            Inner::Versioned(_) => StoreKind::Versioned,
        }
    }

    /// Runs `f` over the store as the next batch's events write it.
    pub fn write<R>(&mut self, f: impl FnOnce(&mut dyn Store<K, V>) -> R) -> R {
        match &mut self.0 {
            Inner::Persistent(map) => f(map),
            Inner::Versioned(store) => store.write(f),
        }
    }

    /// The snapshot of every write so far, at `seq`.
    pub fn publish(&mut self, seq: u64) -> Snapshot<K, V> {
        match &mut self.0 {
            Inner::Persistent(map) => Snapshot::new(seq, map.clone()),
            Inner::Versioned(store) => store.publish(seq).into(),
        }
    }

    /// Frees what no snapshot can need any more (the versioned store's
    /// older versions); call it after the snapshot of the batch before is
    /// replaced. Nothing to do for the persistent store, whose snapshots
    /// free their own nodes.
    pub fn reclaim(&mut self) {
        if let Inner::Versioned(store) = &mut self.0 {
            store.reclaim();
        }
    }

    /// Replaces the whole state with `snapshot`'s: after a rollback, or
    /// to forget writes that cannot be committed. O(1) for the persistent
    /// store given a persistent snapshot; the versioned store builds a
    /// new map (O(keys)), leaving the old one to the snapshots that hold
    /// it.
    pub fn reset(&mut self, snapshot: &Snapshot<K, V>) {
        match &mut self.0 {
            Inner::Persistent(map) => *map = snapshot.to_map(),
            Inner::Versioned(store) => {
                let view = snapshot.view();
                let entries = view
                    .iter()
                    .map(|(key, value)| (key.clone(), (*value).clone()));
                *store = Versioned::from_entries(snapshot.seq(), entries);
            }
        }
    }

    /// How many keys the state holds now, unpublished writes included.
    pub fn len(&self) -> usize {
        match &self.0 {
            Inner::Persistent(map) => map.len(),
            Inner::Versioned(store) => store.len(),
        }
    }

    /// Whether the state holds no key now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
