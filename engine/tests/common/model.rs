//! The key-value part of the model tests: random `StateEvent`s and their
//! semantics written out independently of `StateEvent::apply`.

use std::collections::HashMap;

use proptest::prelude::*;
use solostate::{StateEvent, StateRejection};

/// The key-value event the models use.
pub type Kv = StateEvent<u8, u8>;

pub fn leaf() -> impl Strategy<Value = Kv> {
    let key = 0u8..6;
    let value = 0u8..3;
    let maybe = proptest::option::of(0u8..3);
    prop_oneof![
        3 => (key.clone(), value.clone()).prop_map(|(k, v)| Kv::put(k, v)),
        2 => key.clone().prop_map(Kv::delete),
        2 => (key.clone(), value.clone()).prop_map(|(k, v)| Kv::insert(k, v)),
        2 => (key.clone(), value.clone()).prop_map(|(k, v)| Kv::update(k, v)),
        3 => (key, maybe.clone(), maybe).prop_map(|(k, e, n)| Kv::compare_and_swap(k, e, n)),
        1 => Just(Kv::Clear),
    ]
}

pub fn kv() -> impl Strategy<Value = Kv> {
    prop_oneof![
        6 => leaf(),
        1 => proptest::collection::vec(leaf(), 0..5).prop_map(Kv::Batch),
    ]
}

/// The model's semantics of `StateEvent`, written without calling it.
pub fn model_kv(event: &Kv, map: &mut HashMap<u8, u8>) -> Result<(), StateRejection<u8>> {
    match event {
        StateEvent::Put { key, value } => {
            map.insert(*key, *value);
        }
        StateEvent::Delete { key } => {
            map.remove(key);
        }
        StateEvent::Insert { key, value } => {
            if map.contains_key(key) {
                return Err(StateRejection::AlreadyExists { key: *key });
            }
            map.insert(*key, *value);
        }
        StateEvent::Update { key, value } => {
            if !map.contains_key(key) {
                return Err(StateRejection::Missing { key: *key });
            }
            map.insert(*key, *value);
        }
        StateEvent::CompareAndSwap { key, expected, new } => {
            if map.get(key).copied() != *expected {
                return Err(StateRejection::Mismatch { key: *key });
            }
            match new {
                Some(value) => map.insert(*key, *value),
                None => map.remove(key),
            };
        }
        StateEvent::Clear => map.clear(),
        StateEvent::Batch(events) => {
            let mut scratch = map.clone();
            for (index, event) in events.iter().enumerate() {
                model_kv(event, &mut scratch).map_err(|cause| StateRejection::InBatch {
                    index,
                    cause: Box::new(cause),
                })?;
            }
            *map = scratch;
        }
    }
    Ok(())
}

/// The durability and store a model test's `pick` in `0..6` stands for:
/// each durability on each store.
pub fn durability_and_store(pick: u8) -> (solostate::Durability, solostate::StoreKind) {
    use solostate::{Durability, StoreKind};
    let durability = match pick % 3 {
        0 => Durability::Always,
        1 => Durability::Every(std::time::Duration::from_millis(2)),
        _ => Durability::Never,
    };
    let store = if pick >= 3 {
        StoreKind::Versioned
    } else {
        StoreKind::Persistent
    };
    (durability, store)
}
