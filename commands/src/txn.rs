//! The transaction API: how an [`Event`](crate::Event) reads and writes the
//! state.
//!
//! An event does not get the map itself. It gets a [`Txn`]: a handle over
//! a [`Store`] that records every write it makes, in order, with the value
//! the write replaced (its *write set*). The write set is what lets the
//! engine undo a rejected or panicking event in time proportional to what
//! the event wrote, and what later work builds on (an incremental state
//! hash, key-level change feeds, a versioned store). Because events only
//! see the handle, the store behind it can change without touching any
//! event's `apply`.

use std::hash::Hash;

/// What a store offers a transaction: reads, and writes applied in place.
///
/// A store applies each write at once, so a later read (by the same event
/// or the next one) sees it. It keeps nothing that could undo a write: the
/// [`Txn`] records the key and the replaced value of every write in its
/// write set, and undoing walks that record backwards. This keeps a store
/// simple (a map, and nothing else) and the undo cost proportional to the
/// writes made, not to the size of the state.
///
/// The trait is object-safe: a [`Txn`] holds a `&mut dyn Store`, so an
/// event's `apply` is compiled once, whatever store the engine runs.
///
/// # Panics
///
/// A write that panics (a `Hash`, `Eq` or `Clone` of the key or value type
/// panicking inside it) must leave the store's contents as they were, since
/// the transaction records a write only once the store has made it.
/// [`imbl::HashMap`] does: it hashes the key first, copies the path to the
/// entry (copies equal to what they replace) and only then changes the leaf.
pub trait Store<K, V> {
    /// The value at `key`, if any.
    fn get(&self, key: &K) -> Option<&V>;

    /// Sets `key` to `value` and returns the value it replaced (`None`: the
    /// key was absent).
    fn insert(&mut self, key: K, value: V) -> Option<V>;

    /// Removes `key` and returns its value (`None`: it was absent).
    fn remove(&mut self, key: &K) -> Option<V>;

    /// How many keys the store holds.
    fn len(&self) -> usize;

    /// Whether the store holds no key.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, in the store's own order (not a stable one: an event
    /// that iterates must not let the order decide what it writes, or
    /// replay could differ from the live run).
    fn iter(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_>;
}

/// The persistent store: writes copy only the path to their entry, and the
/// map is cloned in O(1) for every published snapshot.
impl<K: Hash + Eq + Clone, V: Clone> Store<K, V> for imbl::HashMap<K, V> {
    fn get(&self, key: &K) -> Option<&V> {
        imbl::HashMap::get(self, key)
    }

    fn insert(&mut self, key: K, value: V) -> Option<V> {
        imbl::HashMap::insert(self, key, value)
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        imbl::HashMap::remove(self, key)
    }

    fn len(&self) -> usize {
        imbl::HashMap::len(self)
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_> {
        Box::new(imbl::HashMap::iter(self))
    }
}

/// One entry of a write set: a key that a transaction wrote, and the value
/// the write replaced (`None`: the key was absent before it).
///
/// The fields are private, read through accessors, so that an entry can
/// only come from a real write of a [`Txn`] (undo trusts it to describe the
/// store), and so that later work can add to it (the new value's hash, for
/// an incremental state hash) without breaking anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write<K, V> {
    key: K,
    old: Option<V>,
}

impl<K, V> Write<K, V> {
    /// The key written.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The value the write replaced; `None` if the key was absent.
    pub fn old(&self) -> Option<&V> {
        self.old.as_ref()
    }

    /// The key and the replaced value, by value.
    pub fn into_parts(self) -> (K, Option<V>) {
        (self.key, self.old)
    }
}

/// Undoes every write in `writes` against `store`, newest first, and leaves
/// `writes` empty (its allocation kept, for reuse). The store then holds
/// what it held before the first of them.
///
/// This is the engine-facing form of [`Txn::undo`]: the engine keeps one
/// write-set buffer across events and undoes it after the [`Txn`] that
/// filled it is gone (dropped by a panic inside `apply`, for example).
/// `writes` must be the write set of transactions over this same `store`,
/// with no other change to it since.
///
/// # Panics
///
/// Only if the store's own write panics (a `Hash`, `Eq` or `Clone` of the
/// key or value type panicking). The write being undone is then lost and
/// the store is part-way restored, so a caller that must survive that
/// (the engine does) catches the panic and rebuilds the state another way.
/// [`imbl::HashMap`] clones nothing while undoing: the paths it restores
/// were copied by the writes being undone and are not shared.
pub fn undo_writes<K, V>(store: &mut dyn Store<K, V>, writes: &mut Vec<Write<K, V>>) {
    undo_from(store, writes, 0);
}

/// Calls `f` with the first write of each key in `writes`, in order: the
/// keys a write set touched, each once, with the value the key had before
/// the first of them. What follows a write set (a state hash, key-level
/// changes) needs each key once, and its value before and after, not
/// every intermediate write. Stops at the first error `f` returns.
///
/// Linear: a few writes are checked against the ones before them, many
/// (a `Clear` of a large map) through a set.
///
/// # Errors
///
/// The first error `f` returns.
pub fn for_each_key<K: Hash + Eq, V, Error>(
    writes: &[Write<K, V>],
    mut f: impl FnMut(&Write<K, V>) -> Result<(), Error>,
) -> Result<(), Error> {
    if writes.len() <= 16 {
        for (at, write) in writes.iter().enumerate() {
            if !writes[..at].iter().any(|w| w.key == write.key) {
                f(write)?;
            }
        }
    } else {
        let mut seen = std::collections::HashSet::with_capacity(writes.len());
        for write in writes {
            if seen.insert(&write.key) {
                f(write)?;
            }
        }
    }
    Ok(())
}

/// Undoes and drops `writes[from..]`, newest first.
fn undo_from<K, V>(store: &mut dyn Store<K, V>, writes: &mut Vec<Write<K, V>>, from: usize) {
    while writes.len() > from {
        let Some(Write { key, old }) = writes.pop() else {
            break;
        };
        match old {
            Some(value) => {
                store.insert(key, value);
            }
            None => {
                store.remove(&key);
            }
        }
    }
}

/// An event's handle on the state: reads see the current state, this
/// event's own writes included, and every write is recorded with the value
/// it replaced, so that it can be undone.
///
/// Writes go to the store in place, so reads need no overlay and cost what
/// the store's reads cost. The write set is a borrowed buffer rather than a
/// `Vec` of the transaction's own: the engine applies millions of events a
/// second, one transaction each, and one buffer reused across all of them
/// costs one push per write instead of an allocation per event. A
/// transaction uses only the part of the buffer past what it held when the
/// transaction began, so one buffer can also serve transactions in turn
/// without being cleared between them.
///
/// # Panics inside `apply`
///
/// A panic anywhere in an event's `apply` leaves the buffer holding every
/// write the store made before it, so the engine can undo them after
/// catching the panic. Each write clones its key and reserves room in the
/// buffer *before* the store writes, and pushes the record right after,
/// with nothing that can panic in between. A panicking `K::clone` (or an
/// `update` closure) therefore fails before anything is written, and a
/// `Hash`, `Eq` or `Clone` panicking inside the store's own write leaves
/// the store unchanged, as the [`Store`] contract requires.
///
/// # Example
///
/// ```
/// use solostate_commands::{Txn, Write};
///
/// let mut map: imbl::HashMap<&str, u32> = imbl::HashMap::new();
/// map.insert("a", 1);
/// let mut writes: Vec<Write<&str, u32>> = Vec::new();
///
/// let mut tx = Txn::new(&mut map, &mut writes);
/// tx.insert("b", 2);
/// tx.update("a", |old| old.map(|v| v + 10));
/// assert_eq!(tx.get(&"a"), Some(&11));
/// assert_eq!(tx.writes().len(), 2);
/// tx.undo(); // what the engine does after a rejection
///
/// assert_eq!(map, imbl::HashMap::from(vec![("a", 1)]));
/// ```
pub struct Txn<'a, K, V> {
    store: &'a mut dyn Store<K, V>,
    /// The write set: `writes[start..]` are this transaction's writes,
    /// oldest first.
    writes: &'a mut Vec<Write<K, V>>,
    start: usize,
}

impl<'a, K, V> Txn<'a, K, V> {
    /// A transaction over `store` that records its writes at the end of
    /// `writes`. Whatever `writes` already holds is left alone: it is not
    /// part of this transaction's write set, and [`undo`](Self::undo) does
    /// not touch it.
    pub fn new(store: &'a mut dyn Store<K, V>, writes: &'a mut Vec<Write<K, V>>) -> Self {
        let start = writes.len();
        Txn {
            store,
            writes,
            start,
        }
    }

    /// The value at `key` now, this transaction's writes included.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.store.get(key)
    }

    /// Whether `key` holds a value now.
    pub fn contains_key(&self, key: &K) -> bool {
        self.store.get(key).is_some()
    }

    /// How many keys the state holds now.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the state holds no key now.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Every entry of the current state, this transaction's writes
    /// included, in the store's order. The order is not stable across
    /// stores or runs: do not let it decide what the event writes.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.store.iter()
    }

    /// This transaction's writes so far, oldest first: each key written and
    /// the value it replaced. A key written twice appears twice.
    pub fn writes(&self) -> &[Write<K, V>] {
        &self.writes[self.start..]
    }

    /// Undoes this transaction's writes, newest first: the store is as it
    /// was when the transaction began, and the buffer as long as it was.
    /// [`Event::apply_to`](crate::Event::apply_to) and the engine call it
    /// (or [`undo_writes`]) after a rejection, so an event need not undo
    /// anything itself.
    ///
    /// # Panics
    ///
    /// Only if the store's own write panics; see [`undo_writes`].
    pub fn undo(self) {
        undo_from(self.store, self.writes, self.start);
    }
}

impl<K: Clone, V> Txn<'_, K, V> {
    /// Sets `key` to `value`. The replaced value goes into the write set
    /// (for undo) rather than back to the caller; an event that needs it
    /// [`get`](Self::get)s it first, or uses [`update`](Self::update).
    pub fn insert(&mut self, key: K, value: V) {
        // Everything that can panic comes before the store's write, and the
        // push after it cannot (room was reserved): a panic leaves no write
        // made and unrecorded.
        let recorded = key.clone();
        self.writes.reserve(1);
        let old = self.store.insert(key, value);
        self.writes.push(Write { key: recorded, old });
    }

    /// Removes `key`, and returns whether it was present. Removing a
    /// missing key changes nothing and records nothing.
    pub fn remove(&mut self, key: &K) -> bool {
        // Cloned before the store's write, for the same reason as in
        // `insert`.
        let recorded = key.clone();
        self.writes.reserve(1);
        match self.store.remove(key) {
            Some(old) => {
                self.writes.push(Write {
                    key: recorded,
                    old: Some(old),
                });
                true
            }
            None => false,
        }
    }

    /// Read-modify-write in one call: `f` gets the current value at `key`
    /// (`None`: absent) and returns the new one (`None`: remove the key).
    /// Returning `None` for an absent key changes nothing.
    ///
    /// A panic inside `f` happens before anything is written.
    pub fn update(&mut self, key: K, f: impl FnOnce(Option<&V>) -> Option<V>) {
        match f(self.store.get(&key)) {
            Some(value) => self.insert(key, value),
            None => {
                self.remove(&key);
            }
        }
    }

    /// Removes every key, one recorded write per key (so O(len), not O(1)):
    /// undo, and later the state hash and change feeds, need each removed
    /// entry.
    pub fn clear(&mut self) {
        // The keys are cloned before anything is removed, so a panicking
        // clone leaves the state untouched.
        let keys: Vec<K> = self.store.iter().map(|(key, _)| key.clone()).collect();
        self.writes.reserve(keys.len());
        for key in keys {
            if let Some(old) = self.store.remove(&key) {
                self.writes.push(Write {
                    key,
                    old: Some(old),
                });
            }
        }
    }
}

impl<K, V> std::fmt::Debug for Txn<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("len", &self.store.len())
            .field("writes", &self.writes().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
