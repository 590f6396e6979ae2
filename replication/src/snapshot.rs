//! The replica snapshot format: what a leader streams to a lagging or new
//! node, and what each node keeps on disk as its current snapshot.
//!
//! ```text
//! "SOLOSNAP" | version: u32 LE | crc32 of the payload: u32 LE | payload
//! payload = bincode 2 (serde) of (SnapshotMeta, seq, state hash, [(key, value)])
//! ```
//!
//! The crc catches a damaged transfer or file before anything is decoded;
//! the state hash (persistence's order-independent [`entries_hash`]) is
//! recomputed over the decoded entries and proves they are the state that
//! was written, not merely bytes that decode. The openraft meta rides
//! inside, so a snapshot file on disk names the log id it holds without a
//! second file to keep in step with it.

use std::ops::Deref;

use openraft::{BasicNode, SnapshotMeta};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};
use solostate::persistence::hash::entries_hash;
use solostate::{Event, SnapshotOf};

use crate::error::SnapshotError;

const MAGIC: &[u8; 8] = b"SOLOSNAP";
const VERSION: u32 = 1;
const HEADER: usize = MAGIC.len() + 4 + 4;

/// The largest payload bincode will decode: a damaged length can never
/// make it allocate more (the crc is checked first, so this guards only
/// against a snapshot that was written wrong).
const MAX_PAYLOAD: usize = 1 << 32;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

/// A snapshot after [`decode`] checked its crc and its state hash.
#[derive(Debug)]
pub(crate) struct Decoded<E: Event> {
    /// openraft's meta: the last log id and membership it covers.
    pub(crate) meta: SnapshotMeta<u64, BasicNode>,
    /// The engine seq whose state it holds.
    pub(crate) seq: u64,
    /// The state's entries.
    pub(crate) entries: Vec<(E::Key, E::Value)>,
}

/// Serializes a snapshot's entries as a sequence of pairs straight from
/// the store, without cloning them.
struct Entries<'a, E: Event>(&'a SnapshotOf<E>);

impl<E: Event> Serialize for Entries<'_, E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.0.view();
        let mut seq = serializer.serialize_seq(Some(view.len()))?;
        for (key, value) in view.iter() {
            seq.serialize_element(&Pair(key, value))?;
        }
        seq.end()
    }
}

/// One entry as a 2-tuple, the way `(K, V)` deserializes.
struct Pair<'a, K, R>(&'a K, R);

impl<K: Serialize, V: Serialize, R: Deref<Target = V>> Serialize for Pair<'_, K, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(self.0)?;
        tuple.serialize_element(&*self.1)?;
        tuple.end()
    }
}

/// Encodes `state` (the engine's state at `state.seq()`) with `meta`.
///
/// # Errors
///
/// [`SnapshotError::Encode`] if an entry cannot be encoded.
pub(crate) fn encode<E: Event>(
    meta: &SnapshotMeta<u64, BasicNode>,
    state: &SnapshotOf<E>,
) -> Result<Vec<u8>, SnapshotError> {
    let hash = entries_hash::<E>(state.view().iter()).map_err(|e| SnapshotError::Encode {
        reason: e.to_string(),
    })?;
    let body = (meta, state.seq(), hash, Entries::<E>(state));
    let payload =
        bincode::serde::encode_to_vec(&body, config()).map_err(|e| SnapshotError::Encode {
            reason: e.to_string(),
        })?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Checks a snapshot's header (magic, version) and its crc, and returns
/// its payload.
fn checked_payload(bytes: &[u8]) -> Result<&[u8], SnapshotError> {
    let corrupt = |reason: String| SnapshotError::Corrupt { reason };
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(format!(
            "not a solostate snapshot ({} bytes, no SOLOSNAP header)",
            bytes.len()
        )));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(MAGIC.len());
    if version != VERSION {
        return Err(corrupt(format!(
            "snapshot format version {version}, this build reads {VERSION}"
        )));
    }
    let (stated, payload) = (word(MAGIC.len() + 4), &bytes[HEADER..]);
    let actual = crc32fast::hash(payload);
    if stated != actual {
        return Err(corrupt(format!(
            "crc mismatch over {} payload bytes: stated {stated:#010x}, computed {actual:#010x}",
            payload.len()
        )));
    }
    Ok(payload)
}

/// Checks a snapshot's header and crc and decodes only its openraft meta
/// (the payload's first field), not its entries: what a leader needs to
/// offer its current snapshot to a follower, which decodes and checks the
/// whole of it, state hash included, when it installs it.
///
/// # Errors
///
/// [`SnapshotError::Corrupt`] for a bad header or crc, or a meta that
/// does not decode.
pub(crate) fn meta(bytes: &[u8]) -> Result<SnapshotMeta<u64, BasicNode>, SnapshotError> {
    let payload = checked_payload(bytes)?;
    let (meta, _) = bincode::serde::decode_from_slice(payload, config()).map_err(|e| {
        SnapshotError::Corrupt {
            reason: format!("the meta does not decode: {e}"),
        }
    })?;
    Ok(meta)
}

/// Checks and decodes a snapshot: magic, version, crc, payload, then the
/// state hash over the decoded entries.
///
/// # Errors
///
/// [`SnapshotError::Corrupt`] for a bad header, crc or payload, and
/// [`SnapshotError::HashMismatch`] when the entries do not hash to the
/// hash the snapshot states.
pub(crate) fn decode<E: Event>(bytes: &[u8]) -> Result<Decoded<E>, SnapshotError> {
    let corrupt = |reason: String| SnapshotError::Corrupt { reason };
    let payload = checked_payload(bytes)?;
    type Body<K, V> = (SnapshotMeta<u64, BasicNode>, u64, u64, Vec<(K, V)>);
    let ((meta, seq, hash, entries), read): (Body<E::Key, E::Value>, usize) =
        bincode::serde::decode_from_slice(payload, config())
            .map_err(|e| corrupt(format!("payload does not decode: {e}")))?;
    if read != payload.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the payload",
            payload.len() - read
        )));
    }
    let computed = entries_hash::<E>(entries.iter().map(|(k, v)| (k, v)))
        .map_err(|e| corrupt(format!("an entry does not re-encode: {e}")))?;
    if computed != hash {
        return Err(SnapshotError::HashMismatch {
            seq,
            stated: hash,
            computed,
        });
    }
    Ok(Decoded { meta, seq, entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, StoredMembership};
    use solostate::{Snapshot, StateEvent};

    type Ev = StateEvent<String, u64>;

    fn meta() -> SnapshotMeta<u64, BasicNode> {
        SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 42)),
            last_membership: StoredMembership::default(),
            snapshot_id: "3-42-7".to_owned(),
        }
    }

    fn state() -> SnapshotOf<Ev> {
        let mut map = solostate::imbl::HashMap::new();
        for i in 0..100u64 {
            map.insert(format!("k{i}"), i * 3);
        }
        Snapshot::new(7, map)
    }

    #[test]
    fn round_trips_meta_seq_and_entries() {
        let bytes = encode::<Ev>(&meta(), &state()).unwrap();
        let decoded = decode::<Ev>(&bytes).unwrap();
        assert_eq!((decoded.meta, decoded.seq), (meta(), 7));
        let mut entries = decoded.entries;
        entries.sort();
        let mut expected: Vec<_> = (0..100u64).map(|i| (format!("k{i}"), i * 3)).collect();
        expected.sort();
        assert_eq!(entries, expected);
    }

    #[test]
    fn the_meta_alone_reads_without_the_entries_and_still_checks_the_crc() {
        let bytes = encode::<Ev>(&meta(), &state()).unwrap();
        assert_eq!(super::meta(&bytes).unwrap(), meta());
        // A flipped byte in the last entry: the meta itself decodes, but
        // the crc over the whole payload refuses the file.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        assert!(matches!(
            super::meta(&bad),
            Err(SnapshotError::Corrupt { reason }) if reason.contains("crc")
        ));
    }

    #[test]
    fn a_flipped_byte_anywhere_is_refused() {
        let bytes = encode::<Ev>(&meta(), &state()).unwrap();
        for at in [0, 9, 13, HEADER + 5, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(
                matches!(decode::<Ev>(&damaged), Err(SnapshotError::Corrupt { .. })),
                "byte {at}"
            );
        }
        assert!(matches!(
            decode::<Ev>(&bytes[..bytes.len() - 1]),
            Err(SnapshotError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_wrong_state_hash_is_refused_even_with_a_good_crc() {
        // Re-frame a payload whose stated hash is off by one: the crc is
        // right, so only the hash check can catch it.
        let snapshot = state();
        let body = (
            meta(),
            7u64,
            entries_hash::<Ev>(snapshot.view().iter()).unwrap() + 1,
            Entries::<Ev>(&snapshot),
        );
        let payload = bincode::serde::encode_to_vec(&body, config()).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        assert!(matches!(
            decode::<Ev>(&bytes),
            Err(SnapshotError::HashMismatch { seq: 7, .. })
        ));
    }
}
