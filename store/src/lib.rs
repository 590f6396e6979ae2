//! The state stores of [solostate](https://docs.rs/solostate): where the
//! owner task keeps the state, and what readers' snapshots are made of.
//!
//! # Architecture
//!
//! Events read and write the state through a
//! [`Txn`](solostate_commands::Txn) over a
//! [`Store`](solostate_commands::Store). Two stores implement it, and
//! [`Working`] is the owner's handle on whichever the engine runs
//! ([`StoreKind`]):
//!
//! - **Persistent**: an `imbl::HashMap`. A snapshot is an O(1) clone.
//! - **Versioned**: MVCC over papaya's lock-free hash map
//!   ([`versioned`]). A snapshot is a published seq and a pin; readers see
//!   the newest version of each key at or below it.
//!
//! Both publish a [`Snapshot`] with one API (`get`, `contains_key`, `len`,
//! `seq`, and a [`View`] that iterates), so readers do not care which
//! store the owner runs. The store knows nothing of channels, journals or
//! readers' tasks: the engine drives it.
//!
//! # Trade-offs
//!
//! The persistent store's writes copy the path to their entry, which at a
//! million keys costs several microseconds each; in exchange a snapshot is
//! a whole map that can be kept, cloned and diffed freely. The versioned
//! store writes at hash-map speed, but holding a snapshot keeps every
//! version written since, until it is dropped, and its snapshot has no
//! map to hand out ([`Snapshot::map`] is `None`).
//!
//! # Example
//!
//! ```
//! use solostate_commands::{Txn, Write};
//! use solostate_store::{StoreKind, Working};
//!
//! let mut state: Working<&str, u32> = Working::new(StoreKind::Versioned, 0, imbl::HashMap::new());
//! let mut writes: Vec<Write<&str, u32>> = Vec::new();
//! state.write(|store| Txn::new(store, &mut writes).insert("a", 1));
//! let first = state.publish(1);
//! writes.clear();
//! state.write(|store| Txn::new(store, &mut writes).insert("a", 2));
//! let second = state.publish(2);
//! state.reclaim();
//!
//! // The older snapshot still sees its value: it never changes.
//! assert_eq!(first.get("a").as_deref(), Some(&1));
//! assert_eq!(second.get("a").as_deref(), Some(&2));
//! ```
//!
//! # Crate features
//!
//! None.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod reference;
mod snapshot;
pub mod versioned;
mod working;

pub use reference::Ref;
pub use snapshot::{Iter, Snapshot, View};
pub use working::{StoreKind, Working};
