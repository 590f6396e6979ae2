//! The durable side of solostate.
//!
//! So far this crate holds:
//!
//! * [`codec`]: the record framing (format version, payload length, crc32)
//!   around a bincode payload, decoded only after the frame verifies and
//!   always with a size limit;
//! * [`journal`]: a sled journal with one record per committed batch, a
//!   header naming the format and the event schema, explicit flushes, and
//!   reads that verify every record and report corruption or gaps with the
//!   seq and the path, and removal of a torn last record;
//! * [`recovery`]: replaying the journal into a state;
//! * [`hash`]: an order-independent hash of a state, so a replayed state
//!   can be compared with the live one;
//! * [`checkpoint`]: a directory of checkpoint files, each the full state
//!   at one seq, written atomically, verified in full on load (checksums,
//!   schema, entry count and state hash), pruned and cut back on rollback.
//!
//! The engine journals through this crate when opened with a path.
//!
//! # Architecture
//!
//! `solostate-persistence` depends on the write vocabulary only; the
//! engine depends on it, and the read side never does.
//!
//! # Trade-offs
//!
//! One record holds a whole committed batch, so the framing costs
//! [`codec::HEADER_LEN`] bytes per batch rather than per event.
//!
//! # Example
//!
//! ```
//! use solostate_persistence::codec;
//!
//! # fn main() -> Result<(), codec::CodecError> {
//! let record = codec::encode_batch(&["put a", "put b"])?;
//! let events: Vec<String> = codec::decode_batch(&record)?;
//! assert_eq!(events, ["put a", "put b"]);
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! None.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod codec;
pub mod hash;
pub mod journal;
pub mod recovery;
