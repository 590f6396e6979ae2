//! The owner's transaction view of a versioned store.

use std::hash::Hash;
use std::sync::Arc;

use papaya::LocalGuard;
use solostate_commands::Store;

use super::{Map, Retired, Version};

/// The store as the current batch's events read and write it, through a
/// guard held for the length of one
/// [`Versioned::write`](super::Versioned::write).
///
/// Reads see the newest version of each key (this batch's included), so
/// an event reads what the events before it wrote, as on any store. A
/// write makes a new version stamped with the batch's first seq:
/// - over a published version, it links to it: views at or below the
///   published seq still see the old value;
/// - over a version of the current batch, it replaces it and links to
///   what that one linked to: nobody but the owner has seen it.
///
/// Undo (the `Txn` writing back the values its write set recorded) is
/// then just more writes with the same stamp, and leaves every published
/// view as it was.
pub(super) struct Writing<'a, K, V> {
    pub(super) map: &'a Map<K, V>,
    pub(super) guard: &'a LocalGuard<'a>,
    /// The current batch's stamp: the seq after the published one.
    pub(super) stamp: u64,
    pub(super) len: &'a mut usize,
    pub(super) retiring: &'a mut Vec<Retired<K, V>>,
}

impl<K, V> Writing<'_, K, V>
where
    K: Hash + Eq,
{
    /// What a new version of the key whose newest version is `newest`
    /// links to: a published version itself, or what a version of this
    /// batch linked to.
    fn older_of(&self, newest: &Arc<Version<V>>) -> Option<Arc<Version<V>>> {
        if newest.seq == self.stamp {
            newest.older()
        } else {
            Some(Arc::clone(newest))
        }
    }
}

impl<K, V> Store<K, V> for Writing<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key, self.guard)?.value.as_ref()
    }

    fn insert(&mut self, key: K, value: V) -> Option<V> {
        // Everything that can panic (the key's `Hash` and `Eq` in the
        // lookup, the old value's `Clone`) comes before the map changes.
        let newest = self.map.get(&key, self.guard);
        let old = newest.and_then(|newest| newest.value.clone());
        let older = newest.and_then(|newest| self.older_of(newest));
        let linked = older.is_some();
        let version = Version::new(self.stamp, Some(value), older);
        if linked {
            self.retiring.push(Retired::Link(Arc::clone(&version)));
        }
        self.map.insert(key, version, self.guard);
        if old.is_none() {
            *self.len += 1;
        }
        old
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let newest = self.map.get(key, self.guard)?;
        let old = newest.value.clone()?;
        match self.older_of(newest) {
            // No view can see any version of the key: drop it now.
            None => {
                self.map.remove(key, self.guard);
            }
            Some(older) => {
                let removal = Version::new(self.stamp, None, Some(older));
                self.retiring
                    .push(Retired::Removal(key.clone(), Arc::clone(&removal)));
                self.map.insert(key.clone(), removal, self.guard);
            }
        }
        *self.len -= 1;
        Some(old)
    }

    fn len(&self) -> usize {
        *self.len
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_> {
        Box::new(
            self.map
                .iter(self.guard)
                .filter_map(|(key, newest)| Some((key, newest.value.as_ref()?))),
        )
    }
}
