//! The durable side of solostate.
//!
//! So far this crate holds:
//!
//! * [`codec`]: the record framing (format version, payload length, crc32)
//!   around a bincode payload, decoded only after the frame verifies and
//!   always with a size limit;
//! * [`journal`]: a journal with one record per committed batch, a header
//!   naming the format and the event schema, explicit flushes that are
//!   durable through a power cut, and reads that verify every record and
//!   report corruption or gaps with the seq and the path, and removal of a
//!   torn last record; rollback (the undone records move to an archive
//!   tree and a marker takes the next seq, so seqs are never reused),
//!   pruning of a prefix behind a checkpoint, and quarantine of a corrupt
//!   suffix; and the determinism guard's state hashes, kept beside the
//!   timeline, keyed by the seq they check. It is stored on one of two
//!   backends ([`journal::Backend`]): our own segment log (the default:
//!   append-only segment files of crc-framed atomic writes, one
//!   `fdatasync` per flush, recovered as the longest verifying prefix), or
//!   sled 0.34.7 (sled's flush, then an `fdatasync` of its log, records
//!   over [`journal::CHUNK_BYTES`] in chunks so that sled never writes the
//!   blob files it would never sync);
//! * [`recovery`]: replaying the journal, or a seq range of it, into a
//!   state, checking every recorded state hash it passes
//!   ([`recovery::ReplayError::Diverged`]);
//! * [`checkpoint`]: a directory of checkpoint files, each the full state
//!   at one seq, written atomically, verified in full on load (checksums,
//!   schema, entry count and state hash), pruned and cut back on rollback;
//! * [`sync`]: the `fsync` primitives every writer here shares;
//! * [`hash`]: an order-independent hash of a state, so a replayed state
//!   can be compared with the live one;
//! * [`aside`]: setting a file or directory aside (renamed, kept, the
//!   rename made durable) instead of deleting it, for what recovery cannot
//!   use;
//! * [`replay`]: a read-only view of an engine's directory: its steps over
//!   a seq range, its archive, and the state at any seq.
//! * [`backup`]: writing a new engine directory that holds one state (a
//!   checkpoint at its seq and a journal that begins after it), built
//!   under a temporary name, synced throughout, then renamed into place;
//!   what `Engine::backup` writes.
//! * [`upcast`]: reading records of an older schema as today's event type,
//!   through conversions the application registers.
//!
//! The engine journals and checkpoints through this crate when opened with
//! a path.
//!
//! # Architecture
//!
//! `solostate-persistence` depends on the write vocabulary only; the
//! engine depends on it, and the read side never does.
//!
//! # Trade-offs
//!
//! One record holds a whole committed batch, so the framing costs
//! [`codec::HEADER_LEN`] bytes (plus a kind byte) per batch rather than per
//! event. A rollback keeps what it undoes, in the archive tree, so it costs
//! disk rather than history.
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
//! * `fault-injection` (off by default): the `faults` module, whose
//!   `FaultPlan` fails chosen journal writes, flushes or checkpoint files,
//!   or slows flushes, through the journal's storage seam. A testing
//!   tool, for the engine's failure paths; never needed in production.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aside;
pub mod backup;
pub mod checkpoint;
pub mod codec;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod hash;
pub mod journal;
pub mod recovery;
pub mod replay;
pub mod seglog;
pub mod sync;
#[cfg(test)]
mod test_damage;
pub mod upcast;
