//! The `replicated` benchmark binary end to end on a tiny setting: every
//! contender (the single engine, the cluster via its leader and via a
//! follower) opens, serves a short run and shuts down, and the table has a
//! row for each. It checks that the benchmark works, not how fast anything
//! is: no figure is asserted.

use std::process::Command;

#[test]
fn the_replicated_benchmark_runs_every_contender_and_prints_a_row_for_each() {
    let out = Command::new(env!("CARGO_BIN_EXE_replicated"))
        .args(["--secs", "0.2", "--warmup", "0", "--rounds", "1"])
        .args(["--submitters", "2", "--keys", "50"])
        .output()
        .expect("the benchmark binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let table = String::from_utf8(out.stdout).expect("utf-8 markdown");
    assert!(table.starts_with("## Replication (loopback, 3 nodes in one process)"));
    for contender in [
        "single engine",
        "replicated, via leader",
        "replicated, via follower",
    ] {
        let row = format!("| 2 | {contender} |");
        assert!(table.contains(&row), "no row {row:?} in:\n{table}");
    }
}
