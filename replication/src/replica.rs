//! [`ReplicatedEngine`]: one node of a replicated solostate cluster, with
//! the engine's submit and read API, and [`ReplicaBuilder`] to open it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError,
};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, LogId, Raft, RaftMetrics, ServerState};
use solostate::{Event, Reader, SnapshotOf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{self, CallError, READ_INDEX_PATH, ReadIndexResult, WRITE_PATH, WriteResult};
use crate::logged::Logged;
use crate::machine::{Applied, MachineRecovery, Shared};
use crate::replica_error::{ReadError, WriteError};
use crate::types::{Request, Response, TypeConfig};
use crate::wire;

// The determinism guard's methods, in a file of their own.
mod builder;
mod guard;

pub use builder::ReplicaBuilder;

/// The first pause before [`ReplicatedEngine::submit`] tries a write
/// again that certainly did not commit (no leader yet, say): an election
/// takes a few hundred milliseconds, so a short first pause catches the
/// new leader soon, and the doubling keeps a long one from being spun on.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The longest of those pauses.
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(200);

/// The ack of a replicated write: its engine seq and the Raft log entry
/// that carried it. Every node applies the same entries in the same order,
/// so the pair means the same state on every node: pass it to
/// [`ReplicatedEngine::wait_for`] on any of them to read your own write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicatedAck {
    /// The event's seq, the same on every node.
    pub seq: u64,
    /// The log entry it was committed in.
    pub log_id: LogId<u64>,
}

/// The running server: its stop signal and its task.
pub(crate) type Server = (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>);

/// One node of a replicated cluster: writes go through the Raft leader
/// (a follower forwards them), every node applies the committed log to its
/// own engine, and reads come from the local engine.
///
/// **What readers see:** a [`reader`](Self::reader) snapshot reflects
/// every entry this node has applied, which may lag the leader (a stale
/// read, at no cost); [`linearizable`](Self::linearizable) returns a
/// snapshot that reflects every write acknowledged anywhere before the
/// call; [`wait_for`](Self::wait_for) one that reflects a given ack.
pub struct ReplicatedEngine<E: Event> {
    id: u64,
    addr: SocketAddr,
    raft: Raft<TypeConfig>,
    shared: Arc<Shared<E>>,
    peers: BTreeMap<u64, String>,
    client: reqwest::Client,
    recovery: MachineRecovery,
    timeout: Duration,
    stop: Mutex<Option<Server>>,
}

impl<E: Event> ReplicatedEngine<E> {
    /// Starts configuring a node. See [`ReplicaBuilder`].
    pub fn builder() -> ReplicaBuilder<E> {
        ReplicaBuilder::default()
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address this node serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the node decided on its own when it opened.
    pub fn recovery(&self) -> &MachineRecovery {
        &self.recovery
    }

    /// The openraft handle, for metrics and for what this type does not
    /// wrap.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// openraft's metrics now (leader, term, last applied, membership).
    pub fn metrics(&self) -> RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// The last entry this node applied, and its engine seq.
    pub fn applied(&self) -> Applied {
        *self.shared.applied.borrow()
    }

    /// Makes the first cluster: `members` (id to address) become the
    /// voters. Run it on one node, once.
    ///
    /// # Errors
    ///
    /// [`WriteError::AlreadyInitialized`] when the node has a log or a vote
    /// already (a restarted node: safe to ignore), [`WriteError::Raft`] when
    /// the members are invalid.
    pub async fn initialize(&self, members: BTreeMap<u64, String>) -> Result<(), WriteError> {
        let nodes: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(nodes).await {
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                Err(WriteError::AlreadyInitialized {
                    reason: e.to_string(),
                })
            }
            other => other.map_err(raft_error),
        }
    }

    /// Adds node `id` at `addr` as a learner (it receives the log but does
    /// not vote), and waits until it has caught up, with no time limit (a
    /// learner that never answers keeps it waiting). Run it on the leader.
    ///
    /// # Errors
    ///
    /// [`WriteError::LeaderChanged`] on a follower, [`WriteError::Raft`]
    /// otherwise.
    pub async fn add_learner(&self, id: u64, addr: impl Into<String>) -> Result<(), WriteError> {
        let result = self
            .raft
            .add_learner(id, BasicNode::new(addr.into()), true)
            .await;
        self.membership(result)
    }

    /// Makes `voters` the voting members (promoting learners, removing
    /// voters not named; removed nodes stay learners only if
    /// `keep_removed`). Run it on the leader.
    ///
    /// # Errors
    ///
    /// As [`add_learner`](Self::add_learner).
    pub async fn change_membership(
        &self,
        voters: BTreeSet<u64>,
        keep_removed: bool,
    ) -> Result<(), WriteError> {
        let result = self.raft.change_membership(voters, keep_removed).await;
        self.membership(result)
    }

    /// openraft 0.9 checks the membership state before leadership: a
    /// follower that has not yet learned its last membership entry is
    /// committed answers `InProgress`, which here is `LeaderChanged` too.
    fn membership(&self, result: WriteResult) -> Result<(), WriteError> {
        match result {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                Err(WriteError::LeaderChanged {
                    leader: to.leader_id,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(_)))
                if self.raft.metrics().borrow().state != ServerState::Leader =>
            {
                Err(WriteError::LeaderChanged {
                    leader: self.leader(),
                })
            }
            Err(e) => Err(raft_error(e)),
        }
    }

    /// Replicates `event`: commits it in the Raft log through the leader
    /// (forwarding it there from a follower, one hop), and returns once
    /// the leader has applied it, durably, to its engine.
    ///
    /// While no leader is known, or the node a write was forwarded to
    /// answers that it is not the leader, or the leader's address refuses
    /// the connection (each certain that nothing was committed), the write
    /// is tried again after a pause (20 ms, doubling up to 200 ms), until
    /// the builder's timeout: an election is waited out instead of
    /// returned. An outcome that may have committed is never retried.
    ///
    /// # Errors
    ///
    /// See [`WriteError`]: which errors leave the outcome unknown.
    /// `NoLeader`, `LeaderChanged` and `Unreachable` are the last
    /// attempt's, when the next pause would have passed the timeout.
    pub async fn submit(&self, event: &E) -> Result<ReplicatedAck, WriteError> {
        let timeout = self.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let request = Request::encode(event).map_err(|e| WriteError::Encode {
            reason: e.to_string(),
        })?;
        let mut pause = RETRY_PAUSE;
        loop {
            match tokio::time::timeout_at(deadline, self.submit_once(&request)).await {
                Err(_) => return Err(WriteError::Timeout { timeout }),
                Ok(Err(
                    WriteError::NoLeader
                    | WriteError::LeaderChanged { .. }
                    | WriteError::Unreachable { .. },
                )) if tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
                Ok(result) => return result,
            }
        }
    }

    /// One attempt of [`submit`](Self::submit).
    async fn submit_once(&self, request: &Request) -> Result<ReplicatedAck, WriteError> {
        match self.raft.client_write(request.clone()).await {
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                let (leader, addr) = self.leader_address(&to).ok_or(WriteError::NoLeader)?;
                let body = wire::encode(request).map_err(|e| WriteError::Encode {
                    reason: e.to_string(),
                })?;
                let answer: WriteResult = client::call(&self.client, &addr, WRITE_PATH, body)
                    .await
                    .map_err(|e| match e {
                        CallError::NotSent(reason) => WriteError::Unreachable { leader, reason },
                        CallError::Lost(reason) => WriteError::Forward { leader, reason },
                    })?;
                match answer {
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                        Err(WriteError::LeaderChanged {
                            leader: to.leader_id,
                        })
                    }
                    other => ack_of(other),
                }
            }
            other => ack_of(other),
        }
    }

    /// The leader's id and the address to reach it at.
    fn leader_address(&self, to: &ForwardToLeader<u64, BasicNode>) -> Option<(u64, String)> {
        let leader = to.leader_id?;
        let addr = self
            .peers
            .get(&leader)
            .cloned()
            .or_else(|| to.leader_node.as_ref().map(|node| node.addr.clone()))?;
        Some((leader, addr))
    }

    /// A reader of this node's engine: stale reads at no cost. After a
    /// snapshot install replaced the engine, take a new reader (the old
    /// one's `wait_for` and change feeds end as stopped).
    pub fn reader(&self) -> Reader<Logged<E>> {
        self.shared.engine().reader()
    }

    /// A linearizable read: confirms the read index with a quorum (on the
    /// leader, or asked of it from a follower), waits until this node has
    /// applied through it, and returns the local snapshot then. It
    /// reflects every write acknowledged anywhere before the call.
    ///
    /// # Errors
    ///
    /// See [`ReadError`].
    pub async fn linearizable(&self) -> Result<Arc<SnapshotOf<Logged<E>>>, ReadError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.linearizable_now())
            .await
            .unwrap_or(Err(ReadError::Timeout { timeout }))
    }

    async fn linearizable_now(&self) -> Result<Arc<SnapshotOf<Logged<E>>>, ReadError> {
        let index = match self.raft.ensure_linearizable().await {
            Ok(read) => read,
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                let (leader, addr) = self.leader_address(&to).ok_or(ReadError::NoLeader)?;
                let answer: ReadIndexResult =
                    client::call(&self.client, &addr, READ_INDEX_PATH, Vec::new())
                        .await
                        .map_err(|(CallError::NotSent(reason) | CallError::Lost(reason))| {
                            ReadError::Forward { leader, reason }
                        })?;
                match answer {
                    Ok(read) => read,
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(to))) => {
                        return Err(ReadError::LeaderChanged {
                            leader: to.leader_id,
                        });
                    }
                    Err(e) => {
                        return Err(ReadError::Raft {
                            reason: e.to_string(),
                        });
                    }
                }
            }
            Err(e) => {
                return Err(ReadError::Raft {
                    reason: e.to_string(),
                });
            }
        };
        self.wait_applied(index.map_or(0, |id| id.index)).await
    }

    /// Waits until this node has applied the write `ack` names, and
    /// returns the local snapshot then: read-your-writes on any node.
    ///
    /// # Errors
    ///
    /// [`ReadError::Stopped`] if the node stops first.
    pub async fn wait_for(
        &self,
        ack: &ReplicatedAck,
    ) -> Result<Arc<SnapshotOf<Logged<E>>>, ReadError> {
        self.wait_applied(ack.log_id.index).await
    }

    async fn wait_applied(&self, index: u64) -> Result<Arc<SnapshotOf<Logged<E>>>, ReadError> {
        let mut applied = self.shared.applied.subscribe();
        applied
            .wait_for(|a| a.log_id.is_some_and(|id| id.index >= index) || index == 0)
            .await
            .map_err(|_| ReadError::Stopped { index })?;
        // The owner publishes before it acks, and `apply` returned after
        // the acks: the published snapshot already holds the entry.
        Ok(self.shared.engine().reader().snapshot())
    }

    /// Stops the node: Raft, then the server, then the local engine.
    ///
    /// # Errors
    ///
    /// The engine's shutdown error, as text, in [`WriteError::Raft`].
    pub async fn shutdown(&self) -> Result<(), WriteError> {
        let raft_stopped = self.raft.shutdown().await;
        let stop = self.stop.lock().map(|mut s| s.take()).unwrap_or(None);
        if let Some((stop, server)) = stop {
            // The server may have ended already; that is fine.
            let _ = stop.send(());
            let _ = server.await;
        }
        raft_stopped.map_err(|e| WriteError::Raft {
            reason: e.to_string(),
        })?;
        self.shared
            .engine()
            .shutdown()
            .await
            .map_err(|e| WriteError::Raft {
                reason: e.to_string(),
            })
    }
}

fn raft_error<E: std::fmt::Display>(error: E) -> WriteError {
    WriteError::Raft {
        reason: error.to_string(),
    }
}

fn ack_of(result: WriteResult) -> Result<ReplicatedAck, WriteError> {
    let ClientWriteResponse { log_id, data, .. } = match result {
        Ok(response) => response,
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
            return Err(WriteError::LeaderChanged {
                leader: to.leader_id,
            });
        }
        Err(e) => return Err(raft_error(e)),
    };
    match data {
        Response::Applied { seq } => Ok(ReplicatedAck { seq, log_id }),
        Response::Rejected { reason } => Err(WriteError::Rejected { reason, log_id }),
        Response::Internal => Err(WriteError::Raft {
            reason: format!("log entry {} answered as an internal entry", log_id.index),
        }),
    }
}
