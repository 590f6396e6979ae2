//! [`ReplicatedEngine`]: one node of a replicated solostate cluster, with
//! the engine's submit and read API, and [`ReplicaBuilder`] to open it.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError,
};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, Config, LogId, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use solostate::{Durability, Event, JournalBackend, Reader, SnapshotOf, StoreKind};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{self, CallError, READ_INDEX_PATH, ReadIndexResult, WRITE_PATH, WriteResult};
use crate::logged::Logged;
use crate::machine::{Applied, EngineSettings, Layout, Machine, MachineRecovery, Shared};
use crate::network::HttpNetwork;
use crate::replica_error::{OpenError, ReadError, WriteError};
use crate::server::{raft_router, serve};
use crate::store::LogStore;
use crate::types::{Request, Response, TypeConfig};
use crate::wire;

// The determinism guard's methods, in a file of their own.
mod guard;

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

/// Configures and opens a [`ReplicatedEngine`]. `id`, `path` and `listen`
/// (or `listener`) are required.
#[derive(Debug)]
pub struct ReplicaBuilder<E> {
    id: Option<u64>,
    dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    listener: Option<std::net::TcpListener>,
    peers: BTreeMap<u64, String>,
    schema: String,
    store: StoreKind,
    backend: JournalBackend,
    heartbeat_ms: u64,
    election_ms: (u64, u64),
    snapshot_every: u64,
    keep_logs: u64,
    timeout: Duration,
    _event: PhantomData<fn() -> E>,
}

impl<E: Event> Default for ReplicaBuilder<E> {
    fn default() -> Self {
        ReplicaBuilder {
            id: None,
            dir: None,
            listen: None,
            listener: None,
            peers: BTreeMap::new(),
            schema: "replicated".to_owned(),
            store: StoreKind::default(),
            backend: JournalBackend::default(),
            heartbeat_ms: 100,
            election_ms: (400, 800),
            snapshot_every: 20_000,
            keep_logs: 1_000,
            timeout: Duration::from_secs(10),
            _event: PhantomData,
        }
    }
}

impl<E: Event> ReplicaBuilder<E> {
    /// This node's id in the cluster (any `u64`, unique per node).
    pub fn id(mut self, id: u64) -> Self {
        self.id = Some(id);
        self
    }

    /// The node's directory: its Raft log (`raft/`), its engine
    /// (`engine/`) and its current snapshot (`snapshot.current`).
    pub fn path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Where this node serves Raft and forwarded client calls (plain HTTP;
    /// port 0 picks one, see [`ReplicatedEngine::addr`]).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Serve on a listener bound already, instead of binding
    /// [`listen`](Self::listen)'s address at open. Why: whoever picks the
    /// address (a test, a supervisor handing over a socket) can hold the
    /// port from then on, so nothing else takes it in between.
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Reach node `id` at `addr` instead of the address in the membership.
    /// Why: a test proxy (or a NAT) puts a different address between each
    /// pair of nodes, while the membership holds one address per node.
    pub fn peer_address(mut self, id: u64, addr: impl Into<String>) -> Self {
        self.peers.insert(id, addr.into());
        self
    }

    /// The schema name of the local engine's journal, which holds
    /// [`Logged`] events of `E` (default `replicated`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The local engine's state store.
    pub fn store(mut self, kind: StoreKind) -> Self {
        self.store = kind;
        self
    }

    /// The local engine's journal backend.
    pub fn journal_backend(mut self, backend: JournalBackend) -> Self {
        self.backend = backend;
        self
    }

    /// The leader's heartbeat interval and the followers' election timeout
    /// range, in milliseconds (defaults 100 and 400–800). A shorter timeout
    /// fails over sooner but risks elections on a loaded machine.
    pub fn timing(mut self, heartbeat_ms: u64, election_min_ms: u64, election_max_ms: u64) -> Self {
        self.heartbeat_ms = heartbeat_ms;
        self.election_ms = (election_min_ms, election_max_ms);
        self
    }

    /// Build a snapshot (and let the log before it be purged) every this
    /// many log entries (default 20,000).
    pub fn snapshot_every(mut self, entries: u64) -> Self {
        self.snapshot_every = entries;
        self
    }

    /// How many log entries to keep behind each snapshot (default 1,000):
    /// a follower that lags by fewer catches up from the log, one that lags
    /// by more from the snapshot.
    pub fn keep_logs_after_snapshot(mut self, entries: u64) -> Self {
        self.keep_logs = entries;
        self
    }

    /// How long [`submit`](ReplicatedEngine::submit) and
    /// [`linearizable`](ReplicatedEngine::linearizable) wait before they
    /// give up (default 10 s). Why a deadline: a leader cut off from its
    /// followers keeps its leadership until it hears a higher term, and
    /// its writes wait for a commit that cannot come.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn raft_config(&self) -> Result<Config, OpenError> {
        let config = Config {
            cluster_name: "solostate".to_owned(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_ms.0,
            election_timeout_max: self.election_ms.1,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_logs,
            ..Config::default()
        };
        config.validate().map_err(|e| OpenError::InvalidConfig {
            setting: "timing or snapshot_every",
            reason: e.to_string(),
        })
    }

    /// The server's listener: the one given, or `listen` bound now.
    async fn bind(&mut self) -> Result<tokio::net::TcpListener, OpenError> {
        let failed = |addr: String| move |source| OpenError::Listen { addr, source };
        if let Some(listener) = self.listener.take() {
            let addr = listener
                .local_addr()
                .map_or_else(|_| "the given listener".to_owned(), |a| a.to_string());
            listener
                .set_nonblocking(true)
                .map_err(failed(addr.clone()))?;
            return tokio::net::TcpListener::from_std(listener).map_err(failed(addr));
        }
        let listen = self.listen.expect("checked by open");
        tokio::net::TcpListener::bind(listen)
            .await
            .map_err(failed(listen.to_string()))
    }

    /// Opens the node: its log store, its state machine (finishing an
    /// interrupted snapshot install), the Raft instance and the server.
    /// A new node is not part of any cluster until
    /// [`ReplicatedEngine::initialize`] runs on one node, or a leader adds
    /// it.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidConfig`] for a missing id, path or listen
    /// address or bad timings, and the other variants as they name.
    pub async fn open(mut self) -> Result<ReplicatedEngine<E>, OpenError> {
        let missing = |setting| OpenError::InvalidConfig {
            setting,
            reason: "required".to_owned(),
        };
        let id = self.id.ok_or(missing("id"))?;
        let dir = self.dir.clone().ok_or(missing("path"))?;
        if self.listen.is_none() && self.listener.is_none() {
            return Err(missing("listen"));
        }
        let config = Arc::new(self.raft_config()?);
        let raft_dir = dir.join("raft");
        let log = LogStore::open(&raft_dir).map_err(|source| OpenError::LogStore {
            path: raft_dir,
            source,
        })?;
        let settings = EngineSettings {
            schema: self.schema.clone(),
            store: self.store,
            backend: self.backend,
            durability: Durability::default(),
        };
        let (machine, recovery) =
            Machine::<E>::open(Layout::new(&dir), log.clone(), settings).await?;
        let shared = Arc::clone(&machine.shared);
        let network = HttpNetwork::new()
            .map_err(|e| OpenError::Raft(e.to_string()))?
            .with_addresses(self.peers.clone());
        let raft = Raft::new(id, config, network, log, machine)
            .await
            .map_err(|e| OpenError::Raft(e.to_string()))?;
        let listener = self.bind().await?;
        let addr = listener.local_addr().map_err(|source| OpenError::Listen {
            addr: "the listener".to_owned(),
            source,
        })?;
        let router =
            raft_router(raft.clone()).merge(client::router(raft.clone(), Arc::clone(&shared)));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, async {
            // A dropped sender also stops the server.
            let _ = stopped.await;
        }));
        Ok(ReplicatedEngine {
            id,
            addr,
            raft,
            shared,
            peers: self.peers,
            client: reqwest::Client::builder()
                .no_proxy()
                .tcp_nodelay(true)
                .build()
                .map_err(|e| OpenError::Raft(e.to_string()))?,
            recovery,
            timeout: self.timeout,
            stop: Mutex::new(Some((stop, server))),
        })
    }
}

/// The running server: its stop signal and its task.
type Server = (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>);

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
    /// # Errors
    ///
    /// See [`WriteError`]: which errors leave the outcome unknown.
    pub async fn submit(&self, event: &E) -> Result<ReplicatedAck, WriteError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.submit_now(event))
            .await
            .unwrap_or(Err(WriteError::Timeout { timeout }))
    }

    async fn submit_now(&self, event: &E) -> Result<ReplicatedAck, WriteError> {
        let request = Request::encode(event).map_err(|e| WriteError::Encode {
            reason: e.to_string(),
        })?;
        match self.raft.client_write(request.clone()).await {
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => {
                let (leader, addr) = self.leader_address(&to).ok_or(WriteError::NoLeader)?;
                let body = wire::encode(&request).map_err(|e| WriteError::Encode {
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
