//! What the power-cut writers send, and the plain model it is checked
//! against.
//!
//! Writer `w`'s `i`-th event is a function of the cycle's seed, `w` and
//! `i` ([`event`]), so the parent knows every event a killed child could
//! have journaled without being told. Every key of an event belongs to
//! its writer (the writer is in the key's high bits), and every value
//! carries its writer and index, so any journaled step names the writer
//! it came from and can be checked as that writer's next event.

use std::collections::HashMap;

use solostate::StateEvent;

use crate::workload::Rng;

/// The engine's event type under the power-cut harness.
pub type PcEvent = StateEvent<u64, Vec<u8>>;

/// The model of the engine's state: a plain `HashMap`, sharing no code
/// with `StateEvent::apply`.
pub type PcModel = HashMap<u64, Vec<u8>>;

/// The schema every power-cut engine opens with.
pub const SCHEMA: &str = "powercut-v1";

/// Writers in a child, each a task with its own pipeline.
pub const WRITERS: u32 = 4;

/// Keys per writer: few, so that overwrites and deletes hit live keys.
pub const KEYS_PER_WRITER: u64 = 48;

/// The size of the occasional large value: over the 131 KB above which
/// sled 0.34.7 writes a value to a blob file of its own (which it never
/// syncs).
pub const LARGE_VALUE: usize = 140 * 1024;

/// One event in this many carries a [`LARGE_VALUE`].
pub const LARGE_ONE_IN: u64 = 300;

/// The bytes a value starts with: its writer (u32) and index (u64), little
/// endian.
const HEADER: usize = 12;

/// The key `slot` of `writer`.
pub fn key(writer: u32, slot: u64) -> u64 {
    (u64::from(writer) << 32) | slot
}

/// The writer a key belongs to.
pub fn writer_of_key(key: u64) -> u32 {
    (key >> 32) as u32
}

/// The value writer `writer` puts at its `index`-th event: the header,
/// then `len` filler bytes that also depend on both.
fn value(writer: u32, index: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + len);
    v.extend_from_slice(&writer.to_le_bytes());
    v.extend_from_slice(&index.to_le_bytes());
    let fill = (index as u8) ^ (writer as u8).wrapping_mul(31);
    v.extend((0..len).map(|i| fill.wrapping_add(i as u8)));
    v
}

/// Writer `writer`'s `index`-th event in a cycle seeded with `seed`:
/// mostly puts, some deletes, some atomic batches of both, and now and
/// then a put of a [`LARGE_VALUE`]. None can be rejected.
pub fn event(seed: u64, writer: u32, index: u64) -> PcEvent {
    let mut rng = Rng::new(
        seed ^ u64::from(writer).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93),
    );
    let put = |rng: &mut Rng| {
        let len = if rng.bits().is_multiple_of(LARGE_ONE_IN) {
            LARGE_VALUE + rng.below(1024)
        } else {
            rng.range(4, 64) as usize
        };
        PcEvent::put(
            key(writer, rng.bits() % KEYS_PER_WRITER),
            value(writer, index, len),
        )
    };
    match rng.bits() % 100 {
        0..65 => put(&mut rng),
        65..80 => PcEvent::delete(key(writer, rng.bits() % KEYS_PER_WRITER)),
        _ => {
            let mut events = vec![put(&mut rng)];
            for _ in 0..rng.range(1, 4) {
                events.push(if rng.chance(70) {
                    put(&mut rng)
                } else {
                    PcEvent::delete(key(writer, rng.bits() % KEYS_PER_WRITER))
                });
            }
            PcEvent::batch(events)
        }
    }
}

/// The writer of a journaled event, from its (first) key; `None` for an
/// event kind the writers never send.
pub fn writer_of(event: &PcEvent) -> Option<u32> {
    match event {
        StateEvent::Put { key, .. } | StateEvent::Delete { key } => Some(writer_of_key(*key)),
        StateEvent::Batch(events) => events.first().and_then(writer_of),
        _ => None,
    }
}

/// A 64-bit digest of an event's bincode encoding (FNV-1a), so that the
/// check child can report a journaled event in a few bytes and the parent
/// compare it with the event it regenerates. Not cryptographic: it guards
/// against the harness's own mistakes and the engine's, not an adversary.
pub fn digest(event: &PcEvent) -> u64 {
    let bytes = bincode::serde::encode_to_vec(event, bincode::config::standard())
        .expect("a StateEvent of integers and bytes always encodes");
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The index a value says it was written at, if it carries a header.
pub fn index_of_value(value: &[u8]) -> Option<u64> {
    value
        .get(4..HEADER)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// Applies `event` to `model`, the plain way.
///
/// # Panics
///
/// On an event kind [`event`] never makes.
pub fn apply(model: &mut PcModel, event: &PcEvent) {
    match event {
        StateEvent::Put { key, value } => {
            model.insert(*key, value.clone());
        }
        StateEvent::Delete { key } => {
            model.remove(key);
        }
        StateEvent::Batch(events) => events.iter().for_each(|e| apply(model, e)),
        other => panic!("the power-cut writers make no {other:?}"),
    }
}

/// Why two states differ, in a line: the first few keys that disagree
/// (values shown by length and index, not byte by byte).
pub fn diff(found: &PcModel, expected: &PcModel) -> String {
    let mut keys: Vec<u64> = found.keys().chain(expected.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let show = |v: Option<&Vec<u8>>| match v {
        None => "absent".to_owned(),
        Some(v) => format!(
            "{} bytes from index {:?}",
            v.len(),
            index_of_value(v).unwrap_or(u64::MAX)
        ),
    };
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|k| found.get(k) != expected.get(k))
        .take(4)
        .map(|k| {
            format!(
                "key {:#x}: {} instead of {}",
                k,
                show(found.get(&k)),
                show(expected.get(&k))
            )
        })
        .collect();
    format!(
        "{} keys found, {} expected; {}",
        found.len(),
        expected.len(),
        differing.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_deterministic_and_name_their_writer() {
        for writer in 0..WRITERS {
            for index in 0..500 {
                let e = event(7, writer, index);
                assert_eq!(e, event(7, writer, index));
                assert_eq!(writer_of(&e), Some(writer));
            }
        }
        assert_ne!(event(7, 1, 3), event(8, 1, 3));
    }

    #[test]
    fn some_values_are_large_enough_for_a_sled_blob() {
        let large = (0..3_000)
            .map(|i| event(1, 0, i))
            .filter(|e| {
                let mut m = PcModel::new();
                apply(&mut m, e);
                m.values().any(|v| v.len() > LARGE_VALUE)
            })
            .count();
        assert!(large > 0, "no large value in 3,000 events");
        assert!(large < 100, "{large} large values: too many");
    }

    #[test]
    fn digests_tell_events_apart() {
        assert_eq!(digest(&event(1, 2, 3)), digest(&event(1, 2, 3)));
        // Deletes carry no index, so equal events repeat; every distinct
        // event has a distinct digest.
        let events: Vec<PcEvent> = (0..2_000).map(|i| event(1, 2, i)).collect();
        let digests: std::collections::HashSet<u64> = events.iter().map(digest).collect();
        let mut distinct = events.clone();
        distinct.sort_by_key(|e| format!("{e:?}"));
        distinct.dedup();
        assert_eq!(digests.len(), distinct.len());
        assert!(distinct.len() > 1_500);
    }

    #[test]
    fn values_carry_their_index() {
        assert_eq!(index_of_value(&value(3, 12_345, 10)), Some(12_345));
        assert_eq!(index_of_value(b"short"), None);
    }
}
