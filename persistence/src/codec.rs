//! The journal's record framing: one place that knows the byte layout.
//!
//! A record is one committed batch of events, a rollback marker, or a
//! state hash (the determinism guard's check, kept outside the timeline):
//!
//! ```text
//! offset  size  field
//! 0       1     format version (FORMAT_VERSION)
//! 1       4     payload length, little-endian u32
//! 5       4     crc32 of the payload, little-endian u32
//! 9       len   payload:
//!                 1 byte  kind: 0 = events, 1 = rollback marker, 2 = state hash,
//!                         3 = chunked record head
//!                 events: the Vec of events, bincode 2 (serde, standard config)
//!                 marker: the rollback target, little-endian u64
//!                 state hash: the hash, little-endian u64
//!                 chunked head: chunk id u64, chunk count u32, record
//!                   length u64, event count u64, all little-endian
//! ```
//!
//! A chunked record head stands in the journal for a record too large for
//! one sled value (sled writes those to blob files it never syncs): the
//! record itself, framed as above, is stored split into `chunk count`
//! values of its own, and the head says how to find them and what they
//! must add up to ([`ChunkHead`]). Like the state hash it is a new kind
//! in the same format version, so every existing journal stays readable;
//! an older build that meets one reports [`CodecError::UnknownKind`].
//!
//! The state hash kind came after version 2 was released without a version
//! bump: the journal's header carries the format version, so a bump would
//! make every existing journal unreadable, while a new kind leaves old
//! journals as they were. A state hash record is never stored among the
//! batches (its tree is keyed by the seq it checks), and an older build
//! that meets one reports [`CodecError::UnknownKind`] rather than misread
//! it.
//!
//! The kind byte sits inside the payload so the crc covers it: a flipped
//! bit cannot turn a batch into a marker. A marker's target is fixed-width
//! because it never needs bincode, and so reading one never involves the
//! event type.
//!
//! Why each field: the version lets a future layout be recognised instead
//! of misread; the length detects a torn write (a crash mid-record); the
//! crc detects bit rot and partial overwrites that keep the length intact,
//! because sled is beta and our records must prove themselves. Decoding
//! checks all three *before* bincode sees a byte, and bincode then runs with
//! a size limit, so a corrupt length prefix inside the payload cannot
//! allocate gigabytes.
//!
//! bincode 2.x is final (3.0 is an empty tombstone), so keeping every use
//! of it in this module keeps a future codec change to one file.
//!
//! Events can also be encoded one at a time ([`encode_event`], which also
//! proves that each decodes back) and framed from those pieces
//! ([`encode_pieces`]): the same bytes as [`encode_batch`], built without
//! encoding on the thread that writes the record. See the `event` module's
//! docs for the two size limits, [`MAX_EVENT`] and [`MAX_SHARED`].

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record layout this build writes and reads. Version 2 added the kind
/// byte (rollback markers); version 1 records are refused, not misread.
pub const FORMAT_VERSION: u8 = 2;

/// The kind byte of a batch of events.
const KIND_EVENTS: u8 = 0;
/// The kind byte of a rollback marker.
const KIND_ROLLBACK: u8 = 1;
/// The kind byte of a state hash (see [`encode_state_hash`]).
const KIND_STATE_HASH: u8 = 2;
/// The kind byte of a chunked record's head (see [`ChunkHead`]).
const KIND_CHUNKED: u8 = 3;
/// A marker's payload, and a state hash's: the kind byte and a u64.
const ROLLBACK_PAYLOAD: usize = 1 + 8;
/// A chunked head's payload: the kind byte, id, chunk count, record
/// length and event count.
const CHUNK_HEAD_PAYLOAD: usize = 1 + 8 + 4 + 8 + 8;

/// The head of a record stored in chunks: what the journal keeps in the
/// record's place, so that the timeline's keys and extents stay as they
/// are. Only batches of events are ever chunked (markers and hashes are
/// a few bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHead {
    /// Where the chunks are: they are keyed by this id and their index.
    pub id: u64,
    /// How many chunks the record was split into.
    pub chunks: u32,
    /// The length of the whole record, reassembled.
    pub len: u64,
    /// The number of events in the record, so that its extent is known
    /// without reading the chunks.
    pub count: u64,
}

/// Why a chunked record's chunks do not reassemble into the record its
/// head describes (inside [`CodecError::Chunks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkProblem {
    /// A chunk is not there.
    #[error("chunk {index} of {chunks} is missing")]
    Missing {
        /// The missing chunk's index (0-based).
        index: u32,
        /// The chunk count in the head.
        chunks: u32,
    },
    /// There are more chunks than the head says.
    #[error("there is a chunk {index} beyond the head's {chunks}")]
    Extra {
        /// The extra chunk's index.
        index: u32,
        /// The chunk count in the head.
        chunks: u32,
    },
    /// The chunks add up to another length than the head's.
    #[error("the chunks add up to {len} bytes, the head says {expected}")]
    Length {
        /// The reassembled length.
        len: u64,
        /// The length in the head.
        expected: u64,
    },
    /// The reassembled record holds another number of events than the
    /// head says.
    #[error("the reassembled record holds {count} events, the head says {expected}")]
    Count {
        /// The events in the reassembled record.
        count: u64,
        /// The event count in the head.
        expected: u64,
    },
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<E> {
    /// A committed batch; the first event's seq is the record's key.
    Events(Vec<E>),
    /// A rollback marker: the state at the marker's seq is the state at
    /// `target`. The events after `target` were moved to the archive.
    Rollback {
        /// The seq the state was rolled back to.
        target: u64,
    },
}

/// What a record holds, read without decoding any event: how the journal
/// learns a record's extent (for pruning, rollback and `last_seq`) without
/// knowing, or paying for, the event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A batch of `count` events.
    Events {
        /// The number of events in the batch.
        count: u64,
    },
    /// A rollback marker.
    Rollback {
        /// The seq the state was rolled back to.
        target: u64,
    },
}

/// Bytes before the payload: version, length, crc.
pub const HEADER_LEN: usize = 9;

/// The largest payload a record may carry (and the bincode decode limit):
/// 256 MiB. A length above it is corruption, not a big batch.
pub const MAX_PAYLOAD: usize = 1 << 28;

/// The bincode configuration: standard (varint) encoding, with the decode
/// size limit.
pub(crate) fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

/// Why a record could not be encoded or decoded. It says what is wrong; the
/// journal adds where (the sequence number and the path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The record is shorter than its header, or than the length its header
    /// claims: typically a write torn by a crash.
    #[error("record truncated: {len} bytes, expected at least {expected}")]
    Truncated {
        /// The record's actual length in bytes.
        len: usize,
        /// The length the header (or the header itself) requires.
        expected: usize,
    },
    /// The record is longer than its header claims.
    #[error("record has {extra} trailing bytes after its payload")]
    TrailingBytes {
        /// Bytes after the claimed payload.
        extra: usize,
    },
    /// The record was written in a layout this build does not know.
    #[error("record format version {found} is not supported (this build reads version {expected})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        expected: u8,
    },
    /// The header claims a payload larger than [`MAX_PAYLOAD`].
    #[error("record claims a {len}-byte payload, over the {limit}-byte limit")]
    TooLarge {
        /// The claimed length.
        len: usize,
        /// [`MAX_PAYLOAD`].
        limit: usize,
    },
    /// The payload's crc32 differs from the header's: the bytes changed
    /// after they were written.
    #[error(
        "record checksum mismatch: header says {expected:#010x}, payload hashes to {actual:#010x}"
    )]
    ChecksumMismatch {
        /// The crc in the header.
        expected: u32,
        /// The crc of the payload as read.
        actual: u32,
    },
    /// The payload is intact but does not decode as the expected event
    /// type: the event type changed, or the record was written for another.
    #[error("record payload does not decode as {type_name}: {message}")]
    Decode {
        /// The Rust type that was expected.
        type_name: &'static str,
        /// bincode's description.
        message: String,
    },
    /// The record is intact but of the other kind: a rollback marker where
    /// a batch of events was required.
    #[error("record is a {found}, not a {expected}")]
    WrongKind {
        /// The kind required ("batch of events").
        expected: &'static str,
        /// The kind found ("rollback marker", "state hash").
        found: &'static str,
    },
    /// The record's kind byte is not one this build knows: it was written
    /// by a newer build that kept the format version, or it is corrupt in a
    /// way the crc did not catch.
    #[error("record kind {tag} is not known to this build")]
    UnknownKind {
        /// The kind byte found.
        tag: u8,
    },
    /// A record stored in chunks does not reassemble into the record its
    /// head describes.
    #[error("chunked record is damaged: {problem}")]
    Chunks {
        /// What does not add up.
        problem: ChunkProblem,
    },
    /// The events could not be encoded (a serde error in a user type, or a
    /// batch over [`MAX_PAYLOAD`]).
    #[error("events could not be encoded: {message}")]
    Encode {
        /// What went wrong.
        message: String,
    },
}

/// Encodes `events` as one framed record.
///
/// # Errors
///
/// [`CodecError::Encode`] when serialization fails or the payload would
/// exceed [`MAX_PAYLOAD`].
pub fn encode_batch<E: Serialize>(events: &[E]) -> Result<Vec<u8>, CodecError> {
    let mut record = vec![0u8; HEADER_LEN];
    record.push(KIND_EVENTS);
    bincode::serde::encode_into_std_write(events, &mut record, config()).map_err(|error| {
        CodecError::Encode {
            message: error.to_string(),
        }
    })?;
    frame(record)
}

/// Encodes a rollback marker to `target` as one framed record.
///
/// # Errors
///
/// None in practice (the payload is 9 bytes); the `Result` keeps the
/// signature in line with [`encode_batch`].
pub fn encode_rollback(target: u64) -> Result<Vec<u8>, CodecError> {
    let mut record = vec![0u8; HEADER_LEN];
    record.push(KIND_ROLLBACK);
    record.extend_from_slice(&target.to_le_bytes());
    frame(record)
}

/// Encodes a state hash (the determinism guard's record of
/// [`crate::hash::state_hash`] at some seq) as one framed record, so that
/// it carries the same version and crc as every other record.
///
/// # Errors
///
/// None in practice (the payload is 9 bytes), as [`encode_rollback`].
pub fn encode_state_hash(hash: u64) -> Result<Vec<u8>, CodecError> {
    let mut record = vec![0u8; HEADER_LEN];
    record.push(KIND_STATE_HASH);
    record.extend_from_slice(&hash.to_le_bytes());
    frame(record)
}

/// Verifies a state hash record and returns the hash.
///
/// # Errors
///
/// The framing errors of [`verify`], [`CodecError::WrongKind`] for a batch
/// or a marker, [`CodecError::UnknownKind`], and [`CodecError::Decode`]
/// when the payload has the wrong length.
pub fn decode_state_hash(record: &[u8]) -> Result<u64, CodecError> {
    let payload = verify(record)?;
    let wrong = |found| CodecError::WrongKind {
        expected: "state hash",
        found,
    };
    match *split_kind(record, payload)?.0 {
        KIND_STATE_HASH => fixed_u64(payload, "state hash"),
        KIND_EVENTS => Err(wrong("batch of events")),
        KIND_ROLLBACK => Err(wrong("rollback marker")),
        KIND_CHUNKED => Err(wrong("chunked record head")),
        tag => Err(CodecError::UnknownKind { tag }),
    }
}

/// The error of a timeline read that met a state hash record, which
/// belongs in its own tree.
fn state_hash_in_timeline() -> CodecError {
    CodecError::WrongKind {
        expected: "batch of events or rollback marker",
        found: "state hash",
    }
}

/// Encodes the head of a record stored in chunks as one framed record.
pub fn encode_chunk_head(head: &ChunkHead) -> Vec<u8> {
    let mut record = vec![0u8; HEADER_LEN];
    record.push(KIND_CHUNKED);
    record.extend_from_slice(&head.id.to_le_bytes());
    record.extend_from_slice(&head.chunks.to_le_bytes());
    record.extend_from_slice(&head.len.to_le_bytes());
    record.extend_from_slice(&head.count.to_le_bytes());
    frame(record).expect("a chunk head is 29 bytes")
}

/// The head in `value` if it is a chunked record's head, verified;
/// `None` for any other record, at the cost of two byte comparisons (a
/// head has its own length and kind byte), so the journal can ask of
/// every value it reads.
///
/// # Errors
///
/// The framing errors of [`verify`] for a value that looks like a head
/// (its length and kind byte) but does not verify.
pub fn chunk_head(value: &[u8]) -> Result<Option<ChunkHead>, CodecError> {
    if value.len() != HEADER_LEN + CHUNK_HEAD_PAYLOAD || value[HEADER_LEN] != KIND_CHUNKED {
        return Ok(None);
    }
    parse_chunk_head(verify(value)?).map(Some)
}

/// The head in a verified payload of kind [`KIND_CHUNKED`].
fn parse_chunk_head(payload: &[u8]) -> Result<ChunkHead, CodecError> {
    if payload.len() != CHUNK_HEAD_PAYLOAD {
        return Err(CodecError::Decode {
            type_name: "chunked record head",
            message: format!(
                "head payload is {} bytes, expected {CHUNK_HEAD_PAYLOAD}",
                payload.len()
            ),
        });
    }
    let u64_at = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
    Ok(ChunkHead {
        id: u64_at(1),
        chunks: u32::from_le_bytes(payload[9..13].try_into().expect("4 bytes")),
        len: u64_at(13),
        count: u64_at(21),
    })
}

/// Fills in the header of `record`, whose payload starts at
/// [`HEADER_LEN`].
fn frame(mut record: Vec<u8>) -> Result<Vec<u8>, CodecError> {
    let payload_len = record.len() - HEADER_LEN;
    if payload_len > MAX_PAYLOAD {
        return Err(CodecError::Encode {
            message: format!("payload of {payload_len} bytes exceeds the {MAX_PAYLOAD}-byte limit"),
        });
    }
    let crc = crc32fast::hash(&record[HEADER_LEN..]);
    record[0] = FORMAT_VERSION;
    record[1..5].copy_from_slice(&(payload_len as u32).to_le_bytes());
    record[5..9].copy_from_slice(&crc.to_le_bytes());
    Ok(record)
}

/// Checks a record's version, length and checksum, and returns its payload.
/// Nothing is decoded, so this is also how recovery tells a torn tail from
/// a good record cheaply.
///
/// # Errors
///
/// Every framing error of [`CodecError`].
pub fn verify(record: &[u8]) -> Result<&[u8], CodecError> {
    if record.len() < HEADER_LEN {
        return Err(CodecError::Truncated {
            len: record.len(),
            expected: HEADER_LEN,
        });
    }
    if record[0] != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion {
            found: record[0],
            expected: FORMAT_VERSION,
        });
    }
    let len = u32::from_le_bytes(record[1..5].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(CodecError::TooLarge {
            len,
            limit: MAX_PAYLOAD,
        });
    }
    let expected = HEADER_LEN + len;
    if record.len() < expected {
        return Err(CodecError::Truncated {
            len: record.len(),
            expected,
        });
    }
    if record.len() > expected {
        return Err(CodecError::TrailingBytes {
            extra: record.len() - expected,
        });
    }
    let payload = &record[HEADER_LEN..];
    let stored = u32::from_le_bytes(record[5..9].try_into().expect("4 bytes"));
    let actual = crc32fast::hash(payload);
    if stored != actual {
        return Err(CodecError::ChecksumMismatch {
            expected: stored,
            actual,
        });
    }
    Ok(payload)
}

/// Verifies a record and decodes its events.
///
/// # Errors
///
/// The errors of [`decode_record`], and [`CodecError::WrongKind`] for a
/// rollback marker.
pub fn decode_batch<E: DeserializeOwned>(record: &[u8]) -> Result<Vec<E>, CodecError> {
    match decode_record(record)? {
        Record::Events(events) => Ok(events),
        Record::Rollback { .. } => Err(CodecError::WrongKind {
            expected: "batch of events",
            found: "rollback marker",
        }),
    }
}

/// Verifies a record and decodes it, whichever kind it is.
///
/// # Errors
///
/// The framing errors of [`verify`], [`CodecError::UnknownKind`], and
/// [`CodecError::Decode`] when the payload is not a sequence of `E` (or
/// has bytes left over) or a marker's payload has the wrong length.
pub fn decode_record<E: DeserializeOwned>(record: &[u8]) -> Result<Record<E>, CodecError> {
    let payload = verify(record)?;
    let (&kind, body) = split_kind(record, payload)?;
    match kind {
        KIND_EVENTS => {
            let decode_error = |message: String| CodecError::Decode {
                type_name: std::any::type_name::<E>(),
                message,
            };
            let (events, read): (Vec<E>, usize) = bincode::serde::decode_from_slice(body, config())
                .map_err(|error| decode_error(error.to_string()))?;
            if read != body.len() {
                return Err(decode_error(format!(
                    "{} bytes left over after the events",
                    body.len() - read
                )));
            }
            Ok(Record::Events(events))
        }
        KIND_ROLLBACK => Ok(Record::Rollback {
            target: rollback_target(payload)?,
        }),
        KIND_STATE_HASH => Err(state_hash_in_timeline()),
        // The journal reassembles a chunked record before decoding it.
        KIND_CHUNKED => Err(CodecError::WrongKind {
            expected: "batch of events or rollback marker",
            found: "chunked record head",
        }),
        tag => Err(CodecError::UnknownKind { tag }),
    }
}

/// Verifies a record and says what it holds, decoding no event: for a
/// batch only the length prefix of the event sequence is read, and for a
/// chunked record's head ([`ChunkHead`]) its event count (its chunks are
/// not read, so not verified).
///
/// # Errors
///
/// The framing errors of [`verify`], [`CodecError::UnknownKind`], and
/// [`CodecError::Decode`] when a batch's length prefix or a marker's
/// payload is malformed.
pub fn peek(record: &[u8]) -> Result<RecordKind, CodecError> {
    let payload = verify(record)?;
    let (&kind, body) = split_kind(record, payload)?;
    match kind {
        KIND_EVENTS => {
            // serde sequences are written as a u64 length (varint) and then
            // the elements, so the length decodes on its own.
            let (count, _): (u64, usize) = bincode::serde::decode_from_slice(body, config())
                .map_err(|error| CodecError::Decode {
                    type_name: "event count",
                    message: error.to_string(),
                })?;
            Ok(RecordKind::Events { count })
        }
        KIND_ROLLBACK => Ok(RecordKind::Rollback {
            target: rollback_target(payload)?,
        }),
        KIND_STATE_HASH => Err(state_hash_in_timeline()),
        // The head carries the count: no chunk needs reading.
        KIND_CHUNKED => Ok(RecordKind::Events {
            count: parse_chunk_head(payload)?.count,
        }),
        tag => Err(CodecError::UnknownKind { tag }),
    }
}

/// Splits a verified payload into its kind byte and the rest. An empty
/// payload is a record too short for its kind.
fn split_kind<'a>(record: &[u8], payload: &'a [u8]) -> Result<(&'a u8, &'a [u8]), CodecError> {
    payload.split_first().ok_or(CodecError::Truncated {
        len: record.len(),
        expected: HEADER_LEN + 1,
    })
}

/// The target of a verified marker payload (kind byte included).
fn rollback_target(payload: &[u8]) -> Result<u64, CodecError> {
    fixed_u64(payload, "rollback marker")
}

/// The u64 after the kind byte of a verified fixed-width payload: a
/// marker's target or a state hash.
fn fixed_u64(payload: &[u8], what: &'static str) -> Result<u64, CodecError> {
    let bytes: [u8; 8] = payload
        .get(1..)
        .filter(|_| payload.len() == ROLLBACK_PAYLOAD)
        .and_then(|body| body.try_into().ok())
        .ok_or_else(|| CodecError::Decode {
            type_name: what,
            message: format!(
                "{what} payload is {} bytes, expected {ROLLBACK_PAYLOAD}",
                payload.len()
            ),
        })?;
    Ok(u64::from_le_bytes(bytes))
}

mod event;

pub use event::{
    EncodedEvent, EventEncodeError, MAX_EVENT, MAX_SHARED, encode_event, encode_pieces, fits,
};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_event;
