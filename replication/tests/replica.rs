//! `ReplicatedEngine` end to end, in one process: three nodes on loopback,
//! each with its own directory (Raft log, engine, snapshot), over the real
//! HTTP network. The process-level tests (SIGKILL, SIGSTOP, partitions)
//! live in `cluster-test`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use solostate::StateEvent;
use solostate::persistence::hash::entries_hash;
use solostate_replication::{Logged, ReplicatedEngine, WriteError};

type Ev = StateEvent<String, u64>;
type Node = ReplicatedEngine<Ev>;

/// How long a wait for the cluster may take before the test fails; not a
/// performance bound.
const PATIENCE: Duration = Duration::from_secs(30);

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn open(id: u64, dir: &Path, addr: SocketAddr, snapshot_every: u64) -> Node {
    Node::builder()
        .id(id)
        .path(dir.join(format!("node-{id}")))
        .listen(addr)
        .timing(50, 200, 400)
        .snapshot_every(snapshot_every)
        .keep_logs_after_snapshot(snapshot_every.min(5))
        .open()
        .await
        .unwrap()
}

struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    addrs: BTreeMap<u64, SocketAddr>,
    nodes: BTreeMap<u64, Node>,
}

impl Cluster {
    async fn start(snapshot_every: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let addrs: BTreeMap<u64, SocketAddr> = (1..=3).map(|id| (id, free_addr())).collect();
        let mut nodes = BTreeMap::new();
        for (&id, &addr) in &addrs {
            nodes.insert(id, open(id, &root, addr, snapshot_every).await);
        }
        let members = addrs.iter().map(|(id, a)| (*id, a.to_string())).collect();
        nodes[&1].initialize(members).await.unwrap();
        let cluster = Cluster {
            _dir: dir,
            root,
            addrs,
            nodes,
        };
        cluster.leader().await;
        cluster
    }

    /// The leader all live nodes agree on.
    async fn leader(&self) -> u64 {
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
}

fn hash_of(node: &Node) -> (u64, u64) {
    let snapshot = node.reader().snapshot();
    let hash = entries_hash::<Logged<Ev>>(snapshot.view().iter()).unwrap();
    (snapshot.seq(), hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_any_node_replicate_with_the_same_seq_and_state_everywhere() {
    let cluster = Cluster::start(10_000).await;
    let leader = cluster.leader().await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let mut acks = Vec::new();
    for i in 0..20u64 {
        let via = if i % 2 == 0 { leader } else { follower };
        let ack = cluster.nodes[&via]
            .submit(&StateEvent::put(format!("k{i}"), i))
            .await
            .unwrap();
        acks.push(ack);
    }
    let seqs: Vec<u64> = acks.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "dense seqs, in order");
    let last = *acks.last().unwrap();
    for node in cluster.nodes.values() {
        let snapshot = node.wait_for(&last).await.unwrap();
        assert_eq!(snapshot.seq(), 20);
        assert_eq!(snapshot.get("k19").as_deref(), Some(&19));
    }
    let hashes: Vec<_> = cluster.nodes.values().map(hash_of).collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_is_an_answer_on_every_node_and_the_cluster_keeps_serving() {
    let cluster = Cluster::start(10_000).await;
    let leader = cluster.leader().await;
    let node = &cluster.nodes[&leader];
    node.submit(&StateEvent::put("x".into(), 1)).await.unwrap();
    let refused = node
        .submit(&StateEvent::compare_and_swap("x".into(), Some(5), Some(6)))
        .await
        .unwrap_err();
    let WriteError::Rejected { log_id, .. } = refused else {
        panic!("expected a rejection, got {refused:?}");
    };
    let ack = node.submit(&StateEvent::put("y".into(), 2)).await.unwrap();
    assert_eq!(ack.seq, 2, "the rejected event took no seq");
    assert!(ack.log_id.index > log_id.index);
    for node in cluster.nodes.values() {
        let snapshot = node.wait_for(&ack).await.unwrap();
        assert_eq!(snapshot.get("x").as_deref(), Some(&1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_read_after_an_ack_elsewhere_is_linearizable() {
    let cluster = Cluster::start(10_000).await;
    let leader = cluster.leader().await;
    for follower in cluster.nodes.keys().filter(|id| **id != leader) {
        for i in 0..5u64 {
            cluster.nodes[&leader]
                .submit(&StateEvent::put("r".into(), i + 10 * follower))
                .await
                .unwrap();
            let read = cluster.nodes[follower].linearizable().await.unwrap();
            assert_eq!(read.get("r").as_deref(), Some(&(i + 10 * follower)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_its_own_disk_and_the_log() {
    let mut cluster = Cluster::start(10_000).await;
    let leader = cluster.leader().await;
    let down = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    for i in 0..10u64 {
        cluster.nodes[&leader]
            .submit(&StateEvent::put(format!("a{i}"), i))
            .await
            .unwrap();
    }
    let node = cluster.nodes.remove(&down).unwrap();
    let before = node.applied();
    node.shutdown().await.unwrap();
    drop(node);
    let mut last = None;
    for i in 0..10u64 {
        last = Some(
            cluster.nodes[&leader]
                .submit(&StateEvent::put(format!("b{i}"), i))
                .await
                .unwrap(),
        );
    }
    let node = open(down, &cluster.root, cluster.addrs[&down], 10_000).await;
    assert!(
        node.recovery().applied.seq >= before.seq.min(10),
        "{:?}",
        node.recovery()
    );
    let snapshot = node.wait_for(&last.unwrap()).await.unwrap();
    assert_eq!(snapshot.seq(), 20);
    assert_eq!(hash_of(&node), hash_of(&cluster.nodes[&leader]));
    cluster.nodes.insert(down, node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_was_wiped_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(30).await;
    let leader = cluster.leader().await;
    let wiped = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let node = cluster.nodes.remove(&wiped).unwrap();
    node.shutdown().await.unwrap();
    drop(node);
    std::fs::remove_dir_all(cluster.root.join(format!("node-{wiped}"))).unwrap();
    let mut last = None;
    for i in 0..100u64 {
        last = Some(
            cluster.nodes[&leader]
                .submit(&StateEvent::put(format!("s{}", i % 40), i))
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    // The leader has snapshotted and purged its log behind the snapshot.
    let leader_node = &cluster.nodes[&leader];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while leader_node.metrics().purged.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader never purged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let node = open(wiped, &cluster.root, cluster.addrs[&wiped], 30).await;
    let snapshot = node.wait_for(&last).await.unwrap();
    assert_eq!(snapshot.seq(), 100);
    assert!(
        node.metrics().snapshot.is_some(),
        "it caught up from a snapshot"
    );
    assert_eq!(hash_of(&node), hash_of(leader_node));
    // And it keeps applying after the install.
    let more = leader_node
        .submit(&StateEvent::put("after".into(), 1))
        .await
        .unwrap();
    assert_eq!(
        node.wait_for(&more).await.unwrap().get("after").as_deref(),
        Some(&1)
    );
    // Restarted, it opens from the installed engine directory.
    node.shutdown().await.unwrap();
    drop(node);
    let node = open(wiped, &cluster.root, cluster.addrs[&wiped], 30).await;
    assert_eq!(node.recovery().applied.seq, 101);
    cluster.nodes.insert(wiped, node);
}
