//! Unit tests of one-event encoding and of records framed from pieces.

use std::marker::PhantomData;

use super::*;
use proptest::prelude::*;
use serde::de::{SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serializer};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Ev {
    Put { key: u64, value: String },
    Delete { key: u64 },
    Wide(u128),
    Nothing,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        (any::<u64>(), ".{0,40}").prop_map(|(key, value)| Ev::Put { key, value }),
        any::<u64>().prop_map(|key| Ev::Delete { key }),
        any::<u128>().prop_map(Ev::Wide),
        Just(Ev::Nothing),
    ]
}

fn pieces(events: &[Ev]) -> Vec<EncodedEvent> {
    events.iter().map(|e| encode_event(e).unwrap()).collect()
}

proptest! {
    /// Old and new journals are one format: a record framed from pieces is
    /// byte for byte the record `encode_batch` writes.
    #[test]
    fn pieces_frame_the_same_record_as_encode_batch(events in prop::collection::vec(ev(), 0..300)) {
        let from_pieces = encode_pieces(&pieces(&events)).unwrap();
        prop_assert_eq!(&from_pieces, &encode_batch(&events).unwrap());
        prop_assert_eq!(decode_batch::<Ev>(&from_pieces).unwrap(), events);
    }
}

#[test]
fn pieces_match_encode_batch_at_every_count_width() {
    // The count is a varint: one byte below 251, then 3, then 5 bytes.
    for count in [0, 1, 250, 251, 65_535, 65_536, 70_000] {
        let events = vec![Ev::Nothing; count];
        assert_eq!(
            encode_pieces(&pieces(&events)).unwrap(),
            encode_batch(&events).unwrap(),
            "{count} events"
        );
    }
}

#[test]
fn an_event_encodes_as_it_does_inside_a_batch() {
    let event = Ev::Put {
        key: 7,
        value: "seven".into(),
    };
    let piece = encode_event(&event).unwrap();
    let alone = bincode::serde::encode_to_vec(&event, config()).unwrap();
    assert_eq!(piece.as_bytes(), alone.as_slice());
    assert_eq!(piece.len(), alone.len());
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tagged {
    Put { key: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
}

#[derive(Debug, Serialize, Deserialize)]
struct Inner {
    key: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Flattened {
    #[serde(flatten)]
    inner: Inner,
}

fn unreadable<E: Serialize + DeserializeOwned>(event: &E) -> String {
    match encode_event(event) {
        Err(EventEncodeError::Unreadable { message }) => message,
        other => panic!("expected Unreadable, got {other:?}"),
    }
}

#[test]
fn types_that_need_deserialize_any_are_refused() {
    for message in [
        unreadable(&Tagged::Put { key: 1 }),
        unreadable(&Untagged::Number(1)),
    ] {
        assert!(message.contains("deserialize_any"), "{message}");
        assert!(message.contains("#[serde(tag)]"), "{message}");
    }
}

#[test]
fn flatten_is_refused_as_it_cannot_be_encoded() {
    let flattened = Flattened {
        inner: Inner { key: 1 },
    };
    match encode_event(&flattened) {
        Err(EventEncodeError::Serialize { message }) => {
            assert!(message.contains("#[serde(flatten)]"), "{message}");
        }
        other => panic!("expected Serialize, got {other:?}"),
    }
}

/// Serializes one field more than it deserializes.
#[derive(Debug)]
struct Lopsided;

impl Serialize for Lopsided {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (1u8, 2u8).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Lopsided {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u8::deserialize(deserializer).map(|_| Lopsided)
    }
}

#[test]
fn an_event_whose_decoding_leaves_bytes_over_is_refused() {
    let message = unreadable(&Lopsided);
    assert!(message.contains("read 1 of its 2 bytes"), "{message}");
}

/// Fails to serialize, as a user type may.
#[derive(Debug, Deserialize)]
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to serialize"))
    }
}

#[test]
fn a_failing_serialize_is_named() {
    assert_eq!(
        encode_event(&Refuses).unwrap_err(),
        EventEncodeError::Serialize {
            message: "refuses to serialize".into()
        }
    );
}

/// `chunks` copies of one 1 MiB chunk: a big encoding from a small value.
struct Repeated {
    chunks: usize,
}

impl Serialize for Repeated {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let chunk = Bytes(vec![0u8; 1 << 20]);
        let mut tuple = serializer.serialize_tuple(self.chunks)?;
        for _ in 0..self.chunks {
            tuple.serialize_element(&chunk)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Repeated {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("never read back in these tests"))
    }
}

/// A byte buffer that serializes as bytes (a length and the bytes).
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

#[test]
fn an_event_over_the_limit_is_refused_with_its_size() {
    // 257 chunks of 1 MiB, each with a 5-byte length: over 256 MiB.
    let size = 257 * ((1 << 20) + 5);
    assert_eq!(
        encode_event(&Repeated { chunks: 257 }).unwrap_err(),
        EventEncodeError::TooLarge {
            size,
            limit: MAX_EVENT
        }
    );
    assert_eq!(MAX_EVENT, MAX_PAYLOAD - 10);
}

/// `count` zeros of `T`, written without being held and read back
/// counted, not stored: decode-limit claims without the memory.
struct Zeros<T> {
    count: usize,
    width: PhantomData<T>,
}

fn zeros<T>(count: usize) -> Zeros<T> {
    Zeros {
        count,
        width: PhantomData,
    }
}

impl<T: Serialize + Default> Serialize for Zeros<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.count))?;
        for _ in 0..self.count {
            seq.serialize_element(&T::default())?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Zeros<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Count<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Count<T> {
            type Value = Zeros<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Zeros<T>, A::Error> {
                let mut count = 0;
                while seq.next_element::<T>()?.is_some() {
                    count += 1;
                }
                Ok(zeros(count))
            }
        }
        deserializer.deserialize_seq(Count(PhantomData))
    }
}

#[test]
fn an_event_that_claims_more_than_the_decode_limit_is_refused() {
    // 32 MiB of encoded zeros, each claiming 8 bytes: 256 MiB claimed.
    let message = unreadable(&zeros::<u64>(1 << 25));
    assert!(message.contains("LimitExceeded"), "{message}");
}

/// The largest zeros-of-u128 event two of which fit in a shared record.
const WIDEST: usize = MAX_SHARED / 2 - 5;

#[test]
fn a_full_shared_record_of_the_widest_claims_reads_back() {
    let events = [zeros::<u128>(WIDEST), zeros::<u128>(WIDEST)];
    let pieces: Vec<_> = events.iter().map(|e| encode_event(e).unwrap()).collect();
    assert!(pieces.iter().map(EncodedEvent::len).sum::<usize>() <= MAX_SHARED);
    let record = encode_pieces(&pieces).unwrap();
    let read = decode_batch::<Zeros<u128>>(&record).unwrap();
    assert_eq!(
        read.iter().map(|z| z.count).collect::<Vec<_>>(),
        [WIDEST; 2]
    );
}

#[test]
fn a_shared_record_over_the_limit_is_never_built() {
    // Three of them are each readable, but not together: the old path
    // would write a record that no reopen could decode.
    let events = [
        zeros::<u128>(WIDEST),
        zeros::<u128>(WIDEST),
        zeros::<u128>(WIDEST),
    ];
    let unreadable = encode_batch(&events).unwrap();
    assert!(matches!(
        decode_batch::<Zeros<u128>>(&unreadable),
        Err(CodecError::Decode { .. })
    ));
    let pieces: Vec<_> = events.iter().map(|e| encode_event(e).unwrap()).collect();
    assert!(!fits(2, pieces[0].len() + pieces[1].len(), pieces[2].len()));
    assert!(matches!(
        encode_pieces(&pieces),
        Err(CodecError::Encode { message }) if message.contains("16777215-byte limit")
    ));
}

#[test]
fn fits_takes_any_event_into_an_empty_batch() {
    assert!(fits(0, 0, MAX_EVENT));
    assert!(fits(1, MAX_SHARED - 10, 10));
    assert!(!fits(1, MAX_SHARED - 10, 11));
    assert!(!fits(1, 1, MAX_EVENT));
}
