//! A power cut of the whole cluster: three node processes keep their
//! directories on one power-cut simulator (`solostate-reliability`'s FUSE
//! disk that keeps only what was fsynced, or a torn prefix of the rest),
//! take writes, and lose power together, the worst case: every node drops
//! what it had not synced at the same instant. The cluster restarts from
//! what the disk kept, elects a leader, and every acknowledged write must
//! be on every node.
//!
//! An ack here means a majority's Raft logs held the entry durably (the
//! log store fdatasyncs before openraft counts it) and the leader's engine
//! journaled it, so this checks both stores' syncs, names included.
//!
//! Needs FUSE (`.ci/run` installs `fuse3`); elsewhere it prints why and
//! passes, unless `SOLOSTATE_REQUIRE_FUSE=1`. Short form: 3 cuts (one
//! keeping only synced bytes, one a torn prefix, one a random subset).
//! Long form: `SOLOSTATE_CLUSTER_CUTS=N`, cycling through the modes
//! (`SOLOSTATE_CLUSTER_CUT_MODES`, say `subset` alone).

use std::time::Duration;

use solostate_cluster_test::cluster::Cluster;
use solostate_cluster_test::writers::{Writers, acked};
use solostate_reliability::powercut::{CutMode, Image, mount_or_skip};

fn cuts() -> u64 {
    std::env::var("SOLOSTATE_CLUSTER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// The cut modes to cycle through: `drop` (only synced bytes survive),
/// `torn` (a torn prefix of the unsynced writes survives too) and
/// `subset` (a random subset of them: a disk that reorders writes, on
/// which sled's own recovery is known to fail; no store here uses sled).
fn modes() -> Vec<String> {
    std::env::var("SOLOSTATE_CLUSTER_CUT_MODES")
        .unwrap_or_else(|_| "drop,torn,subset".to_owned())
        .split(',')
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_power_cut_of_the_whole_cluster() {
    let binary = env!("CARGO_BIN_EXE_cluster-node");
    let mount = tempfile::tempdir().unwrap();
    let mut image = Image::empty();
    let mut all_acked = std::collections::BTreeMap::new();
    let mut top = 0;
    for cut in 0..cuts() {
        let Some(sim) = mount_or_skip(mount.path(), &image) else {
            return;
        };
        let dir = sim.path().join("cluster");
        let cluster = Cluster::start(binary.as_ref(), &dir, 3).await;
        let leader = cluster.wait_leader(&[]).await;
        // What the previous cuts' acks left must all be here still.
        for id in cluster.ids() {
            let when = format!("restarted before cut {cut}");
            cluster.assert_holds(id, &all_acked, top, &when).await;
        }
        let writers = Writers::start(&cluster.client(), &format!("p{cut}w"), 4, cluster.ids());
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let modes = modes();
        let mode = match modes[cut as usize % modes.len()].as_str() {
            "drop" => CutMode::DropAll,
            "torn" => CutMode::TornPrefix { seed: 0x5eed ^ cut },
            "subset" => CutMode::RandomSubset { seed: 0x5eed ^ cut },
            other => panic!("SOLOSTATE_CLUSTER_CUT_MODES: unknown mode {other:?}"),
        };
        let (after, stats) = sim.cut(mode);
        drop(cluster); // SIGKILLs the nodes, whose disk is frozen
        let records = writers.stop().await;
        let (keys, index) = acked(&records);
        println!(
            "cut {cut} ({mode:?}) under leader {leader}: {} writes acked, {} bytes dropped",
            keys.len(),
            stats.dropped_bytes
        );
        assert!(!keys.is_empty(), "writes were acknowledged before the cut");
        all_acked.extend(keys);
        top = top.max(index);
        sim.unmount().unwrap();
        image = after;
    }
    // The last cut's acks, checked after one more restart.
    let Some(sim) = mount_or_skip(mount.path(), &image) else {
        return;
    };
    let cluster = Cluster::start(binary.as_ref(), &sim.path().join("cluster"), 3).await;
    cluster.wait_leader(&[]).await;
    for id in cluster.ids() {
        cluster
            .assert_holds(id, &all_acked, top, "after the last cut")
            .await;
    }
    println!(
        "power cut: {} cuts, {} acknowledged writes, none lost",
        cuts(),
        all_acked.len()
    );
    drop(cluster);
    sim.unmount().unwrap();
}
