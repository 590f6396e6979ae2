//! The sled journal: one record per committed batch, keyed by the batch's
//! first sequence number (big-endian, so sled's key order is seq order).
//!
//! The journal only stores and reads records. It does not decide when to
//! flush; the engine's durability setting does. Writes are durable, through
//! a power cut, only after [`Journal::flush`] (or [`Journal::flush_async`])
//! returns: sled's own flush is followed by an `fdatasync` of sled's log
//! file, and the directories whose entries sled or the journal changed are
//! synced when they change (the `durable` module says what sled writes and
//! why each is covered). Every sled value is kept under the size at which
//! sled would write a blob file that it never syncs: larger records are
//! stored in chunks (the `chunks` module).
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
//! and pruning those of the prefix, each in its own transaction.
//!
//! The code lives in the submodules `error`, `read`, `rollback`,
//! `maintenance`, `checks`, `chunks` (records over [`CHUNK_BYTES`]) and `durable` (what
//! makes a flush survive a power cut), with `flush_thread` and `storage`
//! (the seam a fault plan stands in for) beside them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sled::Transactional;

use serde::Serialize;

use crate::codec::{self, CodecError};
use flush_thread::FlushThread;
use storage::{Storage, Write};

mod checks;
mod chunks;
mod classify;
mod durable;
mod error;
mod flush_thread;
mod maintenance;
mod read;
mod rollback;
pub(crate) mod storage;

pub use chunks::CHUNK_BYTES;
pub use classify::catch_sled;
pub(crate) use classify::panic_message;
pub use error::JournalError;
pub use maintenance::Resumed;
pub use rollback::{RollbackRefusal, RollbackReport};

/// The tree holding the records.
const RECORDS: &str = "journal";
/// The tree holding records that rollbacks moved out of the timeline.
const ARCHIVE: &str = "archive";
/// The tree holding records set aside by [`Journal::quarantine_from`].
const QUARANTINE: &str = "quarantine";
/// The tree holding the determinism guard's state hashes, keyed by the
/// seq each checks.
const STATE_HASHES: &str = "state_hashes";
/// The tree holding the header and the pruned-through mark.
const META: &str = "meta";
/// The header's key in [`META`].
const HEADER_KEY: &[u8] = b"header";
/// The key in [`META`] of the last seq [`Journal::prune_through`] removed
/// (u64 big-endian; absent = nothing pruned).
const PRUNED_KEY: &[u8] = b"pruned_through";

/// A journal of committed batches in a sled database.
#[derive(Debug)]
pub struct Journal {
    /// The timeline: batches and rollback markers.
    records: sled::Tree,
    /// Records rolled back out of the timeline, under their original keys:
    /// kept so a rollback loses nothing anyone can audit.
    archive: sled::Tree,
    /// Records set aside raw by [`Journal::quarantine_from`], keyed by a
    /// quarantine id and their original key (see there).
    quarantine: sled::Tree,
    /// State hashes recorded by [`Journal::record_state_hash`], keyed by
    /// the seq they check: outside the timeline so seqs stay dense.
    state_hashes: sled::Tree,
    /// The header and the pruned-through mark.
    meta: sled::Tree,
    /// The chunks of records too large for one sled value, keyed by the
    /// chunk id in their head and their index (see the `chunks` module).
    chunks: sled::Tree,
    db: sled::Db,
    path: PathBuf,
    /// Where writes, flushes and syncs go: sled and the operating system,
    /// or a fault plan in tests. Shared with flushes on the flush thread.
    storage: Arc<dyn Storage>,
    /// The handles that make a flush durable (`fdatasync` of sled's log).
    files: Arc<durable::Files>,
    /// Where [`Journal::flush_async`] runs; started by the first one.
    flush_thread: OnceLock<FlushThread>,
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
    /// Opens the journal in `path`, creating it if needed, for events of
    /// `schema` (the event type's name or a fingerprint the user chose).
    /// `cache_bytes` is sled's page cache size, set explicitly because
    /// sled's default (1 GiB) is rarely what an embedded engine wants.
    ///
    /// # Errors
    ///
    /// [`JournalError::AlreadyOpen`] when the directory is locked;
    /// [`JournalError::SchemaMismatch`] or [`JournalError::UnsupportedFormat`]
    /// for a journal of another schema or record format (incompatible);
    /// [`JournalError::BadHeader`] for a damaged header;
    /// [`JournalError::SledPanicked`] when sled panics on its own files
    /// (caught: this never panics); and [`JournalError::Storage`] for I/O
    /// errors and for the corruption sled itself reports.
    pub fn open(path: &Path, schema: &str, cache_bytes: u64) -> Result<Journal, JournalError> {
        Self::open_inner(path, schema, cache_bytes, true)
    }

    /// Opens the journal in `path` like [`Journal::open`], but never
    /// creates one: for read-only tools pointed at a directory that may
    /// hold nothing, which should say so rather than leave an empty
    /// journal behind.
    ///
    /// # Errors
    ///
    /// [`JournalError::NotFound`] when there is no journal in `path`, and
    /// the errors of [`Journal::open`].
    pub fn open_existing(
        path: &Path,
        schema: &str,
        cache_bytes: u64,
    ) -> Result<Journal, JournalError> {
        // sled keeps its config and its log in these two files; without
        // them, opening would create a database.
        if !path.join("conf").is_file() || !path.join("db").is_file() {
            return Err(JournalError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Self::open_inner(path, schema, cache_bytes, false)
    }

    /// Opens sled and checks the header, with sled's panics caught (see
    /// [`JournalError::SledPanicked`]): a damaged journal is an error to
    /// report, never a reason to take the process down.
    fn open_inner(
        path: &Path,
        schema: &str,
        cache_bytes: u64,
        create: bool,
    ) -> Result<Journal, JournalError> {
        catch_sled(path, "opening the database", || {
            Self::open_unguarded(path, schema, cache_bytes, create)
        })
    }

    fn open_unguarded(
        path: &Path,
        schema: &str,
        cache_bytes: u64,
        create: bool,
    ) -> Result<Journal, JournalError> {
        let path = path.to_path_buf();
        if create {
            // sled would create the directory, but never sync its parent.
            crate::sync::create_dir_all(&path).map_err(|source| JournalError::Sync {
                path: crate::sync::parent_of(&path).to_path_buf(),
                source,
            })?;
        }
        // sled's log file has bytes only once something was flushed to it,
        // and the header is flushed as soon as a journal is created; so a
        // log with bytes but no header is a journal sled lost (damaged),
        // not a new one, and must not silently become an empty journal.
        let had_data = path.join("db").metadata().is_ok_and(|meta| meta.len() > 0);
        let db = open_db(&path, cache_bytes)?;
        let files = durable::Files::open(&path, &storage::Sled)?;
        let storage = |source| JournalError::Storage {
            path: path.clone(),
            source,
        };
        let meta = db.open_tree(META).map_err(storage)?;
        let expected = header(schema);
        let mut created = false;
        match meta.get(HEADER_KEY).map_err(storage)? {
            None if had_data => {
                return Err(JournalError::BadHeader {
                    path,
                    reason: "sled's log holds data but no journal header: sled could not recover \
                             the journal from its files, or this directory is not a solostate journal"
                        .into(),
                });
            }
            None if create => {
                meta.insert(HEADER_KEY, expected.as_slice())
                    .map_err(storage)?;
                created = true;
            }
            // An empty sled database (one whose creation never got as far
            // as its header).
            None => return Err(JournalError::NotFound { path }),
            Some(found) if found.as_ref() == expected.as_slice() => {}
            Some(found) => return Err(header_mismatch(&path, &found, schema)),
        }
        let records = db.open_tree(RECORDS).map_err(storage)?;
        let archive = db.open_tree(ARCHIVE).map_err(storage)?;
        let quarantine = db.open_tree(QUARANTINE).map_err(storage)?;
        let state_hashes = db.open_tree(STATE_HASHES).map_err(storage)?;
        let chunks = db.open_tree(chunks::CHUNKS).map_err(storage)?;
        let journal = Journal {
            records,
            archive,
            quarantine,
            state_hashes,
            meta,
            chunks,
            db,
            path,
            storage: Arc::new(storage::Sled),
            files: Arc::new(files),
            flush_thread: OnceLock::new(),
        };
        if created {
            // The header reaches the disk before anything relies on it
            // (see `had_data` above).
            journal.flush()?;
        }
        Ok(journal)
    }

    /// The journal's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes sled uses on disk for this database, including space it
    /// has reserved but not filled yet. For measuring journal overhead.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] for I/O errors.
    pub fn size_on_disk(&self) -> Result<u64, JournalError> {
        self.db
            .size_on_disk()
            .map_err(|source| self.storage(source))
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
        self.insert_record(first_seq, record, events.len() as u64)
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
        let record = codec::encode_pieces(events).map_err(|source| JournalError::Corrupt {
            path: self.path.clone(),
            seq: first_seq,
            source,
        })?;
        self.insert_record(first_seq, record, events.len() as u64)
    }

    /// Stores one framed record at key `first_seq` in the timeline and
    /// returns its size in bytes: the one place a batch's bytes enter
    /// sled, whatever built them. A record over [`CHUNK_BYTES`] is stored
    /// as a head and chunks in one transaction (the `chunks` module), so
    /// that sled never writes a blob file; `count`, its events, goes in the
    /// head (the caller framed the record, so it knows). Not durable until
    /// [`Journal::flush`].
    fn insert_record(
        &self,
        first_seq: u64,
        record: Vec<u8>,
        count: u64,
    ) -> Result<usize, JournalError> {
        let len = record.len();
        let key = first_seq.to_be_bytes();
        if len <= CHUNK_BYTES {
            self.write(Write::Append)?;
            self.records
                .insert(key, record)
                .map_err(|source| self.storage(source))?;
            return Ok(len);
        }
        let stored = self.to_store_counted(&record, count)?;
        self.write(Write::Append)?;
        (&self.records, &self.chunks)
            .transaction(|(records, chunks)| stored.put(records, chunks, &key))
            .map_err(|error| self.never_aborts(error))?;
        Ok(len)
    }

    fn storage(&self, source: sled::Error) -> JournalError {
        JournalError::Storage {
            path: self.path.clone(),
            source,
        }
    }

    /// Asks the storage whether a write of kind `what` may go ahead.
    fn write(&self, what: Write) -> Result<(), JournalError> {
        self.storage
            .write(what)
            .map_err(|source| self.storage(source))
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

/// The header bytes: the record format version, then the schema string.
fn header(schema: &str) -> Vec<u8> {
    let mut bytes = vec![codec::FORMAT_VERSION];
    bytes.extend_from_slice(schema.as_bytes());
    bytes
}

fn header_mismatch(path: &Path, found: &[u8], schema: &str) -> JournalError {
    let Some((&version, rest)) = found.split_first() else {
        return JournalError::BadHeader {
            path: path.to_path_buf(),
            reason: "empty header".into(),
        };
    };
    if version != codec::FORMAT_VERSION {
        return JournalError::UnsupportedFormat {
            path: path.to_path_buf(),
            found: version,
            expected: codec::FORMAT_VERSION,
        };
    }
    JournalError::SchemaMismatch {
        path: path.to_path_buf(),
        found: String::from_utf8_lossy(rest).into_owned(),
        expected: schema.to_owned(),
    }
}

/// How long [`open_db`] keeps trying a locked directory.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(300);

/// Opens sled's database in `path`. A handle that was just dropped can
/// still hold the directory's lock for a few milliseconds, because sled's
/// I/O threads finish their queued writes with their own references to the
/// file; so a locked directory is retried for [`LOCK_PATIENCE`] before it
/// is reported as [`JournalError::AlreadyOpen`]. A directory another
/// process really holds therefore fails after that long, not at once.
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, JournalError> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // The owner decides when to flush (its durability setting).
            // sled's own background flush, every 500 ms by default, would
            // make `Never` flush twice a second and add flushes that
            // compete with `Always`'s per-batch ones.
            .flush_every_ms(None)
            .open();
        match opened.map_err(|source| open_error(path, source)) {
            Err(JournalError::AlreadyOpen { .. }) if started.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// sled reports a held directory lock as a generic I/O error whose message
/// says so; turn that into [`JournalError::AlreadyOpen`].
fn open_error(path: &Path, source: sled::Error) -> JournalError {
    match &source {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            JournalError::AlreadyOpen {
                path: path.to_path_buf(),
            }
        }
        _ => JournalError::Storage {
            path: path.to_path_buf(),
            source,
        },
    }
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
mod tests_rollback;
