//! Reading the journal back: the timeline with its continuity checks, the
//! archive without them, and the first and last seqs.

use serde::de::DeserializeOwned;

use super::store::{Iter, Tree};
use super::{Entry, Journal, JournalError, PRUNED_KEY, Step};
use crate::codec::{Record, RecordKind};

/// Which records may follow which, checked as the iterator goes.
#[derive(Debug, Clone, Copy)]
enum Continuity {
    /// The archive: records of several abandoned timelines, no order to
    /// check beyond the keys'.
    Off,
    /// The first record of a read from `from`: the one holding `from`, or
    /// a marker whose rolled-back gap holds `from`.
    Start { from: u64 },
    /// The previous record ended at `end`: the next starts at `end + 1`,
    /// or is a marker whose target is `end` (the gap was archived).
    After { end: u64 },
}

/// Steps of one tree, decoded one record at a time, stopping after the
/// first error.
struct Steps<'a, E> {
    journal: &'a Journal,
    records: Iter<'a>,
    /// The decoded steps of the current record not yet yielded.
    pending: std::vec::IntoIter<Entry<E>>,
    /// Steps before `from` are skipped (the start record may begin
    /// earlier).
    from: u64,
    continuity: Continuity,
    /// An error to yield before anything else (a refused start).
    error: Option<JournalError>,
    done: bool,
}

impl<E: DeserializeOwned + 'static> Steps<'_, E> {
    /// Decodes the next record into `pending`; `false` at the end.
    fn fill(&mut self) -> Result<bool, JournalError> {
        let Some(item) = self.records.next() else {
            return Ok(false);
        };
        let journal = self.journal;
        let (key, value) = item?;
        let first = journal.seq_of(&key)?;
        let value = journal.resolve(first, &value)?;
        let record = journal.decode::<E>(first, &value)?;
        let marker_target = match record {
            Record::Rollback { target } => Some(target),
            Record::Events(_) => None,
        };
        let follows = match self.continuity {
            Continuity::Off => Ok(()),
            Continuity::Start { from } => match marker_target {
                _ if first <= from => Ok(()),
                Some(target) if target < from => Ok(()),
                _ => Err(from),
            },
            Continuity::After { end } => match marker_target {
                _ if first == end + 1 => Ok(()),
                Some(target) if target == end => Ok(()),
                _ => Err(end + 1),
            },
        };
        if let Err(expected) = follows {
            return Err(JournalError::Gap {
                path: journal.path.clone(),
                expected,
                found: first,
            });
        }
        let entries: Vec<Entry<E>> = match record {
            Record::Events(events) => (first..)
                .zip(events)
                .map(|(seq, event)| Entry {
                    seq,
                    step: Step::Event(event),
                })
                .collect(),
            Record::Rollback { target } => vec![Entry {
                seq: first,
                step: Step::Rollback { target },
            }],
        };
        if !matches!(self.continuity, Continuity::Off) {
            let end = entries.last().map_or(first - 1, |entry| entry.seq);
            self.continuity = Continuity::After { end };
        }
        self.pending = entries.into_iter();
        Ok(true)
    }
}

impl<E: DeserializeOwned + 'static> Iterator for Steps<'_, E> {
    type Item = Result<Entry<E>, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(error) = self.error.take() {
            self.done = true;
            return Some(Err(error));
        }
        loop {
            if let Some(entry) = self.pending.find(|entry| entry.seq >= self.from) {
                return Some(Ok(entry));
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

impl Journal {
    /// Reads the timeline from seq `from` on, in order: events and
    /// rollback markers, each record verified and decoded only when the
    /// iterator reaches it. Records must follow each other: consecutive
    /// seqs, except that a rollback marker may follow the record ending at
    /// its target (the seqs between were archived). A `from` inside such
    /// a rolled-back gap starts at the marker, whose state is the state of
    /// the seqs before the gap. Iteration stops after the first error.
    ///
    /// A `from` past the end yields nothing; `from == 0` reads from 1.
    ///
    /// # Errors
    ///
    /// Yields [`JournalError::Pruned`] (and nothing else) when `from` is
    /// before [`Journal::first_seq`], [`JournalError::Gap`] when records do
    /// not follow each other, [`JournalError::Corrupt`] for a record that
    /// does not verify or decode as `E`, and [`JournalError::Storage`].
    pub fn read_from<E: DeserializeOwned + 'static>(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<Entry<E>, JournalError>> + '_ {
        let from = from.max(1);
        let (start, error) = match self.start_of(from) {
            Ok(start) => (start, None),
            Err(error) => (from, Some(error)),
        };
        Steps {
            journal: self,
            records: self.store.range_from(Tree::Records, &start.to_be_bytes()),
            pending: Vec::new().into_iter(),
            from,
            continuity: Continuity::Start { from },
            error,
            done: false,
        }
    }

    /// The key to start a read from `from` at: the record holding `from`
    /// if there is one, otherwise `from` itself (the next record must then
    /// be a marker whose gap holds `from`, checked as the read goes).
    fn start_of(&self, from: u64) -> Result<u64, JournalError> {
        let first = self.first_seq()?;
        if from < first {
            return Err(JournalError::Pruned {
                path: self.path.clone(),
                seq: from,
                first,
            });
        }
        let before = self.store.floor(Tree::Records, &from.to_be_bytes())?;
        if let Some((key, value)) = before {
            let seq = self.seq_of(&key)?;
            let (_, end) = self.extent(seq, &value)?;
            if end >= from {
                return Ok(seq);
            }
        }
        Ok(from)
    }

    /// Reads the archive: every step a rollback moved out of the timeline,
    /// under its original seq, in seq order. Records of several rollbacks
    /// interleave by seq, so no continuity is checked; each record is
    /// verified and decoded when reached. Iteration stops after the first
    /// error.
    ///
    /// # Errors
    ///
    /// Yields [`JournalError::Corrupt`] for a record that does not verify
    /// or decode as `E`, and [`JournalError::Storage`].
    pub fn read_archive<E: DeserializeOwned + 'static>(
        &self,
    ) -> impl Iterator<Item = Result<Entry<E>, JournalError>> + '_ {
        Steps {
            journal: self,
            records: self.store.iter(Tree::Archive),
            pending: Vec::new().into_iter(),
            from: 0,
            continuity: Continuity::Off,
            error: None,
            done: false,
        }
    }

    /// The seq of the last step in the timeline: the last event, or a
    /// trailing rollback marker's seq. When pruning removed every record,
    /// the last seq pruned (so a fully compacted journal does not look
    /// newer than its checkpoints); 0 for a journal never written.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] when the last record does not verify or
    /// decode as `E`, [`JournalError::BadHeader`] for a bad pruned-through
    /// mark, and [`JournalError::Storage`].
    pub fn last_seq<E: DeserializeOwned + 'static>(&self) -> Result<u64, JournalError> {
        let pruned = self.pruned_through()?;
        let Some((key, value)) = self.store.last(Tree::Records)? else {
            return Ok(pruned);
        };
        let first = self.seq_of(&key)?;
        let value = self.resolve(first, &value)?;
        // Decoded, not just peeked, so a journal of another event type
        // fails here rather than at the first read.
        let end = match self.decode::<E>(first, &value)? {
            Record::Events(events) => (first + events.len() as u64).saturating_sub(1),
            Record::Rollback { .. } => first,
        };
        Ok(end.max(pruned))
    }

    /// The first seq still in the journal: 1 unless
    /// [`Journal::prune_through`] removed a prefix, then the seq after the
    /// last one removed. Kept in the meta tree, so it survives a reopen
    /// even when pruning emptied the journal.
    ///
    /// # Errors
    ///
    /// [`JournalError::BadHeader`] for a bad pruned-through mark, and
    /// [`JournalError::Storage`].
    pub fn first_seq(&self) -> Result<u64, JournalError> {
        Ok(self.pruned_through()? + 1)
    }

    /// The last seq pruned, 0 if none.
    pub(super) fn pruned_through(&self) -> Result<u64, JournalError> {
        let Some(bytes) = self.store.get(Tree::Meta, PRUNED_KEY)? else {
            return Ok(0);
        };
        let bytes: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| JournalError::BadHeader {
                path: self.path.clone(),
                reason: format!("pruned-through mark is {} bytes, not 8", bytes.len()),
            })?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Whether `seq` lies inside a rolled-back gap (strictly between a
    /// marker's target and the marker): then `Some((marker, target))`.
    /// Only the record at or after `seq` needs reading.
    pub(crate) fn rolled_back_at(&self, seq: u64) -> Result<Option<(u64, u64)>, JournalError> {
        let at_or_after = self
            .store
            .range_from(Tree::Records, &seq.to_be_bytes())
            .next()
            .transpose()?;
        let Some((key, value)) = at_or_after else {
            return Ok(None);
        };
        let marker = self.seq_of(&key)?;
        match self.extent(marker, &value)?.0 {
            RecordKind::Rollback { target } if target < seq && seq < marker => {
                Ok(Some((marker, target)))
            }
            _ => Ok(None),
        }
    }
}
