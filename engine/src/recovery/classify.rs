//! Turning the persistence crate's errors into [`OpenError`]s whose
//! [`OpenCause`] a caller can match.

use solostate_persistence::checkpoint::CheckpointError;
use solostate_persistence::journal::JournalError;

use crate::error::{OpenCause, OpenError};

/// What kind of failure a journal error is.
pub(super) fn journal_cause(error: &JournalError) -> OpenCause {
    if let JournalError::AlreadyOpen { .. } = error {
        return OpenCause::AlreadyOpen;
    }
    if error.is_incompatible() {
        return OpenCause::Incompatible;
    }
    if let Some(seq) = error.damage() {
        return OpenCause::Damaged { seq };
    }
    if let JournalError::Pruned { seq, .. } = error {
        // A start before the retained journal: the checkpoint it was
        // pruned behind is missing or does not verify.
        return OpenCause::Damaged { seq: Some(*seq) };
    }
    match error.io_kind() {
        Some(kind) => OpenCause::Io(kind),
        None => OpenCause::Other,
    }
}

/// What kind of failure a checkpoint error is.
pub(super) fn checkpoint_cause(error: &CheckpointError) -> OpenCause {
    match error {
        error if error.is_incompatible() => OpenCause::Incompatible,
        CheckpointError::Corrupt { seq, .. } => OpenCause::Damaged { seq: Some(*seq) },
        CheckpointError::Io { source, .. } => OpenCause::Io(source.kind()),
        _ => OpenCause::Other,
    }
}

/// Whether a journal that failed this way may be moved aside when asked:
/// its bytes are damaged (or sled fails reading them the way it does on
/// damaged files). Never an incompatible journal, a locked one, or an
/// I/O error of the machine (a full disk, a permission).
pub(super) fn movable(cause: OpenCause) -> bool {
    matches!(
        cause,
        OpenCause::Damaged { .. }
            | OpenCause::Io(std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData)
    )
}

pub(super) fn journal_error(error: JournalError) -> OpenError {
    OpenError::Journal {
        cause: journal_cause(&error),
        message: error.to_string(),
    }
}

/// A journal error with a sentence added that says what to do about it.
pub(super) fn journal_error_with(error: JournalError, advice: &str) -> OpenError {
    OpenError::Journal {
        cause: journal_cause(&error),
        message: format!("{error}; {advice}"),
    }
}

pub(super) fn checkpoint_error(error: CheckpointError) -> OpenError {
    OpenError::Checkpoint {
        cause: checkpoint_cause(&error),
        message: error.to_string(),
    }
}

/// An I/O error while moving something aside or syncing a directory.
pub(super) fn io_error(what: String, error: &std::io::Error) -> OpenError {
    OpenError::Journal {
        cause: OpenCause::Io(error.kind()),
        message: format!("{what}: {error}"),
    }
}
