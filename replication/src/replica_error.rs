//! The errors of the replicated handle, one per operation.

use std::path::PathBuf;

use openraft::LogId;

use crate::error::{LogStoreError, MachineError};

/// Why [`ReplicaBuilder::open`](crate::ReplicaBuilder::open) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A setting is missing or out of range.
    #[error("invalid replica setting {setting}: {reason}")]
    InvalidConfig {
        /// The builder method.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The Raft log store did not open.
    #[error("the raft log store at {path} did not open: {source}")]
    LogStore {
        /// Its directory.
        path: PathBuf,
        /// Why.
        source: LogStoreError,
    },
    /// The state machine (the local engine) did not open.
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// openraft refused to start (its error, as text).
    #[error("openraft did not start: {0}")]
    Raft(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Why a replicated write was not acknowledged.
///
/// [`WriteError::Rejected`], [`WriteError::Encode`], [`WriteError::NoLeader`],
/// [`WriteError::LeaderChanged`] and [`WriteError::Unreachable`] say for
/// certain that nothing changed (`submit` retries the last three until its
/// timeout, so they mean no leader took the write in that time). After
/// the others the write may or may not have been committed (as with any
/// Raft client after a leader change): retry it only if it is idempotent,
/// or read to find out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The event could not be encoded for the log; nothing was sent.
    #[error("event cannot be encoded for the raft log: {reason}")]
    Encode {
        /// bincode's error.
        reason: String,
    },
    /// The event was committed in the log at `log_id`, and its `apply`
    /// rejected it on every node alike (or panicked, or it did not
    /// decode): nothing changed.
    #[error("event rejected at log index {}: {reason}", log_id.index)]
    Rejected {
        /// Why.
        reason: String,
        /// The log entry that carried it.
        log_id: LogId<u64>,
    },
    /// No leader is known (an election is under way, or this node is cut
    /// off from a majority); nothing was sent.
    #[error("no leader is known; the write was not sent")]
    NoLeader,
    /// The node the write was forwarded to was not the leader any more,
    /// or (for a membership change) this node is not the leader; it names
    /// the leader that node knows of, if any. Nothing was committed
    /// through it.
    #[error("the leader changed while forwarding (now {leader:?})")]
    LeaderChanged {
        /// The leader that node knows.
        leader: Option<u64>,
    },
    /// The leader could not be reached to forward the write (the
    /// connection failed): it was not sent.
    #[error("leader {leader} is unreachable; the write was not sent: {reason}")]
    Unreachable {
        /// The leader it was for.
        leader: u64,
        /// What failed.
        reason: String,
    },
    /// Forwarding to the leader failed in transport after the request
    /// may have reached it: the outcome is unknown.
    #[error("forwarding to leader {leader} failed, outcome unknown: {reason}")]
    Forward {
        /// The leader it went to.
        leader: u64,
        /// What failed.
        reason: String,
    },
    /// [`initialize`](crate::ReplicatedEngine::initialize) on a node that
    /// already has a log or a vote: it belongs to a cluster already.
    #[error("already initialized: {reason}")]
    AlreadyInitialized {
        /// openraft's explanation (its last log id and vote).
        reason: String,
    },
    /// No answer within the replica's timeout: the outcome is unknown.
    #[error("no answer within {timeout:?}; the outcome is unknown")]
    Timeout {
        /// The timeout ([`ReplicaBuilder::timeout`](crate::ReplicaBuilder::timeout)).
        timeout: std::time::Duration,
    },
    /// openraft failed otherwise (shutting down, or a membership error):
    /// the outcome is unknown.
    #[error("raft failed: {reason}")]
    Raft {
        /// openraft's error.
        reason: String,
    },
}

/// Why a linearizable read or a cross-node wait failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No leader is known to confirm the read index.
    #[error("no leader is known to confirm a read")]
    NoLeader,
    /// The leader lost its leadership while confirming the read.
    #[error("the leader changed while confirming the read (now {leader:?})")]
    LeaderChanged {
        /// The leader it knows.
        leader: Option<u64>,
    },
    /// Asking the leader for the read index failed in transport.
    #[error("asking leader {leader} for the read index failed: {reason}")]
    Forward {
        /// The leader asked.
        leader: u64,
        /// What failed.
        reason: String,
    },
    /// The read was not confirmed within the replica's timeout.
    #[error("the read was not confirmed within {timeout:?}")]
    Timeout {
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// openraft failed otherwise.
    #[error("raft failed: {reason}")]
    Raft {
        /// openraft's error.
        reason: String,
    },
    /// This node stopped before it had applied the needed entries.
    #[error("this node stopped before applying through log index {index}")]
    Stopped {
        /// The log index waited for.
        index: u64,
    },
}
