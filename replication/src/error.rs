//! The log store's own error, and how it maps into openraft's
//! [`StorageError`].

use std::path::PathBuf;

use openraft::{ErrorSubject, ErrorVerb, StorageError, StorageIOError};
use solostate::persistence::seglog::SegError;

/// Why the Raft log store failed. Each variant names where: the tree
/// and key of a bad value, or the path of a file that did not sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogStoreError {
    /// The segment log failed: an I/O error (a failed sync among them,
    /// which poisons it), damage before its torn tail, a batch over its
    /// frame limit, or another handle holding the directory. The source
    /// names the file.
    #[error("the Raft log failed on tree {tree}: {source}")]
    Log {
        /// The tree the operation was on (`(open)` while opening).
        tree: &'static str,
        /// The segment log's error.
        source: SegError,
    },
    /// Creating or syncing the store's directory failed, or the thread a
    /// flush ran on did: the data cannot be called durable.
    #[error("sync of {path} failed: {source}")]
    Sync {
        /// The file or directory that did not sync.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stored value failed its crc or could not be decoded.
    #[error("corrupt value in tree {tree} at key {key}: {reason}")]
    Corrupt {
        /// The tree holding the value.
        tree: &'static str,
        /// The key, readable (`index 3`, `vote`).
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// A value could not be encoded (it is over the size limit).
    #[error("cannot encode value for tree {tree} at key {key}: {source}")]
    Encode {
        /// The tree it was meant for.
        tree: &'static str,
        /// The key, readable.
        key: String,
        /// bincode's error.
        source: bincode::error::EncodeError,
    },
}

impl LogStoreError {
    /// Wraps this error as openraft's [`StorageError`] on `subject` while
    /// doing `verb`. openraft treats every storage error as fatal and stops
    /// the node, which is right for these: each one means the disk or its
    /// data can no longer be trusted.
    pub fn into_storage(self, subject: ErrorSubject<u64>, verb: ErrorVerb) -> StorageError<u64> {
        StorageIOError::new(subject, verb, openraft::AnyError::new(&self)).into()
    }
}

/// Why a replica snapshot was refused or could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes are not a whole, undamaged snapshot: a bad header,
    /// version, crc, or a payload that does not decode.
    #[error("corrupt snapshot: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: String,
    },
    /// The entries decoded, but do not hash to the state hash the
    /// snapshot states: they are not the state that was written.
    #[error(
        "snapshot of seq {seq} states hash {stated:#018x}, but its entries hash to {computed:#018x}"
    )]
    HashMismatch {
        /// The seq the snapshot claims to hold.
        seq: u64,
        /// The hash it states.
        stated: u64,
        /// The hash of what it holds.
        computed: u64,
    },
    /// The snapshot's own meta names another log id than the one openraft
    /// is installing.
    #[error("snapshot holds log id {inside}, but was offered as {offered}")]
    WrongMeta {
        /// The log id inside the snapshot.
        inside: String,
        /// The log id openraft gave.
        offered: String,
    },
    /// An entry could not be encoded.
    #[error("cannot encode snapshot: {reason}")]
    Encode {
        /// bincode's or the hash's error.
        reason: String,
    },
}

/// Why a replica's state machine failed. openraft stops the node on any
/// of these (they mean the disk or the local engine can no longer be
/// trusted); rejected events are never errors but
/// [`Response::Rejected`](crate::Response::Rejected).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MachineError {
    /// The Raft store (which also keeps the machine's applied point).
    #[error(transparent)]
    Store(#[from] LogStoreError),
    /// A snapshot failed its checks or could not be built.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The local engine did not open.
    #[error("opening the replica's engine at {path} failed: {message}")]
    Open {
        /// The engine's directory.
        path: PathBuf,
        /// The engine's open error.
        message: String,
    },
    /// The local engine failed or stopped while applying committed
    /// entries (a journal write failed, or it was shut down).
    #[error("the replica's engine failed at log index {index}: {message}")]
    Engine {
        /// The log index being applied.
        index: u64,
        /// What the engine said.
        message: String,
    },
    /// At open, the local engine could not say which log entry its last
    /// event came from, so the machine does not know where to resume.
    #[error("reading the replica engine's last event (seq {seq}) failed: {message}")]
    Resume {
        /// The engine's last seq.
        seq: u64,
        /// The engine's error.
        message: String,
    },
    /// Writing the backup directory of an installed snapshot failed.
    #[error("writing the installed snapshot's engine directory failed: {message}")]
    Install {
        /// The backup writer's error, naming the path.
        message: String,
    },
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl MachineError {
    /// As openraft's [`StorageError`] on the state machine (or snapshot).
    pub(crate) fn into_storage(self, verb: ErrorVerb) -> StorageError<u64> {
        let subject = match &self {
            MachineError::Snapshot(_) | MachineError::Install { .. } => {
                ErrorSubject::Snapshot(None)
            }
            _ => ErrorSubject::StateMachine,
        };
        StorageIOError::new(subject, verb, openraft::AnyError::new(&self)).into()
    }
}
