//! [`ReplicaBuilder`]: the named knobs of a replica, and opening it.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::{Config, Raft, SnapshotPolicy};
use solostate::{Durability, Event, JournalBackend, StoreKind};
use tokio::sync::oneshot;

use super::ReplicatedEngine;
use crate::client;
use crate::machine::{EngineSettings, Layout, Machine};
use crate::network::HttpNetwork;
use crate::replica_error::OpenError;
use crate::server::{raft_router, serve};
use crate::store::LogStore;

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
