//! Unit tests of the record framing.

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
        let _ = decode_record::<Ev>(&bytes);
        let _ = decode_state_hash(&bytes);
        let _ = peek(&bytes);
    }

    /// A payload behind a valid frame (what a bug, or a build with another
    /// event type, could write) reaches the decoders: each gives a typed
    /// error or a decode, and `peek`, which pruning and rollback trust for
    /// a record's extent, agrees with the full decode.
    #[test]
    fn arbitrary_payloads_in_a_valid_frame_decode_consistently(
        kind in 0u8..5,
        body in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut record = vec![0u8; HEADER_LEN];
        record.push(kind);
        record.extend_from_slice(&body);
        let record = frame(record).unwrap();
        let peeked = peek(&record);
        match decode_record::<Ev>(&record) {
            Ok(Record::Events(events)) => {
                prop_assert_eq!(peeked, Ok(RecordKind::Events { count: events.len() as u64 }));
            }
            Ok(Record::Rollback { target }) => {
                prop_assert_eq!(peeked, Ok(RecordKind::Rollback { target }));
            }
            // A chunked head peeks as its batch, but decodes only once the
            // journal has reassembled its chunks.
            Err(_) => prop_assert!(kind == KIND_EVENTS || kind == KIND_CHUNKED || peeked.is_err()),
        }
        match decode_state_hash(&record) {
            Ok(hash) => prop_assert_eq!(&record[HEADER_LEN + 1..], &hash.to_le_bytes()[..]),
            Err(_) => prop_assert!(kind != KIND_STATE_HASH || body.len() != 8),
        }
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

#[test]
fn a_state_hash_round_trips_and_is_refused_by_timeline_reads() {
    let record = encode_state_hash(0xdead_beef_0bad_cafe).unwrap();
    assert_eq!(record.len(), HEADER_LEN + ROLLBACK_PAYLOAD);
    assert_eq!(decode_state_hash(&record).unwrap(), 0xdead_beef_0bad_cafe);
    let in_timeline = CodecError::WrongKind {
        expected: "batch of events or rollback marker",
        found: "state hash",
    };
    assert_eq!(decode_record::<Ev>(&record).unwrap_err(), in_timeline);
    assert_eq!(peek(&record).unwrap_err(), in_timeline);
    assert_eq!(
        decode_state_hash(&encode_rollback(3).unwrap()).unwrap_err(),
        CodecError::WrongKind {
            expected: "state hash",
            found: "rollback marker"
        }
    );
    assert!(matches!(
        decode_state_hash(&encode_batch(&sample()).unwrap()).unwrap_err(),
        CodecError::WrongKind { .. }
    ));
}

#[test]
fn every_single_bit_flip_of_a_state_hash_is_detected() {
    let record = encode_state_hash(42).unwrap();
    for bit in 0..record.len() * 8 {
        let mut damaged = record.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(
            decode_state_hash(&damaged).is_err(),
            "flip of bit {bit} went unnoticed"
        );
    }
}
