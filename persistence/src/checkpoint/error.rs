//! [`CheckpointError`]: why a checkpoint operation failed, and whether
//! that is damage or incompatibility.

use std::io;
use std::path::{Path, PathBuf};

use super::format;
use crate::codec::CodecError;

/// Why a checkpoint operation failed. Every variant names the file or
/// directory, and those about one checkpoint name its seq.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file system operation failed.
    #[error("checkpoint I/O error on {path}: {source}")]
    Io {
        /// The file or directory operated on.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file is damaged (its bytes are not what was written): it
    /// failed a check: truncated, bad magic, a checksum, count or state
    /// hash mismatch, trailing bytes, a seq disagreeing with its name.
    #[error("checkpoint {path} (seq {seq}) is damaged: {reason}")]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// The seq in the file name.
        seq: u64,
        /// Which check failed.
        reason: String,
    },
    /// The checkpoint is intact but was written for another event schema:
    /// the store was opened with the wrong type, a user error rather than
    /// damage (incompatible).
    #[error(
        "checkpoint {path} (seq {seq}) is incompatible: it was written for schema {found:?}, but this store's schema is {expected:?}"
    )]
    SchemaMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The seq in the file name.
        seq: u64,
        /// The schema in the file.
        found: String,
        /// The store's schema.
        expected: String,
    },
    /// The file was written in a layout this build does not know
    /// (incompatible, not damaged: its header verifies).
    #[error(
        "checkpoint {path} (seq {seq}) is incompatible: it has format version {found}, and this build reads version {}",
        format::VERSION
    )]
    UnsupportedVersion {
        /// The checkpoint file.
        path: PathBuf,
        /// The seq in the file name.
        seq: u64,
        /// The version found.
        found: u32,
    },
    /// The payload passed its checksum but does not decode as the store's
    /// key and value types: incompatible (the types changed), not damaged.
    #[error(
        "checkpoint {path} (seq {seq}) is incompatible: its checksums verify, but it does not decode as this store's types: {source}"
    )]
    Decode {
        /// The checkpoint file.
        path: PathBuf,
        /// The seq in the file name.
        seq: u64,
        /// The codec's description.
        source: CodecError,
    },
    /// An entry of the state could not be encoded.
    #[error("checkpoint {path} (seq {seq}) could not be written: {source}")]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The seq being checkpointed.
        seq: u64,
        /// The codec's description.
        source: CodecError,
    },
    /// [`Checkpoints::prune`](super::Checkpoints::prune) was asked to keep none: that would delete the
    /// checkpoint recovery needs, so it is refused.
    #[error("pruning checkpoints to keep 0 would delete them all; keep at least 1")]
    KeepZero,
}

impl CheckpointError {
    /// Whether the checkpoint is intact but cannot be read by this build
    /// or these types: another schema, format version, or an encoding of
    /// the key and value types that no longer decodes. The opposite of
    /// damage, which [`CheckpointError::Corrupt`] is.
    pub fn is_incompatible(&self) -> bool {
        matches!(
            self,
            CheckpointError::SchemaMismatch { .. }
                | CheckpointError::UnsupportedVersion { .. }
                | CheckpointError::Decode { .. }
        )
    }

    /// The checkpoint's seq, for the variants about one checkpoint (for
    /// [`CheckpointError::Io`], when its path is a checkpoint file's).
    pub fn seq(&self) -> Option<u64> {
        match self {
            CheckpointError::Corrupt { seq, .. }
            | CheckpointError::SchemaMismatch { seq, .. }
            | CheckpointError::UnsupportedVersion { seq, .. }
            | CheckpointError::Decode { seq, .. }
            | CheckpointError::Encode { seq, .. } => Some(*seq),
            // An I/O error on a checkpoint file: the seq in its name.
            CheckpointError::Io { path, .. } => path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(super::seq_of),
            CheckpointError::KeepZero => None,
        }
    }

    /// The file or directory the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            CheckpointError::Io { path, .. }
            | CheckpointError::Corrupt { path, .. }
            | CheckpointError::SchemaMismatch { path, .. }
            | CheckpointError::UnsupportedVersion { path, .. }
            | CheckpointError::Decode { path, .. }
            | CheckpointError::Encode { path, .. } => Some(path),
            CheckpointError::KeepZero => None,
        }
    }
}
