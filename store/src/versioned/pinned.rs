//! A published, pinned view of a versioned store: what readers hold.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

use papaya::LocalGuard;

use super::version::{Visible, visible};
use super::{Map, Pin};
use crate::Ref;

/// The versioned store at one published seq. It never changes: versions
/// written after its seq are skipped. While it is held, the owner keeps
/// every version it can see.
///
/// Cloning it is two `Arc` clones. Reads go through a [`PinnedView`],
/// which holds papaya's guard for as long as the references it hands out.
pub struct Pinned<K, V> {
    map: Arc<Map<K, V>>,
    seq: u64,
    len: usize,
    _pin: Arc<Pin>,
}

impl<K, V> Clone for Pinned<K, V> {
    fn clone(&self) -> Self {
        Pinned {
            map: Arc::clone(&self.map),
            seq: self.seq,
            len: self.len,
            _pin: Arc::clone(&self._pin),
        }
    }
}

impl<K, V> std::fmt::Debug for Pinned<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned")
            .field("seq", &self.seq)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<K, V> Pinned<K, V> {
    pub(super) fn new(map: Arc<Map<K, V>>, seq: u64, len: usize, pin: Arc<Pin>) -> Self {
        Pinned {
            map,
            seq,
            len,
            _pin: pin,
        }
    }

    /// The seq this view shows the state at.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How many keys hold a value at this seq.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key holds a value at this seq.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A guard-holding view for reads that borrow from the store.
    pub fn view(&self) -> PinnedView<'_, K, V> {
        PinnedView {
            pinned: self,
            guard: self.map.guard(),
        }
    }
}

impl<K: Hash + Eq, V> Pinned<K, V> {
    /// The value at `key` at this seq. It holds its version by reference
    /// count, since no guard outlives this call.
    pub fn get<'s, Q>(&'s self, key: &Q) -> Option<Ref<'s, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.map.guard();
        let newest = self.map.get(key, &guard)?;
        let shown = match visible(newest, self.seq)? {
            // The value is in the newest version: hold that one.
            Visible::Head(_) => Arc::clone(newest),
            Visible::Older(version) => version,
        };
        Some(Ref::version(shown))
    }

    /// Whether `key` holds a value at this seq.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = self.map.guard();
        self.map
            .get(key, &guard)
            .is_some_and(|newest| visible(newest, self.seq).is_some())
    }
}

/// Reads of a [`Pinned`] view under one papaya guard: values in a key's
/// newest version are borrowed, with no reference count touched.
///
/// The guard keeps what it protects alive (and so delays papaya's
/// reclamation) while the view lives: drop it when the reads are done. It
/// is not `Send`, like papaya's own local guard.
pub struct PinnedView<'a, K, V> {
    pinned: &'a Pinned<K, V>,
    guard: LocalGuard<'a>,
}

impl<K, V> std::fmt::Debug for PinnedView<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedView")
            .field("seq", &self.pinned.seq)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> PinnedView<'_, K, V> {
    /// The value at `key` at the view's seq.
    pub fn get<Q>(&self, key: &Q) -> Option<Ref<'_, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let newest = self.pinned.map.get(key, &self.guard)?;
        Some(match visible(newest, self.pinned.seq)? {
            Visible::Head(value) => Ref::borrowed(value),
            Visible::Older(version) => Ref::version(version),
        })
    }

    /// Whether `key` holds a value at the view's seq.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.pinned
            .map
            .get(key, &self.guard)
            .is_some_and(|newest| visible(newest, self.pinned.seq).is_some())
    }
}

impl<K: Hash + Eq, V> PinnedView<'_, K, V> {
    /// Every entry at the view's seq, in the map's arbitrary order.
    ///
    /// Each key that holds a value at the seq is yielded exactly once,
    /// however the owner writes meanwhile: such a key is never removed
    /// from the map while the view is pinned, and papaya's iterator walks
    /// one table, whose slots a concurrent resize copies but never empties.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            inner: self.pinned.map.iter(&self.guard),
            seq: self.pinned.seq,
        }
    }

    /// How many keys hold a value at the view's seq.
    pub fn len(&self) -> usize {
        self.pinned.len
    }

    /// Whether no key holds a value at the view's seq.
    pub fn is_empty(&self) -> bool {
        self.pinned.len == 0
    }
}

/// The entries of a [`PinnedView`].
pub struct Iter<'g, K, V> {
    inner: papaya::Iter<'g, K, Arc<super::Version<V>>, LocalGuard<'g>>,
    seq: u64,
}

impl<K, V> std::fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl<'g, K: 'g, V: 'g> Iterator for Iter<'g, K, V> {
    type Item = (&'g K, Ref<'g, V>);

    fn next(&mut self) -> Option<Self::Item> {
        for (key, newest) in self.inner.by_ref() {
            let shown = match visible(newest, self.seq) {
                None => continue,
                Some(Visible::Head(value)) => Ref::borrowed(value),
                Some(Visible::Older(version)) => Ref::version(version),
            };
            return Some((key, shown));
        }
        None
    }
}
