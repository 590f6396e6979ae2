//! The journal's record framing: one place that knows the byte layout.
//!
//! A record is one committed batch of events:
//!
//! ```text
//! offset  size  field
//! 0       1     format version (FORMAT_VERSION)
//! 1       4     payload length, little-endian u32
//! 5       4     crc32 of the payload, little-endian u32
//! 9       len   payload: the events, bincode 2 (serde, standard config)
//! ```
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

/// The record layout this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

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
    bincode::serde::encode_into_std_write(events, &mut record, config()).map_err(|error| {
        CodecError::Encode {
            message: error.to_string(),
        }
    })?;
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
/// The framing errors of [`verify`], and [`CodecError::Decode`] when the
/// payload is not a sequence of `E` (or has bytes left over).
pub fn decode_batch<E: DeserializeOwned>(record: &[u8]) -> Result<Vec<E>, CodecError> {
    let payload = verify(record)?;
    let decode_error = |message: String| CodecError::Decode {
        type_name: std::any::type_name::<E>(),
        message,
    };
    let (events, read): (Vec<E>, usize) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|error| decode_error(error.to_string()))?;
    if read != payload.len() {
        return Err(decode_error(format!(
            "{} bytes left over after the events",
            payload.len() - read
        )));
    }
    Ok(events)
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
        assert_eq!(record.len(), HEADER_LEN + payload.len());
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
            "record format version 9 is not supported (this build reads version 1)"
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
        let mut payload = Vec::new();
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

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_batch::<Ev>(&bytes);
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
