//! The journal's record framing: one place that knows the byte layout.
//!
//! A record is one committed batch of events, or a rollback marker:
//!
//! ```text
//! offset  size  field
//! 0       1     format version (FORMAT_VERSION)
//! 1       4     payload length, little-endian u32
//! 5       4     crc32 of the payload, little-endian u32
//! 9       len   payload:
//!                 1 byte  kind: 0 = events, 1 = rollback marker
//!                 events: the Vec of events, bincode 2 (serde, standard config)
//!                 marker: the rollback target, little-endian u64
//! ```
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

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record layout this build writes and reads. Version 2 added the kind
/// byte (rollback markers); version 1 records are refused, not misread.
pub const FORMAT_VERSION: u8 = 2;

/// The kind byte of a batch of events.
const KIND_EVENTS: u8 = 0;
/// The kind byte of a rollback marker.
const KIND_ROLLBACK: u8 = 1;
/// A marker's payload: the kind byte and the target.
const ROLLBACK_PAYLOAD: usize = 1 + 8;

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
        /// The kind found ("rollback marker").
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
        tag => Err(CodecError::UnknownKind { tag }),
    }
}

/// Verifies a record and says what it holds, decoding no event: for a
/// batch only the length prefix of the event sequence is read.
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
    let bytes: [u8; 8] = payload
        .get(1..)
        .filter(|_| payload.len() == ROLLBACK_PAYLOAD)
        .and_then(|body| body.try_into().ok())
        .ok_or_else(|| CodecError::Decode {
            type_name: "rollback marker",
            message: format!(
                "marker payload is {} bytes, expected {ROLLBACK_PAYLOAD}",
                payload.len()
            ),
        })?;
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Ev {
        Put { key: u64, value: Vec<u8> },
        Delete { key: u64 },
    }

    fn sample() -> Vec<Ev> {
        vec![
            Ev::Put {
                key: 1,
                value: vec![7; 64],
            },
            Ev::Delete { key: 2 },
            Ev::Put {
                key: u64::MAX,
                value: vec![],
            },
        ]
    }

    #[test]
    fn round_trips_a_batch() {
        let record = encode_batch(&sample()).unwrap();
        assert_eq!(record[0], FORMAT_VERSION);
        assert_eq!(decode_batch::<Ev>(&record).unwrap(), sample());
    }

    #[test]
    fn header_overhead_is_constant() {
        let events = sample();
        let record = encode_batch(&events).unwrap();
        let payload = bincode::serde::encode_to_vec(&events, config()).unwrap();
        assert_eq!(record.len(), HEADER_LEN + 1 + payload.len());
    }

    #[test]
    fn every_truncation_is_detected() {
        let record = encode_batch(&sample()).unwrap();
        for cut in 0..record.len() {
            let err = decode_batch::<Ev>(&record[..cut]).unwrap_err();
            assert!(
                matches!(err, CodecError::Truncated { len, .. } if len == cut),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let record = encode_batch(&sample()).unwrap();
        for bit in 0..record.len() * 8 {
            let mut damaged = record.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_batch::<Ev>(&damaged).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn a_huge_claimed_length_is_rejected_before_allocating() {
        let mut record = encode_batch(&sample()).unwrap();
        record[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            verify(&record).unwrap_err(),
            CodecError::TooLarge {
                len: u32::MAX as usize,
                limit: MAX_PAYLOAD
            }
        );
    }

    #[test]
    fn an_unknown_version_is_named() {
        let mut record = encode_batch(&sample()).unwrap();
        record[0] = 9;
        assert_eq!(
            verify(&record).unwrap_err().to_string(),
            "record format version 9 is not supported (this build reads version 2)"
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut record = encode_batch(&sample()).unwrap();
        record.push(0);
        assert_eq!(
            verify(&record).unwrap_err(),
            CodecError::TrailingBytes { extra: 1 }
        );
    }

    #[test]
    fn a_different_event_type_fails_with_its_name() {
        #[derive(Debug, Serialize, Deserialize)]
        struct Other {
            name: String,
            tags: Vec<String>,
        }
        let record = encode_batch(&sample()).unwrap();
        match decode_batch::<Other>(&record).unwrap_err() {
            CodecError::Decode { type_name, .. } => assert!(type_name.ends_with("Other")),
            other => panic!("expected Decode, got {other}"),
        }
    }

    #[test]
    fn a_huge_length_prefix_inside_a_valid_frame_does_not_allocate_it() {
        // A payload that claims a Vec of 2^60 elements, with a correct crc:
        // only bincode's limit stands between it and the allocator.
        let mut payload = vec![KIND_EVENTS];
        bincode::serde::encode_into_std_write(1u64 << 60, &mut payload, config()).unwrap();
        let mut record = vec![FORMAT_VERSION];
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        assert!(matches!(
            decode_batch::<Ev>(&record).unwrap_err(),
            CodecError::Decode { .. }
        ));
    }

    #[test]
    fn a_rollback_marker_round_trips_and_is_not_a_batch() {
        let record = encode_rollback(41).unwrap();
        assert_eq!(record.len(), HEADER_LEN + ROLLBACK_PAYLOAD);
        assert_eq!(
            decode_record::<Ev>(&record).unwrap(),
            Record::Rollback { target: 41 }
        );
        assert_eq!(peek(&record).unwrap(), RecordKind::Rollback { target: 41 });
        assert_eq!(
            decode_batch::<Ev>(&record).unwrap_err(),
            CodecError::WrongKind {
                expected: "batch of events",
                found: "rollback marker"
            }
        );
    }

    #[test]
    fn every_single_bit_flip_of_a_marker_is_detected() {
        let record = encode_rollback(u64::MAX - 3).unwrap();
        for bit in 0..record.len() * 8 {
            let mut damaged = record.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_record::<Ev>(&damaged).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn peek_counts_events_without_decoding_them() {
        let record = encode_batch(&sample()).unwrap();
        assert_eq!(peek(&record).unwrap(), RecordKind::Events { count: 3 });
        let big: Vec<Ev> = (0..300).map(|key| Ev::Delete { key }).collect();
        let record = encode_batch(&big).unwrap();
        assert_eq!(peek(&record).unwrap(), RecordKind::Events { count: 300 });
    }

    #[test]
    fn an_unknown_kind_and_an_empty_payload_are_named() {
        let frame_payload = |payload: Vec<u8>| {
            let mut record = vec![0u8; HEADER_LEN];
            record.extend_from_slice(&payload);
            frame(record).unwrap()
        };
        assert_eq!(
            decode_record::<Ev>(&frame_payload(vec![7, 0])).unwrap_err(),
            CodecError::UnknownKind { tag: 7 }
        );
        assert!(matches!(
            peek(&frame_payload(Vec::new())).unwrap_err(),
            CodecError::Truncated { .. }
        ));
        assert!(matches!(
            decode_record::<Ev>(&frame_payload(vec![KIND_ROLLBACK, 1, 2])).unwrap_err(),
            CodecError::Decode { .. }
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_batch::<Ev>(&bytes);
            let _ = peek(&bytes);
        }

        #[test]
        fn arbitrary_batches_round_trip(keys in proptest::collection::vec(any::<u64>(), 0..50)) {
            let events: Vec<Ev> = keys
                .iter()
                .map(|&key| if key % 2 == 0 { Ev::Delete { key } } else { Ev::Put { key, value: key.to_le_bytes().to_vec() } })
                .collect();
            let record = encode_batch(&events).unwrap();
            prop_assert_eq!(decode_batch::<Ev>(&record).unwrap(), events);
        }
    }
}
