//! One event at a time: encode it as the journal will store it, prove that
//! it reads back, and frame a batch record from such pieces.
//!
//! Why this exists: the engine checks every event on the submitter's side,
//! before it is queued, so that an event the journal cannot store or a
//! restart could not read is refused alone (with the event handed back)
//! instead of failing a whole batch on the owner task. The bytes that the
//! check produced then travel with the event, and the owner builds the
//! batch's record by concatenation, never encoding on its own thread.
//!
//! bincode writes a `Vec<E>` as a varint length followed by each element,
//! each element encoded exactly as it would be alone, so
//! [`encode_pieces`] of the pieces of some events is byte for byte
//! [`encode_batch`](super::encode_batch) of the same events: the two paths
//! write one format (the unit tests check it).
//!
//! There are two limits: [`MAX_EVENT`] for one event (its record of one
//! must fit in [`MAX_PAYLOAD`]) and [`MAX_SHARED`] for the events of a
//! record of several (bincode's decode limit counts claimed memory, not
//! bytes; see there).

use bincode::enc::write::{SizeWriter, Writer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CodecError, HEADER_LEN, KIND_EVENTS, MAX_PAYLOAD, config, frame};

/// The largest encoded event the journal stores: [`MAX_PAYLOAD`] less the
/// kind byte and the longest event count (a 9-byte varint), so that an
/// event of this size always fits in a record of its own.
pub const MAX_EVENT: usize = MAX_PAYLOAD - 1 - 9;

/// The most encoded event bytes in a record that holds more than one event
/// (16 MiB less one byte); a bigger batch is split, and a bigger event
/// gets a record of its own.
///
/// Why a sixteenth of [`MAX_PAYLOAD`]: bincode's decode limit, which the
/// journal needs (a corrupt length prefix must not allocate gigabytes),
/// counts not the bytes read but the memory claimed: 8 bytes for every
/// length and `u64`, 4 for an enum variant, 16 for a `u128`, which may
/// encode in one byte; nothing claims more per byte. [`encode_event`]
/// proves each event readable alone, which covers a record of one event,
/// and 16 MiB of events claim at most the whole limit, so a shared record
/// reads back whatever its events hold.
pub const MAX_SHARED: usize = (MAX_PAYLOAD - SEQ_LEN_CLAIM) / MAX_CLAIM_PER_BYTE;

/// What bincode's decoder counts against its limit for the length of the
/// event sequence (a `usize`).
const SEQ_LEN_CLAIM: usize = 8;

/// The most decode-limit bytes bincode claims per encoded byte: a `u128`
/// claims 16 and may encode in one byte; nothing claims more.
const MAX_CLAIM_PER_BYTE: usize = 16;

/// The decode limit of the readability check: what is left of the record's
/// limit once the sequence length has claimed its share, so an event that
/// passes also decodes as a record of one event.
const EVENT_DECODE_LIMIT: usize = MAX_PAYLOAD - SEQ_LEN_CLAIM;

/// One event encoded as the journal stores it, and proved to decode back
/// as its type within the journal's decode limit. Only
/// [`encode_event`] makes one, so a record built from these
/// ([`encode_pieces`]) is readable by construction.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for EncodedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedEvent")
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl EncodedEvent {
    /// The encoded size in bytes: what the event adds to its record.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the event encodes to no bytes at all (a unit struct does).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Why [`encode_event`] refused an event. Each says what was wrong; the
/// engine hands the event back with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventEncodeError {
    /// The event's `Serialize` failed (serde's message), or asked bincode
    /// for something it cannot write: a sequence or map of unknown length,
    /// which is what `#[serde(flatten)]` writes.
    #[error("event could not be encoded: {message}")]
    Serialize {
        /// What serde or bincode said.
        message: String,
    },
    /// The event encodes to more than [`MAX_EVENT`] bytes.
    #[error("event encodes to {size} bytes, over the {limit}-byte limit of a journal record")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// [`MAX_EVENT`].
        limit: usize,
    },
    /// The event encodes, but its bytes do not decode back as its type, so
    /// a restart could not read the journal. Usually the type needs
    /// `deserialize_any`, which bincode does not support:
    /// `#[serde(tag = "..")]` (internally or adjacently tagged enums),
    /// `#[serde(untagged)]`, or a self-describing value such as
    /// `serde_json::Value`. (`#[serde(flatten)]` fails earlier, as
    /// [`EventEncodeError::Serialize`].) It can also be a `Serialize` and
    /// `Deserialize` that disagree, or an event whose decoding claims more
    /// than the journal's decode limit.
    #[error("event encodes but does not decode back, so a restart could not read it: {message}")]
    Unreadable {
        /// bincode's description, with a hint when it has a known cause.
        message: String,
    },
}

/// Encodes `event` as the journal will store it and decodes the bytes back
/// as `E` (with the journal's decode limit), proving that a restart can
/// read it. The decoded copy is dropped; the check costs one decode.
///
/// The event is serialized twice: once into a counter, which refuses an
/// event over [`MAX_EVENT`] before any buffer is allocated (a huge event
/// costs no huge copy) and sizes the buffer exactly, then into the buffer.
///
/// # Errors
///
/// [`EventEncodeError::Serialize`] when serialization fails,
/// [`EventEncodeError::TooLarge`] over [`MAX_EVENT`], and
/// [`EventEncodeError::Unreadable`] when the bytes do not decode back as
/// `E` or leave bytes over.
pub fn encode_event<E: Serialize + DeserializeOwned>(
    event: &E,
) -> Result<EncodedEvent, EventEncodeError> {
    let serialize_error = |error: bincode::error::EncodeError| EventEncodeError::Serialize {
        message: serialize_message(&error),
    };
    // Measure first (serializing into a counter writes no memory), so the
    // buffer is allocated once, at its size, and never for a refused event.
    let mut size = SizeWriter::default();
    bincode::serde::encode_into_writer(event, &mut size, config()).map_err(serialize_error)?;
    let size = size.bytes_written;
    if size > MAX_EVENT {
        return Err(EventEncodeError::TooLarge {
            size,
            limit: MAX_EVENT,
        });
    }
    let mut out = Exact(Vec::with_capacity(size));
    bincode::serde::encode_into_writer(event, &mut out, config()).map_err(serialize_error)?;
    let bytes = out.0;
    if bytes.len() != size {
        return Err(EventEncodeError::Serialize {
            message: format!(
                "it serialized to {size} bytes and then to {}: its Serialize is not deterministic",
                bytes.len()
            ),
        });
    }
    let decoded: Result<(E, usize), _> = bincode::serde::decode_from_slice(
        &bytes,
        bincode::config::standard().with_limit::<EVENT_DECODE_LIMIT>(),
    );
    match decoded {
        Ok((_, read)) if read == bytes.len() => Ok(EncodedEvent { bytes }),
        Ok((_, read)) => Err(EventEncodeError::Unreadable {
            message: format!(
                "decoding read {read} of its {} bytes; its Serialize and Deserialize disagree",
                bytes.len()
            ),
        }),
        Err(error) => Err(EventEncodeError::Unreadable {
            message: decode_message(&error),
        }),
    }
}

/// Frames already encoded events as one batch record, byte for byte what
/// [`encode_batch`](super::encode_batch) writes for the same events.
///
/// # Errors
///
/// [`CodecError::Encode`] when more than one event holds more than
/// [`MAX_SHARED`] bytes together: such a record might not decode back,
/// so it is never built. Callers cap their batches with [`fits`].
pub fn encode_pieces(events: &[EncodedEvent]) -> Result<Vec<u8>, CodecError> {
    let bytes: usize = events.iter().map(EncodedEvent::len).sum();
    if events.len() > 1 && bytes > MAX_SHARED {
        return Err(CodecError::Encode {
            message: format!(
                "{} events of {bytes} bytes exceed the {MAX_SHARED}-byte limit of a record shared by several events",
                events.len()
            ),
        });
    }
    let mut record = Vec::with_capacity(HEADER_LEN + 1 + 9 + bytes);
    record.resize(HEADER_LEN, 0);
    record.push(KIND_EVENTS);
    // What serde's `serialize_seq` writes for the Vec's length.
    bincode::encode_into_std_write(events.len() as u64, &mut record, config()).map_err(
        |error| CodecError::Encode {
            message: error.to_string(),
        },
    )?;
    for event in events {
        record.extend_from_slice(event.as_bytes());
    }
    frame(record)
}

/// Whether an event of `next` bytes may join a batch of `len` events that
/// hold `bytes` encoded bytes, within [`MAX_SHARED`]. An empty batch takes
/// any event (each is at most [`MAX_EVENT`]), so a big event gets a record
/// of its own and batching never builds a record over the limit.
pub fn fits(len: usize, bytes: usize, next: usize) -> bool {
    len == 0 || bytes.saturating_add(next) <= MAX_SHARED
}

/// A bincode writer into a buffer allocated at the size measured first.
struct Exact(Vec<u8>);

impl Writer for Exact {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// bincode's encode error in words.
fn serialize_message(error: &bincode::error::EncodeError) -> String {
    match error {
        bincode::error::EncodeError::Serde(bincode::serde::EncodeError::SequenceMustHaveLength) => {
            "bincode needs the length of every sequence and map up front, and #[serde(flatten)] or a serialize_seq or serialize_map without one does not give it".to_owned()
        }
        bincode::error::EncodeError::OtherString(message) => message.clone(),
        other => other.to_string(),
    }
}

/// bincode's decode error in words, with the likely cause when it is known.
fn decode_message(error: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError;
    use bincode::serde::DecodeError as Serde;
    match error {
        DecodeError::Serde(Serde::AnyNotSupported | Serde::IgnoredAnyNotSupported) => format!(
            "{error}: the type needs deserialize_any, which bincode does not support (no #[serde(tag)], #[serde(untagged)] or #[serde(flatten)], and no self-describing values such as serde_json::Value)"
        ),
        DecodeError::LimitExceeded => format!(
            "{error}: decoding it claims more than the journal's {EVENT_DECODE_LIMIT}-byte decode limit (bincode counts 8 bytes for every length and u64)"
        ),
        other => other.to_string(),
    }
}
