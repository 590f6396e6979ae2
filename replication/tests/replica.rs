//! `ReplicatedEngine` end to end, in one process: three nodes on loopback,
//! each with its own directory (Raft log, engine, snapshot), over the real
//! HTTP network. The process-level tests (SIGKILL, SIGSTOP, partitions)
//! live in `cluster-test`.

use std::time::Duration;

use solostate::StateEvent;
use solostate::persistence::hash::entries_hash;
use solostate_replication::{Logged, WriteError};

mod common;

use common::{Cluster, Ev, Node, PATIENCE, bind_at, open_with, submit};

fn hash_of(node: &Node) -> (u64, u64) {
    let snapshot = node.reader().snapshot();
    let hash = entries_hash::<Logged<Ev>>(snapshot.view().iter()).unwrap();
    (snapshot.seq(), hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_any_node_replicate_with_the_same_seq_and_state_everywhere() {
    let cluster = Cluster::start(1..=3).await;
    let leader = cluster.leader().await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let mut acks = Vec::new();
    for i in 0..20u64 {
        let via = if i % 2 == 0 { leader } else { follower };
        let ack = submit(&cluster.nodes[&via], &StateEvent::put(format!("k{i}"), i)).await;
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
    let cluster = Cluster::start(1..=3).await;
    let leader = cluster.leader().await;
    let node = &cluster.nodes[&leader];
    submit(node, &StateEvent::put("x".into(), 1)).await;
    let refused = node
        .submit(&StateEvent::compare_and_swap("x".into(), Some(5), Some(6)))
        .await
        .unwrap_err();
    let WriteError::Rejected { log_id, .. } = refused else {
        panic!("expected a rejection, got {refused:?}");
    };
    let ack = submit(node, &StateEvent::put("y".into(), 2)).await;
    assert_eq!(ack.seq, 2, "the rejected event took no seq");
    assert!(ack.log_id.index > log_id.index);
    for node in cluster.nodes.values() {
        let snapshot = node.wait_for(&ack).await.unwrap();
        assert_eq!(snapshot.get("x").as_deref(), Some(&1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_read_after_an_ack_elsewhere_is_linearizable() {
    let cluster = Cluster::start(1..=3).await;
    let leader = cluster.leader().await;
    for follower in cluster.nodes.keys().filter(|id| **id != leader) {
        for i in 0..5u64 {
            submit(
                &cluster.nodes[&leader],
                &StateEvent::put("r".into(), i + 10 * follower),
            )
            .await;
            let read = cluster.nodes[follower].linearizable().await.unwrap();
            assert_eq!(read.get("r").as_deref(), Some(&(i + 10 * follower)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_its_own_disk_and_the_log() {
    let mut cluster = Cluster::start(1..=3).await;
    let leader = cluster.leader().await;
    let down = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    for i in 0..10u64 {
        submit(
            &cluster.nodes[&leader],
            &StateEvent::put(format!("a{i}"), i),
        )
        .await;
    }
    let node = cluster.nodes.remove(&down).unwrap();
    let before = node.applied();
    node.shutdown().await.unwrap();
    drop(node);
    let mut last = None;
    for i in 0..10u64 {
        last = Some(
            submit(
                &cluster.nodes[&leader],
                &StateEvent::put(format!("b{i}"), i),
            )
            .await,
        );
    }
    let node = open_with(down, &cluster.root, bind_at(cluster.addrs[&down]), 10_000).await;
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
    let mut cluster = Cluster::start_with(1..=3, 30).await;
    let leader = cluster.leader().await;
    let wiped = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let node = cluster.nodes.remove(&wiped).unwrap();
    node.shutdown().await.unwrap();
    drop(node);
    std::fs::remove_dir_all(cluster.root.join(format!("node-{wiped}"))).unwrap();
    let mut last = None;
    for i in 0..100u64 {
        last = Some(
            submit(
                &cluster.nodes[&leader],
                &StateEvent::put(format!("s{}", i % 40), i),
            )
            .await,
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
    let node = open_with(wiped, &cluster.root, bind_at(cluster.addrs[&wiped]), 30).await;
    let snapshot = node.wait_for(&last).await.unwrap();
    assert_eq!(snapshot.seq(), 100);
    assert!(
        node.metrics().snapshot.is_some(),
        "it caught up from a snapshot"
    );
    assert_eq!(hash_of(&node), hash_of(leader_node));
    // And it keeps applying after the install.
    let more = submit(leader_node, &StateEvent::put("after".into(), 1)).await;
    assert_eq!(
        node.wait_for(&more).await.unwrap().get("after").as_deref(),
        Some(&1)
    );
    // Restarted, it opens from the installed engine directory.
    node.shutdown().await.unwrap();
    drop(node);
    let node = open_with(wiped, &cluster.root, bind_at(cluster.addrs[&wiped]), 30).await;
    assert_eq!(node.recovery().applied.seq, 101);
    cluster.nodes.insert(wiped, node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_submitted_before_any_leader_is_known_waits_for_the_election() {
    let dir = tempfile::tempdir().unwrap();
    let listeners: Vec<_> = (1..=3u64).map(|id| (id, common::bind())).collect();
    let members: std::collections::BTreeMap<u64, String> = listeners
        .iter()
        .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
        .collect();
    let mut nodes = Vec::new();
    for (id, listener) in listeners {
        nodes.push(open_with(id, dir.path(), listener, 10_000).await);
    }
    nodes[0].initialize(members).await.unwrap();
    // Node 3 has heard of no leader yet (nothing has even reached it), so
    // its first attempt is certain not to commit (`NoLeader`): submit must
    // wait for the election and then forward, not return that.
    assert_eq!(nodes[2].leader(), None);
    let ack = nodes[2]
        .submit(&StateEvent::put("early".into(), 7))
        .await
        .expect("acked once the cluster had a leader");
    assert_eq!(ack.seq, 1);
    for node in &nodes {
        let snapshot = node.wait_for(&ack).await.unwrap();
        assert_eq!(snapshot.get("early").as_deref(), Some(&7));
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}
