//! Membership changes of a running cluster, in one process: a new node
//! joins as a learner and catches up, is promoted to voter, a voter is
//! removed while the cluster keeps committing, and membership calls on a
//! follower are refused with the leader to ask.

mod common;

use std::collections::BTreeSet;

use common::{Cluster, Node, bind, eventually, free_addr, open, submit};
use solostate::StateEvent;
use solostate_replication::{ReplicatedAck, WriteError};

async fn write(node: &Node, prefix: &str, n: u64) -> ReplicatedAck {
    let mut last = None;
    for i in 0..n {
        last = Some(submit(node, &StateEvent::put(format!("{prefix}{i}"), i)).await);
    }
    last.unwrap()
}

fn voters(node: &Node) -> BTreeSet<u64> {
    node.metrics()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

fn learners(node: &Node) -> BTreeSet<u64> {
    node.metrics()
        .membership_config
        .membership()
        .learner_ids()
        .collect()
}

fn members(node: &Node) -> BTreeSet<u64> {
    node.metrics()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_is_promoted_and_a_removed_voter_leaves_while_writes_commit() {
    let mut cluster = Cluster::start(1..=3).await;
    let leader_id = cluster.leader().await;
    let first = write(&cluster.nodes[&leader_id], "a", 20).await;

    // A fourth node, opened but not initialized, joins as a learner and
    // catches up from the log.
    let listener = bind();
    let addr = listener.local_addr().unwrap();
    let fourth = open(4, &cluster.root, listener).await;
    let leader = &cluster.nodes[&leader_id];
    leader.add_learner(4, addr.to_string()).await.unwrap();
    let caught_up = fourth.wait_for(&first).await.unwrap();
    assert_eq!(caught_up.seq(), 20);
    assert_eq!(caught_up.get("a19").as_deref(), Some(&19));
    assert_eq!(learners(leader), BTreeSet::from([4]));
    assert_eq!(voters(leader), BTreeSet::from([1, 2, 3]));
    eventually("the learner knows the leader", || {
        fourth.leader() == Some(leader_id)
    })
    .await;

    // Promoted: a voter in the leader's membership and in its own.
    leader
        .change_membership(BTreeSet::from([1, 2, 3, 4]), false)
        .await
        .unwrap();
    assert_eq!(voters(leader), BTreeSet::from([1, 2, 3, 4]));
    assert!(learners(leader).is_empty());
    eventually("node 4 sees itself a voter", || {
        voters(&fourth) == BTreeSet::from([1, 2, 3, 4])
    })
    .await;
    let second = write(leader, "b", 10).await;
    assert_eq!(second.seq, 30);
    assert_eq!(
        fourth.wait_for(&second).await.unwrap().get("b9").as_deref(),
        Some(&9)
    );
    cluster.nodes.insert(4, fourth);

    // Remove a voter that is not the leader: the membership no longer
    // holds it, and the remaining three keep committing.
    let removed = *cluster.nodes.keys().find(|id| **id != leader_id).unwrap();
    let leader = &cluster.nodes[&leader_id];
    let remaining: BTreeSet<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|id| *id != removed)
        .collect();
    leader
        .change_membership(remaining.clone(), false)
        .await
        .unwrap();
    assert_eq!(voters(leader), remaining);
    assert_eq!(members(leader), remaining, "not kept as a learner either");
    let third = write(leader, "c", 10).await;
    assert_eq!(third.seq, 40);
    for id in &remaining {
        let snapshot = cluster.nodes[id].wait_for(&third).await.unwrap();
        assert_eq!(snapshot.get("c9").as_deref(), Some(&9), "node {id}");
        assert_eq!(voters(&cluster.nodes[id]), remaining, "node {id}");
    }
    // The removed node is not replicated to any more.
    let gone = cluster.nodes.remove(&removed).unwrap();
    assert!(
        gone.applied().seq < third.seq,
        "node {removed} kept applying after its removal: {:?}",
        gone.applied()
    );
    gone.shutdown().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_calls_on_a_follower_are_refused_naming_the_leader() {
    let cluster = Cluster::start(1..=3).await;
    let leader_id = cluster.leader().await;
    let follower = &cluster.nodes[cluster.nodes.keys().find(|id| **id != leader_id).unwrap()];
    let addr = free_addr().to_string();
    assert_eq!(
        follower.add_learner(4, addr).await,
        Err(WriteError::LeaderChanged {
            leader: Some(leader_id)
        })
    );
    assert_eq!(
        follower
            .change_membership(BTreeSet::from([1, 2]), false)
            .await,
        Err(WriteError::LeaderChanged {
            leader: Some(leader_id)
        })
    );
    assert_eq!(
        voters(follower),
        BTreeSet::from([1, 2, 3]),
        "nothing changed"
    );
    cluster.shutdown().await;
}
