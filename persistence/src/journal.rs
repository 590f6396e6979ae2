//! The sled journal: one record per committed batch, keyed by the batch's
//! first sequence number (big-endian, so sled's key order is seq order).
//!
//! The journal only stores and reads records. It does not decide when to
//! flush; the engine's durability setting does. Writes are durable only
//! after [`Journal::flush`] returns.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError};

/// The tree holding the records.
const RECORDS: &str = "journal";
/// The tree holding the header.
const META: &str = "meta";
/// The header's key in [`META`].
const HEADER_KEY: &[u8] = b"header";

/// Why a journal operation failed. Every variant names the journal's path,
/// and those about a record name its sequence number.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Another process (or another handle in this one) has the journal
    /// open. sled holds an exclusive lock on its directory.
    #[error("journal {path} is already open by another process or handle")]
    AlreadyOpen {
        /// The journal directory.
        path: PathBuf,
    },
    /// The journal was written for another event type or schema.
    #[error(
        "journal {path} was written for schema {found:?}, but this engine's schema is {expected:?}"
    )]
    SchemaMismatch {
        /// The journal directory.
        path: PathBuf,
        /// The schema in the journal's header.
        found: String,
        /// The schema this engine uses.
        expected: String,
    },
    /// The journal's header itself is unreadable.
    #[error("journal {path} has a corrupt header: {reason}")]
    BadHeader {
        /// The journal directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A record failed to verify or decode.
    #[error("journal {path}: record at seq {seq} is corrupt: {source}")]
    Corrupt {
        /// The journal directory.
        path: PathBuf,
        /// The first sequence number of the bad record.
        seq: u64,
        /// What the codec found.
        source: CodecError,
    },
    /// Records do not follow each other: events are missing between them.
    #[error("journal {path}: expected a record at seq {expected}, found one at seq {found}")]
    Gap {
        /// The journal directory.
        path: PathBuf,
        /// The seq that should come next.
        expected: u64,
        /// The seq of the record found instead.
        found: u64,
    },
    /// A record's key is not an 8-byte sequence number.
    #[error("journal {path}: record key of {len} bytes is not a sequence number")]
    BadKey {
        /// The journal directory.
        path: PathBuf,
        /// The key's length.
        len: usize,
    },
    /// sled reported an I/O or storage error.
    #[error("journal {path}: storage error: {source}")]
    Storage {
        /// The journal directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
}

/// A journal of committed batches in a sled database.
#[derive(Debug)]
pub struct Journal {
    records: sled::Tree,
    db: sled::Db,
    path: PathBuf,
}

/// One committed event read back from the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<E> {
    /// The event's sequence number.
    pub seq: u64,
    /// The event.
    pub event: E,
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
    /// [`JournalError::AlreadyOpen`] when the directory is locked,
    /// [`JournalError::SchemaMismatch`] or [`JournalError::BadHeader`] for
    /// a journal of another type or format, and
    /// [`JournalError::Storage`] for I/O errors.
    pub fn open(path: &Path, schema: &str, cache_bytes: u64) -> Result<Journal, JournalError> {
        let path = path.to_path_buf();
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|source| open_error(&path, source))?;
        let storage = |source| JournalError::Storage {
            path: path.clone(),
            source,
        };
        let meta = db.open_tree(META).map_err(storage)?;
        let expected = header(schema);
        match meta.get(HEADER_KEY).map_err(storage)? {
            None => {
                meta.insert(HEADER_KEY, expected.as_slice())
                    .map_err(storage)?;
            }
            Some(found) if found.as_ref() == expected.as_slice() => {}
            Some(found) => return Err(header_mismatch(&path, &found, schema)),
        }
        let records = db.open_tree(RECORDS).map_err(storage)?;
        Ok(Journal { records, db, path })
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
        let len = record.len();
        self.records
            .insert(first_seq.to_be_bytes(), record)
            .map_err(|source| self.storage(source))?;
        Ok(len)
    }

    /// Makes every append so far durable.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] when sled cannot write or sync.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.db.flush().map_err(|source| self.storage(source))?;
        Ok(())
    }

    /// Makes every append so far durable without blocking the calling
    /// thread (sled's `flush_async`), so an async owner can flush without
    /// stalling its runtime.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] when sled cannot write or sync.
    pub async fn flush_async(&self) -> Result<(), JournalError> {
        self.records
            .flush_async()
            .await
            .map_err(|source| self.storage(source))?;
        Ok(())
    }

    /// Removes the last record if it is torn (shorter or longer than its
    /// header says, or failing its checksum): what a crash in the middle of
    /// a write leaves behind. Such a record was never flushed, so under
    /// `Always` durability none of its events was acknowledged. Returns
    /// what was removed, so the caller can warn with the seq; the removal
    /// is flushed before this returns.
    ///
    /// Only the last record is considered: damage anywhere else is not a
    /// torn write, and reads report it as [`JournalError::Corrupt`].
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] when the last record has an unknown format
    /// version (not a tear: a newer build wrote it), and
    /// [`JournalError::Storage`] for I/O errors.
    pub fn repair_tail(&self) -> Result<Option<TornRecord>, JournalError> {
        let Some((key, value)) = self.records.last().map_err(|source| self.storage(source))? else {
            return Ok(None);
        };
        let seq = key_seq(&key).ok_or_else(|| JournalError::BadKey {
            path: self.path.clone(),
            len: key.len(),
        })?;
        let reason = match codec::verify(&value) {
            Ok(_) => return Ok(None),
            Err(
                reason @ (CodecError::Truncated { .. }
                | CodecError::TrailingBytes { .. }
                | CodecError::ChecksumMismatch { .. }
                | CodecError::TooLarge { .. }),
            ) => reason,
            Err(source) => {
                return Err(JournalError::Corrupt {
                    path: self.path.clone(),
                    seq,
                    source,
                });
            }
        };
        self.records
            .remove(key)
            .map_err(|source| self.storage(source))?;
        self.flush()?;
        Ok(Some(TornRecord { seq, reason }))
    }

    /// Reads the committed events with seq `>= from`, in order, checking
    /// every record and that records follow each other without a gap.
    /// Iteration stops after the first error.
    pub fn read_from<E: DeserializeOwned + 'static>(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<Entry<E>, JournalError>> + '_ {
        // Start at the record that holds `from`: the last one keyed <= it.
        let start = self
            .records
            .range(..=from.to_be_bytes())
            .next_back()
            .and_then(|item| item.ok())
            .map_or(from, |(key, _)| key_seq(&key).unwrap_or(from));
        let mut next_seq: Option<u64> = None;
        let mut failed = false;
        self.records.range(start.to_be_bytes()..).flat_map(
            move |item| -> Vec<Result<Entry<E>, JournalError>> {
                if failed {
                    return Vec::new();
                }
                let batch = self.decode_record(item, &mut next_seq);
                match batch {
                    Ok(entries) => entries
                        .into_iter()
                        .filter(|e| e.seq >= from)
                        .map(Ok)
                        .collect(),
                    Err(error) => {
                        failed = true;
                        vec![Err(error)]
                    }
                }
            },
        )
    }

    /// The sequence number of the last journaled event (0 when empty).
    ///
    /// # Errors
    ///
    /// As [`Journal::read_from`], for the last record.
    pub fn last_seq<E: DeserializeOwned>(&self) -> Result<u64, JournalError> {
        let Some(item) = self.records.last().transpose() else {
            return Ok(0);
        };
        let entries: Vec<Entry<E>> = self.decode_record(item, &mut None)?;
        Ok(entries.last().map_or(0, |e| e.seq))
    }

    fn decode_record<E: DeserializeOwned>(
        &self,
        item: sled::Result<(sled::IVec, sled::IVec)>,
        next_seq: &mut Option<u64>,
    ) -> Result<Vec<Entry<E>>, JournalError> {
        let (key, value) = item.map_err(|source| self.storage(source))?;
        let first = key_seq(&key).ok_or_else(|| JournalError::BadKey {
            path: self.path.clone(),
            len: key.len(),
        })?;
        if let Some(expected) = *next_seq
            && expected != first
        {
            return Err(JournalError::Gap {
                path: self.path.clone(),
                expected,
                found: first,
            });
        }
        let events: Vec<E> =
            codec::decode_batch(&value).map_err(|source| JournalError::Corrupt {
                path: self.path.clone(),
                seq: first,
                source,
            })?;
        *next_seq = Some(first + events.len() as u64);
        Ok((first..)
            .zip(events)
            .map(|(seq, event)| Entry { seq, event })
            .collect())
    }

    fn storage(&self, source: sled::Error) -> JournalError {
        JournalError::Storage {
            path: self.path.clone(),
            source,
        }
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
        return JournalError::BadHeader {
            path: path.to_path_buf(),
            reason: format!(
                "record format version {version} is not supported (this build reads version {})",
                codec::FORMAT_VERSION
            ),
        };
    }
    JournalError::SchemaMismatch {
        path: path.to_path_buf(),
        found: String::from_utf8_lossy(rest).into_owned(),
        expected: schema.to_owned(),
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
