//! The determinism guard across replicas, in one process: nodes compare
//! their state hashes at a seq over `POST /client/state_hash` and bisect a
//! divergence to its first seq. The divergence is real, not mocked: a
//! standalone node (its own one-node cluster) applies a different event at
//! one seq.

mod common;

use std::collections::BTreeMap;

use common::{Cluster, Ev, Node, PATIENCE, bind, eventually, free_addr, open, open_with, submit};
use solostate::StateEvent;
use solostate_replication::{GuardError, ReplicatedAck, Unavailable};

/// The event the cluster writes at seq `i`.
fn event(i: u64) -> Ev {
    StateEvent::put(format!("k{}", i % 7), i)
}

/// Writes `event(1..=n)` through `node`, the different event at seq
/// `different` if any, and returns the last ack.
async fn write(node: &Node, n: u64, different: Option<u64>) -> ReplicatedAck {
    let mut last = None;
    for i in 1..=n {
        let event = if Some(i) == different {
            // A key the cluster never writes: the states differ from here
            // on (bisection's assumption).
            StateEvent::put("different".to_owned(), i)
        } else {
            event(i)
        };
        let ack = submit(node, &event).await;
        assert_eq!(ack.seq, i, "dense seqs");
        last = Some(ack);
    }
    last.unwrap()
}

/// A node of its own one-node cluster, in a directory of its own.
async fn standalone(id: u64) -> (tempfile::TempDir, Node, String) {
    let dir = tempfile::tempdir().unwrap();
    let listener = bind();
    let addr = listener.local_addr().unwrap();
    let node = open(id, dir.path(), listener).await;
    node.initialize(BTreeMap::from([(id, addr.to_string())]))
        .await
        .unwrap();
    eventually("the standalone node leads", || node.leader() == Some(id)).await;
    (dir, node, addr.to_string())
}

async fn cluster_with(n: u64) -> (Cluster, ReplicatedAck) {
    let cluster = Cluster::start(1..=3).await;
    let leader = cluster.leader().await;
    let last = write(&cluster.nodes[&leader], n, None).await;
    for node in cluster.nodes.values() {
        node.wait_for(&last).await.unwrap();
    }
    (cluster, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_nodes_agree_at_the_last_seq_and_at_an_earlier_seq() {
    let (cluster, last) = cluster_with(30).await;
    assert_eq!(last.seq, 30);
    for (&id, node) in &cluster.nodes {
        for seq in [30, 12] {
            let report = node.compare_replicas(seq).await.unwrap();
            assert!(report.agreed(), "node {id} at seq {seq}: {report:?}");
            assert_eq!(report.reference, id);
            assert_eq!(
                report.hashes.keys().copied().collect::<Vec<_>>(),
                vec![1, 2, 3]
            );
            let mine = node.state_hash(seq).await.unwrap();
            assert_eq!(mine.seq, seq);
            assert!(report.hashes.values().all(|h| *h == mine), "{report:?}");
        }
    }
    // The earlier seq is a different state, so agreeing there checked
    // something of its own: 7 keys at both, other values.
    let node = &cluster.nodes[&1];
    let (at_12, at_30) = (
        node.state_hash(12).await.unwrap(),
        node.state_hash(30).await.unwrap(),
    );
    assert_ne!(at_12.hash, at_30.hash);
    assert_eq!((at_12.entries, at_30.entries), (7, 7));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_applied_a_different_event_at_seq_k_diverges_first_at_k() {
    const K: u64 = 17;
    let (cluster, _) = cluster_with(40).await;
    let (_dir, other, other_addr) = standalone(9).await;
    write(&other, 40, Some(K)).await;
    let follower = *cluster
        .nodes
        .keys()
        .find(|id| Some(**id) != cluster.nodes[&1].leader())
        .unwrap();
    let node = &cluster.nodes[&follower];

    // From a cluster node, asking the standalone one over HTTP.
    let report = node
        .compare_with(&BTreeMap::from([(9, other_addr.clone())]), 40)
        .await
        .unwrap();
    assert!(!report.agreed());
    assert_eq!(report.divergences.len(), 1, "{report:?}");
    let divergence = &report.divergences[0];
    assert_eq!(divergence.node, 9);
    assert_eq!(divergence.seq, K, "{divergence:?}");
    assert!(divergence.exact, "both hold and agree at K - 1");
    assert_eq!(divergence.reference, node.state_hash(K).await.unwrap());
    assert_eq!(divergence.other, other.state_hash(K).await.unwrap());
    assert_ne!(divergence.reference.hash, divergence.other.hash);

    // From the standalone node, asking every cluster node: each of them
    // diverges from it at K.
    let peers: BTreeMap<u64, String> = (1..=3).map(|id| (id, cluster.addr(id))).collect();
    let report = other.compare_with(&peers, 40).await.unwrap();
    let seqs: Vec<(u64, u64)> = report.divergences.iter().map(|d| (d.node, d.seq)).collect();
    assert_eq!(seqs, vec![(1, K), (2, K), (3, K)], "{report:?}");

    // Before K they agree.
    let report = node
        .compare_with(&BTreeMap::from([(9, other_addr)]), K - 1)
        .await
        .unwrap();
    assert!(report.agreed(), "{report:?}");
    other.shutdown().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_a_node_has_not_applied_is_unavailable_not_a_divergence() {
    let (cluster, last) = cluster_with(10).await;
    let node = &cluster.nodes[&1];
    let ahead = node.state_hash(last.seq + 5).await.unwrap_err();
    assert_eq!(
        ahead,
        GuardError::Unavailable {
            node: 1,
            reason: Unavailable::NotApplied { seq: 15, last: 10 },
        }
    );
    assert!(ahead.to_string().contains("not applied yet"), "{ahead}");

    // A peer that lags: listed as unavailable, and not agreed.
    let (_dir, other, other_addr) = standalone(9).await;
    write(&other, 4, None).await;
    let report = node
        .compare_with(&BTreeMap::from([(9, other_addr)]), 10)
        .await
        .unwrap();
    assert!(report.divergences.is_empty(), "{report:?}");
    assert_eq!(
        report.unavailable.get(&9),
        Some(&Unavailable::NotApplied { seq: 10, last: 4 })
    );
    assert!(!report.agreed());
    other.shutdown().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_cannot_be_reached_is_listed_unreachable() {
    let (cluster, last) = cluster_with(3).await;
    let nobody = free_addr().to_string();
    let report = cluster.nodes[&2]
        .compare_with(&BTreeMap::from([(7, nobody)]), last.seq)
        .await
        .unwrap();
    assert!(report.unreachable.contains_key(&7), "{report:?}");
    assert!(!report.agreed());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_hash_request_that_does_not_decode_is_a_400() {
    let (cluster, _) = cluster_with(1).await;
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap()
        .post(format!("http://{}/client/state_hash", cluster.addr(3)))
        .body(vec![0xFF, 0xFF, 0xFF])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergence_older_than_a_nodes_history_is_reported_at_its_oldest_seq_as_not_exact() {
    const K: u64 = 5;
    let cluster = Cluster::start_with(1..=3, 30).await;
    let leader = cluster.leader().await;
    let last = write(&cluster.nodes[&leader], 100, None).await;
    let leader_node = &cluster.nodes[&leader];
    eventually("the leader purges its log", || {
        leader_node.metrics().purged.is_some()
    })
    .await;
    // A new node joins after the purge and catches up from a snapshot:
    // its engine holds no state older than the snapshot's seq.
    let listener = bind();
    let addr = listener.local_addr().unwrap();
    let node = open_with(4, &cluster.root, listener, 30).await;
    leader_node.add_learner(4, addr.to_string()).await.unwrap();
    node.wait_for(&last).await.unwrap();
    assert!(node.metrics().snapshot.is_some(), "caught up by snapshot");
    let unheld = node.state_hash(K).await.unwrap_err();
    assert!(
        matches!(
            unheld,
            GuardError::Unavailable {
                reason: Unavailable::OutsideWindow { seq: K, .. },
                ..
            }
        ),
        "{unheld:?}"
    );

    let (_dir, other, other_addr) = standalone(9).await;
    write(&other, 100, Some(K)).await;
    let peers = BTreeMap::from([(9, other_addr)]);
    let report = node.compare_with(&peers, 100).await.unwrap();
    assert_eq!(report.divergences.len(), 1, "{report:?}");
    let divergence = &report.divergences[0];
    assert!(!divergence.exact, "{divergence:?}");
    assert!(divergence.seq > K, "{divergence:?}");
    assert!(node.state_hash(divergence.seq).await.is_ok());
    assert!(node.state_hash(divergence.seq - 1).await.is_err());
    // The leader still holds its whole history, and finds the exact seq.
    let report = leader_node.compare_with(&peers, 100).await.unwrap();
    assert_eq!(report.divergences[0].seq, K, "{report:?}");
    assert!(report.divergences[0].exact);
    other.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
    cluster.shutdown().await;
}
