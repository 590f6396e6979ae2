//! The read side of solostate: immutable snapshots, lock-free loads,
//! read-your-writes and a change feed.
//!
//! **A snapshot reflects every event acknowledged before it was loaded.**
//!
//! # Architecture
//!
//! The engine's owner task builds each new version of the state and hands it
//! to a [`Publisher`], once per committed batch. [`Reader`]s, cloned into
//! any number of tasks and threads, load the latest version through
//! [`arc_swap`] without a lock or a channel round trip, wait for a sequence
//! number with [`Reader::wait_for`], or follow committed events with a
//! [`ChangeFeed`]. This crate has no way to change state: it knows nothing
//! of writing or of persistence.
//!
//! # Trade-offs
//!
//! Snapshots are published once per batch, not once per event, so a reader
//! sees a batch's events together. Holding an old [`Snapshot`] is cheap but
//! not free: it keeps alive the map nodes that later writes replaced. The
//! change feed has a bounded buffer; a subscriber that falls behind gets
//! [`ChangeError::Lagged`] rather than unbounded memory or silent gaps.
//!
//! # Example
//!
//! ```
//! use solostate_commands::StateEvent;
//! use solostate_queries::{CommittedBatch, Publisher, Snapshot};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! type Ev = StateEvent<String, u64>;
//! let (publisher, reader) = Publisher::<Ev>::new(imbl::HashMap::new(), 64);
//! let mut feed = reader.changes();
//!
//! let batch = CommittedBatch::new(1, vec![Ev::put("a".into(), 1)]);
//! publisher.publish(Snapshot::new(1, imbl::hashmap! {"a".to_string() => 1}), Arc::new(batch));
//!
//! let snapshot = reader.wait_for(1).await?;
//! assert_eq!(snapshot.get("a").as_deref(), Some(&1));
//! assert_eq!(feed.recv().await?.seq(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! None.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod changes;
mod publisher;
mod reader;

pub use changes::{Change, ChangeError, ChangeFeed, CommittedBatch};
pub use publisher::Publisher;
pub use reader::{Reader, SnapshotOf, WaitError};
pub use solostate_store::{Iter, Ref, Snapshot, View};
