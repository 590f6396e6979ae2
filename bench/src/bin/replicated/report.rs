//! The report: each run's figures, their medians over the rounds, and the
//! Markdown table.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use solostate_bench::metrics::Machine;
use solostate_bench::report::{count, dur, ratio};

use crate::settings::{CONTENDERS, Contender, Settings};

/// The figures of one run that the table shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    pub(crate) per_sec: f64,
    /// p50, p90, p99, p99.9; `None` when nothing was acked in the window
    /// (a run with no acks has no latency, not a latency of zero).
    pub(crate) latency: Option<[Duration; 4]>,
}

/// The latency quantiles the table shows.
pub(crate) const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Medians over the rounds of one contender at one submitter count.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    per_sec: f64,
    runs: Vec<f64>,
    /// Medians over the rounds that acked anything (`None`: none did).
    latency: Option<[Duration; 4]>,
    errors: u64,
    /// Term changes over all rounds (`None` for the single engine).
    elections: Option<u64>,
}

pub(crate) fn summarize(figures: &[Figures], errors: u64, elections: Option<u64>) -> Summary {
    let runs: Vec<f64> = figures.iter().map(|f| f.per_sec).collect();
    let per_sec = median(&mut runs.clone());
    let acked: Vec<[Duration; 4]> = figures.iter().filter_map(|f| f.latency).collect();
    let latency = (!acked.is_empty()).then(|| {
        std::array::from_fn(|q| {
            let mut ns: Vec<f64> = acked.iter().map(|l| l[q].as_nanos() as f64).collect();
            Duration::from_nanos(median(&mut ns) as u64)
        })
    });
    Summary {
        per_sec,
        runs,
        latency,
        errors,
        elections,
    }
}

/// The mount point and filesystem type that hold `path`, from
/// `/proc/mounts` (the longest mount point that prefixes it).
fn filesystem_of(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point).then(|| {
                (
                    point.len(),
                    format!("{kind} on {device}, mounted at {point}"),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown filesystem".to_owned(), |(_, what)| what)
}

pub(crate) fn markdown(
    settings: &Settings,
    machine: &Machine,
    results: &BTreeMap<(usize, Contender), Summary>,
) -> String {
    let mut out = String::new();
    let command: Vec<String> = std::env::args().skip(1).collect();
    out.push_str("## Replication (loopback, 3 nodes in one process)\n\n");
    out.push_str(&format!(
        "Closed loop: C tokio tasks each submit one `put` (a `StateEvent<String, u64>` over {} keys) and wait for its ack before the next. \
Each run is {} s measured after {} s of warm-up, on a fresh directory, with the default durability (the single engine fsyncs per batch with group commit; \
each node fsyncs its Raft log and its engine journal). The cluster is three `ReplicatedEngine`s in this process on 127.0.0.1 with the builder's default timing \
(heartbeat 100 ms, election 400-800 ms) and snapshot policy. Each figure is the median of {} rounds; within a round the three contenders run one after another \
in an order that rotates each round. Ratios are the replicated median over the single engine's median at the same C.\n\n",
        settings.keys, settings.secs, settings.warmup, settings.rounds
    ));
    out.push_str(
        "**This understates a real cluster.** All three nodes share this machine's cores and its one disk with each other and with the submitters: \
every replicated write is fsynced three times on the same device, and the leader's and followers' work competes for the same CPU. \
Three machines would do that work in parallel; here it is serialized, so the replicated figures are a lower bound on throughput and an upper bound on latency. \
Loopback also hides real network round trips (on a LAN add at least one RTT per write, two via a follower).\n\n",
    );
    out.push_str("| machine | |\n|---|---|\n");
    out.push_str(&format!("| CPU | {} |\n", machine.cpu));
    out.push_str(&format!("| cores | {} |\n", machine.cores));
    out.push_str(&format!("| memory | {:.1} GiB |\n", machine.memory_gib));
    out.push_str(&format!(
        "| data directories | {} ({}) |\n",
        settings.dir.display(),
        filesystem_of(&settings.dir)
    ));
    out.push_str(&format!(
        "| tokio worker threads (shared by the nodes and the submitters) | {} |\n",
        settings.workers.map_or_else(
            || format!("{} (the default: one per core)", machine.cores),
            |w| w.to_string()
        )
    ));
    out.push_str(&format!("| date | {} |\n", machine.date));
    out.push_str(&format!("| load average at start | {} |\n", machine.load));
    out.push_str(&format!(
        "| load average at end | {} |\n",
        Machine::describe().load
    ));
    out.push_str(&format!(
        "| command | `cargo run --release -p solostate-bench --bin replicated --{}` |\n\n",
        command.iter().map(|a| format!(" {a}")).collect::<String>()
    ));
    out.push_str(
        "| C | contender | acked events/s | runs | p50 | p90 | p99 | p99.9 | events/s vs single | p50 vs single | p99 vs single | failed submits | elections |\n\
|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for &c in &settings.submitters {
        let Some(single) = results.get(&(c, Contender::Single)) else {
            continue;
        };
        for contender in CONTENDERS {
            let Some(s) = results.get(&(c, contender)) else {
                continue;
            };
            let vs = |mine: f64, base: f64| {
                if contender == Contender::Single {
                    "1x".to_owned()
                } else if base > 0.0 {
                    ratio(mine / base)
                } else {
                    "n/a".to_owned()
                }
            };
            let lat = |q: usize| s.latency.map_or(0.0, |l| l[q].as_nanos() as f64);
            let base = |q: usize| single.latency.map_or(0.0, |l| l[q].as_nanos() as f64);
            let shown = |q: usize| s.latency.map_or("-".to_owned(), |l| dur(l[q]));
            let vs_lat = |q: usize| {
                if s.latency.is_none() {
                    "n/a".to_owned()
                } else {
                    vs(lat(q), base(q))
                }
            };
            out.push_str(&format!(
                "| {c} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                contender.name(),
                count(s.per_sec),
                s.runs
                    .iter()
                    .map(|r| count(*r))
                    .collect::<Vec<_>>()
                    .join(" / "),
                shown(0),
                shown(1),
                shown(2),
                shown(3),
                vs(s.per_sec, single.per_sec),
                vs_lat(0),
                vs_lat(2),
                s.errors,
                s.elections.map_or("-".to_owned(), |e| e.to_string()),
            ));
        }
    }
    out.push_str(
        "\n`runs` lists each round's events/s in the order they ran. Latency is from submit to ack as the submitting task sees it; \
for the cluster the ack means the entry is committed on a quorum and applied, durably, on the leader. \
`failed submits` counts submits that returned an error, over all rounds (warm-up included); a failed task pauses 10 ms before its next submit. \
`elections` counts Raft term changes during the runs, over all rounds: each is an election, after a follower went an election timeout without hearing from the leader. \
Latency medians are over the rounds that acked anything (`-`: none did).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_and_of_an_even_the_mean_of_two() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn summaries_take_each_percentile_median_separately() {
        let ms = Duration::from_millis;
        let f = |per_sec, p| Figures {
            per_sec,
            latency: Some([ms(p), ms(p + 1), ms(p + 2), ms(p + 3)]),
        };
        let s = summarize(&[f(10.0, 5), f(30.0, 1), f(20.0, 9)], 2, Some(1));
        assert_eq!(s.per_sec, 20.0);
        assert_eq!(s.runs, vec![10.0, 30.0, 20.0], "in the order they ran");
        assert_eq!(s.latency, Some([ms(5), ms(6), ms(7), ms(8)]));
        assert_eq!(s.errors, 2);
        assert_eq!(s.elections, Some(1));
    }

    #[test]
    fn a_round_without_acks_counts_for_throughput_but_has_no_latency() {
        let ms = Duration::from_millis;
        let acked = Figures {
            per_sec: 50.0,
            latency: Some([ms(2), ms(3), ms(4), ms(5)]),
        };
        let none = Figures {
            per_sec: 0.0,
            latency: None,
        };
        let s = summarize(&[acked, none, none], 0, Some(4));
        assert_eq!(s.per_sec, 0.0, "two of three rounds acked nothing");
        assert_eq!(s.latency, Some([ms(2), ms(3), ms(4), ms(5)]));
        assert_eq!(summarize(&[none], 0, None).latency, None);
    }
}
