//! [`BackupError`], the one error of [`Engine::backup`](crate::Engine::backup).

use solostate_persistence::backup::BackupWriteError;

/// Why [`Engine::backup`](crate::Engine::backup) did not leave a backup.
/// Whatever the reason, the destination holds no backup and is as it was
/// (missing, or the empty directory it was), and the engine keeps serving
/// (unless it had already stopped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The engine is in memory ([`Builder::path`](crate::Builder::path)
    /// was not set): it has no schema and no journal format to give a
    /// copy, so there is nothing an engine could open. Read its snapshot
    /// instead.
    #[error("cannot back up an in-memory engine: it has no directory, schema or journal to copy")]
    InMemory,
    /// The engine stopped after a journal failure; its state after the
    /// failure is not known to be durable, so no backup is taken.
    #[error("cannot back up: the engine stopped after a journal failure: {message}")]
    Stopped {
        /// The journal failure, with the seqs and the path.
        message: String,
    },
    /// The engine's own journal could not be flushed through the backup's
    /// seq (so the source might lose a state the backup holds), or its
    /// schema could not be read.
    #[error("cannot back up at seq {seq}: the engine's journal failed: {message}")]
    Source {
        /// The backup's seq.
        seq: u64,
        /// The journal's error, with its path.
        message: String,
    },
    /// Writing the copy failed, or its destination is not new or empty
    /// ([`BackupWriteError::DestinationInUse`]); the error names the path.
    #[error(transparent)]
    Write(#[from] BackupWriteError),
    /// The engine no longer accepts commands.
    #[error("engine closed: it no longer accepts commands")]
    Closed,
}
