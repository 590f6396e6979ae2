//! [`JournalError`]: why a journal operation failed, in one enum so that
//! every submodule reports failures the same way (naming the path, and the
//! seq of a record).

use std::path::PathBuf;

use super::rollback::RollbackRefusal;
use crate::codec::CodecError;

/// Why a journal operation failed. Every variant names the journal's path,
/// and those about a record name its sequence number.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Another process (or another handle in this one) has the journal
    /// open: both backends hold an exclusive lock on their directory.
    #[error("journal {path} is already open by another process or handle")]
    AlreadyOpen {
        /// The journal directory.
        path: PathBuf,
    },
    /// [`Journal::open_existing`](super::Journal::open_existing) found no journal in the directory.
    #[error("no journal at {path}")]
    NotFound {
        /// The directory that was expected to hold a journal.
        path: PathBuf,
    },
    /// The journal was written for another event type or schema.
    #[error(
        "journal {path} is incompatible: it was written for schema {found:?}, and this engine's schema is {expected:?} (the data is not damaged)"
    )]
    SchemaMismatch {
        /// The journal directory.
        path: PathBuf,
        /// The schema in the journal's header.
        found: String,
        /// The schema this engine uses.
        expected: String,
    },
    /// The journal holds records of an older schema (named by its header
    /// or its epochs, [`Journal::epochs`](super::Journal::epochs)) that no
    /// registered upcaster reads: incompatible, not damaged. Register one
    /// for `schema` (`Builder::upcast_from` in the engine).
    #[error(
        "journal {path} holds records of schema {schema:?} (through seq {seq} or at it), and nothing reads them as this engine's schema {current:?}: register an upcaster from {schema:?} (the data is not damaged)"
    )]
    NoUpcaster {
        /// The journal directory.
        path: PathBuf,
        /// A seq written under `schema`.
        seq: u64,
        /// The older schema.
        schema: String,
        /// The schema of the journal's new records.
        current: String,
    },
    /// The journal was written in a record format this build does not
    /// read (its header says so): incompatible, not damaged. A newer build
    /// wrote it, or an older one this build no longer reads.
    #[error(
        "journal {path} is incompatible with this build: it was written in record format version {found}, and this build reads version {expected} (the data is not damaged)"
    )]
    UnsupportedFormat {
        /// The journal directory.
        path: PathBuf,
        /// The format version in the journal's header.
        found: u8,
        /// The format version this build reads.
        expected: u8,
    },
    /// The journal's header (or its pruned-through or resumed-after mark)
    /// is damaged: its bytes are not any header this or another build
    /// writes, or sled's log holds data but no header at all (sled lost
    /// the journal).
    #[error("journal {path} has a damaged header: {reason}")]
    BadHeader {
        /// The journal directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// sled panicked inside its own code while opening or reading the
    /// journal: what sled 0.34.7's recovery does on some damaged files
    /// (seen after a power cut: "tried to serialize Uninitialized"). The
    /// panic was caught, so nothing else in the process is affected; the
    /// journal's files are most likely damaged.
    #[error(
        "journal {path}: sled panicked while {during} (its files are probably damaged): {message}"
    )]
    SledPanicked {
        /// The journal directory.
        path: PathBuf,
        /// What the journal was doing ("opening the database", ...).
        during: &'static str,
        /// The panic's message.
        message: String,
    },
    /// A record failed to verify or decode. The message says whether it
    /// is damaged (its bytes changed: [`JournalError::is_incompatible`]
    /// is false) or incompatible (intact, but in a format version, record
    /// kind or event encoding this build or this event type cannot read).
    #[error(
        "journal {path}: record at seq {seq} {}: {source}",
        record_verdict(source)
    )]
    Corrupt {
        /// The journal directory.
        path: PathBuf,
        /// The first sequence number of the bad record.
        seq: u64,
        /// What the codec found.
        source: CodecError,
    },
    /// Records do not follow each other: events are missing between them.
    #[error("journal {path}: expected a record at seq {expected}, found one at seq {found}")]
    Gap {
        /// The journal directory.
        path: PathBuf,
        /// The seq that should come next.
        expected: u64,
        /// The seq of the record found instead.
        found: u64,
    },
    /// A read started before the first retained seq: the records there
    /// were pruned behind a checkpoint.
    #[error("journal {path}: seq {seq} was pruned; the first retained seq is {first}")]
    Pruned {
        /// The journal directory.
        path: PathBuf,
        /// The seq asked for.
        seq: u64,
        /// The first seq still in the journal.
        first: u64,
    },
    /// A rollback was refused before anything was written.
    #[error("journal {path}: cannot roll back to seq {target}: {reason}")]
    InvalidRollback {
        /// The journal directory.
        path: PathBuf,
        /// The seq asked to roll back to.
        target: u64,
        /// Why not.
        reason: RollbackRefusal,
    },
    /// A rollback was about to move a record to the archive under a key
    /// that already holds one. Rollbacks never reuse seqs, but recovering
    /// to a prefix ([`Journal::quarantine_from`](super::Journal::quarantine_from)) does, so a rolled-back
    /// seq can come round again. Nothing was written.
    #[error("journal {path}: the archive already holds a record at seq {seq}")]
    Collision {
        /// The journal directory.
        path: PathBuf,
        /// The colliding record's first seq.
        seq: u64,
    },
    /// A record's key is not an 8-byte sequence number.
    #[error("journal {path}: record key of {len} bytes is not a sequence number")]
    BadKey {
        /// The journal directory.
        path: PathBuf,
        /// The key's length.
        len: usize,
    },
    /// sled reported an I/O or storage error.
    #[error("journal {path}: storage error: {source}")]
    Storage {
        /// The journal directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// The segment log failed to read or write one of its files (the
    /// error kind is the operating system's: a full disk is
    /// [`std::io::ErrorKind::StorageFull`]), or refused a write because an
    /// earlier write or sync failed and its files may no longer be what
    /// it wrote. Also a write that a fault plan failed, on either backend.
    #[error("journal {path}: i/o error: {source}")]
    Io {
        /// The file or directory, or the journal directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A segment file of the segment log is damaged where no torn write
    /// can be (a frame that does not verify before the last segment's
    /// end, or a bad segment header): its bytes changed after they were
    /// synced. Nothing was cut or skipped.
    #[error("journal segment {path} is damaged at offset {offset}: {reason}")]
    BadSegment {
        /// The segment file.
        path: PathBuf,
        /// Where in it the bad frame or header starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A file or directory of the journal could not be made durable
    /// (`fdatasync` or a directory `fsync` failed, or the journal's flush
    /// thread stopped). What was written since the last good flush may or
    /// may not be on disk; after a failed `fsync` the kernel may also have
    /// dropped the dirty pages, so nothing written since may be trusted.
    #[error("journal: could not sync {path}: {source}")]
    Sync {
        /// The file or directory that failed to sync (the journal
        /// directory when the flush thread stopped).
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl JournalError {
    /// The kind of the I/O error underneath, if this is one: for example
    /// [`std::io::ErrorKind::StorageFull`] for a full disk. A caller that
    /// reports the failure can name its cause without parsing messages.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            JournalError::Storage {
                source: sled::Error::Io(error),
                ..
            }
            | JournalError::Io { source: error, .. }
            | JournalError::Sync { source: error, .. } => Some(error.kind()),
            _ => None,
        }
    }
}

/// How a record error reads: damaged, incompatible, or not written.
fn record_verdict(source: &CodecError) -> &'static str {
    match source {
        CodecError::Encode { .. } => "could not be written",
        source if codec_incompatible(source) => "is incompatible with this build or event type",
        _ => "is damaged",
    }
}

/// Whether a codec error means intact bytes this build or event type
/// cannot read, rather than bytes that changed: an unknown format version
/// or record kind, or a payload that passed its checksum and still does
/// not decode as the event type.
pub(super) fn codec_incompatible(source: &CodecError) -> bool {
    matches!(
        source,
        CodecError::UnsupportedVersion { .. }
            | CodecError::UnknownKind { .. }
            | CodecError::Decode { .. }
    )
}
