//! Key-level changes: what each committed event did to each key it wrote
//! (the key's value after the event, or its removal), kept with the as-of
//! window when [`Builder::key_changes`](crate::Builder::key_changes) is
//! on. A change-feed subscriber that fell behind resyncs from them,
//! coalesced to one entry per key, instead of from a whole snapshot
//! ([`Engine::changes_between`](crate::Engine::changes_between)).

use std::collections::HashMap;

use solostate_commands::Event;

/// One batch's key-level changes: `(seq, key, value after the event)` for
/// every key each event wrote, once per event, in seq order.
pub(crate) type KeyChanges<E> = Vec<(u64, <E as Event>::Key, Option<<E as Event>::Value>)>;

/// Changes coalesced to one entry per key: its value at the end of the
/// range, or `None` where it was removed.
pub type Coalesced<E> = HashMap<<E as Event>::Key, Option<<E as Event>::Value>>;

/// Why [`Engine::changes_between`](crate::Engine::changes_between) could
/// not give the changes of a range. Each one but `Off` means: resync from
/// a snapshot (`Reader::subscribe`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangesError {
    /// The engine does not keep key-level changes.
    #[error("key-level changes are off: turn them on with Builder::key_changes")]
    Off,
    /// `after` is past `through`.
    #[error("no range: seq {after} is after seq {through}")]
    Backward {
        /// The seq the changes were asked after.
        after: u64,
        /// The last seq asked for.
        through: u64,
    },
    /// The range ends after the last published seq.
    #[error("no changes through seq {through} yet: the last published seq is {last}")]
    NotYet {
        /// The last seq asked for.
        through: u64,
        /// The last published seq.
        last: u64,
    },
    /// The range starts before the as-of window, whose changes are the
    /// only ones kept.
    #[error(
        "the changes after seq {after} are no longer kept (the as-of window starts at seq {oldest}); resync from a snapshot, or widen Builder::as_of_window"
    )]
    Forgotten {
        /// The seq the changes were asked after.
        after: u64,
        /// The oldest seq whose state the window holds.
        oldest: u64,
    },
    /// A rollback inside the range replaced the whole state, which no set
    /// of key changes describes.
    #[error(
        "the engine rolled back to seq {target} at seq {seq}, inside the range; resync from a snapshot"
    )]
    RolledBack {
        /// The rollback step's seq.
        seq: u64,
        /// The seq whose state it restored.
        target: u64,
    },
}
