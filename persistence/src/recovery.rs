//! Rebuilding state from the journal.

use solostate_commands::{Event, State};

use crate::journal::{Journal, JournalError};

/// Why the journal could not be replayed into a state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Reading the journal failed (corruption, a gap, an event that does not
    /// decode, or I/O); the error names the seq and the path.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A journaled event was rejected or panicked when re-applied. Every
    /// journaled event applied once, so `apply` is not deterministic or its
    /// rules changed since the event was written.
    #[error("journaled event at seq {seq} did not re-apply: {message}")]
    Apply {
        /// The event's sequence number.
        seq: u64,
        /// The rejection or panic message.
        message: String,
    },
}

/// Replays every journaled event onto `state`, in order, and returns the
/// last seq applied (0 for an empty journal). `progress` is called with
/// the seq reached every 65,536 events and once at the end, so a CLI can
/// draw a progress bar.
///
/// # Errors
///
/// [`ReplayError`], naming the seq where replay stopped.
pub fn replay<E: Event>(
    journal: &Journal,
    state: &mut State<E>,
    mut progress: impl FnMut(u64),
) -> Result<u64, ReplayError> {
    let mut last = 0;
    for entry in journal.read_from::<E>(1) {
        let entry = entry?;
        let applied =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.event.apply(state)));
        let message = match applied {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason.to_string()),
            Err(_) => Some("apply panicked".to_owned()),
        };
        if let Some(message) = message {
            return Err(ReplayError::Apply {
                seq: entry.seq,
                message,
            });
        }
        last = entry.seq;
        if last % 65_536 == 0 {
            progress(last);
        }
    }
    progress(last);
    Ok(last)
}
