//! The soak's section of the report: its figures, notes and RSS chart.

use solostate::{Durability, StoreKind};

use super::{SoakConfig, SoakOutcome, run};
use crate::chart::{LineChart, Series};
use crate::memory::{MIB, delta_mib, mib};
use crate::report::{Chart, Mode, Section};
use crate::workload::rate;

/// The soak harness for the report: an in-memory engine (`durability`
/// `None`) or a durable one.
///
/// # Errors
///
/// A broken promise, from [`run`] or a memory bound that did not hold.
pub fn section(
    mode: Mode,
    durability: Option<Durability>,
    store: StoreKind,
) -> Result<Section, String> {
    let config = SoakConfig {
        store,
        ..SoakConfig::for_mode(mode, durability)
    };
    let outcome = run(&config)?;
    let broken: Vec<String> = outcome
        .memory_checks()
        .iter()
        .filter(|c| !c.holds())
        .map(|c| format!("{}: {} > {}", c.claim, mib(c.measured), mib(c.bound)))
        .collect();
    if !broken.is_empty() {
        return Err(broken.join("; "));
    }
    Ok(describe(&outcome))
}

fn engine_name(durability: Option<Durability>, store: StoreKind) -> String {
    let store = match store {
        StoreKind::Versioned => ", versioned store",
        _ => "",
    };
    match durability {
        None => format!("in memory{store}"),
        Some(d) => format!("durable, `Durability::{d:?}`{store}"),
    }
}

/// The section for a soak that passed.
fn describe(o: &SoakOutcome) -> Section {
    let c = &o.config;
    let kind = engine_name(c.durability, c.store);
    let mut s = Section::new(
        format!("Soak: memory stays bounded ({kind})"),
        format!(
            "Millions of overwrites of a fixed key set keep RSS flat; {pinned} Once it lets go \
             the engine keeps no reference to it and its memory is reused. The writer's ack \
             latency with and without the pinned reader is measured side by side (reported, not \
             asserted: timing never decides a test). Engine {kind}; {} writers × {} in flight, \
             {} reader threads loading snapshots throughout.",
            c.writers,
            c.in_flight,
            c.readers,
            pinned = match c.store {
                StoreKind::Versioned => {
                    "a reader pinning an old snapshot keeps every version written while it is held \
                     (the versioned store's contract: memory in proportion to those writes; the \
                     bound allows one key's share of the map per overwrite, plus the margin)."
                }
                _ => {
                    "a reader pinning an old snapshot keeps at most one map's worth of nodes \
                     alive (the bound allows two maps plus the margin, for the allocator)."
                }
            }
        ),
    )
    .checked_by("reliability/tests/soak.rs")
    .checked_by("reliability/src/soak/mod.rs");
    let [unpinned, pinned, released] = &o.phases;
    s.figure(
        "events",
        format!(
            "{} ({} fill + {} warm-up + 3 phases × {}) over {} keys",
            c.total_events(),
            c.keys,
            c.warmup_events,
            c.events_per_phase,
            c.keys
        ),
    );
    s.figure("RSS, engine empty", mib(o.rss_empty));
    s.figure(
        "RSS after the fill (one map = the difference)",
        format!(
            "{} ({})",
            mib(o.rss_filled),
            delta_mib(o.rss_filled, o.rss_empty)
        ),
    );
    for p in &o.phases {
        s.figure(
            format!("{}: RSS start / after N / after 2N / peak", p.name),
            format!(
                "{} / {} / {} / {}",
                mib(p.rss[0]),
                mib(p.rss[1]),
                mib(p.rss[2]),
                mib(p.rss_peak)
            ),
        );
    }
    s.figure(
        "what the pinned snapshot cost (pinned end − unpinned end)",
        delta_mib(pinned.rss[2], unpinned.rss[2]),
    );
    s.figure(
        "RSS after release vs before the pin",
        delta_mib(released.rss[2], unpinned.rss[2]),
    );
    s.figure("margin allowed by every bound", mib(o.margin()));
    for check in o.memory_checks() {
        s.figure(
            check.claim,
            format!("{} ≤ {} ✓", mib(check.measured), mib(check.bound)),
        );
    }
    for p in [unpinned, pinned] {
        s.figure(
            format!("writer ack latency p50 / p99 / p99.9 / max, {}", p.name),
            format!(
                "{} ({})",
                p.latency.display(),
                rate(c.events_per_phase, p.elapsed)
            ),
        );
    }
    s.figure(
        "pinned snapshot",
        format!(
            "seq {} unchanged after {} overwrites; freed after release",
            o.pinned_seq, c.events_per_phase
        ),
    );
    s.figure(
        "snapshot loads by the readers (64 gets each)",
        format!(
            "{} ({:.0}/s)",
            o.reads,
            o.reads as f64 / o.elapsed.as_secs_f64()
        ),
    );
    s.note(
        "RSS is what the OS charges the process, not the heap's live size: glibc keeps freed \
         memory in its arenas for reuse and returns it only when the top of a heap is free \
         (`malloc_trim` would need `unsafe` FFI, which the workspace forbids). So the release \
         is judged by reuse, RSS not growing while another phase of overwrites runs, and by \
         the pinned snapshot's `Arc` being freed; whether RSS also fell is the figure \
         \"after release vs before the pin\". Latency is send-to-ack per event with \
         pipelined writers, so it includes queueing behind the writers' own in-flight events; \
         timing never decides the test, only this report.",
    );
    s.note(
        "What the owner loop could leak, read in `engine/src/owner.rs`: each turn awaits a \
         fresh `recv_async` to completion and then drains the queue, with no `select!`, so \
         flume's growth of waiter hooks when one receive future or `RecvStream` is polled \
         repeatedly without completing (zesterer/flume#88) cannot happen there; its inbox \
         `Vec` keeps the capacity of its largest drain, at most the queue's capacity; the \
         periodic flush of `Durability::Every` runs on a thread of its own \
         (`engine/src/flusher.rs`), waiting on a channel with a timeout. The flat unpinned phase above is the measurement that backs this reading.",
    );
    if c.durability.is_some() {
        s.note(
            "A durable engine's RSS climbs in steps over its first few checkpoint and \
             compaction cycles (one every 10 × keys events here, keeping 2, journal compacted \
             behind them) and then holds; the warm-up, charted but not judged, covers that. \
             What it holds above the in-memory engine's RSS for the same map (compare the two \
             sections) is the persistence side: sled's cache and buffers and checkpoint \
             serialisation, not broken down here.",
        );
    }
    match rss_chart(o, &kind).to_svg() {
        Ok(svg) => s.charts.push(Chart {
            file: chart_file(c.durability, c.store),
            alt: format!("RSS over the soak ({kind}), by events applied"),
            svg,
        }),
        // A chart that cannot be drawn is not a broken promise: say so
        // instead of failing the soak.
        Err(e) => s.note(format!("The RSS chart could not be drawn: {e}.")),
    }
    s
}

/// The chart's file name, one per engine the report soaks (named like the
/// bin's harnesses: `soak`, `soak_versioned`, `soak_durable`), so that no
/// section's chart overwrites another's.
fn chart_file(durability: Option<Durability>, store: StoreKind) -> String {
    let durable = if durability.is_some() { "_durable" } else { "" };
    let store = match store {
        StoreKind::Versioned => "_versioned",
        _ => "",
    };
    format!("soak{durable}{store}_rss.svg")
}

/// The RSS curve by events applied, with the phase boundaries marked.
fn rss_chart(o: &SoakOutcome, kind: &str) -> LineChart {
    let c = &o.config;
    let boundary = |i: u64| c.phase_start(i) as f64;
    LineChart {
        title: format!("RSS during the soak ({kind})"),
        x_label: "events applied".into(),
        y_label: "RSS (MiB)".into(),
        series: vec![Series {
            name: "VmRSS".into(),
            points: o
                .samples
                .iter()
                .map(|s| (s.progress as f64, s.rss as f64 / MIB))
                .collect(),
        }],
        markers: vec![
            (c.keys as f64, "warm-up".into()),
            (boundary(0), "unpinned".into()),
            (boundary(1), "pinned".into()),
            (boundary(2), "released".into()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_soaked_engine_charts_to_its_own_file() {
        let durable = Some(Durability::Every(Duration::from_millis(100)));
        let files = [
            chart_file(None, StoreKind::Persistent),
            chart_file(None, StoreKind::Versioned),
            chart_file(durable, StoreKind::Persistent),
            chart_file(durable, StoreKind::Versioned),
        ];
        assert_eq!(
            files,
            [
                "soak_rss.svg",
                "soak_versioned_rss.svg",
                "soak_durable_rss.svg",
                "soak_durable_versioned_rss.svg",
            ]
        );
    }
}
