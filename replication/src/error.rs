//! The log store's own error, and how it maps into openraft's
//! [`StorageError`].

use std::path::PathBuf;

use openraft::{ErrorSubject, ErrorVerb, StorageError, StorageIOError};

/// Why the Raft log store failed. Each variant names where: the sled tree
/// and key of a bad value, or the path of a file that did not sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogStoreError {
    /// sled itself failed (I/O, or its own corruption check).
    #[error("sled failed on tree {tree}: {source}")]
    Sled {
        /// The tree the operation was on.
        tree: &'static str,
        /// sled's error.
        source: sled::Error,
    },
    /// An `fsync`/`fdatasync` of one of sled's files or of the directory
    /// failed: the data cannot be called durable.
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
