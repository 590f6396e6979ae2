//! Checking the journal without knowing its event type: every record's
//! framing and checksum (chunked records reassembled), and the order of
//! the timeline. For inspection tools, which may be pointed at a journal
//! whose event type they do not have; decoding the events needs the type
//! ([`Journal::read_from`]).

use super::store::Tree;
use super::{Journal, JournalError};
use crate::codec::RecordKind;

/// One record of the timeline or the archive, verified (framing, length,
/// crc32) but not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedRecord {
    /// The record's key: the first seq it holds (a marker's own seq).
    pub seq: u64,
    /// The last seq it holds (`seq - 1` for an empty batch).
    pub last: u64,
    /// What it holds.
    pub kind: RecordKind,
    /// The record's size in bytes (reassembled, for a chunked record).
    pub bytes: usize,
}

impl Journal {
    /// Verifies every record of the timeline, in order, without decoding
    /// an event: each record's frame and crc, and that each record
    /// follows the one before (consecutive seqs from
    /// [`Journal::first_seq`], or a rollback marker right after the
    /// record ending at its target), as [`Journal::read_from`] checks
    /// them. Iteration stops after the first error.
    ///
    /// # Errors
    ///
    /// Yields [`JournalError::Corrupt`] (naming the record's seq) for a
    /// record that does not verify, [`JournalError::Gap`] for records that
    /// do not follow each other, and [`JournalError::Storage`] or
    /// [`JournalError::Io`].
    pub fn scan(&self) -> impl Iterator<Item = Result<ScannedRecord, JournalError>> + '_ {
        let mut end = match self.first_seq() {
            Ok(first) => Ok(first - 1),
            Err(error) => Err(Some(error)),
        };
        let mut records = self.store.iter(Tree::Records);
        std::iter::from_fn(move || {
            let previous = match &mut end {
                Ok(previous) => *previous,
                Err(error) => return error.take().map(Err),
            };
            let scanned = records.next()?.and_then(|(key, value)| {
                let record = self.scan_one(&key, &value)?;
                let follows = record.seq == previous + 1
                    || matches!(record.kind, RecordKind::Rollback { target } if target == previous);
                if !follows {
                    return Err(JournalError::Gap {
                        path: self.path.clone(),
                        expected: previous + 1,
                        found: record.seq,
                    });
                }
                Ok(record)
            });
            match scanned {
                Ok(record) => {
                    end = Ok(record.last);
                    Some(Ok(record))
                }
                Err(error) => {
                    end = Err(None);
                    Some(Err(error))
                }
            }
        })
    }

    /// Verifies every record of the archive (what rollbacks undid), in
    /// key order, as [`Journal::scan`] does but with no order to check.
    /// Iteration stops after the first error.
    ///
    /// # Errors
    ///
    /// As [`Journal::scan`], without `Gap`.
    pub fn scan_archive(&self) -> impl Iterator<Item = Result<ScannedRecord, JournalError>> + '_ {
        let mut records = self.store.iter(Tree::Archive);
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let scanned = records
                .next()?
                .and_then(|(key, value)| self.scan_one(&key, &value));
            done = scanned.is_err();
            Some(scanned)
        })
    }

    /// Verifies the record stored at `key`.
    fn scan_one(&self, key: &[u8], value: &[u8]) -> Result<ScannedRecord, JournalError> {
        let seq = self.seq_of(key)?;
        let record = self.resolve(seq, value)?;
        // `extent` verifies the frame and crc (through `codec::peek`).
        let (kind, last) = self.extent(seq, &record)?;
        Ok(ScannedRecord {
            seq,
            last,
            kind,
            bytes: record.len(),
        })
    }
}

impl Journal {
    /// The last record of the timeline, verified but not decoded, and the
    /// timeline's last seq: [`Journal::last_seq`] without the event type
    /// (the last pruned seq when pruning emptied the journal, 0 for one
    /// never written). The record is `None` when the timeline is empty.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] when the last record does not verify,
    /// [`JournalError::BadHeader`] for a bad pruned-through mark, and
    /// [`JournalError::Storage`] or [`JournalError::Io`].
    pub fn scan_last(&self) -> Result<(Option<ScannedRecord>, u64), JournalError> {
        let pruned = self.pruned_through()?;
        let Some((key, value)) = self.store.last(Tree::Records)? else {
            return Ok((None, pruned));
        };
        let record = self.scan_one(&key, &value)?;
        Ok((Some(record), record.last.max(pruned)))
    }
}
