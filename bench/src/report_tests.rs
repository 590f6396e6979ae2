use std::time::Duration;

use super::*;
use crate::driver::{Latency, Throughput};
use crate::metrics::latency_histogram;
use crate::sets::{Row, SetResult};

fn machine() -> Machine {
    Machine {
        cpu: "Test CPU @ 1 GHz".to_string(),
        cores: 2,
        memory_gib: 8.0,
        date: "2026-11-29 04:00 UTC".to_string(),
        load: "0.10 0.20 0.30".to_string(),
    }
}

fn reads(reads_per_s: f64, writes_per_s: f64) -> Throughput {
    Throughput {
        reads_per_s,
        writes_per_s,
        all_found: true,
    }
}

fn latency_with_read_p99(ns: u64) -> Latency {
    let mut read = latency_histogram();
    read.record_n(ns, 1000).expect("in range");
    Latency {
        rate: 100_000.0,
        read,
        write: latency_histogram(),
        saturated: false,
    }
}

/// An in-memory set where solostate reads at 9M/s, RwLock at 3M/s and
/// ArcSwap<imbl> at 10M/s, and writes 20x as fast as the full copy.
fn report() -> Report {
    let big = headline(crate::sets::BIG);
    let write_only = Config {
        write_pct: 100,
        ..big
    };
    let row = |contender, config, result| Row {
        config,
        contender,
        result,
    };
    let set = SetResult {
        name: "in-memory",
        contenders: vec![
            maps::RWLOCK_STD,
            maps::ARCSWAP_IMBL,
            maps::ARCSWAP_COPY,
            solo::IN_MEMORY,
        ],
        rows: vec![
            row(maps::RWLOCK_STD, big, reads(3e6, 3e5)),
            row(maps::ARCSWAP_IMBL, big, reads(10e6, 1e6)),
            row(solo::IN_MEMORY, big, reads(9e6, 1e6)),
            row(maps::ARCSWAP_COPY, write_only, reads(0.0, 50.0)),
            row(solo::IN_MEMORY, write_only, reads(0.0, 1000.0)),
        ],
        latency: vec![
            (maps::RWLOCK_STD, big, latency_with_read_p99(20_000)),
            (solo::IN_MEMORY, big, latency_with_read_p99(1_000)),
        ],
        staleness: Vec::new(),
        notes: vec!["a set note".to_string()],
    };
    Report {
        machine: machine(),
        mode: "quick",
        command: "cargo run --release -p solostate-bench -- --quick".to_string(),
        sets: vec![set],
        memory: Vec::new(),
        recovery: None,
        notes: vec!["a run note".to_string()],
        elapsed: Duration::from_secs(90),
        charts: vec![("bench/results/x.svg".to_string(), "the chart".to_string())],
    }
}

#[test]
fn targets_are_ratios_of_the_named_rows() {
    let targets = report().targets();
    let find = |what: &str| {
        targets
            .iter()
            .find(|t| t.what.contains(what))
            .unwrap_or_else(|| panic!("no target {what:?} in {targets:?}"))
    };
    let imbl = find("reads/s, 90/10 1e6 uniform 2t: solostate / ArcSwap<imbl>");
    assert_eq!(imbl.ratio, Some(0.9));
    assert_eq!(imbl.met, Some(true));
    let rwlock = find("reads/s, 90/10 1e6 uniform 2t: solostate / RwLock");
    assert_eq!(rwlock.ratio, Some(3.0));
    let p99 = find("read p99");
    let p99_ratio = p99.ratio.expect("both latencies ran");
    assert!((p99_ratio - 0.05).abs() < 0.001, "p99 ratio {p99_ratio}");
    assert_eq!(p99.met, Some(true));
    let copy = find("ArcSwap<HashMap> copy");
    assert_eq!(copy.ratio, Some(20.0));
    assert_eq!(copy.met, Some(true));
    // Nothing durable and no memory ran: those targets have no ratio.
    let sled = find("sled flush/write");
    assert_eq!((sled.ratio, sled.met), (None, None));
    assert_eq!(find("RSS").ratio, None);
}

#[test]
fn a_missed_target_says_so() {
    let mut report = report();
    report.sets[0].rows[2].result.reads_per_s = 2e6;
    let md = report.markdown();
    assert!(
        md.contains("| reads/s, 90/10 1e6 uniform 2t: solostate / RwLock<HashMap> | >= 1x | 0.67x | **missed** |"),
        "{md}"
    );
}

#[test]
fn markdown_has_the_machine_tables_ratios_chart_and_notes() {
    let md = report().markdown();
    for expected in [
        "| CPU | Test CPU @ 1 GHz |",
        "| load average at start | 0.10 0.20 0.30 |",
        "| workload | RwLock<HashMap> | ArcSwap<imbl> | ArcSwap<HashMap> copy | solostate |",
        "| 90/10 1e6 uniform 2t | 3.30M | 11.00M | - | 10.00M |",
        "Ratio to RwLock<HashMap>",
        "| 90/10 1e6 uniform 2t | 1.00x | 3.33x | - | 3.03x |",
        "Ratio to ArcSwap<imbl>",
        "| 90/10 1e6 uniform 2t | 0.30x | 1.00x | - | 0.91x |",
        "| solostate | 1.0 us | 1.0 us |",
        "![the chart](bench/results/x.svg)",
        "- a set note",
        "- a run note",
        "(quick mode) in 90 s",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
}

#[test]
fn numbers_are_formatted_for_reading() {
    assert_eq!(ratio(123.4), "123x");
    assert_eq!(ratio(12.34), "12.3x");
    assert_eq!(ratio(1.234), "1.23x");
    assert_eq!(ratio(0.01234), "0.012x");
    assert_eq!(count(1.2e10), "12.0G");
    assert_eq!(count(12_345_678.0), "12.35M");
    assert_eq!(count(4_560.0), "4.6k");
    assert_eq!(count(78.0), "78");
    assert_eq!(dur(Duration::from_nanos(85)), "85 ns");
    assert_eq!(dur(Duration::from_nanos(12_500)), "12.5 us");
    assert_eq!(dur(Duration::from_micros(3_200)), "3.20 ms");
}

#[test]
fn the_replication_section_is_kept_through_to_the_next_section() {
    let old = "# Benchmarks\n\n## Recovery\n\nr\n\n## Replication (loopback, 3 nodes in one process)\n\n| t |\n\n### Per-run log\n\nx\n\n## Later\n\ny\n";
    assert_eq!(
        kept_section(old, REPLICATION_HEADING),
        Some("## Replication (loopback, 3 nodes in one process)\n\n| t |\n\n### Per-run log\n\nx")
    );
    let last = "# B\n\n## Replication (loopback, 3 nodes in one process)\n\nz\n";
    assert_eq!(
        kept_section(last, REPLICATION_HEADING),
        Some("## Replication (loopback, 3 nodes in one process)\n\nz")
    );
    assert_eq!(
        kept_section("# B\n\n## Recovery\n", REPLICATION_HEADING),
        None
    );
}
