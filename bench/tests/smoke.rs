//! Every in-process contender on a tiny workload: each serves every read
//! and write of a short throughput run and a short fixed-rate run. Fast,
//! for CI; it checks that the adapters work, not how fast they are.

use std::time::Duration;

use solostate_bench::adapters::{self, MAPS};
use solostate_bench::driver;
use solostate_bench::workload::{Config, Dist, op_sequences};

#[test]
fn every_in_process_contender_serves_a_tiny_workload() {
    let config = Config {
        write_pct: 50,
        keys: 200,
        dist: Dist::Zipf,
        threads: 2,
    };
    let ops = op_sequences(&config, 500);
    for &name in MAPS {
        let contender = adapters::build(name, config.keys).expect("in-process contenders build");
        assert_eq!(contender.name(), name);
        let measured = driver::throughput(&*contender, &ops, Duration::from_millis(20));
        assert!(measured.all_found, "{name}: a read missed a present key");
        assert!(measured.reads_per_s > 0.0, "{name}: no reads");
        assert!(measured.writes_per_s > 0.0, "{name}: no writes");
        let latency = driver::latency(&*contender, &ops, 20_000.0, Duration::from_millis(20));
        assert!(!latency.read.is_empty(), "{name}: no read latencies");
        assert!(!latency.write.is_empty(), "{name}: no write latencies");
    }
}

#[test]
fn solostate_reports_staleness_and_the_maps_do_not() {
    let config = Config {
        write_pct: 10,
        keys: 100,
        dist: Dist::Uniform,
        threads: 1,
    };
    let ops = op_sequences(&config, 1000);
    let solo = adapters::build(adapters::solo::IN_MEMORY, 100).expect("engine opens");
    driver::throughput(&*solo, &ops, Duration::from_millis(20));
    let staleness = solo.take_staleness().expect("solostate measures staleness");
    assert!(
        !staleness.is_empty(),
        "no staleness samples from 20 ms of reads"
    );
    let map = adapters::build(adapters::maps::RWLOCK_STD, 100).expect("map builds");
    assert!(map.take_staleness().is_none());
}
