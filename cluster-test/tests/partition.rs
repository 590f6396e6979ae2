//! Partitions: the leader of a 3-node cluster of processes is cut off from
//! both followers by the loopback proxies (its traffic swallowed). The
//! minority side (the old leader alone) acknowledges no write and serves
//! no linearizable read; the majority elects a leader and keeps taking
//! writes; no term ever has two leaders; after the heal the old leader
//! follows, every acknowledged write is on every node, and none of the
//! writes sent to the minority took effect.

use std::collections::BTreeMap;
use std::time::Duration;

use solostate_cluster_test::cluster::{Cluster, Written};
use solostate_cluster_test::proxy::LinkMode;
use solostate_cluster_test::writers::{Writers, acked, missing};

/// Every node's claim to lead, per term: Raft allows at most one.
async fn leaders_by_term(cluster: &Cluster, seen: &mut BTreeMap<u64, Vec<u64>>) {
    for id in cluster.ids() {
        if let Some(status) = cluster.status(id).await
            && status.state == "Leader"
        {
            let leaders = seen.entry(status.term).or_default();
            if !leaders.contains(&id) {
                leaders.push(id);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minority_side_acknowledges_nothing_and_there_is_no_split_brain() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_cluster-node").as_ref(), dir.path(), 3).await;
    let client = cluster.client();
    let old = cluster.wait_leader(&[]).await;
    let majority: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
    let mut claims = BTreeMap::new();
    assert!(matches!(
        client.put(old, "before", 1).await,
        Written::Acked { .. }
    ));

    cluster.network().isolate(old, LinkMode::Blackhole).unwrap();
    let to_minority = Writers::start(&client, "minority", 2, vec![old]);
    let to_majority = Writers::start(&client, "majority", 2, majority.clone());
    let new = cluster.wait_leader(&[old]).await;
    assert_ne!(new, old);
    for _ in 0..20 {
        leaders_by_term(&cluster, &mut claims).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stale_read = client.get(old, "before", true).await;
    assert!(
        stale_read.is_err(),
        "the cut-off old leader served a linearizable read: {stale_read:?}"
    );
    let minority = to_minority.stop().await;
    let majority_writes = to_majority.stop().await;
    let minority_acked: Vec<_> = minority
        .iter()
        .filter(|r| matches!(r.outcome, Written::Acked { .. }))
        .collect();
    assert!(
        minority_acked.is_empty(),
        "the minority acknowledged {} writes, first {:?}",
        minority_acked.len(),
        minority_acked.first()
    );
    assert!(!minority.is_empty(), "writes were sent to the minority");
    let (keys, top) = acked(&majority_writes);
    assert!(!keys.is_empty(), "the majority took writes");

    cluster.network().heal();
    let healed = cluster.wait_leader(&[]).await;
    leaders_by_term(&cluster, &mut claims).await;
    for (term, leaders) in &claims {
        assert!(leaders.len() <= 1, "term {term} had leaders {leaders:?}");
    }
    // A write after the heal commits through whoever leads now.
    let after = client.put(healed, "after", 2).await;
    let Written::Acked { index, .. } = after else {
        panic!("the healed cluster refused a write: {after:?}");
    };
    for id in cluster.ids() {
        cluster.wait_applied(id, top.max(index)).await;
        let state = cluster.dump(id).await.unwrap();
        let lost = missing(&keys, &state);
        assert!(lost.is_empty(), "node {id} lacks acked writes {lost:?}");
        let leaked: Vec<_> = minority
            .iter()
            .filter(|r| state.contains_key(&r.key))
            .collect();
        assert!(
            leaked.is_empty(),
            "node {id} holds writes sent to the minority: {leaked:?}"
        );
        assert_eq!(state.get("before"), Some(&1));
    }
    println!(
        "partition: {} writes to the minority, none acked; {} acked by the majority; leader {old} -> {new}, {healed} after the heal; terms {claims:?}",
        minority.len(),
        keys.len()
    );
}
