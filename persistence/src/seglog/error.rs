//! The segment log's error type: one enum for every operation, each
//! variant naming the path (and offset) it is about, independent of the
//! journal's errors so that the journal maps it to its own.

use std::io;
use std::path::{Path, PathBuf};

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegError {
    /// Another `SegLog` (in this process or another) holds the directory.
    #[error("segment log {} is already open", path.display())]
    AlreadyOpen {
        /// The log's directory.
        path: PathBuf,
    },
    /// The operating system failed a read, write, sync, create or delete;
    /// `source` keeps its kind (`StorageFull` stays `StorageFull`).
    #[error("segment log i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A frame or header that does not verify anywhere but the torn tail
    /// of the last segment: damage, never skipped.
    #[error("segment {} is corrupt at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Where the bad frame or header starts.
        offset: u64,
        /// What did not verify.
        reason: String,
    },
    /// Open without create found no segment in the directory.
    #[error("no segment log in {}", path.display())]
    NotFound {
        /// The directory.
        path: PathBuf,
    },
    /// A write or sync failed earlier in a way that may have lost data
    /// (a failed `fdatasync`, or a failed write that could not be cut
    /// back): further writes and syncs are refused until reopened.
    #[error("segment log {} is poisoned by an earlier failed write or sync", path.display())]
    Poisoned {
        /// The log's directory.
        path: PathBuf,
    },
    /// A batch whose frame payload exceeds what a frame can carry.
    #[error("a write batch of {bytes} bytes exceeds the segment log's frame limit of {limit} bytes in {}", path.display())]
    TooLarge {
        /// The log's directory.
        path: PathBuf,
        /// The batch's payload bytes.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
}

/// Maps an I/O error to [`SegError::Io`] on `path`.
pub(super) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SegError + '_ {
    move |source| SegError::Io {
        path: path.to_path_buf(),
        source,
    }
}
