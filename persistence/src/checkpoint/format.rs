//! The byte layout of a checkpoint file: one place that knows it.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "SOLOCKPT"
//! 8       4     format version (VERSION), u32 LE
//! 12      8     seq, u64 LE
//! 20      8     entry count, u64 LE
//! 28      8     state hash (crate::hash), u64 LE
//! 36      8     payload length in bytes, u64 LE
//! 44      4     crc32 of the payload, u32 LE
//! 48      4     schema length in bytes, u32 LE
//! 52      n     schema, UTF-8
//! 52+n    4     crc32 of bytes 0..52+n (the header so far), u32 LE
//! 56+n    len   payload: the entries, each bincode of (key, value)
//! ```
//!
//! Why each field: the magic tells a checkpoint from any other file; the
//! version lets a future layout be recognised instead of misread; the seq
//! must agree with the file name, so a renamed or copied file is caught;
//! the header crc covers everything the reader trusts before the payload
//! (including the schema, so a damaged schema reads as corruption, not as
//! a user's type mismatch); the payload length catches truncation and
//! trailing bytes; the payload crc catches bit rot before bincode sees a
//! byte. The entry count and state hash are checked after decoding, so a
//! payload that passes its crc but decodes to a different map (duplicate
//! keys, a codec change) is still refused.
//!
//! Reading order: the magic, then the header checksum, and only then the
//! version. A version is believed only from a header that verifies, so
//! one flipped byte in the version field reads as damage ("header checksum
//! mismatch"), not as "format version 16711681". That makes the header's
//! frame (the fields up to and including the schema, then the crc of all
//! of them) the part of the layout every future version keeps: a newer
//! layout adds fields after the header crc, or in the payload, and bumps
//! the version, so this build reads its header, verifies it, and reports
//! it as incompatible ([`CheckpointError::UnsupportedVersion`]) rather
//! than damaged.
//!
//! The header is written last (the file is streamed, and the crc, hash and
//! length are known only at the end), by seeking back over a placeholder
//! of the same length.

use std::hash::BuildHasher;
use std::path::Path;

use solostate_commands::{Event, State};

use super::CheckpointError;
use crate::codec;
use crate::hash::StateHasher;

/// The first eight bytes of every checkpoint file.
pub(super) const MAGIC: &[u8; 8] = b"SOLOCKPT";

/// The layout this build writes and reads.
pub(super) const VERSION: u32 = 1;

/// Bytes before the schema.
const FIXED_LEN: usize = 52;

/// The header's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header<'a> {
    /// The seq whose state the file holds.
    pub(super) seq: u64,
    /// Entries in the payload.
    pub(super) entries: u64,
    /// [`crate::hash::state_hash`] of the state.
    pub(super) state_hash: u64,
    /// Payload length in bytes.
    pub(super) payload_len: u64,
    /// crc32 of the payload.
    pub(super) payload_crc: u32,
    /// The event schema the state was written for.
    pub(super) schema: &'a str,
}

impl Header<'_> {
    /// The encoded header's length, which depends only on the schema.
    pub(super) fn len(schema: &str) -> usize {
        FIXED_LEN + schema.len() + 4
    }

    /// The header's bytes, [`Header::len`] of them.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::len(self.schema));
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&self.seq.to_le_bytes());
        bytes.extend_from_slice(&self.entries.to_le_bytes());
        bytes.extend_from_slice(&self.state_hash.to_le_bytes());
        bytes.extend_from_slice(&self.payload_len.to_le_bytes());
        bytes.extend_from_slice(&self.payload_crc.to_le_bytes());
        let schema_len = u32::try_from(self.schema.len()).expect("schema under 4 GiB");
        bytes.extend_from_slice(&schema_len.to_le_bytes());
        bytes.extend_from_slice(self.schema.as_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }
}

/// The little-endian integer at `at`; the caller has checked the length.
fn le<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().expect("length checked")
}

/// Verifies a whole file's framing: magic, header crc, version, payload
/// length and payload crc, in that order. Returns the header and the payload, not yet
/// decoded. `seq` is the seq from the file name, used in errors.
pub(super) fn verify<'a>(
    bytes: &'a [u8],
    path: &Path,
    seq: u64,
) -> Result<(Header<'a>, &'a [u8]), CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_owned(),
        seq,
        reason,
    };
    if bytes.len() < 12 {
        return Err(corrupt(format!(
            "{} bytes, shorter than the magic and version",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt("not a checkpoint file (bad magic)".to_owned()));
    }
    // The version is believed only once the header's checksum verifies:
    // a flipped byte in it is damage, not a version (see the module docs).
    let version = u32::from_le_bytes(le(bytes, 8));
    let unverified = |problem: String| {
        if version == VERSION {
            corrupt(problem)
        } else {
            corrupt(format!(
                "{problem}; its version field reads {version}, not believed since the header does not verify (this build reads version {VERSION})"
            ))
        }
    };
    if bytes.len() < FIXED_LEN {
        return Err(unverified(format!(
            "truncated header: {} bytes, need {FIXED_LEN}",
            bytes.len()
        )));
    }
    let schema_len = u32::from_le_bytes(le(bytes, 48)) as usize;
    let header_len = FIXED_LEN + 4 + schema_len;
    if bytes.len() < header_len {
        return Err(unverified(format!(
            "truncated header: {} bytes, header claims {header_len}",
            bytes.len()
        )));
    }
    let stored_crc = u32::from_le_bytes(le(bytes, header_len - 4));
    let actual_crc = crc32fast::hash(&bytes[..header_len - 4]);
    if stored_crc != actual_crc {
        return Err(unverified(format!(
            "header checksum mismatch: stored {stored_crc:#010x}, computed {actual_crc:#010x}"
        )));
    }
    if version != VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            path: path.to_owned(),
            seq,
            found: version,
        });
    }
    let schema = std::str::from_utf8(&bytes[FIXED_LEN..header_len - 4])
        .map_err(|_| corrupt("schema is not UTF-8".to_owned()))?;
    let header = Header {
        seq: u64::from_le_bytes(le(bytes, 12)),
        entries: u64::from_le_bytes(le(bytes, 20)),
        state_hash: u64::from_le_bytes(le(bytes, 28)),
        payload_len: u64::from_le_bytes(le(bytes, 36)),
        payload_crc: u32::from_le_bytes(le(bytes, 44)),
        schema,
    };
    let payload = &bytes[header_len..];
    if payload.len() as u64 != header.payload_len {
        return Err(corrupt(format!(
            "payload is {} bytes, header says {} (truncated or trailing bytes)",
            payload.len(),
            header.payload_len
        )));
    }
    let actual = crc32fast::hash(payload);
    if actual != header.payload_crc {
        return Err(corrupt(format!(
            "payload checksum mismatch: stored {:#010x}, computed {actual:#010x}",
            header.payload_crc
        )));
    }
    Ok((header, payload))
}

/// Decodes a verified payload into a state and its hash, checking them against the
/// header's entry count and state hash. Each entry is decoded under the
/// codec's size limit, so a corrupt length cannot allocate unboundedly.
///
/// The entries are decoded into a vector first and inserted in the order
/// of the map's own hash, taken from the lowest bit up, which is the order
/// in which `imbl`'s trie consumes hash bits. Consecutive inserts then walk
/// the same trie path while it is still in cache, which halves the cost of
/// building a large map (1M entries). It is only a locality optimisation:
/// were `imbl` to consume bits differently, loads would be slower, not
/// wrong. The price is the vector, transiently.
pub(super) fn decode_entries<E: Event>(
    header: &Header<'_>,
    payload: &[u8],
    path: &Path,
) -> Result<(State<E>, StateHasher), CheckpointError> {
    let seq = header.seq;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_owned(),
        seq,
        reason,
    };
    let mut state = State::<E>::new();
    let mut hasher = StateHasher::new();
    // The header's count is trusted only as far as the payload could hold.
    let capacity = header.entries.min(payload.len() as u64) as usize;
    let mut entries: Vec<(u64, E::Key, E::Value)> = Vec::with_capacity(capacity);
    let mut rest = payload;
    while !rest.is_empty() {
        if hasher.entries() == header.entries {
            return Err(corrupt(format!(
                "{} bytes after the {} entries the header counts",
                rest.len(),
                header.entries
            )));
        }
        let ((key, value), read): ((E::Key, E::Value), usize) =
            bincode::serde::decode_from_slice(rest, codec::config()).map_err(|error| {
                CheckpointError::Decode {
                    path: path.to_owned(),
                    seq,
                    source: codec::CodecError::Decode {
                        type_name: std::any::type_name::<(E::Key, E::Value)>(),
                        message: format!("entry {}: {error}", hasher.entries()),
                    },
                }
            })?;
        hasher.add_encoded_entry(&rest[..read]);
        rest = &rest[read..];
        let order = state.hasher().hash_one(&key).reverse_bits();
        entries.push((order, key, value));
    }
    if hasher.entries() != header.entries {
        return Err(corrupt(format!(
            "payload holds {} entries, header says {}",
            hasher.entries(),
            header.entries
        )));
    }
    if hasher.finish() != header.state_hash {
        return Err(corrupt(format!(
            "state hash mismatch: stored {:016x}, decoded state hashes to {:016x}",
            header.state_hash,
            hasher.finish()
        )));
    }
    entries.sort_unstable_by_key(|&(order, _, _)| order);
    for (_, key, value) in entries {
        if state.insert(key, value).is_some() {
            return Err(corrupt("two entries have the same key".to_owned()));
        }
    }
    Ok((state, hasher))
}
