//! The determinism guard's state hashes: the hash of the state at some
//! seq, recorded while the engine runs and checked when the journal is
//! replayed.

use std::ops::{Bound, RangeInclusive};

use super::store::{Op, Tree};
use super::{Journal, JournalError};
use crate::codec;

impl Journal {
    /// Records `hash` as the state hash at `seq` (overwriting any earlier
    /// one for that seq). Not durable until [`Journal::flush`]; a hash lost
    /// in a crash only means one check fewer.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`].
    pub fn record_state_hash(&self, seq: u64, hash: u64) -> Result<(), JournalError> {
        let record = codec::encode_state_hash(hash).map_err(|source| self.corrupt(seq, source))?;
        self.write(super::Write::StateHash)?;
        self.store
            .apply(&[Op::Insert(Tree::StateHashes, &seq.to_be_bytes(), &record)])
    }

    /// The recorded state hashes with seqs in `seqs`, in seq order, as
    /// `(seq, hash)`.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] for a record that does not verify (naming
    /// its seq), [`JournalError::BadKey`], and [`JournalError::Storage`].
    pub fn state_hashes(&self, seqs: RangeInclusive<u64>) -> Result<Vec<(u64, u64)>, JournalError> {
        let (from, through) = seqs.into_inner();
        if from > through {
            return Ok(Vec::new());
        }
        self.store
            .range(
                Tree::StateHashes,
                Bound::Included(&from.to_be_bytes()),
                Bound::Included(&through.to_be_bytes()),
            )
            .map(|item| {
                let (key, value) = item?;
                let seq = self.seq_of(&key)?;
                let hash =
                    codec::decode_state_hash(&value).map_err(|source| self.corrupt(seq, source))?;
                Ok((seq, hash))
            })
            .collect()
    }

    /// Removes the state hashes of every seq after `seq`, and flushes:
    /// for recovery, whose journal may end before a hash that survived a
    /// crash (a torn last record removed, or an unflushed batch lost while
    /// its hash was kept), so that the seqs written next are not checked
    /// against the state of events that are gone. Returns how many were
    /// removed.
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`].
    pub fn remove_state_hashes_after(&self, seq: u64) -> Result<u64, JournalError> {
        let Some(from) = seq.checked_add(1) else {
            return Ok(0);
        };
        let doomed = self.state_hash_keys(from, u64::MAX)?;
        if doomed.is_empty() {
            return Ok(0);
        }
        let ops: Vec<Op<'_>> = doomed
            .iter()
            .map(|key| Op::Remove(Tree::StateHashes, key))
            .collect();
        self.store.apply(&ops)?;
        self.flush()?;
        Ok(doomed.len() as u64)
    }

    /// The keys of the state hashes with seqs in `from..=through`, for the
    /// transactions that take those seqs out of the timeline.
    pub(super) fn state_hash_keys(
        &self,
        from: u64,
        through: u64,
    ) -> Result<Vec<sled::IVec>, JournalError> {
        if from > through {
            return Ok(Vec::new());
        }
        self.store.keys_between(
            Tree::StateHashes,
            &from.to_be_bytes(),
            &through.to_be_bytes(),
        )
    }
}
