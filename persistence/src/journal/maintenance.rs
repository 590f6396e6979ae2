//! Removing records from the timeline for good (pruning behind a
//! checkpoint, taking back a record whose flush failed, cutting a torn
//! tail) or for inspection (quarantining a corrupt suffix).

use std::path::{Path, PathBuf};

use super::store::{Op, Tree};
use super::{Journal, JournalError, PRUNED_KEY, TornRecord, Write};
use crate::codec::{self, CodecError};

/// The key in the meta tree of [`Journal::resume_after`]'s mark: the seq
/// (u64 big-endian), then the predecessor's path (UTF-8).
const RESUMED_KEY: &[u8] = b"resumed_after";

/// What [`Journal::resumed`] reports: this journal began after a
/// checkpoint, because the journal before it could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The checkpoint's seq: the timeline here begins at `after + 1`.
    pub after: u64,
    /// Where the journal before it was moved aside (kept).
    pub predecessor: PathBuf,
}

impl Journal {
    /// Takes back the record [`Journal::append`] wrote at `first_seq`,
    /// whose flush failed: its events were never acknowledged, and left in
    /// sled's memory the record would reach the disk with the next flush
    /// (sled flushes when it is dropped), bringing them back after a
    /// restart. Not flushed here; the caller is giving up on the journal,
    /// and the removal reaches the disk with whatever flush comes next,
    /// if any does.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] when sled refuses the removal (after a
    /// real I/O failure it refuses every write): then the record may
    /// still reach the disk.
    pub fn discard(&self, first_seq: u64) -> Result<(), JournalError> {
        let key = first_seq.to_be_bytes();
        self.write(Write::Discard)?;
        let value = self.store.get(Tree::Records, &key)?;
        let chunk_keys = match &value {
            Some(value) => self.chunk_keys(value)?,
            None => Vec::new(),
        };
        self.remove_with_chunks(&key, &chunk_keys)
    }

    /// Removes the last record if it is torn (shorter or longer than its
    /// header says, or failing its checksum): what a crash in the middle of
    /// a write leaves behind. Such a record was never flushed, so under
    /// `Always` durability none of its events was acknowledged. Returns
    /// what was removed, so the caller can warn with the seq; the removal
    /// is flushed before this returns.
    ///
    /// A chunked last record is torn when its chunks are missing from
    /// some index on or add up to another length than its head says
    /// ([`CodecError::Chunks`]), or the record they reassemble to is torn
    /// as above; it is removed with every chunk it has, in one
    /// transaction.
    ///
    /// Only the last record is considered: damage anywhere else is not a
    /// torn write, and reads report it as [`JournalError::Corrupt`].
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] when the last record has an unknown format
    /// version (not a tear: a newer build wrote it) or chunks beyond its
    /// head's count, and [`JournalError::Storage`] for I/O errors.
    pub fn repair_tail(&self) -> Result<Option<TornRecord>, JournalError> {
        let Some((key, value)) = self.store.last(Tree::Records)? else {
            return Ok(None);
        };
        let seq = self.seq_of(&key)?;
        let verified = match codec::chunk_head(&value) {
            Ok(None) => codec::verify(&value).map(drop),
            Ok(Some(head)) => match self.reassemble(seq, &head) {
                Ok(_) => Ok(()),
                Err(JournalError::Corrupt { source, .. }) => Err(source),
                Err(other) => return Err(other),
            },
            Err(reason) => Err(reason),
        };
        let reason = match verified {
            Ok(()) => return Ok(None),
            Err(
                reason @ (CodecError::Truncated { .. }
                | CodecError::TrailingBytes { .. }
                | CodecError::ChecksumMismatch { .. }
                | CodecError::TooLarge { .. }
                | CodecError::Chunks {
                    problem:
                        codec::ChunkProblem::Missing { .. } | codec::ChunkProblem::Length { .. },
                }),
            ) => reason,
            Err(source) => return Err(self.corrupt(seq, source)),
        };
        let chunk_keys = self.chunk_keys(&value)?;
        self.write(Write::Repair)?;
        self.remove_with_chunks(&key, &chunk_keys)?;
        self.flush()?;
        Ok(Some(TornRecord { seq, reason }))
    }

    /// Deletes the records whose every seq is `<= seq`: the prefix a
    /// checkpoint at `seq` makes unnecessary. A record straddling `seq` is
    /// kept whole, so the new [`Journal::first_seq`] is the seq after the
    /// last one actually removed; it is kept in the meta tree, in the same
    /// transaction as the removal, so reads below it report
    /// [`JournalError::Pruned`], after a reopen too; the state hashes of
    /// the removed seqs go in the same transaction. Returns the number of
    /// records removed. Not durable until [`Journal::flush`] (unless the
    /// segment log compacted, which syncs).
    ///
    /// The deletion is one transaction, held in memory until it commits:
    /// prune at each checkpoint, not once after years.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] when a record in the prefix does not
    /// verify (its extent is unknown, so pruning stops short of it, and
    /// nothing is removed), and [`JournalError::Storage`].
    pub fn prune_through(&self, seq: u64) -> Result<u64, JournalError> {
        let mut doomed = Vec::new();
        let mut doomed_chunks = Vec::new();
        let mut pruned = self.pruned_through()?;
        for item in self.store.iter(Tree::Records) {
            let (key, value) = item?;
            let first = self.seq_of(&key)?;
            if first > seq {
                break;
            }
            let (_, end) = self.extent(first, &value)?;
            if end > seq {
                break;
            }
            pruned = pruned.max(end);
            doomed_chunks.extend(self.chunk_keys(&value)?);
            doomed.push(key);
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let doomed_hashes = self.state_hash_keys(0, pruned)?;
        self.write(Write::Prune)?;
        let pruned_bytes = pruned.to_be_bytes();
        let ops: Vec<Op<'_>> = doomed
            .iter()
            .map(|key| Op::Remove(Tree::Records, key))
            .chain(
                doomed_chunks
                    .iter()
                    .map(|key| Op::Remove(Tree::Chunks, key)),
            )
            .chain(
                doomed_hashes
                    .iter()
                    .map(|key| Op::Remove(Tree::StateHashes, key)),
            )
            .chain([Op::Insert(Tree::Meta, PRUNED_KEY, &pruned_bytes)])
            .collect();
        self.store.apply(&ops)?;
        // The segment log can now delete old segments that held mostly
        // the pruned records (it syncs what it copies forward first, and
        // with it this removal).
        self.store.compact()?;
        Ok(doomed.len() as u64)
    }

    /// Makes an empty journal begin after `seq`, and flushes: its
    /// [`Journal::first_seq`] becomes `seq + 1`, [`Journal::last_seq`]
    /// `seq`, and reads of the seqs before report
    /// [`JournalError::Pruned`], as after [`Journal::prune_through`]. For
    /// recovery that moved an unusable journal aside to `predecessor` and
    /// continues from a checkpoint at `seq`: the next event takes
    /// `seq + 1`, so seqs stay dense, and the missing prefix says why it
    /// is missing, now and after any number of reopens
    /// ([`Journal::resumed`]: its state is the checkpoint's, its events
    /// are in the journal moved aside).
    ///
    /// # Errors
    ///
    /// [`JournalError::Gap`] when the journal already holds records (their
    /// seqs would not follow `seq`; nothing is written), and
    /// [`JournalError::Storage`].
    pub fn resume_after(&self, seq: u64, predecessor: &Path) -> Result<(), JournalError> {
        if let Some((key, _)) = self.store.first(Tree::Records)? {
            return Err(JournalError::Gap {
                path: self.path.clone(),
                expected: seq + 1,
                found: self.seq_of(&key)?,
            });
        }
        let mut resumed = seq.to_be_bytes().to_vec();
        resumed.extend_from_slice(predecessor.to_string_lossy().as_bytes());
        self.write(Write::Prune)?;
        self.store.apply(&[
            Op::Insert(Tree::Meta, PRUNED_KEY, &seq.to_be_bytes()),
            Op::Insert(Tree::Meta, RESUMED_KEY, &resumed),
        ])?;
        self.flush()
    }

    /// Makes an empty journal begin after `seq`, and flushes: its
    /// [`Journal::first_seq`] becomes `seq + 1` and [`Journal::last_seq`]
    /// `seq`, exactly as if [`Journal::prune_through`] had removed a
    /// prefix through `seq` (and unlike [`Journal::resume_after`], nothing
    /// says a journal was lost). For a backup, which holds a checkpoint at
    /// `seq` and a journal that continues after it: recovery opens it as
    /// it opens a pruned journal, without
    /// reporting the journal behind the checkpoint.
    ///
    /// # Errors
    ///
    /// [`JournalError::Gap`] when the journal already holds records
    /// (nothing is written), and [`JournalError::Storage`].
    pub fn begin_after(&self, seq: u64) -> Result<(), JournalError> {
        if let Some((key, _)) = self.store.first(Tree::Records)? {
            return Err(JournalError::Gap {
                path: self.path.clone(),
                expected: seq + 1,
                found: self.seq_of(&key)?,
            });
        }
        self.write(Write::Prune)?;
        self.store
            .apply(&[Op::Insert(Tree::Meta, PRUNED_KEY, &seq.to_be_bytes())])?;
        self.flush()
    }

    /// Where this journal's timeline came from, when
    /// [`Journal::resume_after`] started it after a checkpoint: `None` for
    /// a journal that holds its history from seq 1 (or that pruning alone
    /// shortened).
    ///
    /// # Errors
    ///
    /// [`JournalError::BadHeader`] for a damaged mark, and
    /// [`JournalError::Storage`].
    pub fn resumed(&self) -> Result<Option<Resumed>, JournalError> {
        let Some(bytes) = self.store.get(Tree::Meta, RESUMED_KEY)? else {
            return Ok(None);
        };
        let Some((seq, path)) = bytes.split_first_chunk::<8>() else {
            return Err(JournalError::BadHeader {
                path: self.path.clone(),
                reason: format!("resumed-after mark is {} bytes, under 8", bytes.len()),
            });
        };
        Ok(Some(Resumed {
            after: u64::from_be_bytes(*seq),
            predecessor: PathBuf::from(String::from_utf8_lossy(path).into_owned()),
        }))
    }

    /// Moves the record keyed `seq` and every record after it, raw (they
    /// may be corrupt, so nothing is decoded), into the `quarantine` tree,
    /// and flushes. Returns the number of records moved. For recovery told
    /// to resume from the prefix before a corrupt record: the suffix is
    /// out of the timeline, but still on disk for whoever investigates.
    ///
    /// Quarantine keys are a fresh sled-generated id (u64 big-endian)
    /// followed by the record's key, because the engine then reuses the
    /// quarantined seqs and a later quarantine may move the same keys
    /// again. A chunked record moves as its head; its chunks stay where
    /// they are, found by the head's id. (A record over
    /// [`CHUNK_BYTES`](super::CHUNK_BYTES) written by a build before
    /// chunking moves raw as well, as one value.)
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`]. Nothing is moved on error.
    pub fn quarantine_from(&self, seq: u64) -> Result<u64, JournalError> {
        let moves = self
            .store
            .range_from(Tree::Records, &seq.to_be_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        if moves.is_empty() {
            return Ok(0);
        }
        let id = self.store.generate_id()?;
        let doomed_hashes = self.state_hash_keys(seq, u64::MAX)?;
        self.write(Write::Quarantine)?;
        let quarantine_keys: Vec<Vec<u8>> = moves
            .iter()
            .map(|(key, _)| [id.to_be_bytes().as_slice(), key].concat())
            .collect();
        let mut ops: Vec<Op<'_>> = Vec::new();
        for ((key, value), quarantine_key) in moves.iter().zip(&quarantine_keys) {
            ops.push(Op::Insert(Tree::Quarantine, quarantine_key, value));
            ops.push(Op::Remove(Tree::Records, key));
        }
        // The seqs are written again from here on: their old state hashes
        // would check the new events against the old ones.
        ops.extend(
            doomed_hashes
                .iter()
                .map(|key| Op::Remove(Tree::StateHashes, key)),
        );
        // And they are written in today's schema: an older schema's epoch
        // ends before them.
        let cut = self.schemas.cut_from(seq);
        if let Some((epochs, _)) = &cut {
            ops.push(Op::Insert(Tree::Meta, super::schemas::EPOCHS_KEY, epochs));
        }
        self.store.apply(&ops)?;
        if let Some((_, epochs)) = cut {
            self.schemas.set_epochs(epochs);
        }
        self.flush()?;
        Ok(moves.len() as u64)
    }

    /// The records [`Journal::quarantine_from`] set aside, raw, in the
    /// order they were quarantined: `(quarantine id, original key seq,
    /// record bytes)`. A chunked record is given reassembled when its
    /// chunks reassemble, and as its raw head when they do not.
    ///
    /// # Errors
    ///
    /// [`JournalError::BadKey`] for a key that is not 16 bytes, and
    /// [`JournalError::Storage`].
    pub fn quarantined(&self) -> Result<Vec<(u64, u64, Vec<u8>)>, JournalError> {
        self.store
            .iter(Tree::Quarantine)
            .map(|item| {
                let (key, value) = item?;
                let bad_key = || JournalError::BadKey {
                    path: self.path.clone(),
                    len: key.len(),
                };
                if key.len() != 16 {
                    return Err(bad_key());
                }
                let id = self.seq_of(&key[..8])?;
                let seq = self.seq_of(&key[8..])?;
                let record = match self.resolve(seq, &value) {
                    Ok(record) => record.into_owned(),
                    Err(_) => value.to_vec(),
                };
                Ok((id, seq, record))
            })
            .collect()
    }
}
