//! [`Snapshot`]: one immutable, consistent version of the state, from
//! either store.

use std::borrow::Borrow;
use std::hash::Hash;

use crate::Ref;
use crate::versioned::{self, Pinned, PinnedView};

/// One immutable version of the state: every event with a sequence number
/// `<= seq()` applied, and nothing after.
///
/// Readers receive it as an `Arc<Snapshot>`, so holding one is an `Arc`
/// clone, and it never changes underneath its holder. What holding an old
/// one costs depends on the store behind it:
/// - **persistent** (the default): the `imbl::HashMap` nodes that later
///   writes copied. [`map`](Self::map) gives the map itself;
/// - **versioned**: the versions later writes replaced, which the owner
///   keeps while the snapshot is held.
///
/// The API is the same on both: [`get`](Self::get),
/// [`contains_key`](Self::contains_key), [`len`](Self::len) and
/// [`seq`](Self::seq) directly, and [`view`](Self::view) for many reads,
/// or iteration, that borrow values rather than count references.
///
/// ```
/// use solostate_store::Snapshot;
///
/// let snapshot = Snapshot::new(7, imbl::HashMap::from(vec![("a", 1), ("b", 2)]));
/// assert_eq!(snapshot.get("a").as_deref(), Some(&1));
/// let view = snapshot.view();
/// assert_eq!(view.iter().map(|(_, value)| *value).sum::<i32>(), 3);
/// ```
#[derive(Debug, Clone)]
pub struct Snapshot<K, V> {
    seq: u64,
    state: State<K, V>,
}

#[derive(Debug, Clone)]
enum State<K, V> {
    Persistent(imbl::HashMap<K, V>),
    Versioned(Pinned<K, V>),
}

impl<K, V> Snapshot<K, V> {
    /// A snapshot of the persistent `map` at `seq`. Only the owner of the
    /// state (or code rebuilding a past state) should make one, with the
    /// sequence number of the last event applied.
    pub fn new(seq: u64, map: imbl::HashMap<K, V>) -> Self {
        Snapshot {
            seq,
            state: State::Persistent(map),
        }
    }

    /// The sequence number of the last event this snapshot reflects
    /// (0 before any event).
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The persistent map, when the snapshot comes from the persistent
    /// store (cloning it is O(1)); `None` from the versioned store.
    pub fn map(&self) -> Option<&imbl::HashMap<K, V>> {
        match &self.state {
            State::Persistent(map) => Some(map),
            State::Versioned(_) => None,
        }
    }

    /// Which store the snapshot comes from.
    pub fn kind(&self) -> crate::StoreKind {
        match &self.state {
            State::Persistent(_) => crate::StoreKind::Persistent,
            State::Versioned(_) => crate::StoreKind::Versioned,
        }
    }

    /// The number of keys.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.state {
            State::Persistent(map) => map.len(),
            State::Versioned(pinned) => pinned.len(),
        }
    }

    /// Whether the state holds no key.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A view for many reads: values it returns borrow from the state
    /// (with no reference count touched, for the versioned store's newest
    /// versions), and it iterates. It holds the versioned store's guard
    /// while it lives, so drop it when done; it is not `Send`.
    #[inline]
    pub fn view(&self) -> View<'_, K, V> {
        View(match &self.state {
            State::Persistent(map) => ViewOf::Persistent(map),
            State::Versioned(pinned) => ViewOf::Versioned(pinned.view()),
        })
    }
}

impl<K: Hash + Eq, V> Snapshot<K, V> {
    /// The value for `key`, if present. From the versioned store it holds
    /// its version by reference count; use [`view`](Self::view) for reads
    /// that only borrow.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Ref<'_, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match &self.state {
            State::Persistent(map) => map.get(key).map(Ref::borrowed),
            State::Versioned(pinned) => pinned.get(key),
        }
    }

    /// Whether `key` is present.
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match &self.state {
            State::Persistent(map) => map.contains_key(key),
            State::Versioned(pinned) => pinned.contains_key(key),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Snapshot<K, V> {
    /// The state as a persistent map: O(1) from the persistent store, a
    /// copy of every entry from the versioned one.
    pub fn to_map(&self) -> imbl::HashMap<K, V> {
        match &self.state {
            State::Persistent(map) => map.clone(),
            State::Versioned(_) => self
                .view()
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        }
    }
}

impl<K, V> From<Pinned<K, V>> for Snapshot<K, V> {
    fn from(pinned: Pinned<K, V>) -> Self {
        Snapshot {
            seq: pinned.seq(),
            state: State::Versioned(pinned),
        }
    }
}

/// Reads of one [`Snapshot`] that borrow from it; see
/// [`Snapshot::view`].
#[derive(Debug)]
pub struct View<'a, K, V>(ViewOf<'a, K, V>);

#[derive(Debug)]
enum ViewOf<'a, K, V> {
    Persistent(&'a imbl::HashMap<K, V>),
    Versioned(PinnedView<'a, K, V>),
}

impl<K: Hash + Eq, V> View<'_, K, V> {
    /// The value for `key`, if present.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Ref<'_, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match &self.0 {
            ViewOf::Persistent(map) => map.get(key).map(Ref::borrowed),
            ViewOf::Versioned(view) => view.get(key),
        }
    }

    /// Whether `key` is present.
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match &self.0 {
            ViewOf::Persistent(map) => map.contains_key(key),
            ViewOf::Versioned(view) => view.contains_key(key),
        }
    }
}

impl<K: Hash + Eq, V> View<'_, K, V> {
    /// Every entry, in the store's arbitrary order.
    #[inline]
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter(match &self.0 {
            ViewOf::Persistent(map) => IterOf::Persistent(map.iter()),
            ViewOf::Versioned(view) => IterOf::Versioned(view.iter()),
        })
    }

    /// The number of keys.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            ViewOf::Persistent(map) => map.len(),
            ViewOf::Versioned(view) => view.len(),
        }
    }

    /// Whether the state holds no key.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'v, K: Hash + Eq, V> IntoIterator for &'v View<'_, K, V> {
    type Item = (&'v K, Ref<'v, V>);
    type IntoIter = Iter<'v, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The entries of a [`View`].
pub struct Iter<'a, K, V>(IterOf<'a, K, V>);

enum IterOf<'a, K, V> {
    Persistent(imbl::hashmap::Iter<'a, K, V, imbl::shared_ptr::DefaultSharedPtr>),
    Versioned(versioned::Iter<'a, K, V>),
}

impl<'a, K: 'a, V: 'a> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, Ref<'a, V>);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterOf::Persistent(iter) => iter.next().map(|(key, value)| (key, Ref::borrowed(value))),
            IterOf::Versioned(iter) => iter.next(),
        }
    }
}

impl<K, V> std::fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}
