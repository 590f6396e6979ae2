//! [`StateEvent`]: the built-in key-value vocabulary.

use std::fmt::Debug;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Event, Txn};

/// The built-in events of a key-value store.
///
/// Use it directly when your state is a plain map, or as a model for your
/// own domain events. Read-modify-write updates such as "increment" cannot
/// be expressed generically over `V`; write a domain event for them (see
/// [`Event`]'s bank example) or use [`StateEvent::CompareAndSwap`].
///
/// Every variant is atomic: it applies fully or not at all. (A rejected
/// [`StateEvent::Batch`] returns `Err` with its earlier members' writes
/// still in the transaction; the engine and [`Event::apply_to`] undo them
/// from the write set.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateEvent<K, V> {
    /// Set `key` to `value`, whether or not it was present. Never rejected.
    Put {
        /// The key to write.
        key: K,
        /// Its new value.
        value: V,
    },
    /// Remove `key`. Removing a missing key is not an error (deletes are
    /// idempotent, so retrying one is safe).
    Delete {
        /// The key to remove.
        key: K,
    },
    /// Set `key` to `value` only if `key` is absent; otherwise rejected with
    /// [`StateRejection::AlreadyExists`]. For "create" operations that must
    /// not overwrite.
    Insert {
        /// The key to create.
        key: K,
        /// Its value.
        value: V,
    },
    /// Set `key` to `value` only if `key` is present; otherwise rejected
    /// with [`StateRejection::Missing`].
    Update {
        /// The key to overwrite.
        key: K,
        /// Its new value.
        value: V,
    },
    /// Write `new` only if the current value equals `expected`; otherwise
    /// rejected with [`StateRejection::Mismatch`]. `None` means "absent" on
    /// both sides, so this also expresses create-if-absent
    /// (`expected: None`) and delete-if-unchanged (`new: None`). It is the
    /// building block for optimistic read-modify-write from a snapshot.
    CompareAndSwap {
        /// The key to check and write.
        key: K,
        /// The value the key must hold now (`None`: absent).
        expected: Option<V>,
        /// The value to leave behind (`None`: remove the key).
        new: Option<V>,
    },
    /// Remove every key. Never rejected.
    Clear,
    /// Apply the events in order, all or nothing: if any is rejected, none
    /// of them is applied and the rejection names the failing index. Later
    /// events see the effects of earlier ones. The whole batch takes one
    /// sequence number.
    Batch(Vec<StateEvent<K, V>>),
}

impl<K, V> StateEvent<K, V> {
    /// Shorthand for [`StateEvent::Put`].
    pub fn put(key: K, value: V) -> Self {
        StateEvent::Put { key, value }
    }

    /// Shorthand for [`StateEvent::Delete`].
    pub fn delete(key: K) -> Self {
        StateEvent::Delete { key }
    }

    /// Shorthand for [`StateEvent::Insert`].
    pub fn insert(key: K, value: V) -> Self {
        StateEvent::Insert { key, value }
    }

    /// Shorthand for [`StateEvent::Update`].
    pub fn update(key: K, value: V) -> Self {
        StateEvent::Update { key, value }
    }

    /// Shorthand for [`StateEvent::CompareAndSwap`].
    pub fn compare_and_swap(key: K, expected: Option<V>, new: Option<V>) -> Self {
        StateEvent::CompareAndSwap { key, expected, new }
    }

    /// Shorthand for [`StateEvent::Batch`].
    pub fn batch(events: impl IntoIterator<Item = StateEvent<K, V>>) -> Self {
        StateEvent::Batch(events.into_iter().collect())
    }
}

/// Why a [`StateEvent`] was rejected. Names the key, and for a batch the
/// index of the event that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateRejection<K> {
    /// An [`StateEvent::Insert`] found the key already present.
    AlreadyExists {
        /// The key that was present.
        key: K,
    },
    /// An [`StateEvent::Update`] found no value for the key.
    Missing {
        /// The key that was absent.
        key: K,
    },
    /// A [`StateEvent::CompareAndSwap`] found a value other than expected.
    Mismatch {
        /// The key whose value differed.
        key: K,
    },
    /// An event inside a [`StateEvent::Batch`] was rejected, so the whole
    /// batch was.
    InBatch {
        /// The position of the failing event in the batch.
        index: usize,
        /// Why it failed.
        cause: Box<StateRejection<K>>,
    },
}

// Written by hand: a derived Display would recurse through `cause` and ask
// the compiler for an infinitely deep bound.
impl<K: Debug> std::fmt::Display for StateRejection<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateRejection::AlreadyExists { key } => {
                write!(f, "insert rejected: key {key:?} already exists")
            }
            StateRejection::Missing { key } => write!(f, "update rejected: key {key:?} is missing"),
            StateRejection::Mismatch { key } => write!(
                f,
                "compare-and-swap rejected: key {key:?} does not hold the expected value"
            ),
            StateRejection::InBatch { index, cause } => {
                write!(f, "batch rejected at index {index}: {cause}")
            }
        }
    }
}

impl<K: Debug> std::error::Error for StateRejection<K> {}

impl<K, V> Event for StateEvent<K, V>
where
    K: Hash + Eq + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    V: Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Key = K;
    type Value = V;
    type Rejection = StateRejection<K>;

    fn apply(&self, tx: &mut Txn<'_, K, V>) -> Result<(), StateRejection<K>> {
        match self {
            StateEvent::Put { key, value } => tx.insert(key.clone(), value.clone()),
            StateEvent::Delete { key } => {
                tx.remove(key);
            }
            StateEvent::Insert { key, value } => {
                if tx.contains_key(key) {
                    return Err(StateRejection::AlreadyExists { key: key.clone() });
                }
                tx.insert(key.clone(), value.clone());
            }
            StateEvent::Update { key, value } => {
                if !tx.contains_key(key) {
                    return Err(StateRejection::Missing { key: key.clone() });
                }
                tx.insert(key.clone(), value.clone());
            }
            StateEvent::CompareAndSwap { key, expected, new } => {
                if tx.get(key) != expected.as_ref() {
                    return Err(StateRejection::Mismatch { key: key.clone() });
                }
                match new {
                    Some(value) => tx.insert(key.clone(), value.clone()),
                    None => {
                        tx.remove(key);
                    }
                }
            }
            StateEvent::Clear => tx.clear(),
            StateEvent::Batch(events) => {
                // Straight through the same transaction: a failure part-way
                // returns `Err`, and whoever runs the transaction undoes
                // every write of the batch from the write set (the engine
                // does, and so does `apply_to`), so no scratch copy is
                // needed.
                for (index, event) in events.iter().enumerate() {
                    event.apply(tx).map_err(|cause| StateRejection::InBatch {
                        index,
                        cause: Box::new(cause),
                    })?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Ev = StateEvent<char, u32>;
    type Map = imbl::HashMap<char, u32>;

    fn map_of(pairs: &[(char, u32)]) -> Map {
        pairs.iter().copied().collect()
    }

    #[test]
    fn put_inserts_and_overwrites() {
        let mut map = Map::new();
        Ev::put('a', 1).apply_to(&mut map).unwrap();
        Ev::put('a', 2).apply_to(&mut map).unwrap();
        assert_eq!(map, map_of(&[('a', 2)]));
    }

    #[test]
    fn delete_removes_and_is_idempotent() {
        let mut map = map_of(&[('a', 1), ('b', 2)]);
        Ev::delete('a').apply_to(&mut map).unwrap();
        Ev::delete('a').apply_to(&mut map).unwrap();
        assert_eq!(map, map_of(&[('b', 2)]));
    }

    #[test]
    fn insert_rejects_existing_key_without_writing() {
        let mut map = map_of(&[('a', 1)]);
        Ev::insert('b', 2).apply_to(&mut map).unwrap();
        let err = Ev::insert('a', 9).apply_to(&mut map).unwrap_err();
        assert_eq!(err, StateRejection::AlreadyExists { key: 'a' });
        assert_eq!(map, map_of(&[('a', 1), ('b', 2)]));
    }

    #[test]
    fn update_rejects_missing_key_without_writing() {
        let mut map = map_of(&[('a', 1)]);
        Ev::update('a', 5).apply_to(&mut map).unwrap();
        let err = Ev::update('z', 9).apply_to(&mut map).unwrap_err();
        assert_eq!(err, StateRejection::Missing { key: 'z' });
        assert_eq!(map, map_of(&[('a', 5)]));
    }

    #[test]
    fn compare_and_swap_applies_on_match() {
        let mut map = map_of(&[('a', 1)]);
        Ev::compare_and_swap('a', Some(1), Some(2))
            .apply_to(&mut map)
            .unwrap();
        Ev::compare_and_swap('b', None, Some(7))
            .apply_to(&mut map)
            .unwrap();
        Ev::compare_and_swap('a', Some(2), None)
            .apply_to(&mut map)
            .unwrap();
        assert_eq!(map, map_of(&[('b', 7)]));
    }

    #[test]
    fn compare_and_swap_mismatch_rejects_and_leaves_map() {
        let mut map = map_of(&[('a', 1)]);
        let before = map.clone();
        for event in [
            Ev::compare_and_swap('a', Some(2), Some(3)),
            Ev::compare_and_swap('a', None, Some(3)),
            Ev::compare_and_swap('b', Some(1), None),
        ] {
            let key = match &event {
                StateEvent::CompareAndSwap { key, .. } => *key,
                _ => unreachable!(),
            };
            assert_eq!(
                event.apply_to(&mut map),
                Err(StateRejection::Mismatch { key })
            );
        }
        assert_eq!(map, before);
    }

    #[test]
    fn clear_empties_the_map() {
        let mut map = map_of(&[('a', 1), ('b', 2)]);
        Ev::Clear.apply_to(&mut map).unwrap();
        assert!(map.is_empty());
    }

    #[test]
    fn batch_applies_in_order_and_sees_earlier_effects() {
        let mut map = Map::new();
        Ev::batch([
            Ev::put('a', 1),
            Ev::compare_and_swap('a', Some(1), Some(2)),
            Ev::insert('b', 3),
            Ev::delete('b'),
        ])
        .apply_to(&mut map)
        .unwrap();
        assert_eq!(map, map_of(&[('a', 2)]));
    }

    #[test]
    fn batch_failing_part_way_applies_nothing() {
        let mut map = map_of(&[('a', 1)]);
        let before = map.clone();
        let err = Ev::batch([
            Ev::put('x', 10),
            Ev::delete('a'),
            Ev::update('a', 5), // 'a' was deleted by the previous event
            Ev::put('y', 11),
        ])
        .apply_to(&mut map)
        .unwrap_err();
        assert_eq!(
            err,
            StateRejection::InBatch {
                index: 2,
                cause: Box::new(StateRejection::Missing { key: 'a' })
            }
        );
        assert_eq!(map, before);
    }

    #[test]
    fn nested_batch_failure_names_both_indices() {
        let mut map = Map::new();
        let err = Ev::batch([
            Ev::put('a', 1),
            Ev::batch([Ev::put('b', 2), Ev::insert('a', 3)]),
        ])
        .apply_to(&mut map)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch rejected at index 1: batch rejected at index 1: \
             insert rejected: key 'a' already exists"
        );
        assert!(map.is_empty());
    }

    #[test]
    fn empty_batch_is_a_no_op() {
        let mut map = map_of(&[('a', 1)]);
        Ev::batch([]).apply_to(&mut map).unwrap();
        assert_eq!(map, map_of(&[('a', 1)]));
    }
}
