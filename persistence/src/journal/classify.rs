//! Telling damage from incompatibility in journal errors, and keeping
//! sled's panics from reaching the caller.

use std::path::Path;

use super::JournalError;
use super::error::codec_incompatible;
use crate::codec::CodecError;

impl JournalError {
    /// Whether the journal is intact but cannot be read by this build or
    /// this event type (another schema, record format version, record
    /// kind, or an event encoding that does not decode), rather than
    /// damaged: then moving it aside or cutting it short would throw away
    /// good data, and the fix is the right build or type.
    pub fn is_incompatible(&self) -> bool {
        match self {
            JournalError::SchemaMismatch { .. }
            | JournalError::UnsupportedFormat { .. }
            | JournalError::NoUpcaster { .. } => true,
            JournalError::Corrupt { source, .. } => codec_incompatible(source),
            _ => false,
        }
    }

    /// Whether the journal's bytes are not what was written: a record
    /// that fails its checks (not an incompatible one), a damaged header,
    /// records that do not follow each other, a bad key, sled reporting
    /// corruption (or a "bug" in itself, which is how its recovery meets
    /// some damaged logs, or an "unsupported" `conf`: sled is pinned and
    /// the journal's configuration never changes, so a `conf` it refuses
    /// is a damaged one), or sled panicking on its own files. The seq is the
    /// damaged record's (for a gap, the first missing seq), when one is
    /// known.
    pub fn damage(&self) -> Option<Option<u64>> {
        match self {
            JournalError::Corrupt { seq, source, .. }
                if !codec_incompatible(source) && !matches!(source, CodecError::Encode { .. }) =>
            {
                Some(Some(*seq))
            }
            JournalError::Gap { expected, .. } => Some(Some(*expected)),
            JournalError::BadHeader { .. }
            | JournalError::BadKey { .. }
            | JournalError::BadSegment { .. }
            | JournalError::SledPanicked { .. }
            | JournalError::Storage {
                source:
                    sled::Error::Corruption { .. }
                    | sled::Error::ReportableBug(_)
                    | sled::Error::Unsupported(_),
                ..
            } => Some(None),
            _ => None,
        }
    }
}

/// Runs `f`, which calls into sled for the journal at `path` (through
/// [`Journal`](super::Journal)'s methods), and turns a panic inside it
/// into [`JournalError::SledPanicked`] naming the path, what was being
/// done and the panic's message. sled 0.34.7 panics in its
/// own recovery on some damaged files; a caller gets a typed error
/// instead, and can decide what to do with the directory.
///
/// Unwind safety: on a panic, everything `f` built is dropped during the
/// unwind and nothing of it is returned, so no half-built state is seen
/// again.
pub fn catch_sled<T>(
    path: &Path,
    during: &'static str,
    f: impl FnOnce() -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        Err(JournalError::SledPanicked {
            path: path.to_path_buf(),
            during,
            message: panic_message(panic.as_ref()),
        })
    })
}

/// A panic payload's message, when it is a string.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
