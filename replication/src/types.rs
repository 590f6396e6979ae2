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
    /// Rejected by the event's validation; the message says why.
    Rejected {
        /// Why.
        reason: String,
    },
}

openraft::declare_raft_types!(
    /// The Raft type configuration of solostate: `u64` node ids,
    /// `BasicNode` addresses, tokio, in-memory snapshot data (the defaults)
    /// and [`Request`]/[`Response`] as the application data.
    pub TypeConfig:
        D = Request,
        R = Response,
);
