//! The write vocabulary of solostate: what a mutation *is*.
//!
//! Every change to a solostate engine's state is an [`Event`]: a
//! deterministic transition of an [`imbl::HashMap`] that either applies or
//! is rejected with a reason. An event reads and writes the state through
//! a [`Txn`], a handle over a [`Store`] that records the event's write set,
//! so that a failed event is undone from it. This crate holds the trait,
//! the transaction API and the built-in key-value vocabulary
//! [`StateEvent`]. It is pure: no I/O, no clocks, no
//! randomness, so that replaying a journal of events always rebuilds the
//! same map.
//!
//! # Architecture
//!
//! `solostate-commands` sits at the bottom of the workspace. The engine
//! applies events, the persistence layer journals them, and the query side
//! streams them to subscribers; all of them depend on this crate and it
//! depends on none of them.
//!
//! # Trade-offs
//!
//! Events carry serde bounds because every committed event is journaled.
//! The key and value types are associated types of the event, so one engine
//! holds exactly one map type and there is nothing to downcast. The
//! transaction holds its store as a `&mut dyn Store`: one virtual call per
//! read or write (a few nanoseconds, against microseconds for a persistent
//! map's write) buys an `apply` that is compiled once and runs unchanged on
//! whichever store the engine uses.
//!
//! # Example
//!
//! ```
//! use solostate_commands::{Event, StateEvent, StateRejection};
//!
//! # fn main() -> Result<(), StateRejection<String>> {
//! let mut map = imbl::HashMap::new();
//! StateEvent::put("alice".to_string(), 10u64).apply_to(&mut map)?;
//! StateEvent::compare_and_swap("alice".to_string(), Some(10), Some(12)).apply_to(&mut map)?;
//! assert_eq!(map.get("alice"), Some(&12));
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! None.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod event;
mod state_event;
mod txn;

pub use event::{Event, State};
pub use state_event::{StateEvent, StateRejection};
pub use txn::{Store, Txn, Write, for_each_key, undo_writes};
