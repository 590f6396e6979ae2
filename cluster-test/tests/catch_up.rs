//! Catch-up, with every node a process: a follower killed and restarted
//! from its own disk catches up from the log; a follower whose directory
//! was wiped catches up from a snapshot (the leader snapshots every 50
//! entries and keeps 10 behind each, so the wiped node's whole history is
//! gone from the leader's log). Both end with every acknowledged write.

use std::time::Duration;

use solostate_cluster_test::cluster::Cluster;
use solostate_cluster_test::writers::{Writers, acked, missing};

async fn writes(
    cluster: &Cluster,
    prefix: &str,
    targets: Vec<u64>,
) -> Vec<solostate_cluster_test::writers::Record> {
    let writers = Writers::start(&cluster.client(), prefix, 3, targets);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    writers.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_and_wiped_followers_catch_up_from_the_log_and_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--snapshot-every", "50", "--keep-logs", "10"];
    let mut cluster = Cluster::start_with(
        env!("CARGO_BIN_EXE_cluster-node").as_ref(),
        dir.path(),
        3,
        &args,
    )
    .await;
    let leader = cluster.wait_leader(&[]).await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let mut records = writes(&cluster, "a", vec![leader]).await;

    // From its own disk: down while the others take writes, then back.
    cluster.kill(follower);
    records.extend(writes(&cluster, "b", vec![leader]).await);
    cluster.restart(follower).await;
    let (keys, top) = acked(&records);
    cluster.wait_applied(follower, top).await;
    let state = cluster.dump(follower).await.unwrap();
    assert!(
        missing(&keys, &state).is_empty(),
        "restarted follower lacks acked writes"
    );

    // Wiped: its directory is gone, and the leader's log no longer holds
    // what it missed.
    cluster.kill(follower);
    records.extend(writes(&cluster, "c", vec![leader]).await);
    let (keys, top) = acked(&records);
    assert!(
        top > 100,
        "enough entries for the leader to snapshot and purge: {top}"
    );
    cluster.wipe_and_restart(follower).await;
    cluster.wait_applied(follower, top).await;
    let state = cluster.dump(follower).await.unwrap();
    let lost = missing(&keys, &state);
    assert!(
        lost.is_empty(),
        "wiped follower lacks {} acked writes",
        lost.len()
    );
    assert_eq!(
        state,
        cluster.dump(leader).await.unwrap(),
        "the same state as the leader"
    );
    let status = cluster.status(follower).await.unwrap();
    println!(
        "catch-up: {} acked writes, wiped follower {follower} at {status:?}",
        keys.len()
    );
}
