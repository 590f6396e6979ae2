//! Replication for solostate on [openraft]: **so far the Raft log store
//! and the Raft network.**
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
//! * [`HttpNetwork`] (with [`HttpConnection`]): openraft's
//!   `RaftNetworkFactory`/`RaftNetwork` over HTTP/1 (reqwest, one pooled
//!   client for all peers). A peer is reached at its `BasicNode::addr`.
//!   Timeouts follow openraft's `RPCOption::hard_ttl`; a failed connect is
//!   `RPCError::Unreachable` (openraft backs off), a peer's `RaftError`
//!   comes back as `RPCError::RemoteError` naming the peer. Snapshots go
//!   by openraft 0.9's chunked `install_snapshot`.
//! * [`raft_router`] and [`serve`]: the server side (axum), `POST
//!   /raft/append`, `/raft/vote`, `/raft/snapshot` into one `Raft`. A body
//!   that does not decode is a `400` with the reason, never a panic. The
//!   router can be merged with other routes.
//! * The determinism guard across replicas: every node serves `POST
//!   /client/state_hash` (body: a wire-encoded seq; answer: a
//!   wire-encoded `Result<`[`StateHash`]`, `[`Unavailable`]`>`), the
//!   order-independent hash of its engine's state at exactly that seq,
//!   from the current snapshot or the engine's as-of history.
//!   [`ReplicatedEngine::state_hash`] is the local half;
//!   [`ReplicatedEngine::compare_replicas`] (the membership) and
//!   [`ReplicatedEngine::compare_with`] (any nodes) ask each node and
//!   return a [`GuardReport`]: agreement, or for each node that differs
//!   the first divergent seq, found by bisecting the history both hold.
//! * Membership changes through [`ReplicatedEngine::add_learner`] and
//!   [`ReplicatedEngine::change_membership`] on the leader (a follower
//!   answers [`WriteError::LeaderChanged`]), tested end to end: a new
//!   node catches up as a learner, is promoted, and a removed voter
//!   leaves while the others keep committing.
//! * [`wire`]: the one bincode 2 codec of every message, with a 64 MiB
//!   limit on both sides.
//! * [`TypeConfig`], [`Request`], [`Response`]: the Raft types.
//! * [`LogStoreError`]: the store's typed error, mapped into openraft's
//!   `StorageError` with the subject (`Logs`, `Vote`, `Store`) and verb
//!   (`Read`, `Write`, `Delete`) of the operation.
//!
//! # What does not exist yet
//!
//! No state machine (`RaftStateMachine`), so no snapshots of the engine's
//! state to send (the network can carry them), no replicated
//! engine handle, no forwarding of client writes to the leader, no
//! linearizable reads, no cluster membership tooling. Other pieces of
//! issue 14 build those. The network has no TLS and no authentication:
//! run it on a trusted network only. The in-memory state machines in this
//! crate's tests exist only to run openraft's storage test suite and the
//! three-node network test, and are not part of the API.
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
//! The network is HTTP/1 with bincode bodies: each RPC is one `POST`, its
//! answer the encoded `Result` of the peer's `Raft` call. Client and server
//! share [`wire`] and never import each other.
//!
//! # Trade-offs
//!
//! **openraft is pinned `=0.9.25`, the stable line.** A library others
//! depend on should not pull an alpha whose API breaks between releases:
//! 0.10 is at alpha.37 and needs Rust 1.88. Its lease reads and transient
//! state machines are optimizations we can adopt when 0.10 is released;
//! 0.9 already has read-index linearizable reads (`ensure_linearizable`).
//!
//! **HTTP/1 and bincode rather than gRPC.** axum and reqwest are tokio's
//! own stack, need no code generation, and let the replicated engine's
//! client routes share the Raft listener. One request per RPC on pooled
//! keep-alive connections is enough for heartbeats every 50 ms; openraft
//! 0.9 sends one AppendEntries at a time per peer anyway.
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

mod client;
mod compare;
mod error;
mod guard;
mod install;
mod logged;
mod machine;
mod network;
mod replica;
mod replica_error;
mod server;
mod snapshot;
mod store;
mod types;
pub mod wire;

pub use error::{LogStoreError, MachineError, SnapshotError};
pub use guard::{Divergence, GuardError, GuardReport, StateHash, Unavailable};
pub use install::Builder as SnapshotBuilder;
pub use logged::Logged;
pub use machine::{Applied, Machine, MachineRecovery};
pub use network::{HttpConnection, HttpNetwork, HttpNetworkError};
pub use replica::{ReplicaBuilder, ReplicatedAck, ReplicatedEngine};
pub use replica_error::{OpenError, ReadError, WriteError};
pub use server::{raft_router, serve};
pub use store::LogStore;
pub use types::{MAX_EVENT_BYTES, Request, Response, TypeConfig};
