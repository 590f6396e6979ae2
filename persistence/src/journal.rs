//! The journal: one record per committed batch, keyed by the batch's first
//! sequence number (big-endian, so key order is seq order), on one of two
//! backends ([`Backend`]): solostate's own segment log (the default) or
//! sled 0.34.7.
//!
//! The journal only stores and reads records. It does not decide when to
//! flush; the engine's durability setting does. Writes are durable, through
//! a power cut, only after [`Journal::flush`] (or [`Journal::flush_async`])
//! returns. On the segment log a flush is one `fdatasync` of the active
//! segment; each write is one crc-framed frame, and opening keeps the
//! longest prefix of frames that verifies (the `seglog` module argues why
//! that holds every synced frame). On sled, sled's own flush is followed by
//! an `fdatasync` of sled's log file, and the directories whose entries
//! sled or the journal changed are synced when they change (the `durable`
//! module says what sled writes and why each is covered); every sled value
//! is kept under the size at which sled would write a blob file that it
//! never syncs, larger records being stored in chunks (the `chunks`
//! module). Both backends hold the same trees (the `store` module), and
//! every operation below is the same on either.
//!
//! # Rollback, pruning and quarantine
//!
//! Sequence numbers are never reused. A rollback to `target` moves every
//! record holding seqs after `target` to the `archive` tree (still
//! inspectable with [`Journal::read_archive`]) and writes a *marker* record
//! at the next seq, saying "the state here is the state at `target`". So
//! the main tree reads as: consecutive seqs, except that a marker may
//! follow the record ending at its target, the gap being archived.
//!
//! [`Journal::prune_through`] deletes a prefix that a checkpoint covers and
//! remembers where it ended, so reads below it say `Pruned` rather than
//! `Gap`. [`Journal::quarantine_from`] sets a corrupt suffix aside (raw)
//! in the `quarantine` tree when recovery is told to keep the prefix.
//!
//! # State hashes
//!
//! The determinism guard's checks (the state hash at some seq) live in
//! their own tree, keyed by the seq they check, so they take no seq in the
//! timeline and readers of the timeline never meet them. Rollback and
//! quarantine remove the checks of the seqs they take out of the timeline
//! and pruning those of the prefix, each in its own atomic write.
//!
//! # Schemas
//!
//! The header names the schema of the journal's records. A journal opened
//! under a newer schema, with upcasters for the older ones
//! ([`Journal::open_upgrading`], [`crate::upcast`]), keeps its old records
//! and reads them through the upcasters; its *epochs* ([`Journal::epochs`])
//! say which seqs are in which older schema (the `schemas` module).
//!
//! The code lives in the submodules `open`, `error`, `read`, `rollback`,
//! `maintenance`, `checks`, `chunks` (records over [`CHUNK_BYTES`] on
//! sled), `schemas`, `store` (the trees on either backend) and `durable`
//! (what makes a sled flush survive a power cut), with `flush_thread` and
//! `storage` (the seam a fault plan stands in for) beside them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::codec::{self, CodecError};
use flush_thread::FlushThread;
use schemas::Schemas;
use storage::{Storage, Write};
use store::{Op, Store, Tree};

mod checks;
mod chunks;
mod classify;
pub(crate) mod durable;
mod error;
mod flush_thread;
mod maintenance;
mod open;
mod read;
mod restore;
mod rollback;
mod scan;
mod schemas;
pub(crate) mod storage;
mod store;

pub use chunks::CHUNK_BYTES;
pub use classify::catch_sled;
pub(crate) use classify::panic_message;
pub use durable::PendingFlush;
pub use error::JournalError;
pub use maintenance::Resumed;
pub use restore::{RestoreError, RestorePlan, RestoredRecord};
pub use rollback::{RollbackRefusal, RollbackReport};
pub use scan::ScannedRecord;
pub use schemas::Epoch;
pub use store::{Backend, TornTail};

/// The header's key in the meta tree.
const HEADER_KEY: &[u8] = b"header";
/// The key in the meta tree of the last seq [`Journal::prune_through`]
/// removed (u64 big-endian; absent = nothing pruned).
const PRUNED_KEY: &[u8] = b"pruned_through";

/// A journal of committed batches, in the segment log or in sled (see
/// [`Backend`]).
#[derive(Debug)]
pub struct Journal {
    /// The trees: the timeline (batches and rollback markers), the
    /// archive of rolled-back records, quarantined records, the state
    /// hashes (outside the timeline so seqs stay dense), the header and
    /// marks, and the chunks of records too large for one sled value.
    /// Shared with flushes on the flush thread.
    store: Arc<Store>,
    path: PathBuf,
    /// Where writes, flushes and syncs go: the backend and the operating
    /// system, or a fault plan in tests. Shared with flushes on the flush
    /// thread.
    storage: Arc<dyn Storage>,
    /// Where [`Journal::flush_async`] runs; started by the first one.
    flush_thread: OnceLock<FlushThread>,
    /// What the segment log cut off its last segment when this journal was
    /// opened (never-synced bytes), for recovery to report.
    torn_tail: Option<TornTail>,
    /// Which schema each seq is in, and the upcasters of the older ones.
    schemas: Schemas,
}

/// One step of the timeline read back from the journal: an event, or a
/// rollback marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<E> {
    /// The step's sequence number.
    pub seq: u64,
    /// What happened at `seq`.
    pub step: Step<E>,
}

/// What happened at one seq.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<E> {
    /// A committed event.
    Event(E),
    /// A rollback: the state at this seq is the state at `target`.
    Rollback {
        /// The seq the state was rolled back to.
        target: u64,
    },
}

impl<E> Entry<E> {
    /// The event, or `None` for a rollback marker.
    pub fn event(&self) -> Option<&E> {
        match &self.step {
            Step::Event(event) => Some(event),
            Step::Rollback { .. } => None,
        }
    }
}

/// A torn last record that [`Journal::repair_tail`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornRecord {
    /// The first sequence number the record would have held.
    pub seq: u64,
    /// What was wrong with it.
    pub reason: CodecError,
}

impl Journal {
    /// The journal's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The backend this journal is stored on.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// What opening this journal cut off the end of its last segment: a
    /// write that never finished syncing (so nothing in it was
    /// acknowledged), left by a crash or a power cut. `None` when nothing
    /// was cut, and always for sled, whose recovery does not say.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// The bytes the journal's files use on disk, including space the
    /// backend has reserved but not filled yet. For measuring journal
    /// overhead.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] for I/O errors.
    pub fn size_on_disk(&self) -> Result<u64, JournalError> {
        self.store.size_on_disk()
    }

    /// Appends one committed batch whose first event has `first_seq`.
    /// Returns the record's size in bytes. Not durable until
    /// [`Journal::flush`].
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] if the events cannot be encoded, and
    /// [`JournalError::Storage`] for I/O errors.
    pub fn append<E: Serialize>(
        &self,
        first_seq: u64,
        events: &[E],
    ) -> Result<usize, JournalError> {
        let record = codec::encode_batch(events).map_err(|source| JournalError::Corrupt {
            path: self.path.clone(),
            seq: first_seq,
            source,
        })?;
        self.insert_record(first_seq, record, events.len() as u64, None)
    }

    /// Appends a batch whose events were encoded (and proved readable) one
    /// at a time, by whoever submitted them, with
    /// [`codec::encode_event`]: the record is framed from those bytes
    /// ([`codec::encode_pieces`], the same bytes [`Journal::append`]
    /// writes), so the caller's thread does no encoding. Returns the
    /// record's size in bytes. Not durable until [`Journal::flush`].
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] (with the seq) when the events are more
    /// than [`codec::MAX_SHARED`] bytes together (cap batches with
    /// [`codec::fits`]; nothing is written), and [`JournalError::Storage`]
    /// when sled fails.
    pub fn append_encoded(
        &self,
        first_seq: u64,
        events: &[codec::EncodedEvent],
    ) -> Result<usize, JournalError> {
        self.append_encoded_with_hash(first_seq, events, None)
    }

    /// [`Journal::append_encoded`], with the determinism guard's state
    /// hash at the batch's last seq (`Some(hash)`) stored in the same
    /// atomic write as the batch: one storage write per batch however
    /// often the guard checks, and no crash can keep the hash without the
    /// batch it describes (a later batch would take its seq and meet a
    /// hash that is not its state's).
    ///
    /// # Errors
    ///
    /// As [`Journal::append_encoded`].
    pub fn append_encoded_with_hash(
        &self,
        first_seq: u64,
        events: &[codec::EncodedEvent],
        state_hash: Option<u64>,
    ) -> Result<usize, JournalError> {
        let record = codec::encode_pieces(events).map_err(|source| JournalError::Corrupt {
            path: self.path.clone(),
            seq: first_seq,
            source,
        })?;
        let last_seq = first_seq + (events.len() as u64).saturating_sub(1);
        let hash = state_hash
            .map(|hash| {
                codec::encode_state_hash(hash).map_err(|source| self.corrupt(last_seq, source))
            })
            .transpose()?;
        let hash = hash
            .as_ref()
            .map(|record| (last_seq.to_be_bytes(), record.as_slice()));
        self.insert_record(first_seq, record, events.len() as u64, hash)
    }

    /// Stores one framed record at key `first_seq` in the timeline and
    /// returns its size in bytes: the one place a batch's bytes enter
    /// sled, whatever built them. A record over [`CHUNK_BYTES`] is stored
    /// as a head and chunks in one transaction (the `chunks` module), so
    /// that sled never writes a blob file; `count`, its events, goes in the
    /// head (the caller framed the record, so it knows). `state_hash`, a
    /// state hash record and its key, goes into the same atomic write. Not
    /// durable until [`Journal::flush`].
    fn insert_record(
        &self,
        first_seq: u64,
        record: Vec<u8>,
        count: u64,
        state_hash: Option<([u8; 8], &[u8])>,
    ) -> Result<usize, JournalError> {
        let len = record.len();
        let key = first_seq.to_be_bytes();
        let stored = self.to_store_counted(&record, count)?;
        self.write(Write::Append)?;
        let mut ops = stored.ops(Tree::Records, &key);
        if let Some((seq, hash)) = &state_hash {
            ops.push(Op::Insert(Tree::StateHashes, seq, hash));
        }
        let upgrade = self.schemas.upgrade(first_seq);
        ops.extend(upgrade.iter().flat_map(schemas::Upgrade::ops));
        self.store.apply(&ops)?;
        if let Some(upgrade) = upgrade {
            self.schemas.upgraded(upgrade);
        }
        Ok(len)
    }

    /// Asks the storage whether a write of kind `what` may go ahead.
    fn write(&self, what: Write) -> Result<(), JournalError> {
        self.storage.write(what).map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// The seq of a record key, or [`JournalError::BadKey`].
    fn seq_of(&self, key: &[u8]) -> Result<u64, JournalError> {
        key_seq(key).ok_or_else(|| JournalError::BadKey {
            path: self.path.clone(),
            len: key.len(),
        })
    }

    /// [`JournalError::Corrupt`] for the record at `seq`.
    fn corrupt(&self, seq: u64, source: CodecError) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            seq,
            source,
        }
    }

    /// What the record at key `seq` holds, and the last seq it covers
    /// (its key for a marker; `seq - 1` for an empty batch), without
    /// decoding any event.
    fn extent(&self, seq: u64, record: &[u8]) -> Result<(codec::RecordKind, u64), JournalError> {
        let kind = codec::peek(record).map_err(|source| self.corrupt(seq, source))?;
        let end = match kind {
            codec::RecordKind::Events { count } => {
                seq.checked_add(count).and_then(|next| next.checked_sub(1))
            }
            codec::RecordKind::Rollback { .. } => Some(seq),
        };
        let end = end.ok_or_else(|| {
            self.corrupt(
                seq,
                CodecError::Decode {
                    type_name: "event count",
                    message: "the batch runs past the last sequence number".into(),
                },
            )
        })?;
        Ok((kind, end))
    }
}

fn key_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bad_input;
#[cfg(test)]
mod tests_chunks;
#[cfg(test)]
mod tests_maintenance;
#[cfg(test)]
mod tests_open;
#[cfg(test)]
mod tests_read_only;
#[cfg(test)]
mod tests_rollback;
#[cfg(test)]
mod tests_support;
#[cfg(test)]
mod tests_upcast;
