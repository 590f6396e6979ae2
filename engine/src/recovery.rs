//! Opening a persistent engine: the newest checkpoint that verifies, plus
//! the journal after it.

use std::path::Path;

use solostate_commands::{Event, State};
use solostate_persistence::checkpoint::Checkpoints;
use solostate_persistence::journal::{Journal, JournalError};
use solostate_persistence::recovery::{self, ReplayError};
use solostate_persistence::replay::Layout;

use crate::error::OpenError;

/// What opening a persistent engine found and did, from
/// [`Engine::recovery`](crate::Engine::recovery). Everything in it was
/// also logged through `tracing` (warnings and errors for anything lost or
/// skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The seq of the checkpoint the state was loaded from, if any.
    pub checkpoint: Option<u64>,
    /// Journal steps replayed after the checkpoint.
    pub replayed: u64,
    /// The seq the engine resumed from.
    pub last_seq: u64,
    /// The first seq of a torn last record that was removed: a write cut
    /// short by a crash, never acknowledged under `Durability::Always`.
    pub torn_tail: Option<u64>,
    /// Checkpoints that failed to verify and were passed over, with why.
    pub skipped_checkpoints: Vec<String>,
    /// When [`Builder::recover_to_prefix`](crate::Builder::recover_to_prefix)
    /// was set and the journal had a corrupt record: its seq. Every record
    /// from it on was moved to the journal's quarantine tree, and the engine
    /// resumed from the seq before it.
    pub quarantined_from: Option<u64>,
}

/// How often replay progress is reported, and to whom.
pub(crate) type Progress = Box<dyn FnMut(ReplayProgress) + Send>;

/// Replay progress, for a progress bar: reported every 65,536 replayed
/// events and once at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayProgress {
    /// The seq replayed so far.
    pub seq: u64,
    /// The journal's last seq: where replay will end.
    pub last: u64,
}

/// A recovered engine's parts.
pub(crate) struct Opened<E: Event> {
    pub(crate) journal: Journal,
    pub(crate) checkpoints: Checkpoints,
    pub(crate) map: State<E>,
    pub(crate) report: Recovery,
}

/// Opens (or creates) the engine's directory and recovers its state.
/// Blocking; runs on a blocking thread.
pub(crate) fn open<E: Event>(
    root: &Path,
    schema: &str,
    cache_bytes: u64,
    recover_to_prefix: bool,
    mut progress: Option<Progress>,
) -> Result<Opened<E>, OpenError> {
    let layout = Layout::new(root);
    let journal = Journal::open(&layout.journal, schema, cache_bytes).map_err(journal_error)?;
    let mut report = Recovery::default();
    if let Some(torn) = journal.repair_tail().map_err(journal_error)? {
        tracing::warn!(
            seq = torn.seq,
            path = %layout.journal.display(),
            reason = %torn.reason,
            "removed a torn last journal record (a write cut short by a crash; never acknowledged under Durability::Always)"
        );
        report.torn_tail = Some(torn.seq);
    }
    let checkpoints = Checkpoints::open(&layout.checkpoints, schema).map_err(checkpoint_error)?;
    loop {
        let journal_last = journal.last_seq::<E>().map_err(journal_error)?;
        // A checkpoint is written only after the journal up to it is
        // flushed, so one beyond the journal's end means the journal lost
        // flushed data. Do not let it come back into use later.
        let beyond = checkpoints
            .remove_after(journal_last)
            .map_err(checkpoint_error)?;
        if !beyond.is_empty() {
            tracing::error!(
                ?beyond,
                journal_last,
                "deleted checkpoints beyond the journal's last seq"
            );
        }
        // Likewise state hashes: the seqs after the end are written anew,
        // and must not be checked against events that are gone.
        journal
            .remove_state_hashes_after(journal_last)
            .map_err(journal_error)?;
        let newest = checkpoints
            .newest::<E>(journal_last)
            .map_err(checkpoint_error)?;
        // Set, not extended: after a quarantine this loop runs again.
        report.skipped_checkpoints = newest.skipped.iter().map(ToString::to_string).collect();
        for skipped in &newest.skipped {
            tracing::warn!(%skipped, "passed over a checkpoint that does not verify");
        }
        let (mut map, base) = match newest.found {
            Some((state, info)) => (state, Some(info.seq)),
            None => (State::<E>::new(), None),
        };
        let from = base.map_or(1, |seq| seq + 1);
        let mut report_progress = |seq| {
            tracing::info!(seq, last = journal_last, "replaying journal");
            if let Some(progress) = &mut progress {
                progress(ReplayProgress {
                    seq,
                    last: journal_last,
                });
            }
        };
        match recovery::replay_range::<E>(&journal, &mut map, from, u64::MAX, &mut report_progress)
        {
            Ok(last) => {
                report.checkpoint = base;
                report.last_seq = last.max(from - 1);
                report.replayed = report.last_seq + 1 - from;
                return Ok(Opened {
                    journal,
                    checkpoints,
                    map,
                    report,
                });
            }
            Err(ReplayError::Journal(JournalError::Corrupt { seq, .. }))
                if recover_to_prefix && report.quarantined_from.is_none() =>
            {
                let moved = journal.quarantine_from(seq).map_err(journal_error)?;
                let removed = checkpoints
                    .remove_after(seq - 1)
                    .map_err(checkpoint_error)?;
                tracing::error!(
                    seq,
                    records = moved,
                    removed_checkpoints = ?removed,
                    path = %layout.journal.display(),
                    "RECOVERING TO A PREFIX: the journal record at this seq is corrupt; it and every record after it were moved to the quarantine tree, and the engine resumes from the seq before it. Events from this seq on are NOT in the state."
                );
                report.quarantined_from = Some(seq);
            }
            Err(ReplayError::Journal(error)) => return Err(journal_error(error)),
            Err(ReplayError::Apply { seq, message }) => {
                return Err(OpenError::Replay { seq, message });
            }
            Err(ReplayError::Diverged {
                seq,
                expected,
                actual,
            }) => {
                return Err(OpenError::Diverged {
                    seq,
                    expected,
                    actual,
                });
            }
            Err(other) => {
                return Err(OpenError::Journal {
                    message: other.to_string(),
                });
            }
        }
    }
}

fn journal_error(error: JournalError) -> OpenError {
    OpenError::Journal {
        message: error.to_string(),
    }
}

fn checkpoint_error(error: impl std::fmt::Display) -> OpenError {
    OpenError::Checkpoint {
        message: error.to_string(),
    }
}
