//! Putting quarantined records back into the timeline
//! ([`Journal::restore_quarantined`]), for the case where the timeline
//! has not moved on since the quarantine.
//!
//! Recovery to a prefix moves a damaged record and everything after it
//! into the quarantine tree, and the engine then writes new events at the
//! same seqs. Once it has, the quarantined records are another history of
//! those seqs, and putting them back would give a seq two meanings; so a
//! restore is allowed only when the journal holds nothing at or after the
//! restored seqs and they continue it densely from its last seq + 1. And
//! only records that verify go back: a record that does not is why the
//! quarantine was made.

use std::path::PathBuf;

use super::store::{Op, Tree};
use super::{Journal, JournalError, Write};
use crate::codec::{self, CodecError};

/// Why [`Journal::restore_quarantined`] (or its plan) refused. Nothing
/// was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// No quarantined record carries the id.
    #[error("{path}: there is no quarantine {id} (see `solostate quarantine list`)")]
    NoSuchQuarantine {
        /// The journal.
        path: PathBuf,
        /// The id asked for.
        id: u64,
    },
    /// A chosen record does not verify: restoring it would put damage
    /// back into the timeline.
    #[error(
        "{path}: quarantine {id}'s record at seq {seq} does not verify ({source}); only records that verify can be restored"
    )]
    DoesNotVerify {
        /// The journal.
        path: PathBuf,
        /// Its quarantine.
        id: u64,
        /// Its seq.
        seq: u64,
        /// What is wrong with it.
        #[source]
        source: CodecError,
    },
    /// The journal already holds `seq`: the engine resumed after the
    /// quarantine and wrote new events there.
    #[error(
        "{path}: the timeline has moved on: the journal already holds seq {seq} (its last seq is {last}), which quarantine {id}'s records also hold; the engine resumed after the quarantine and wrote new events there, so restoring would give those seqs two histories. Export the quarantined records instead (`solostate dump`, `quarantine list`)"
    )]
    TimelineMovedOn {
        /// The journal.
        path: PathBuf,
        /// The quarantine whose record conflicts.
        id: u64,
        /// The conflicting seq.
        seq: u64,
        /// The journal's last seq.
        last: u64,
    },
    /// The chosen records do not continue the timeline densely: a gap, or
    /// two records holding the same seq.
    #[error(
        "{path}: quarantine {id}'s record at seq {found} does not continue the timeline, which needs seq {expected} next; choose quarantines whose records follow the journal's last seq without a gap or an overlap"
    )]
    NotContiguous {
        /// The journal.
        path: PathBuf,
        /// The quarantine of the record that does not fit.
        id: u64,
        /// The seq the timeline needs next.
        expected: u64,
        /// The record's seq.
        found: u64,
    },
    /// The journal changed schema ([`Journal::epochs`]): which schema a
    /// quarantined record was written under is not kept, so putting it
    /// back could place a record of one schema where the journal says
    /// another.
    #[error(
        "{path}: this journal changed schema (records through seq {through} are {schema:?}), and a quarantined record's schema is not known, so restoring could misplace one; dump the quarantine instead"
    )]
    SchemaChanged {
        /// The journal.
        path: PathBuf,
        /// The newest older schema.
        schema: String,
        /// Its last seq.
        through: u64,
    },
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// One record a restore puts back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoredRecord {
    /// Its quarantine.
    pub id: u64,
    /// Its first seq (its key).
    pub seq: u64,
    /// Its last seq (`seq - 1` for an empty batch).
    pub end: u64,
    /// Its size in bytes (reassembled, for a chunked record).
    pub bytes: usize,
    /// A rollback marker rather than a batch of events.
    pub rollback: bool,
}

/// What a restore puts back (or, planned, would), in seq order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestorePlan {
    /// The journal's last seq before the restore.
    pub after: u64,
    /// The records, in seq order.
    pub records: Vec<RestoredRecord>,
}

impl RestorePlan {
    /// The journal's last seq after the restore.
    pub fn last(&self) -> u64 {
        self.records.last().map_or(self.after, |record| record.end)
    }
}

impl Journal {
    /// What [`Journal::restore_quarantined`] would put back for the
    /// quarantines `ids`, checked as it checks, writing nothing (so on a
    /// read-only open too).
    ///
    /// # Errors
    ///
    /// As [`Journal::restore_quarantined`].
    pub fn plan_restore(&self, ids: &[u64]) -> Result<RestorePlan, RestoreError> {
        self.plan_with_keys(ids).map(|(plan, _)| plan)
    }

    /// Moves every record of the quarantines `ids` back into the
    /// timeline, raw (a chunked record as its head; its chunks never
    /// moved), and flushes: the insertions and their removal from the
    /// quarantine tree are one atomic write, so a crash leaves each record
    /// in one place or the other, never both or neither. Every record must
    /// verify, and together they must continue the timeline from its last
    /// seq + 1 with no gap or overlap. The state hashes the quarantine
    /// removed are not brought back (they were not kept), so later checks
    /// of those seqs replay without them.
    ///
    /// # Errors
    ///
    /// [`RestoreError::SchemaChanged`], [`RestoreError::NoSuchQuarantine`],
    /// [`RestoreError::DoesNotVerify`],
    /// [`RestoreError::TimelineMovedOn`] (the journal holds a seq the
    /// records hold), [`RestoreError::NotContiguous`], and
    /// [`RestoreError::Journal`]. Nothing is written on error (unless the
    /// flush itself fails after the write).
    pub fn restore_quarantined(&self, ids: &[u64]) -> Result<RestorePlan, RestoreError> {
        let (plan, moves) = self.plan_with_keys(ids)?;
        let seq_keys: Vec<[u8; 8]> = plan.records.iter().map(|r| r.seq.to_be_bytes()).collect();
        let mut ops: Vec<Op<'_>> = Vec::new();
        for ((quarantine_key, raw), seq_key) in moves.iter().zip(&seq_keys) {
            ops.push(Op::Insert(Tree::Records, seq_key, raw));
            ops.push(Op::Remove(Tree::Quarantine, quarantine_key));
        }
        self.write(Write::Restore)?;
        self.store.apply(&ops)?;
        self.flush()?;
        Ok(plan)
    }

    /// The plan, and beside each record its quarantine key and raw value.
    #[allow(clippy::type_complexity)]
    fn plan_with_keys(
        &self,
        ids: &[u64],
    ) -> Result<(RestorePlan, Vec<(Vec<u8>, Vec<u8>)>), RestoreError> {
        if let Some(epoch) = self.epochs().pop() {
            return Err(RestoreError::SchemaChanged {
                path: self.path.clone(),
                schema: epoch.schema,
                through: epoch.through,
            });
        }
        let mut chosen = Vec::new();
        for item in self.store.iter(Tree::Quarantine) {
            let (key, value) = item?;
            if key.len() != 16 {
                return Err(JournalError::BadKey {
                    path: self.path.clone(),
                    len: key.len(),
                }
                .into());
            }
            let id = self.seq_of(&key[..8])?;
            if ids.contains(&id) {
                let seq = self.seq_of(&key[8..])?;
                chosen.push((seq, id, key.to_vec(), value.to_vec()));
            }
        }
        if let Some(&id) = ids
            .iter()
            .find(|id| !chosen.iter().any(|(_, found, ..)| found == *id))
        {
            return Err(RestoreError::NoSuchQuarantine {
                path: self.path.clone(),
                id,
            });
        }
        chosen.sort_by_key(|(seq, id, ..)| (*seq, *id));
        let (_, after) = self.scan_last()?;
        let mut expected = after + 1;
        let mut records = Vec::new();
        let mut moves = Vec::new();
        for (seq, id, key, raw) in chosen {
            let does_not_verify = |source| RestoreError::DoesNotVerify {
                path: self.path.clone(),
                id,
                seq,
                source,
            };
            let record = match self.resolve(seq, &raw) {
                Ok(record) => record.into_owned(),
                Err(JournalError::Corrupt { source, .. }) => return Err(does_not_verify(source)),
                Err(other) => return Err(other.into()),
            };
            codec::verify(&record).map_err(does_not_verify)?;
            let (kind, end) = match self.extent(seq, &record) {
                Ok(extent) => extent,
                Err(JournalError::Corrupt { source, .. }) => return Err(does_not_verify(source)),
                Err(other) => return Err(other.into()),
            };
            if seq <= after {
                return Err(RestoreError::TimelineMovedOn {
                    path: self.path.clone(),
                    id,
                    seq,
                    last: after,
                });
            }
            if seq != expected {
                return Err(RestoreError::NotContiguous {
                    path: self.path.clone(),
                    id,
                    expected,
                    found: seq,
                });
            }
            expected = end + 1;
            records.push(RestoredRecord {
                id,
                seq,
                end,
                bytes: record.len(),
                rollback: matches!(kind, codec::RecordKind::Rollback { .. }),
            });
            moves.push((key, raw));
        }
        Ok((RestorePlan { after, records }, moves))
    }
}
