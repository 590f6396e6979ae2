//! Failover: a 3-node cluster of real processes takes writes under load,
//! and its leader is SIGKILLed (one cycle) or paused with SIGSTOP (the
//! next), alternately. Each cycle checks that a new leader is elected,
//! that every acknowledged write is on the surviving majority, and that it
//! is again on the old leader once it rejoins; it prints the failover time
//! (from the kill to the first write acknowledged after it).
//!
//! Short form: 2 cycles (one of each). Long form:
//! `SOLOSTATE_FAILOVER_CYCLES=100 cargo test -p solostate-cluster-test
//! --release --test failover -- --nocapture`.

use std::time::{Duration, Instant};

use solostate_cluster_test::cluster::{Cluster, PATIENCE};
use solostate_cluster_test::writers::{Writers, acked, missing};

fn cycles() -> u64 {
    std::env::var("SOLOSTATE_FAILOVER_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

async fn check_node(
    cluster: &Cluster,
    id: u64,
    acked: &std::collections::BTreeMap<String, u64>,
    top: u64,
    when: &str,
) {
    cluster.wait_applied(id, top).await;
    let state = cluster.dump(id).await.expect("the node answers /dump");
    let lost = missing(acked, &state);
    assert!(
        lost.is_empty(),
        "{when}: node {id} lacks {} of {} acknowledged writes, first {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_the_leader_being_killed_or_paused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster =
        Cluster::start(env!("CARGO_BIN_EXE_cluster-node").as_ref(), dir.path(), 3).await;
    let mut failovers = Vec::new();
    let mut total_acked = 0;
    for cycle in 0..cycles() {
        let pause = cycle % 2 == 1;
        let old = cluster.wait_leader(&[]).await;
        let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
        let writers = Writers::start(&cluster.client(), &format!("c{cycle}w"), 4, cluster.ids());
        tokio::time::sleep(Duration::from_millis(700)).await;
        // From here on, send writes only to the survivors, so the failover
        // time is not the old leader's timeout.
        writers.set_targets(others.clone());
        let cut = Instant::now();
        if pause {
            cluster.signal(old, true);
        } else {
            cluster.kill(old);
        }
        let new = cluster.wait_leader(&[old]).await;
        assert_ne!(new, old, "a new leader is elected");
        let first_after = writers
            .first_ack_after(cut, PATIENCE)
            .await
            .expect("a write was acknowledged after the failover");
        failovers.push(first_after - cut);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let records = writers.stop().await;
        let (keys, top) = acked(&records);
        total_acked += keys.len();
        for id in &others {
            check_node(&cluster, *id, &keys, top, "after the failover").await;
        }
        if pause {
            cluster.signal(old, false);
        } else {
            cluster.restart(old).await;
        }
        check_node(&cluster, old, &keys, top, "after the old leader rejoined").await;
        println!(
            "cycle {cycle}: {} leader {old} -> {new}, {} writes acked, failover {:?}",
            if pause { "SIGSTOP" } else { "SIGKILL" },
            keys.len(),
            failovers.last().unwrap()
        );
    }
    failovers.sort();
    println!(
        "failover: {} cycles, {total_acked} acked writes, none lost; time to first ack after the cut: median {:?}, max {:?}",
        failovers.len(),
        failovers[failovers.len() / 2],
        failovers.last().unwrap()
    );
}
