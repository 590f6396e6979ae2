//! [`Snapshot`]: one immutable, consistent version of the state.

use std::borrow::Borrow;
use std::hash::Hash;

/// One immutable version of the state: every event with a sequence number
/// `<= seq()` applied, and nothing after.
///
/// Readers receive it as an `Arc<Snapshot>`, so holding one is an `Arc`
/// clone. It never changes underneath its holder, and keeping an old one
/// alive costs only the map nodes that later writes copied (the map is a
/// persistent [`imbl::HashMap`] shared with newer versions).
#[derive(Debug, Clone)]
pub struct Snapshot<K, V> {
    seq: u64,
    map: imbl::HashMap<K, V>,
}

impl<K, V> Snapshot<K, V> {
    /// Makes a snapshot of `map` at `seq`. Only the owner of the state
    /// should call it, with the sequence number of the last event applied.
    pub fn new(seq: u64, map: imbl::HashMap<K, V>) -> Self {
        Snapshot { seq, map }
    }

    /// The sequence number of the last event this snapshot reflects
    /// (0 before any event).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The whole map, for anything the convenience methods do not cover.
    /// Cloning it is O(1).
    pub fn map(&self) -> &imbl::HashMap<K, V> {
        &self.map
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map has no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Iterates over the entries, in the map's arbitrary order.
    pub fn iter(&self) -> imbl::hashmap::Iter<'_, K, V, imbl::shared_ptr::DefaultSharedPtr> {
        self.map.iter()
    }
}

impl<K: Hash + Eq, V> Snapshot<K, V> {
    /// The value for `key`, if present.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }
}

impl<'a, K, V> IntoIterator for &'a Snapshot<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = imbl::hashmap::Iter<'a, K, V, imbl::shared_ptr::DefaultSharedPtr>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}
