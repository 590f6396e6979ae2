//! What the in-process cluster tests share: nodes on loopback, each with
//! its own directory, over the real HTTP network.
// Each test crate uses part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use solostate::StateEvent;
use solostate_replication::{ReplicatedAck, ReplicatedEngine, WriteError};

pub type Ev = StateEvent<String, u64>;
pub type Node = ReplicatedEngine<Ev>;

/// How long a wait for the cluster may take before the test fails; not a
/// performance bound.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// An address nothing listens on (it was free a moment ago).
pub fn free_addr() -> SocketAddr {
    bind().local_addr().unwrap()
}

/// A listener on a fresh loopback port, held until a node serves on it,
/// so that no other socket can take the port in between. The port is
/// below the kernel's ephemeral range, so that a node restarted at it
/// ([`bind_at`]) finds it free: an outgoing connection can take an
/// ephemeral port in the meantime, never one outside the range.
pub fn bind() -> TcpListener {
    solostate_replication::loopback_listener().unwrap()
}

/// A listener on `addr` again, for a node restarted at its old address.
pub fn bind_at(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr).unwrap()
}

/// Opens (does not initialize) node `id` in `dir/node-{id}`, serving on
/// `listener`.
pub async fn open(id: u64, dir: &Path, listener: TcpListener) -> Node {
    open_with(id, dir, listener, 10_000).await
}

/// As [`open`], snapshotting every `snapshot_every` log entries and
/// keeping at most 5 entries behind each snapshot.
pub async fn open_with(id: u64, dir: &Path, listener: TcpListener, snapshot_every: u64) -> Node {
    Node::builder()
        .id(id)
        .path(dir.join(format!("node-{id}")))
        .listener(listener)
        // Elections slower than in tests/replica.rs: these tests run
        // several clusters at once on a small machine, and an election
        // they did not ask for only costs a retry.
        .timing(50, 600, 1200)
        .snapshot_every(snapshot_every)
        .keep_logs_after_snapshot(snapshot_every.min(5))
        .open()
        .await
        .unwrap()
}

/// Submits `event` through `node`, again while no node leads. `submit`
/// itself retries `NoLeader`, `LeaderChanged` and `Unreachable` (each
/// certain that nothing was appended) until the builder's 10 s timeout;
/// this goes on to [`PATIENCE`], for an election a loaded CI machine
/// drags out. Any other error fails the test.
pub async fn submit(node: &Node, event: &Ev) -> ReplicatedAck {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match node.submit(event).await {
            Ok(ack) => return ack,
            Err(
                e @ (WriteError::NoLeader
                | WriteError::LeaderChanged { .. }
                | WriteError::Unreachable { .. }),
            ) => {
                assert!(tokio::time::Instant::now() < deadline, "no leader: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("write failed: {e:?}"),
        }
    }
}

/// Waits until `check` holds, failing the test after [`PATIENCE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Cluster {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub addrs: BTreeMap<u64, SocketAddr>,
    pub nodes: BTreeMap<u64, Node>,
}

impl Cluster {
    /// Nodes `ids`, initialized as the voters of one cluster, with a
    /// leader they agree on.
    pub async fn start(ids: impl IntoIterator<Item = u64>) -> Cluster {
        Cluster::start_with(ids, 10_000).await
    }

    /// As [`Cluster::start`], with [`open_with`]'s `snapshot_every`.
    pub async fn start_with(ids: impl IntoIterator<Item = u64>, snapshot_every: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let listeners: BTreeMap<u64, TcpListener> =
            ids.into_iter().map(|id| (id, bind())).collect();
        let addrs: BTreeMap<u64, SocketAddr> = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap()))
            .collect();
        let mut nodes = BTreeMap::new();
        for (id, listener) in listeners {
            nodes.insert(id, open_with(id, &root, listener, snapshot_every).await);
        }
        let members = addrs.iter().map(|(id, a)| (*id, a.to_string())).collect();
        nodes
            .values()
            .next()
            .unwrap()
            .initialize(members)
            .await
            .unwrap();
        let cluster = Cluster {
            _dir: dir,
            root,
            addrs,
            nodes,
        };
        cluster.leader().await;
        cluster
    }

    /// The leader all nodes of the cluster agree on.
    pub async fn leader(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let seen: Vec<Option<u64>> = self.nodes.values().map(|n| n.leader()).collect();
            if let Some(Some(leader)) = seen.first()
                && seen.iter().all(|s| *s == Some(*leader))
                && self.nodes.contains_key(leader)
            {
                return *leader;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address of node `id`, as the membership holds it.
    pub fn addr(&self, id: u64) -> String {
        self.addrs[&id].to_string()
    }

    pub async fn shutdown(self) {
        for node in self.nodes.values() {
            node.shutdown().await.unwrap();
        }
    }
}
