//! [`CliError`]: why a command could not run (exit code 1), and
//! [`Damage`]: what a command found wrong with a directory (exit code 2).
//! They are kept apart because an operator acts on them differently: an
//! error is fixed by running the tool differently (stop the engine, pass
//! the event type, point it at the right path), damage by repairing or
//! restoring the data.

use std::fmt;
use std::path::PathBuf;

use solostate::persistence::checkpoint::CheckpointError;
use solostate::persistence::journal::JournalError;
use solostate::persistence::recovery::ReplayError;

/// Why a command could not run. Every variant names the path it is
/// about, so the message alone says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// An engine (or another tool) holds the journal's lock: reading a
    /// journal while an engine writes it could report damage that is only
    /// a write in progress, so the tool refuses, as a second engine would.
    #[error(
        "{path} is open in a running engine (or another tool): its journal is locked; stop the engine first, or run the tool on a copy of the directory"
    )]
    Locked {
        /// The engine's directory.
        path: PathBuf,
    },
    /// The directory holds no journal.
    #[error("{path} is not a solostate directory: there is no journal in {journal}")]
    NotFound {
        /// The directory given.
        path: PathBuf,
        /// Where its journal was looked for.
        journal: PathBuf,
    },
    /// The journal is on sled, which has no read-only open: opening it
    /// lets sled write its own files as it recovers them. The tool changes
    /// nothing without an explicit flag, so it asks for one.
    #[error(
        "{path} is a sled journal, and sled cannot open a journal without writing to its files; pass --allow-sled-writes to open it anyway (or run on a copy)"
    )]
    SledNeedsConsent {
        /// The journal directory.
        path: PathBuf,
    },
    /// The command decodes events, and this binary was not told their
    /// type.
    #[error(
        "{command} needs the event type: pass --types (string-u64, string-string, u64-u64, u64-string or bank), or call solostate_cli::run::<YourEvent>() from your own binary"
    )]
    NeedsType {
        /// The command.
        command: &'static str,
    },
    /// A seq range or seq that the journal does not hold.
    #[error("{path}: {reason}")]
    BadSeq {
        /// The journal directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The journal could not be read, for a reason other than damage
    /// (I/O, another schema or format, events of another type).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A checkpoint could not be read, for a reason other than damage.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Replaying the journal failed for a reason other than damage.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Opening the engine for a rollback failed.
    #[error("opening the engine to roll back: {0}")]
    EngineOpen(#[from] solostate::OpenError),
    /// The engine refused or failed the rollback.
    #[error("rolling back: {0}")]
    Rollback(#[from] solostate::RollbackError),
    /// The engine failed while shutting down after the rollback.
    #[error("shutting the engine down after the rollback: {0}")]
    Shutdown(#[from] solostate::ShutdownError),
    /// Writing a backup failed, or its destination is in use (the
    /// error names the path).
    #[error(transparent)]
    Backup(#[from] solostate::persistence::backup::BackupWriteError),
    /// A quarantine restore was refused or failed (the error names the
    /// journal, the quarantine and the seq).
    #[error(transparent)]
    Restore(#[from] solostate::persistence::journal::RestoreError),
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// One thing found wrong with a directory, named by the path and, when it
/// is about a record or a checkpoint, the seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The damaged file or directory.
    pub path: PathBuf,
    /// The seq of the damaged record or checkpoint, or of the first seq a
    /// damaged stretch makes unreadable, when one is known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "damaged: {}", self.path.display())?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// A command's failure: damage found, or an error that kept it from
/// running.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Exit code 2.
    Damage(Damage),
    /// Exit code 1.
    Error(CliError),
}

impl<T: Into<CliError>> From<T> for Failure {
    fn from(error: T) -> Self {
        Failure::Error(error.into())
    }
}

/// A journal error as a failure: damage when its bytes changed (naming
/// the seq when known), an error otherwise.
pub(crate) fn journal_failure(error: JournalError, journal: &std::path::Path) -> Failure {
    match (error.damage(), &error) {
        (Some(seq), JournalError::BadSegment { path, .. }) => Failure::Damage(Damage {
            path: path.clone(),
            seq,
            what: error.to_string(),
        }),
        (Some(seq), _) => Failure::Damage(Damage {
            path: journal.to_path_buf(),
            seq,
            what: error.to_string(),
        }),
        (None, _) => Failure::Error(error.into()),
    }
}

/// A checkpoint error as a failure: damage unless it is incompatible or
/// an I/O error.
pub(crate) fn checkpoint_damage(error: &CheckpointError) -> Option<Damage> {
    match error {
        CheckpointError::Corrupt { path, seq, .. } => Some(Damage {
            path: path.clone(),
            seq: Some(*seq),
            what: error.to_string(),
        }),
        _ => None,
    }
}

/// A replay error as a failure: damage for a damaged journal, a
/// divergence from a recorded state hash or an event that no longer
/// applies (both say the journal and this build disagree about history),
/// an error otherwise.
pub(crate) fn replay_failure(error: ReplayError, journal: &std::path::Path) -> Failure {
    match error {
        ReplayError::Journal(error) => journal_failure(error, journal),
        ReplayError::Diverged { seq, .. } | ReplayError::Apply { seq, .. } => {
            Failure::Damage(Damage {
                path: journal.to_path_buf(),
                seq: Some(seq),
                what: error.to_string(),
            })
        }
        other => Failure::Error(other.into()),
    }
}
