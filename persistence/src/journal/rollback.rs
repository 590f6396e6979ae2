//! Rolling the timeline back to an earlier seq without losing anything:
//! the records after the target move to the archive, and a marker takes
//! the next seq.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::IVec;

use super::store::{Op, Tree};
use super::{Journal, JournalError};
use crate::codec::{self, RecordKind};

/// Why [`Journal::rollback`] refused a target (inside
/// [`JournalError::InvalidRollback`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackRefusal {
    /// The target is after the journal's last seq.
    #[error("the journal ends at seq {last}")]
    AfterLast {
        /// The journal's last seq.
        last: u64,
    },
    /// The target lies in a range an earlier rollback removed from the
    /// timeline (after that marker's target, before the marker): the
    /// state there is no longer part of history.
    #[error("that seq was rolled back by the marker at seq {marker}")]
    RolledBack {
        /// The seq of the marker whose gap holds the target.
        marker: u64,
    },
    /// The target is before the retained prefix: the records needed to
    /// rebuild its state were pruned.
    #[error("the journal was pruned; its first retained seq is {first}")]
    Pruned {
        /// [`Journal::first_seq`].
        first: u64,
    },
    /// The marker's seq is not the seq after the journal's last: seqs are
    /// dense and never reused.
    #[error("the marker must take the next seq, {expected}")]
    MarkerSeq {
        /// The journal's last seq plus one.
        expected: u64,
    },
}

/// What [`Journal::rollback`] moved to the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollbackReport {
    /// Events moved (markers not counted).
    pub events_archived: u64,
    /// Records moved, counting the suffix of a split batch as one and
    /// archived markers.
    pub records_archived: u64,
}

/// A batch straddling the target: its prefix stays, its suffix goes.
struct Split {
    key: u64,
    prefix: Vec<u8>,
    suffix_key: u64,
    suffix: Vec<u8>,
    archived: u64,
    /// The chunks of the batch as it was, if it was chunked: the prefix
    /// and suffix are stored anew.
    old_chunks: Vec<IVec>,
}

impl Journal {
    /// Rolls the timeline back to `target`, with a marker at `marker_seq`,
    /// which must be the seq after the last ([`Journal::last_seq`] + 1):
    /// every record holding seqs after `target` moves to the archive
    /// under its key (a batch straddling `target` is split: its prefix is
    /// re-encoded in place, its suffix archived under the key of its first
    /// archived seq), and a marker `Rollback { target }` is written at
    /// `marker_seq`. One sled transaction over the timeline and the
    /// archive, then a flush, so either all of it is durable or none.
    ///
    /// `target` may be a marker's seq (its state is its target's), and it
    /// may be the last seq: that archives nothing but still writes a
    /// marker, so every rollback the engine acknowledges is on record.
    /// Target 0 (the empty state) is allowed while nothing is pruned.
    ///
    /// # Errors
    ///
    /// [`JournalError::InvalidRollback`], checked in the order: the target
    /// is after the last seq, before the retained prefix (`target <
    /// first_seq - 1`), `marker_seq` is not the next seq, the target lies
    /// in an earlier rollback's gap. [`JournalError::Collision`] when the
    /// archive already holds a key being moved, [`JournalError::Corrupt`]
    /// when a record being moved does not verify (or the split batch does
    /// not decode as `E`), and [`JournalError::Storage`]. Nothing is
    /// written on any error.
    pub fn rollback<E: Serialize + DeserializeOwned + 'static>(
        &self,
        target: u64,
        marker_seq: u64,
    ) -> Result<RollbackReport, JournalError> {
        let refuse = |reason| JournalError::InvalidRollback {
            path: self.path.clone(),
            target,
            reason,
        };
        let last = self.last_seq::<E>()?;
        if target > last {
            return Err(refuse(RollbackRefusal::AfterLast { last }));
        }
        let first = self.first_seq()?;
        if target < first - 1 {
            return Err(refuse(RollbackRefusal::Pruned { first }));
        }
        if marker_seq != last + 1 {
            return Err(refuse(RollbackRefusal::MarkerSeq { expected: last + 1 }));
        }
        let mut report = RollbackReport::default();
        let split = self.split_at::<E>(target)?;
        if let Some(split) = &split {
            report.events_archived += split.archived;
            report.records_archived += 1;
        }
        let mut moves = Vec::new();
        for item in self
            .store
            .range_from(Tree::Records, &(target + 1).to_be_bytes())
        {
            let (key, value) = item?;
            let seq = self.seq_of(&key)?;
            match self.extent(seq, &value)?.0 {
                RecordKind::Rollback { target: earlier } if earlier < target => {
                    return Err(refuse(RollbackRefusal::RolledBack { marker: seq }));
                }
                RecordKind::Rollback { .. } => {}
                RecordKind::Events { count } => report.events_archived += count,
            }
            report.records_archived += 1;
            moves.push((key, value));
        }
        let marker =
            codec::encode_rollback(target).map_err(|source| self.corrupt(marker_seq, source))?;
        // Chunked where they are over the limit: the split's new records,
        // and records from before chunking that are moved.
        let split_stored = match &split {
            Some(split) => Some((
                self.to_store(split.key, &split.prefix)?,
                self.to_store(split.suffix_key, &split.suffix)?,
            )),
            None => None,
        };
        let moves = moves
            .iter()
            .map(|(key, value)| {
                let seq = self.seq_of(key)?;
                Ok((seq, self.to_store(seq, value)?))
            })
            .collect::<Result<Vec<_>, JournalError>>()?;
        // The undone seqs' state hashes check states that are no longer
        // history; seqs are never reused, so they could not trip, but they
        // would only take space.
        let undone_hashes = self.state_hash_keys(target + 1, u64::MAX)?;

        // Nothing is moved onto a record the archive holds (one writer:
        // nothing can come between this check and the write).
        let archived_keys: Vec<u64> = split
            .iter()
            .map(|split| split.suffix_key)
            .chain(moves.iter().map(|(seq, _)| *seq))
            .collect();
        for &seq in &archived_keys {
            if self.store.get(Tree::Archive, &seq.to_be_bytes())?.is_some() {
                return Err(JournalError::Collision {
                    path: self.path.clone(),
                    seq,
                });
            }
        }
        let keys: Vec<[u8; 8]> = moves.iter().map(|(seq, _)| seq.to_be_bytes()).collect();
        let split_keys = split
            .as_ref()
            .map(|split| (split.key.to_be_bytes(), split.suffix_key.to_be_bytes()));
        let marker_key = marker_seq.to_be_bytes();
        let mut ops: Vec<Op<'_>> = Vec::new();
        if let (Some(split), Some((prefix, suffix)), Some((key, suffix_key))) =
            (&split, &split_stored, &split_keys)
        {
            ops.extend(
                split
                    .old_chunks
                    .iter()
                    .map(|key| Op::Remove(Tree::Chunks, key)),
            );
            ops.extend(prefix.ops(Tree::Records, key));
            ops.extend(suffix.ops(Tree::Archive, suffix_key));
        }
        for ((_, stored), key) in moves.iter().zip(&keys) {
            ops.extend(stored.ops(Tree::Archive, key));
            ops.push(Op::Remove(Tree::Records, key));
        }
        ops.extend(
            undone_hashes
                .iter()
                .map(|key| Op::Remove(Tree::StateHashes, key)),
        );
        ops.push(Op::Insert(Tree::Records, &marker_key, &marker));
        // The marker is the first record after an upgrade as much as a
        // batch would be.
        let upgrade = self.schemas.upgrade(marker_seq);
        ops.extend(upgrade.iter().flat_map(super::schemas::Upgrade::ops));
        self.write(super::Write::Rollback)?;
        self.store.apply(&ops)?;
        if let Some(upgrade) = upgrade {
            self.schemas.upgraded(upgrade);
        }
        self.flush()?;
        Ok(report)
    }

    /// The batch holding `target` when it also holds seqs after it.
    fn split_at<E: Serialize + DeserializeOwned + 'static>(
        &self,
        target: u64,
    ) -> Result<Option<Split>, JournalError> {
        let holding = self.store.floor(Tree::Records, &target.to_be_bytes())?;
        let Some((key, value)) = holding else {
            return Ok(None);
        };
        let seq = self.seq_of(&key)?;
        let (_, end) = self.extent(seq, &value)?;
        if end <= target {
            return Ok(None);
        }
        let old_chunks = self.chunk_keys(&value)?;
        let record = self.resolve(seq, &value)?;
        let kept = (target - seq + 1) as usize;
        let suffix_key = target + 1;
        // A record of an older schema is split in that schema, so that
        // both halves stay what the epochs say they are.
        let (prefix, suffix) = match self.split_older::<E>(seq, &record, kept)? {
            Some(halves) => halves,
            None => {
                let mut events: Vec<E> =
                    codec::decode_batch(&record).map_err(|source| self.corrupt(seq, source))?;
                let suffix = events.split_off(kept);
                let encode = |events: &[E], at: u64| {
                    codec::encode_batch(events).map_err(|source| self.corrupt(at, source))
                };
                (encode(&events, seq)?, encode(&suffix, suffix_key)?)
            }
        };
        Ok(Some(Split {
            key: seq,
            prefix,
            suffix_key,
            archived: end - target,
            suffix,
            old_chunks,
        }))
    }
}
