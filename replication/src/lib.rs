//! Replication for solostate on [openraft]: **so far only the Raft log
//! store.**
//!
//! # What exists
//!
//! * [`LogStore`]: openraft's `RaftLogStorage` and `RaftLogReader` over
//!   sled 0.34.7, two trees (`raft_log`, `raft_meta`) in one database.
//!   Entries are stored before commit; `append` calls openraft's
//!   `LogFlushed` callback only after they are durable; `truncate` removes
//!   a suffix, `purge` a prefix and keeps the last purged log id; the vote
//!   is durable before `save_vote` returns; the committed log id is saved
//!   (flushed with the next durable write). Blank, normal and membership
//!   entries round-trip.
//! * [`TypeConfig`], [`Request`], [`Response`]: the Raft types.
//! * [`LogStoreError`]: the store's typed error, mapped into openraft's
//!   `StorageError` with the subject (`Logs`, `Vote`, `Store`) and verb
//!   (`Read`, `Write`, `Delete`) of the operation.
//!
//! # What does not exist yet
//!
//! No state machine (`RaftStateMachine`), no snapshots, no network, no
//! `Raft` instance or cluster, no replicated engine handle, no forwarding,
//! no linearizable reads. Other pieces of issue 14 build those. The
//! in-memory state machine in this crate's tests exists only to run
//! openraft's storage test suite and is not part of the API.
//!
//! # Architecture
//!
//! Each value is framed as crc32 (little-endian) + bincode 2 (serde, with a
//! 64 MiB decode limit), so a damaged value is [`LogStoreError::Corrupt`]
//! naming its tree and key, never a panic. Durability: sled's `flush` is
//! only `sync_file_range`, so after it the store `fdatasync`s sled's log
//! file `db`, any blob files and their directory; at open it syncs `conf`,
//! `db` and the directory.
//!
//! # Trade-offs
//!
//! **openraft is pinned `=0.9.25`, the stable line.** A library others
//! depend on should not pull an alpha whose API breaks between releases:
//! 0.10 is at alpha.37 and needs Rust 1.88. Its lease reads and transient
//! state machines are optimizations we can adopt when 0.10 is released;
//! 0.9 already has read-index linearizable reads (`ensure_linearizable`).
//!
//! Every `append`, `truncate`, `purge` and `save_vote` is one flush and
//! one `fdatasync`: openraft batches appends, so this is group commit.
//!
//! # Example
//!
//! ```
//! use openraft::storage::RaftLogStorage;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut store = solostate_replication::LogStore::open(dir.path())?;
//! let state = store.get_log_state().await?;
//! assert_eq!(state.last_log_id, None);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # Crate features
//!
//! None.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod install;
mod logged;
mod machine;
mod snapshot;
mod store;
mod types;

pub use error::{LogStoreError, MachineError, SnapshotError};
pub use install::Builder as SnapshotBuilder;
pub use logged::Logged;
pub use machine::{Applied, Machine, MachineRecovery};
pub use store::LogStore;
pub use types::{MAX_EVENT_BYTES, Request, Response, TypeConfig};
