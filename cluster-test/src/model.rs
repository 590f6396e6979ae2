//! Sequential specifications for the linearizability checker: the [`Model`]
//! trait, and the key-value map of compare-and-swap registers that the
//! cluster tests drive.
//!
//! A model says what one operation does to the state when it runs alone.
//! The checker in [`crate::linearizability`] searches for an order of the
//! concurrent operations of a history in which every step is one the model
//! allows.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;

/// A sequential specification of an object, as the checker needs it.
///
/// `step` must be deterministic: given a state, an input and an output, at
/// most one next state. The checker memoizes on `(set of operations already
/// placed, state)`, so `State` is hashed and compared, and it should be
/// small (per key, not a whole database, where the history allows
/// partitioning; see [`crate::linearizability::check_partitioned`]).
pub trait Model {
    /// What the object holds between operations.
    type State: Clone + Eq + Hash + Debug;
    /// An operation's request: what the client asked for.
    type Input: Debug;
    /// An operation's response: what the client was told.
    type Output: Debug;

    /// The state before the first operation.
    fn init(&self) -> Self::State;

    /// The state after `input` runs on `state` and answers `output`, or
    /// `None` if it could not have answered `output` from `state`.
    ///
    /// `output` is `None` when the client never saw the answer (it timed
    /// out, got an ambiguous error, or died): the operation may still have
    /// taken effect, so `step` must return the state it would have left,
    /// whatever it would have answered.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// A request to the key-value map, with the semantics of solostate's
/// `StateEvent`: `Put`, `Delete` and `CompareAndSwap` mean exactly what
/// those events mean, and `Read` is a read of the key from a snapshot.
///
/// Only single-key operations: that keeps linearizability checkable one
/// key at a time (it is a local property, Herlihy & Wing), which is what
/// makes histories of thousands of operations tractable. A multi-key
/// `Batch` would need the whole-map [`KvMap`] model and a history small
/// enough for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvInput<K, V> {
    /// Read the key's value (`None`: absent).
    Read {
        /// The key read.
        key: K,
    },
    /// Set the key, whether or not it was present (`StateEvent::Put`).
    Put {
        /// The key written.
        key: K,
        /// Its new value.
        value: V,
    },
    /// Remove the key; removing a missing key succeeds
    /// (`StateEvent::Delete`).
    Delete {
        /// The key removed.
        key: K,
    },
    /// Write `new` only if the key holds `expected`; `None` means absent on
    /// both sides (`StateEvent::CompareAndSwap`).
    CompareAndSwap {
        /// The key checked and written.
        key: K,
        /// The value the key must hold (`None`: absent).
        expected: Option<V>,
        /// The value to leave (`None`: remove the key).
        new: Option<V>,
    },
}

impl<K, V> KvInput<K, V> {
    /// The one key the operation touches: the checker's partition.
    pub fn key(&self) -> &K {
        match self {
            KvInput::Read { key }
            | KvInput::Put { key, .. }
            | KvInput::Delete { key }
            | KvInput::CompareAndSwap { key, .. } => key,
        }
    }
}

/// A response from the key-value map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvOutput<V> {
    /// A read's answer (`None`: the key was absent).
    Value(Option<V>),
    /// A put, a delete, or a compare-and-swap that was applied.
    Ok,
    /// A compare-and-swap rejected because the key did not hold the
    /// expected value (`StateRejection::Mismatch`); it changed nothing.
    Mismatch,
}

/// One key's register: the model [`crate::linearizability::check_kv`] runs
/// per key. The state is the key's value (`None`: absent).
///
/// The key in each input is ignored: the checker hands this model only the
/// operations of one key.
#[derive(Debug)]
pub struct CasRegister<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> CasRegister<K, V> {
    /// The model.
    pub fn new() -> Self {
        CasRegister(PhantomData)
    }
}

impl<K, V> Default for CasRegister<K, V> {
    fn default() -> Self {
        CasRegister::new()
    }
}

impl<K: Debug, V: Clone + Eq + Hash + Debug> Model for CasRegister<K, V> {
    type State = Option<V>;
    type Input = KvInput<K, V>;
    type Output = KvOutput<V>;

    fn init(&self) -> Option<V> {
        None
    }

    fn step(
        &self,
        state: &Option<V>,
        input: &KvInput<K, V>,
        output: Option<&KvOutput<V>>,
    ) -> Option<Option<V>> {
        register_step(state.as_ref(), input, output)
    }
}

/// The whole map as one state: for histories that cannot be split by key,
/// and for checking that splitting by key gives the same answer. Its state
/// grows with the number of keys, so use it on small histories only.
#[derive(Debug)]
pub struct KvMap<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> KvMap<K, V> {
    /// The model.
    pub fn new() -> Self {
        KvMap(PhantomData)
    }
}

impl<K, V> Default for KvMap<K, V> {
    fn default() -> Self {
        KvMap::new()
    }
}

impl<K, V> Model for KvMap<K, V>
where
    K: Clone + Ord + Hash + Debug,
    V: Clone + Eq + Hash + Debug,
{
    type State = BTreeMap<K, V>;
    type Input = KvInput<K, V>;
    type Output = KvOutput<V>;

    fn init(&self) -> BTreeMap<K, V> {
        BTreeMap::new()
    }

    fn step(
        &self,
        state: &BTreeMap<K, V>,
        input: &KvInput<K, V>,
        output: Option<&KvOutput<V>>,
    ) -> Option<BTreeMap<K, V>> {
        let key = input.key();
        let after = register_step(state.get(key), input, output)?;
        if after.as_ref() == state.get(key) {
            return Some(state.clone());
        }
        let mut next = state.clone();
        match after {
            Some(value) => next.insert(key.clone(), value),
            None => next.remove(key),
        };
        Some(next)
    }
}

/// One key's transition: the key's value after `input` answered `output`
/// from `current`, or `None` (the outer option) if it could not have.
///
/// An output of the wrong kind for the input (a read answered `Ok`) is a
/// malformed history, and no state allows it.
fn register_step<K, V: Clone + Eq>(
    current: Option<&V>,
    input: &KvInput<K, V>,
    output: Option<&KvOutput<V>>,
) -> Option<Option<V>> {
    let unchanged = || current.cloned();
    match (input, output) {
        (KvInput::Read { .. }, None) => Some(unchanged()),
        (KvInput::Read { .. }, Some(KvOutput::Value(seen))) => {
            (seen.as_ref() == current).then(unchanged)
        }
        (KvInput::Put { value, .. }, None | Some(KvOutput::Ok)) => Some(Some(value.clone())),
        (KvInput::Delete { .. }, None | Some(KvOutput::Ok)) => Some(None),
        (KvInput::CompareAndSwap { expected, new, .. }, output) => {
            let matches = expected.as_ref() == current;
            match output {
                // Unseen: it did whatever the state made it do. A rejected
                // compare-and-swap changes nothing, so this is also "it
                // never ran".
                None if matches => Some(new.clone()),
                None => Some(unchanged()),
                Some(KvOutput::Ok) if matches => Some(new.clone()),
                Some(KvOutput::Mismatch) if !matches => Some(unchanged()),
                Some(_) => None,
            }
        }
        (_, Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type In = KvInput<&'static str, u32>;
    type Out = KvOutput<u32>;

    fn step(state: Option<u32>, input: In, output: Option<Out>) -> Option<Option<u32>> {
        CasRegister::new().step(&state, &input, output.as_ref())
    }

    fn cas(expected: Option<u32>, new: Option<u32>) -> In {
        KvInput::CompareAndSwap {
            key: "k",
            expected,
            new,
        }
    }

    #[test]
    fn a_read_must_see_the_current_value() {
        let read = || KvInput::Read { key: "k" };
        assert_eq!(
            step(Some(1), read(), Some(KvOutput::Value(Some(1)))),
            Some(Some(1))
        );
        assert_eq!(step(Some(1), read(), Some(KvOutput::Value(Some(2)))), None);
        assert_eq!(step(None, read(), Some(KvOutput::Value(None))), Some(None));
        assert_eq!(step(None, read(), Some(KvOutput::Value(Some(1)))), None);
        assert_eq!(step(Some(7), read(), None), Some(Some(7)));
    }

    #[test]
    fn put_and_delete_always_apply() {
        let put = KvInput::Put { key: "k", value: 3 };
        assert_eq!(
            step(Some(1), put.clone(), Some(KvOutput::Ok)),
            Some(Some(3))
        );
        assert_eq!(step(None, put, None), Some(Some(3)));
        // Deleting a missing key succeeds, as StateEvent::Delete does.
        assert_eq!(
            step(None, KvInput::Delete { key: "k" }, Some(KvOutput::Ok)),
            Some(None)
        );
    }

    #[test]
    fn compare_and_swap_follows_state_event_semantics() {
        // Applied only when the current value is the expected one.
        assert_eq!(
            step(Some(1), cas(Some(1), Some(2)), Some(KvOutput::Ok)),
            Some(Some(2))
        );
        assert_eq!(
            step(Some(1), cas(Some(5), Some(2)), Some(KvOutput::Ok)),
            None
        );
        // Rejected only when it is not, and then nothing changes.
        assert_eq!(
            step(Some(1), cas(Some(5), Some(2)), Some(KvOutput::Mismatch)),
            Some(Some(1))
        );
        assert_eq!(
            step(Some(1), cas(Some(1), Some(2)), Some(KvOutput::Mismatch)),
            None
        );
        // None is "absent" on both sides: create-if-absent, delete-if-unchanged.
        assert_eq!(
            step(None, cas(None, Some(4)), Some(KvOutput::Ok)),
            Some(Some(4))
        );
        assert_eq!(
            step(Some(4), cas(Some(4), None), Some(KvOutput::Ok)),
            Some(None)
        );
        // Unseen: it does what the state makes it do.
        assert_eq!(step(Some(1), cas(Some(1), Some(2)), None), Some(Some(2)));
        assert_eq!(step(Some(3), cas(Some(1), Some(2)), None), Some(Some(3)));
    }

    #[test]
    fn an_output_of_the_wrong_kind_is_never_allowed() {
        assert_eq!(
            step(None, KvInput::Read { key: "k" }, Some(KvOutput::Ok)),
            None
        );
        let put = KvInput::Put { key: "k", value: 1 };
        assert_eq!(step(None, put, Some(KvOutput::Value(None))), None);
        assert_eq!(
            step(None, cas(None, None), Some(KvOutput::Value(None))),
            None
        );
    }

    #[test]
    fn the_map_model_changes_only_the_operations_key() {
        let map = KvMap::<&str, u32>::new();
        let s0 = map.init();
        let s1 = map
            .step(
                &s0,
                &KvInput::Put { key: "a", value: 1 },
                Some(&KvOutput::Ok),
            )
            .unwrap();
        let s2 = map
            .step(
                &s1,
                &KvInput::Put { key: "b", value: 2 },
                Some(&KvOutput::Ok),
            )
            .unwrap();
        let read_a = KvInput::Read { key: "a" };
        assert!(
            map.step(&s2, &read_a, Some(&KvOutput::Value(Some(1))))
                .is_some()
        );
        let s3 = map.step(&s2, &KvInput::Delete { key: "a" }, None).unwrap();
        assert_eq!(s3, BTreeMap::from([("b", 2)]));
    }
}
