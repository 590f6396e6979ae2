//! The crate's Raft types: [`TypeConfig`], [`Request`], [`Response`].

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A client write as the Raft log carries it: one engine event, already
/// encoded by the engine's codec.
///
/// Why bytes and not a type generic over the engine's event: openraft
/// 0.9's `declare_raft_types!` declares one concrete, non-generic config
/// type (it must be `Copy + Ord + Default + 'static`), so a config generic
/// over `E: Event` would need a hand-written `RaftTypeConfig` with
/// `PhantomData<E>` and manual trait impls bounded on `E`. Bytes keep the
/// log store independent of the event type; the state machine (not built
/// yet) decodes them with the engine's codec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The encoded event.
    pub event: Vec<u8>,
}

/// What applying a [`Request`] answers. Rejections are responses, never
/// storage errors (openraft stops the node on any storage error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Applied with this engine sequence number.
    Applied {
        /// The event's seq.
        seq: u64,
    },
    /// Rejected by the event's validation (or its `apply` panicked, or it
    /// did not decode); the message says why. Nothing changed.
    Rejected {
        /// Why.
        reason: String,
    },
    /// A blank or membership entry: openraft's own, with no event.
    Internal,
}

openraft::declare_raft_types!(
    /// The Raft type configuration of solostate: `u64` node ids,
    /// `BasicNode` addresses, tokio, in-memory snapshot data (the defaults)
    /// and [`Request`]/[`Response`] as the application data.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// The largest encoded event a [`Request`] may carry (16 MiB): bincode
/// refuses to decode more, so a damaged length never allocates beyond it.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

fn event_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_EVENT_BYTES>()
}

impl Request {
    /// Encodes `event` for the Raft log (bincode 2, serde, with the
    /// [`MAX_EVENT_BYTES`] limit).
    ///
    /// # Errors
    ///
    /// bincode's error, when the event cannot be encoded or is too large.
    pub fn encode<E: Serialize>(event: &E) -> Result<Request, bincode::error::EncodeError> {
        Ok(Request {
            event: bincode::serde::encode_to_vec(event, event_config())?,
        })
    }

    /// Decodes the event, refusing trailing bytes.
    ///
    /// # Errors
    ///
    /// A message naming what did not decode. Applying a request that does
    /// not decode answers [`Response::Rejected`] with it, on every node
    /// alike, so a bad entry never stops a replica.
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<E, String> {
        match bincode::serde::decode_from_slice(&self.event, event_config()) {
            Ok((event, read)) if read == self.event.len() => Ok(event),
            Ok((_, read)) => Err(format!(
                "event does not decode: {} trailing bytes after {read}",
                self.event.len() - read
            )),
            Err(e) => Err(format!(
                "event of {} bytes does not decode: {e}",
                self.event.len()
            )),
        }
    }
}
