//! The Raft network's wire format: one bincode 2 (serde) message per HTTP
//! body, and the paths of the three Raft routes.
//!
//! Why its own module: the client ([`crate::HttpNetwork`]) and the server
//! ([`crate::raft_router`]) must agree on the codec, its size limit and the
//! paths, and neither should import the other. The replicated engine's
//! client routes can use the same [`encode`]/[`decode`] for their bodies.
//!
//! There is no crc here, unlike the log store's values: TCP already
//! checksums every segment, and a message lives only as long as one
//! request. There is no version byte either: every node of a cluster runs
//! the same build of this crate (openraft 0.9 has no wire versioning of
//! its own to match).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest message [`encode`] produces and [`decode`] accepts: 64 MiB,
/// the log store's value limit. Why a limit: a damaged or hostile length
/// prefix must never make a node allocate more than this, and a request
/// that large should be split (openraft sends fewer entries when told
/// `PayloadTooLarge`, and snapshots go in chunks far smaller than this).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The path of the AppendEntries RPC (also the heartbeat).
pub const APPEND_PATH: &str = "/raft/append";
/// The path of the RequestVote RPC.
pub const VOTE_PATH: &str = "/raft/vote";
/// The path of the InstallSnapshot RPC (one chunk per request).
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";

/// The bincode configuration of every message: standard (varint) with the
/// decode limit [`MAX_MESSAGE`].
pub(crate) fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE>()
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// serde or bincode could not encode the value.
    #[error("cannot encode message: {0}")]
    Encode(#[source] bincode::error::EncodeError),
    /// The encoded value is larger than [`MAX_MESSAGE`]. bincode's limit
    /// binds only decoding, so the sender checks too: a peer would refuse
    /// the message anyway, and the sender can split it instead.
    #[error("message of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit, [`MAX_MESSAGE`].
        max: usize,
    },
    /// The bytes are not a valid message of the expected type (damaged,
    /// truncated, a different type, or over the size limit).
    #[error("cannot decode message: {0}")]
    Decode(#[source] bincode::error::DecodeError),
    /// A valid message was followed by bytes that belong to none.
    #[error("{extra} trailing bytes after the message")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
}

/// Encodes `value` as one message.
///
/// # Errors
///
/// [`WireError::Encode`] if serde refuses the value, [`WireError::TooLarge`]
/// if the result is over [`MAX_MESSAGE`].
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let bytes = bincode::serde::encode_to_vec(value, config()).map_err(WireError::Encode)?;
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE,
        });
    }
    Ok(bytes)
}

/// Decodes one message that must fill `bytes` exactly.
///
/// # Errors
///
/// [`WireError::Decode`] for bytes that are not a `T` (never a panic, and
/// never an allocation over [`MAX_MESSAGE`]), [`WireError::TrailingBytes`]
/// if anything follows the message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(WireError::Decode)?;
    if used != bytes.len() {
        return Err(WireError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips() {
        let value = (7u64, String::from("vote"), vec![1u8, 2, 3]);
        let bytes = encode(&value).unwrap();
        let back: (u64, String, Vec<u8>) = decode(&bytes).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&5u64).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u64>(&bytes),
            Err(WireError::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn a_huge_length_prefix_is_an_error_not_an_allocation() {
        // A Vec<u8> whose varint length (253: a u64 follows) says
        // u64::MAX bytes follow.
        let bytes = [253u8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(
            decode::<Vec<u8>>(&bytes),
            Err(WireError::Decode(_))
        ));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode::<(u64, String)>(b"\xFF\xFE garbage").is_err());
    }
}
