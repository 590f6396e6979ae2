//! Rebuilding state from the journal.

use solostate_commands::{Event, State, Txn, Write, undo_writes};

use crate::codec::CodecError;
use crate::hash;
use crate::journal::{Entry, Journal, JournalError, Step};

/// Progress is reported each time replay crosses a multiple of this seq.
const PROGRESS_EVERY: u64 = 65_536;

/// Replays of at least this many seqs read and decode on a second thread
/// while this one applies: decoding is about a third of a replay's time,
/// and applying (map inserts) the rest, so overlapping them is most of
/// what two cores can gain. Shorter replays are not worth a thread.
const PIPELINE_FROM: u64 = 16_384;

/// Decoded entries handed from the reading thread to the applying one at
/// a time, and how many such chunks may wait.
const CHUNK: usize = 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

/// Why the journal could not be replayed into a state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Reading the journal failed (corruption, a gap, an event that does not
    /// decode, a pruned start, or I/O); the error names the seq and the path.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A journaled event was rejected or panicked when re-applied. Every
    /// journaled event applied once, so `apply` is not deterministic or its
    /// rules changed since the event was written.
    #[error("journaled event at seq {seq} did not re-apply: {message}")]
    Apply {
        /// The event's sequence number.
        seq: u64,
        /// The rejection or panic message.
        message: String,
    },
    /// The range ends inside a rolled-back gap: no state at that seq is
    /// part of history any more.
    #[error("seq {seq} was rolled back (to seq {target}) by the marker at seq {marker}")]
    RolledBack {
        /// The seq asked for.
        seq: u64,
        /// The marker whose gap holds it.
        marker: u64,
        /// The marker's target.
        target: u64,
    },
    /// The range ends after the journal's last seq.
    #[error("seq {seq} is after the journal's last seq, {last}")]
    AfterEnd {
        /// The seq asked for.
        seq: u64,
        /// The journal's last seq.
        last: u64,
    },
    /// The determinism guard tripped: the state replayed up to `seq` does
    /// not hash to what the engine recorded when it was live at that seq.
    /// `apply` gave a different state from the same events: it is not
    /// deterministic, or this build's rules differ from the build that
    /// wrote the journal. `seq` is the first checked seq that differs;
    /// the divergence began after the previous checked seq.
    #[error(
        "replay diverged: the state at seq {seq} hashes to {actual:#018x}, but the journal recorded {expected:#018x} (apply is not deterministic, or its rules changed since the journal was written)"
    )]
    Diverged {
        /// The first checked seq whose hashes differ.
        seq: u64,
        /// The hash recorded while the engine was live.
        expected: u64,
        /// The hash of the replayed state.
        actual: u64,
    },
    /// The replayed state could not be hashed for the determinism check:
    /// an entry does not encode.
    #[error("state at seq {seq} could not be hashed: {source}")]
    StateHash {
        /// The checked seq.
        seq: u64,
        /// The encoding error.
        source: CodecError,
    },
    /// The range starts more than one seq after it ends.
    #[error("replay range {from}..={through} runs backwards")]
    BackwardRange {
        /// The first seq asked for.
        from: u64,
        /// The last seq asked for.
        through: u64,
    },
    /// The checkpoint a caller meant to replay onto could not be loaded.
    #[error("checkpoint could not be loaded: {message}")]
    Checkpoint {
        /// What went wrong.
        message: String,
    },
}

/// Replays every journaled event onto an empty `state`: [`replay_range`]
/// from 1 to the end.
///
/// # Errors
///
/// As [`replay_range`].
pub fn replay<E: Event>(
    journal: &Journal,
    state: &mut State<E>,
    progress: impl FnMut(u64),
) -> Result<u64, ReplayError> {
    replay_range::<E>(journal, state, 1, u64::MAX, progress)
}

/// Applies the journaled events with `from <= seq <= through` onto
/// `state`, which must be the state at `from - 1`, in order, and returns
/// the last seq reached (an event's or a rollback marker's; `from - 1` when
/// the range holds nothing). `through == u64::MAX` means to the end.
///
/// Rollback markers apply nothing: the events they undid were moved to the
/// archive, so this replay never applied them, and the state at a marker
/// is already the state at its target. `progress` is called with the seq
/// reached each time it crosses a multiple of 65,536 and once at the end,
/// so a CLI can draw a progress bar.
///
/// The determinism guard: at every seq in the range with a recorded state
/// hash ([`Journal::record_state_hash`]), the state's hash is compared
/// with it. The hash is taken in full once, from `state` before the first
/// event (only when the range holds a check), and then follows each
/// event's write set ([`hash::StateHasher::fold_writes`]), so a check
/// costs O(1) and a journal with a hash at every batch replays at the
/// speed of one without.
///
/// # Errors
///
/// Before anything is applied: [`ReplayError::BackwardRange`] when `from >
/// through + 1` (`from == through + 1` is the empty range, `Ok(through)`),
/// [`ReplayError::AfterEnd`] when `through` is after the journal's last
/// seq, [`ReplayError::RolledBack`] when `through` lies inside a
/// rolled-back gap. While replaying: [`ReplayError::Journal`] (including
/// [`JournalError::Pruned`] for a `from` before the retained prefix) and
/// [`ReplayError::Apply`], naming the seq where replay stopped, `state`
/// then holding the events before it; [`ReplayError::Diverged`] (and
/// [`ReplayError::StateHash`]) naming the checked seq, `state` then
/// holding the events through it.
pub fn replay_range<E: Event>(
    journal: &Journal,
    state: &mut State<E>,
    from: u64,
    through: u64,
    progress: impl FnMut(u64),
) -> Result<u64, ReplayError> {
    replay_range_hashed::<E>(journal, state, None, from, through, progress).map(|(last, _)| last)
}

/// [`replay_range`], following the state's hash from `hasher`, the hash of
/// `state` as given (a loaded checkpoint's [`CheckpointInfo::hasher`]),
/// and returning it with the last seq: for an opening engine, whose
/// determinism guard then starts from it instead of hashing the whole
/// state again. With `hasher` `None`, the hash is taken in full only if
/// the range holds a check (and returned only then).
///
/// [`CheckpointInfo::hasher`]: crate::checkpoint::CheckpointInfo::hasher
///
/// # Errors
///
/// As [`replay_range`].
pub fn replay_range_hashed<E: Event>(
    journal: &Journal,
    state: &mut State<E>,
    hasher: Option<hash::StateHasher>,
    from: u64,
    through: u64,
    mut progress: impl FnMut(u64),
) -> Result<(u64, Option<hash::StateHasher>), ReplayError> {
    let from = from.max(1);
    if through != u64::MAX {
        if from > through + 1 {
            return Err(ReplayError::BackwardRange { from, through });
        }
        if from == through + 1 {
            progress(through);
            return Ok((through, hasher));
        }
        let last = journal.last_seq::<E>()?;
        if through > last {
            return Err(ReplayError::AfterEnd { seq: through, last });
        }
        if let Some((marker, target)) = journal.rolled_back_at(through)? {
            return Err(ReplayError::RolledBack {
                seq: through,
                marker,
                target,
            });
        }
    }
    let mut last = from - 1;
    let end = if through == u64::MAX {
        journal.last_seq::<E>()?
    } else {
        through
    };
    let mut checks = journal.state_hashes(from..=end)?.into_iter().peekable();
    let mut hasher = match (hasher, checks.peek()) {
        (Some(hasher), _) => Some(hasher),
        (None, Some(_)) => {
            Some(
                hash::hasher_of::<E>(&*state).map_err(|source| ReplayError::StateHash {
                    seq: from - 1,
                    source,
                })?,
            )
        }
        (None, None) => None,
    };
    // One write-set buffer (and one encoding buffer) for the whole replay:
    // no allocation per event.
    let mut writes = Vec::new();
    let mut buf = Vec::new();
    let mut apply = |entry: Entry<E>| -> Result<bool, ReplayError> {
        if entry.seq > through {
            return Ok(false);
        }
        apply_step(&entry, state, &mut writes)?;
        if let Some(hasher) = &mut hasher {
            hasher
                .fold_writes(&*state, &writes, &mut buf)
                .map_err(|source| ReplayError::StateHash {
                    seq: entry.seq,
                    source,
                })?;
        }
        writes.clear();
        // A check whose seq the timeline skips cannot be reached; pass it.
        while let Some(&(seq, expected)) = checks.peek()
            && seq <= entry.seq
        {
            checks.next();
            if seq == entry.seq
                && let Some(hasher) = &hasher
            {
                check(hasher, seq, expected)?;
            }
        }
        if entry.seq / PROGRESS_EVERY > last / PROGRESS_EVERY {
            progress(entry.seq);
        }
        last = entry.seq;
        Ok(true)
    };
    if end.saturating_sub(from) < PIPELINE_FROM {
        for entry in journal.read_from::<E>(from) {
            if !apply(entry?)? {
                break;
            }
        }
    } else {
        pipelined(journal, from, through, apply)?;
    }
    progress(last);
    Ok((last, hasher))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_guard;

/// Applies one journaled step: an event is applied (a rejection or panic
/// is an error naming the seq, and its writes are undone, so `state` holds
/// the steps before it); a rollback marker changes nothing, since the
/// events it undid are no longer in the journal's main tree. `writes` is
/// the write-set buffer, reused across steps: empty when a step starts,
/// and holding an applied event's write set when it returns (the caller
/// folds it into the state hash, then clears it).
fn apply_step<E: Event>(
    entry: &Entry<E>,
    state: &mut State<E>,
    writes: &mut Vec<Write<E::Key, E::Value>>,
) -> Result<(), ReplayError> {
    let Step::Event(event) = &entry.step else {
        return Ok(());
    };
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        event.apply(&mut Txn::new(state, writes))
    }));
    let message = match applied {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(reason)) => reason.to_string(),
        Err(_) => "apply panicked".to_owned(),
    };
    // Replay stops here either way; a panic while undoing only leaves
    // `state` part-restored, which the error's seq already says is wrong.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| undo_writes(state, writes)));
    writes.clear();
    Err(ReplayError::Apply {
        seq: entry.seq,
        message,
    })
}

/// The determinism guard's check of the state at `seq`, whose hash
/// `hasher` has followed.
fn check(hasher: &hash::StateHasher, seq: u64, expected: u64) -> Result<(), ReplayError> {
    let actual = hasher.finish();
    if actual != expected {
        return Err(ReplayError::Diverged {
            seq,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Reads and decodes the journal from `from` on a scoped thread, in chunks
/// of [`CHUNK`] entries, and hands each entry in order to `apply` on this
/// thread until it returns `false` or fails. A read error arrives in order,
/// after every entry before it. When `apply` stops, the reader stops at its
/// next send.
fn pipelined<E: Event>(
    journal: &Journal,
    from: u64,
    through: u64,
    mut apply: impl FnMut(Entry<E>) -> Result<bool, ReplayError>,
) -> Result<(), ReplayError> {
    std::thread::scope(|scope| {
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<Vec<Result<Entry<E>, JournalError>>>(CHUNKS_IN_FLIGHT);
        scope.spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            for entry in journal.read_from::<E>(from) {
                let stop = entry.as_ref().map_or(true, |entry| entry.seq >= through);
                chunk.push(entry);
                if stop || chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.send(full).is_err() || stop {
                        return; // the applier stopped, or this was the end
                    }
                }
            }
            // Nothing else to send; a failed send means the applier stopped.
            let _ = tx.send(chunk);
        });
        for chunk in rx {
            for entry in chunk {
                if !apply(entry?)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    })
}
