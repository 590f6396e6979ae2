//! Opening a persistent engine: the newest checkpoint that verifies, plus
//! the journal after it.
//!
//! The rules, in the order they apply:
//!
//! 1. Opening never panics on what it finds: sled's own panics on damaged
//!    files are caught and become errors naming the path.
//! 2. A checkpoint is never deleted because the journal disagrees with it.
//!    A journal that ends before the newest checkpoint that verifies fails
//!    the open ([`OpenError::JournalBehind`]) unless the caller chose
//!    [`DamagedJournal::MoveAside`]; so does a journal that cannot be
//!    opened or whose end cannot be read, when a checkpoint verifies.
//! 3. Whatever opening decides on its own is in [`Recovery`].

use std::path::Path;
use std::sync::Arc;

use solostate_commands::{Event, State};
use solostate_persistence::aside;
use solostate_persistence::checkpoint::{CheckpointError, Checkpoints};
use solostate_persistence::hash::StateHasher;
use solostate_persistence::journal::{
    self, Backend as JournalBackend, Epoch, Journal, JournalError,
};
use solostate_persistence::recovery::{self, ReplayError};
use solostate_persistence::replay::Layout;
use solostate_persistence::sync::sync_dir;
use solostate_persistence::upcast::Upcasters;

use crate::error::OpenError;

mod classify;
mod report;

use classify::{
    checkpoint_cause, checkpoint_error, io_error, journal_cause, journal_error, journal_error_with,
    movable,
};
pub use report::{
    DamagedJournal, JournalUnusable, MovedJournal, Recovery, SetAsideCheckpoint, SetAsideWhy,
    SkippedCheckpoint,
};

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

/// The builder's recovery settings.
pub(crate) struct Options {
    /// sled's page cache, in bytes.
    pub(crate) cache_bytes: u64,
    /// [`Builder::journal_backend`](crate::Builder::journal_backend).
    pub(crate) backend: JournalBackend,
    /// [`Builder::recover_to_prefix`](crate::Builder::recover_to_prefix).
    pub(crate) recover_to_prefix: bool,
    /// [`Builder::on_damaged_journal`](crate::Builder::on_damaged_journal).
    pub(crate) on_damaged_journal: DamagedJournal,
    /// Whether the determinism guard is on: recovery then hands back the
    /// recovered state's hash, followed from the checkpoint's through the
    /// replay, so that the guard does not hash the whole state again.
    pub(crate) hash: bool,
}

/// A recovered engine's parts.
pub(crate) struct Opened<E: Event> {
    pub(crate) journal: Journal,
    pub(crate) checkpoints: Checkpoints,
    pub(crate) map: State<E>,
    pub(crate) report: Recovery,
    /// The hash of `map`, when [`Options::hash`] asked for it and the
    /// replay kept it (`None`: the caller hashes `map` itself).
    pub(crate) hasher: Option<StateHasher>,
}

/// Opens (or creates) the engine's directory and recovers its state.
/// Blocking; runs on a blocking thread.
pub(crate) fn open<E: Event>(
    root: &Path,
    schema: &str,
    upcasters: &Arc<Upcasters<E>>,
    options: &Options,
    mut progress: Option<Progress>,
) -> Result<Opened<E>, OpenError> {
    let layout = Layout::new(root);
    let mut report = Recovery::default();
    // The journal first: its lock is what says no other engine has this
    // directory, and until that is known nothing else is touched (opening
    // the checkpoints removes stray temporary files, which would be a
    // running engine's checkpoint in progress).
    let scanned = match scan::<E>(&layout.journal, schema, upcasters, options) {
        Err(error) if !movable(journal_cause(&error)) => return Err(journal_error(error)),
        scanned => scanned,
    };
    let mut checkpoints =
        Checkpoints::open(&layout.checkpoints, schema).map_err(checkpoint_error)?;
    checkpoints.accept_older(upcasters.schemas());
    // `Checkpoints::open` and `newest` log what they remove and pass over;
    // the report says it too.
    report.removed_temp_files = checkpoints.removed_at_open().to_vec();
    // Loaded whatever the journal says: it is what the journal is checked
    // against, and the fallback when the journal cannot be used.
    let newest = checkpoints
        .newest::<E>(u64::MAX)
        .map_err(checkpoint_error)?;
    let skipped = newest.skipped;
    let mut base = newest.found;

    let (journal, journal_last) = match scanned {
        Ok((journal, torn, last)) => {
            if let Some(cut) = journal.torn_tail() {
                tracing::warn!(
                    segment = %cut.segment.display(),
                    offset = cut.offset,
                    dropped_bytes = cut.dropped_bytes,
                    nonzero = cut.nonzero,
                    "cut the end of the journal's last segment: a write that never finished syncing (a crash or power cut in the middle of it), so never acknowledged under Durability::Always"
                );
                report.cut_segment_tail = Some(cut.clone());
            }
            if let Some(torn) = torn {
                tracing::warn!(
                    seq = torn.seq,
                    path = %layout.journal.display(),
                    reason = %torn.reason,
                    "removed a torn last journal record (a write cut short by a crash; never acknowledged under Durability::Always)"
                );
                report.torn_tail = Some(torn.seq);
            }
            (journal, last)
        }
        Err(error) => {
            let cause = journal_cause(&error);
            let Some((_, info)) = &base else {
                return Err(journal_error_with(
                    error,
                    "no checkpoint verifies, so there is no state to open from instead",
                ));
            };
            if options.on_damaged_journal != DamagedJournal::MoveAside {
                let advice = format!(
                    "the checkpoint at seq {} verifies: Builder::on_damaged_journal(DamagedJournal::MoveAside) opens from it and keeps this journal aside",
                    info.seq
                );
                return Err(journal_error_with(error, &advice));
            }
            let why = JournalUnusable::Unreadable {
                cause,
                message: error.to_string(),
            };
            let (journal, moved) =
                move_aside_and_resume(&layout, root, schema, options, info.seq, why)?;
            report.journal_moved_aside = Some(moved);
            (journal, info.seq)
        }
    };

    // A checkpoint is written only after the journal through its seq was
    // flushed, so one beyond the journal's end means the journal lost
    // flushed events. The checkpoint is kept whatever happens.
    let (journal, journal_last) = match &base {
        Some((_, info)) if info.seq > journal_last => {
            if options.on_damaged_journal != DamagedJournal::MoveAside {
                return Err(OpenError::JournalBehind {
                    path: layout.journal.clone(),
                    journal_last,
                    checkpoint: info.seq,
                });
            }
            drop(journal);
            let why = JournalUnusable::Behind { journal_last };
            let (journal, moved) =
                move_aside_and_resume(&layout, root, schema, options, info.seq, why)?;
            report.journal_moved_aside = Some(moved);
            (journal, info.seq)
        }
        _ => (journal, journal_last),
    };

    // Checkpoints after the journal's end did not verify (the newest that
    // did is at or before it by now). Their seqs are written anew from
    // here, so they must never load; set them aside, not delete them.
    let resume_from = journal_last;
    set_aside(
        &checkpoints,
        journal_last,
        "after-journal-end",
        SetAsideWhy::AfterJournalEnd { resume_from },
        &mut report,
    )?;
    // Likewise state hashes: the seqs after the end are written anew, and
    // must not be checked against events that are gone.
    report.removed_state_hashes = journal
        .remove_state_hashes_after(journal_last)
        .map_err(journal_error)?;
    if report.removed_state_hashes > 0 {
        tracing::warn!(
            count = report.removed_state_hashes,
            journal_last,
            "removed state hashes recorded for seqs after the journal's end"
        );
    }
    report.skipped_checkpoints = skipped.iter().map(skipped_checkpoint).collect();

    loop {
        // The base's map is kept (an O(1) clone) in case a quarantine
        // sends replay round again from the same checkpoint.
        let start = base
            .as_ref()
            .map(|(state, info)| (state.clone(), info.clone()));
        let (mut map, base_seq, hasher) = match start {
            Some((state, info)) => (state, Some(info.seq), Some(info.hasher)),
            None => (State::<E>::new(), None, Some(StateHasher::new())),
        };
        let hasher = hasher.filter(|_| options.hash);
        let from = base_seq.map_or(1, |seq| seq + 1);
        let mut report_progress = |seq| {
            tracing::info!(seq, last = journal_last, "replaying journal");
            if let Some(progress) = &mut progress {
                progress(ReplayProgress {
                    seq,
                    last: journal_last,
                });
            }
        };
        // A panic here is sled's on a damaged page (or, rarely, the event
        // type's own `Deserialize`; `apply`'s panics are caught inside).
        let replayed = journal::catch_sled(journal.path(), "replaying the journal", || {
            Ok(recovery::replay_range_hashed::<E>(
                &journal,
                &mut map,
                hasher.clone(),
                from,
                u64::MAX,
                &mut report_progress,
            ))
        })
        .map_err(journal_error)?;
        match replayed {
            Ok((last, hasher)) => {
                report.checkpoint = base_seq;
                report.last_seq = last.max(from - 1);
                report.replayed = report.last_seq + 1 - from;
                report.upcast = upcast_epochs(&journal, report.last_seq).map_err(journal_error)?;
                return Ok(Opened {
                    journal,
                    checkpoints,
                    map,
                    report,
                    hasher,
                });
            }
            Err(ReplayError::Journal(
                error @ JournalError::Corrupt {
                    seq: damaged_seq, ..
                },
            )) if error.damage().is_some() => {
                if !options.recover_to_prefix || report.quarantined_from.is_some() {
                    return Err(journal_error_with(
                        error,
                        "Builder::recover_to_prefix(true) resumes from the seq before it, keeping it and every record after it in the journal's quarantine tree",
                    ));
                }
                let seq = damaged_seq;
                let moved = journal.quarantine_from(seq).map_err(journal_error)?;
                tracing::error!(
                    seq,
                    records = moved,
                    path = %layout.journal.display(),
                    "RECOVERING TO A PREFIX: the journal record at this seq is damaged; it and every record after it were moved to the quarantine tree, and the engine resumes from the seq before it. Events from this seq on are NOT in the state."
                );
                report.quarantined_from = Some(seq);
                set_aside(
                    &checkpoints,
                    seq - 1,
                    "after-quarantine",
                    SetAsideWhy::AfterQuarantine { from: seq },
                    &mut report,
                )?;
                // The base checkpoint is before `seq` (replay started after
                // it), so it still holds; a checkpoint loaded after it
                // could only be one just set aside.
                base = base.filter(|(_, info)| info.seq < seq);
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
                    cause: crate::error::OpenCause::Other,
                });
            }
        }
    }
}

/// Opens the journal, removes a torn last record and reads its last seq,
/// with sled's panics caught (sled calls can panic on damaged files at
/// any of these steps).
fn scan<E: Event>(
    path: &Path,
    schema: &str,
    upcasters: &Arc<Upcasters<E>>,
    options: &Options,
) -> Result<(Journal, Option<journal::TornRecord>, u64), JournalError> {
    journal::catch_sled(path, "recovering the journal", || {
        let older: Vec<&str> = upcasters.schemas().collect();
        let mut journal =
            Journal::open_upgrading(path, schema, &older, options.cache_bytes, options.backend)?;
        journal.set_upcasters(Arc::clone(upcasters));
        let torn = journal.repair_tail()?;
        let last = journal.last_seq::<E>()?;
        Ok((journal, torn, last))
    })
}

/// The older schemas `journal` holds records of: its epochs, and its
/// header's schema through `last` when the switch to the engine's schema
/// is still to be written.
fn upcast_epochs(journal: &Journal, last: u64) -> Result<Vec<Epoch>, JournalError> {
    let mut epochs = journal.epochs();
    let header = journal.schema()?;
    if header != journal.current_schema() {
        epochs.push(Epoch {
            schema: header,
            through: last,
        });
    }
    Ok(epochs)
}

/// Moves the journal aside and starts a fresh one that continues after the
/// checkpoint at `checkpoint`; returns it and the report of the move.
fn move_aside_and_resume(
    layout: &Layout,
    root: &Path,
    schema: &str,
    options: &Options,
    checkpoint: u64,
    why: JournalUnusable,
) -> Result<(Journal, MovedJournal), OpenError> {
    let tag = match why {
        JournalUnusable::Behind { .. } => "behind-checkpoint",
        _ => "damaged",
    };
    let to = aside::move_aside(&layout.journal, tag).map_err(|error| {
        io_error(
            format!("cannot move the journal {} aside", layout.journal.display()),
            &error,
        )
    })?;
    let journal = Journal::open_with(
        &layout.journal,
        schema,
        options.cache_bytes,
        options.backend,
    )
    .map_err(journal_error)?;
    journal
        .resume_after(checkpoint, &to)
        .map_err(journal_error)?;
    // The fresh journal's name in the engine's directory.
    sync_dir(root).map_err(|error| {
        io_error(
            format!("cannot sync the directory {}", root.display()),
            &error,
        )
    })?;
    tracing::error!(
        from = %layout.journal.display(),
        to = %to.display(),
        checkpoint,
        ?why,
        "MOVED THE JOURNAL ASIDE: it could not be used; the engine resumes from the checkpoint, with a fresh journal. Events after the checkpoint are NOT in the state; they are in the journal moved aside."
    );
    let moved = MovedJournal {
        to,
        checkpoint,
        why,
    };
    Ok((journal, moved))
}

/// Sets aside the checkpoints after `seq` and reports them.
fn set_aside(
    checkpoints: &Checkpoints,
    seq: u64,
    tag: &str,
    why: SetAsideWhy,
    report: &mut Recovery,
) -> Result<(), OpenError> {
    for moved in checkpoints
        .set_aside_after(seq, tag)
        .map_err(checkpoint_error)?
    {
        tracing::warn!(
            seq = moved.seq,
            to = %moved.path.display(),
            ?why,
            "set a checkpoint aside: its seqs are written anew"
        );
        report.checkpoints_set_aside.push(SetAsideCheckpoint {
            seq: moved.seq,
            to: moved.path,
            why,
        });
    }
    Ok(())
}

/// The report of a checkpoint passed over.
fn skipped_checkpoint(error: &CheckpointError) -> SkippedCheckpoint {
    SkippedCheckpoint {
        seq: error.seq().unwrap_or(0),
        path: error.path().map(Path::to_path_buf).unwrap_or_default(),
        cause: checkpoint_cause(error),
        message: error.to_string(),
    }
}
