//! Replaying an engine's history, read-only: iterate its events over a seq
//! range and rebuild the state at any seq, for audits, debugging and
//! rebuilding derived data.
//!
//! ```no_run
//! use solostate_commands::StateEvent;
//! use solostate_persistence::hash::state_hash;
//! use solostate_persistence::replay::Replay;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let replay = Replay::<StateEvent<String, u64>>::open("data/accounts".as_ref(), "accounts-v1")?;
//! for entry in replay.steps(1..=100) {
//!     println!("{:?}", entry?);
//! }
//! let state = replay.state_at(100)?;
//! println!("state hash at seq 100: {:016x}", state_hash::<StateEvent<String, u64>>(&state)?);
//! # Ok(())
//! # }
//! ```

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use solostate_commands::{Event, State};

use crate::checkpoint::Checkpoints;
use crate::journal::{Entry, Journal, JournalError, catch_sled};
use crate::recovery::{self, ReplayError};
use crate::upcast::Upcasters;

/// Where an engine keeps its files under its directory: the sled journal
/// in `journal/` and checkpoint files in `checkpoints/`. Two directories,
/// because sled owns everything in its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The sled journal's directory.
    pub journal: PathBuf,
    /// The checkpoint files' directory.
    pub checkpoints: PathBuf,
}

impl Layout {
    /// The layout under an engine's directory `root`.
    pub fn new(root: &Path) -> Self {
        Layout {
            journal: root.join("journal"),
            checkpoints: root.join("checkpoints"),
        }
    }
}

/// The state at `seq`: the newest checkpoint at or before it (if any
/// verifies) plus the journal after it, up to `seq`.
///
/// # Errors
///
/// [`ReplayError`]: a journal that cannot be read (naming the seq and
/// path), a seq after the journal's end or undone by a rollback, or an
/// event that does not re-apply.
pub fn state_at<E: Event>(
    journal: &Journal,
    checkpoints: Option<&Checkpoints>,
    seq: u64,
) -> Result<State<E>, ReplayError> {
    let found = match checkpoints {
        Some(store) => {
            store
                .newest::<E>(seq)
                .map_err(|error| ReplayError::Checkpoint {
                    message: error.to_string(),
                })?
                .found
        }
        None => None,
    };
    let (mut state, base) =
        found.map_or_else(|| (State::<E>::new(), 0), |(state, info)| (state, info.seq));
    if base < seq {
        recovery::replay_range::<E>(journal, &mut state, base + 1, seq, |_| {})?;
    }
    Ok(state)
}

/// A read-only view of an engine's directory.
///
/// It opens the journal read-only ([`Journal::open_read_only`]: a torn
/// tail is passed over, not cut) and the checkpoints without removing
/// anything, so it changes nothing in the directory (except that sled, on
/// a sled journal, may write its own files as it recovers them). The
/// journal's lock is taken, so it cannot open the directory of a running
/// engine; use `Engine::as_of` there.
pub struct Replay<E: Event> {
    journal: Journal,
    checkpoints: Option<Checkpoints>,
    _events: PhantomData<fn() -> E>,
}

impl<E: Event> std::fmt::Debug for Replay<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("journal", &self.journal.path())
            .finish_non_exhaustive()
    }
}

impl<E: Event> Replay<E> {
    /// Opens the directory `root` of an engine opened with `schema`.
    ///
    /// It never panics, whatever is on disk: sled's own panics on damaged
    /// files are caught and returned as [`JournalError::SledPanicked`].
    ///
    /// # Errors
    ///
    /// Inside [`ReplayError::Journal`]: [`JournalError::NotFound`] when
    /// there is no journal there, `AlreadyOpen` when an engine has it
    /// open, `SchemaMismatch` or `UnsupportedFormat` for a journal of
    /// another event type or format (incompatible), and `BadHeader`,
    /// `SledPanicked` or `Storage` for a damaged one.
    pub fn open(root: &Path, schema: &str) -> Result<Self, ReplayError> {
        Self::open_upcasting(root, schema, Upcasters::new())
    }

    /// [`Replay::open`] for a directory that may hold records (and
    /// checkpoints) of the older schemas `upcasters` reads, converted to
    /// `E` as they are read (see [`crate::upcast`]).
    ///
    /// # Errors
    ///
    /// Those of [`Replay::open`]; `SchemaMismatch` when the journal's
    /// schema is neither `schema` nor one `upcasters` reads, and
    /// `NoUpcaster` when the journal's epochs name an older schema that
    /// `upcasters` does not read.
    pub fn open_upcasting(
        root: &Path,
        schema: &str,
        upcasters: Upcasters<E>,
    ) -> Result<Self, ReplayError> {
        let layout = Layout::new(root);
        let older: Vec<&str> = upcasters.schemas().collect();
        let mut journal = Journal::open_read_only(&layout.journal, Some(schema), &older, 16 << 20)?;
        let checkpoints = if layout.checkpoints.is_dir() {
            let mut checkpoints = Checkpoints::open_read_only(&layout.checkpoints, schema)
                .map_err(|error| ReplayError::Checkpoint {
                    message: error.to_string(),
                })?;
            checkpoints.accept_older(older.iter().copied());
            Some(checkpoints)
        } else {
            None
        };
        journal.set_upcasters(Arc::new(upcasters));
        Ok(Replay {
            journal,
            checkpoints,
            _events: PhantomData,
        })
    }

    /// The journal's last seq (0 when empty).
    ///
    /// # Errors
    ///
    /// When the last record does not read back.
    pub fn last_seq(&self) -> Result<u64, JournalError> {
        catch_sled(self.journal.path(), "reading the last record", || {
            self.journal.last_seq::<E>()
        })
    }

    /// The journaled steps (events and rollback markers) with seqs in
    /// `range`, in order, each verified. Iteration stops after the first
    /// error.
    pub fn steps(
        &self,
        range: impl RangeBounds<u64>,
    ) -> impl Iterator<Item = Result<Entry<E>, JournalError>> + '_ {
        let from = match range.start_bound() {
            Bound::Included(&from) => from,
            Bound::Excluded(&from) => from + 1,
            Bound::Unbounded => 1,
        };
        let through = match range.end_bound() {
            Bound::Included(&through) => through,
            Bound::Excluded(&end) => end.saturating_sub(1),
            Bound::Unbounded => u64::MAX,
        };
        self.journal
            .read_from::<E>(from)
            .take_while(move |entry| entry.as_ref().map_or(true, |e| e.seq <= through))
    }

    /// The steps that rollbacks moved to the archive, in seq order.
    pub fn archived(&self) -> impl Iterator<Item = Result<Entry<E>, JournalError>> + '_ {
        self.journal.read_archive::<E>()
    }

    /// The exact state at `seq`, from the newest checkpoint at or before it
    /// plus the journal.
    ///
    /// # Errors
    ///
    /// As [`state_at`].
    pub fn state_at(&self, seq: u64) -> Result<State<E>, ReplayError> {
        // A panic from sled on a damaged page becomes an error, as at open.
        catch_sled(self.journal.path(), "replaying the journal", || {
            Ok(state_at::<E>(&self.journal, self.checkpoints.as_ref(), seq))
        })?
    }

    /// The journal itself, for anything this view does not cover.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

#[cfg(test)]
mod tests;
