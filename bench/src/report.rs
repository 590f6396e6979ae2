//! The report: everything a run measured, rendered as the markdown of
//! `BENCHMARKS.md` (machine, targets, throughput matrices with ratios,
//! latency, memory, staleness, recovery).

use std::fmt::Write;
use std::time::Duration;

use crate::adapters::{maps, solo};
use crate::metrics::{Machine, percentiles};
use crate::recovery::Recovery;
use crate::sets::{Memory, SetResult, headline};
use crate::workload::Config;

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where.
    pub machine: Machine,
    /// `quick` or `full`.
    pub mode: &'static str,
    /// The command that produced it.
    pub command: String,
    /// The comparison sets.
    pub sets: Vec<SetResult>,
    /// Memory per contender.
    pub memory: Vec<Memory>,
    /// Recovery, if it ran.
    pub recovery: Option<Recovery>,
    /// Anything skipped or odd, in words.
    pub notes: Vec<String>,
    /// How long the whole run took.
    pub elapsed: Duration,
    /// Chart files, relative to the report, with their captions.
    pub charts: Vec<(String, String)>,
}

/// One of the targets, checked against this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is compared.
    pub what: String,
    /// The goal, e.g. `>= 0.8x`.
    pub goal: &'static str,
    /// The measured ratio, if both sides ran.
    pub ratio: Option<f64>,
    /// Whether the ratio meets the goal.
    pub met: Option<bool>,
}

impl Report {
    fn row(
        &self,
        set: &str,
        contender: &str,
        config: &Config,
    ) -> Option<&crate::driver::Throughput> {
        self.sets
            .iter()
            .filter(|s| s.name == set)
            .flat_map(|s| &s.rows)
            .find(|r| r.contender == contender && r.config == *config)
            .map(|r| &r.result)
    }

    fn read_p99(&self, contender: &str) -> Option<u64> {
        self.sets
            .iter()
            .flat_map(|s| &s.latency)
            .find(|(c, _, _)| *c == contender)
            .map(|(_, _, l)| l.read.value_at_quantile(0.99))
    }

    /// The targets, each as a ratio of two contenders in this run.
    pub fn targets(&self) -> Vec<Target> {
        let big = headline(crate::sets::BIG);
        let reads = |c: &str| self.row("in-memory", c, &big).map(|t| t.reads_per_s);
        let write_only = Config {
            write_pct: 100,
            ..big
        };
        let writes =
            |set: &str, c: &str, config: &Config| self.row(set, c, config).map(|t| t.writes_per_s);
        // Write-only at the durable set's largest key count, 2 threads.
        let durable_config = self
            .sets
            .iter()
            .find(|s| s.name == "durable")
            .and_then(|s| s.rows.iter().map(|r| r.config.keys).max())
            .map(|keys| Config {
                write_pct: 100,
                ..headline(keys)
            });
        let durable = |a: &str, b: &str| {
            let config = durable_config?;
            Some(writes("durable", a, &config)? / writes("durable", b, &config)?)
        };
        let memory = |c: &str| {
            self.memory
                .iter()
                .find(|m| m.contender == c)
                .map(|m| m.rss_kb.saturating_sub(m.base_kb) as f64)
        };
        let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        let durable_label = durable_config.map_or("not run".to_string(), |c| c.label());
        let mut targets = vec![
            at_least(
                format!("reads/s, {}: solostate / ArcSwap<imbl>", big.label()),
                ">= 0.8x",
                0.8,
                ratio(reads(solo::IN_MEMORY), reads(maps::ARCSWAP_IMBL)),
            ),
            at_least(
                format!("reads/s, {}: solostate / RwLock<HashMap>", big.label()),
                ">= 1x",
                1.0,
                ratio(reads(solo::IN_MEMORY), reads(maps::RWLOCK_STD)),
            ),
            at_most(
                format!("read p99, {}: solostate / RwLock<HashMap>", big.label()),
                "<= 0.1x",
                0.1,
                ratio(
                    self.read_p99(solo::IN_MEMORY).map(|v| v as f64),
                    self.read_p99(maps::RWLOCK_STD).map(|v| v as f64),
                ),
            ),
            at_least(
                format!(
                    "writes/s, {}: solostate / ArcSwap<HashMap> copy",
                    write_only.label()
                ),
                ">= 10x",
                10.0,
                ratio(
                    writes("in-memory", solo::IN_MEMORY, &write_only),
                    writes("in-memory", maps::ARCSWAP_COPY, &write_only),
                ),
            ),
        ];
        for (a, b, goal, floor) in [
            (
                solo::ALWAYS,
                crate::adapters::durable::SLED_FLUSH,
                ">= 10x",
                10.0,
            ),
            (solo::ALWAYS, crate::adapters::redis::ALWAYS, ">= 1x", 1.0),
            (
                solo::EVERY_1S,
                crate::adapters::redis::EVERYSEC,
                ">= 1x",
                1.0,
            ),
        ] {
            targets.push(at_least(
                format!("writes/s, {durable_label}: {a} / {b}"),
                goal,
                floor,
                durable(a, b),
            ));
        }
        targets.push(at_most(
            format!(
                "RSS at {} keys: solostate / RwLock<HashMap>",
                crate::workload::keys_label(crate::sets::BIG)
            ),
            "<= 2x",
            2.0,
            ratio(memory(solo::IN_MEMORY), memory(maps::RWLOCK_STD)),
        ));
        // Issue 12's, for the versioned store. The absolute ones are given
        // in millions of events/s, as a ratio to one million.
        let versioned = solo::VERSIONED;
        let millions = |w: Option<f64>| w.map(|w| w / 1e6);
        targets.extend([
            at_least(
                format!("writes/s, {}: {versioned}, in M/s", write_only.label()),
                ">= 2x",
                2.0,
                millions(writes("in-memory", versioned, &write_only)),
            ),
            at_least(
                format!("writes/s, {}: {versioned} / DashMap", write_only.label()),
                ">= 0.25x",
                0.25,
                ratio(
                    writes("in-memory", versioned, &write_only),
                    writes("in-memory", maps::DASHMAP, &write_only),
                ),
            ),
            at_least(
                format!(
                    "writes/s, {durable_label}: {}, in M/s",
                    solo::VERSIONED_ALWAYS
                ),
                ">= 1x",
                1.0,
                millions(
                    durable_config
                        .and_then(|config| writes("durable", solo::VERSIONED_ALWAYS, &config)),
                ),
            ),
            at_least(
                format!(
                    "writes/s, {durable_label}: {} / {}",
                    solo::VERSIONED_ALWAYS,
                    crate::adapters::redis::ALWAYS
                ),
                ">= 2x",
                2.0,
                durable(solo::VERSIONED_ALWAYS, crate::adapters::redis::ALWAYS),
            ),
            at_least(
                format!(
                    "writes/s, {durable_label}: {} / {}",
                    solo::VERSIONED_EVERY_1S,
                    crate::adapters::redis::EVERYSEC
                ),
                ">= 1x",
                1.0,
                durable(solo::VERSIONED_EVERY_1S, crate::adapters::redis::EVERYSEC),
            ),
            at_least(
                format!("reads/s, {}: {versioned} / RwLock<HashMap>", big.label()),
                ">= 1x",
                1.0,
                ratio(reads(versioned), reads(maps::RWLOCK_STD)),
            ),
            at_most(
                format!("read p99, {}: {versioned} / RwLock<HashMap>", big.label()),
                "<= 1x",
                1.0,
                ratio(
                    self.read_p99(versioned).map(|v| v as f64),
                    self.read_p99(maps::RWLOCK_STD).map(|v| v as f64),
                ),
            ),
            at_most(
                format!(
                    "RSS at {} keys: {versioned} / RwLock<HashMap>",
                    crate::workload::keys_label(crate::sets::BIG)
                ),
                "<= 2x",
                2.0,
                ratio(memory(versioned), memory(maps::RWLOCK_STD)),
            ),
        ]);
        for keys in [1_000, crate::sets::BIG] {
            let config = Config {
                threads: 32,
                ..headline(keys)
            };
            let reads = |c: &str| self.row("in-memory", c, &config).map(|t| t.reads_per_s);
            targets.push(at_least(
                format!("reads/s, {}: {versioned} / RwLock<HashMap>", config.label()),
                ">= 1x",
                1.0,
                ratio(reads(versioned), reads(maps::RWLOCK_STD)),
            ));
        }
        targets
    }

    /// The whole of `BENCHMARKS.md`.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "solostate beside what people would otherwise use, side by side in one process \
             per comparison set: the same keys, the same 64-byte values and the same op \
             sequence for every contender. Generated by `{}` ({} mode) in {:.0} s; \
             see `bench/` for how each contender is driven.\n\n\
             Throughput is closed loop: each thread runs its own sequence of reads and \
             writes in the mix, as YCSB does, so in a mix the reads/s are bound by what the \
             same threads' writes cost. The pipelining contenders (solostate, Redis) keep up \
             to 256 writes (commands) in flight per thread, and a write counts once it is \
             acknowledged. Ratios compare ops/s of the same workload in the same run.\n",
            self.command,
            self.mode,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(md, "| machine | |\n|---|---|");
        let _ = writeln!(md, "| CPU | {} |", m.cpu);
        let _ = writeln!(md, "| cores | {} |", m.cores);
        let _ = writeln!(md, "| memory | {:.1} GiB |", m.memory_gib);
        let _ = writeln!(md, "| date | {} |", m.date);
        let _ = writeln!(md, "| load average at start | {} |\n", m.load);

        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | goal | measured | |\n|---|---|---|---|");
        for t in self.targets() {
            let measured = t.ratio.map_or("not run".to_string(), ratio);
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "",
            };
            let _ = writeln!(md, "| {} | {} | {measured} | {verdict} |", t.what, t.goal);
        }
        md.push('\n');

        for (file, caption) in &self.charts {
            let _ = writeln!(md, "![{caption}]({file})\n");
        }
        for set in &self.sets {
            self.set_markdown(&mut md, set);
        }
        self.memory_markdown(&mut md);
        if let Some(r) = &self.recovery {
            let _ = writeln!(md, "## Recovery (solostate)\n");
            let _ = writeln!(md, "| measure | value |\n|---|---|");
            let _ = writeln!(
                md,
                "| replay ({} events, no checkpoint) | {:.2?}: {} events/s |",
                r.events,
                r.replay,
                count(r.replay_per_s())
            );
            let _ = writeln!(
                md,
                "| open from a checkpoint of {} keys | {:.2?} |",
                r.checkpoint_keys, r.open_from_checkpoint
            );
            let _ = writeln!(
                md,
                "| journal bytes per event (64-byte value, u64 key) | {:.1} |\n",
                r.journal_bytes_per_event
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "## Notes\n");
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
            md.push('\n');
        }
        md
    }

    fn set_markdown(&self, md: &mut String, set: &SetResult) {
        let _ = writeln!(md, "## {} set: throughput (ops/s)\n", set.name);
        let mut configs: Vec<Config> = Vec::new();
        for row in &set.rows {
            if !configs.contains(&row.config) {
                configs.push(row.config);
            }
        }
        let header = |md: &mut String| {
            let _ = write!(md, "| workload |");
            for c in &set.contenders {
                let _ = write!(md, " {c} |");
            }
            let _ = writeln!(md, "\n|---|{}", "---:|".repeat(set.contenders.len()));
        };
        header(md);
        for config in &configs {
            let _ = write!(md, "| {} |", config.label());
            for c in &set.contenders {
                let cell = self
                    .row(set.name, c, config)
                    .map_or("-".to_string(), |t| count(t.ops_per_s()));
                let _ = write!(md, " {cell} |");
            }
            md.push('\n');
        }
        md.push('\n');
        let bases = [maps::RWLOCK_STD, maps::ARCSWAP_IMBL];
        for base in bases.iter().filter(|b| set.contenders.contains(b)) {
            let _ = writeln!(md, "Ratio to {base} (ops/s; above 1 is faster):\n");
            header(md);
            for config in &configs {
                let _ = write!(md, "| {} |", config.label());
                let base_ops = self.row(set.name, base, config).map(|t| t.ops_per_s());
                for c in &set.contenders {
                    let ops = self.row(set.name, c, config).map(|t| t.ops_per_s());
                    let cell = match (ops, base_ops) {
                        (Some(ops), Some(base)) => ratio(ops / base),
                        _ => "-".to_string(),
                    };
                    let _ = write!(md, " {cell} |");
                }
                md.push('\n');
            }
            md.push('\n');
        }
        if let Some((_, config, l)) = set.latency.first() {
            let _ = writeln!(
                md,
                "### {} set: latency, {} at {} ops/s\n\nOpen loop: one writer thread and \
                 the other threads reading, at fixed rates in the mix; each op is timed from \
                 its scheduled start, so a stall counts against every op it delayed. \
                 Writes are timed to their ack (durable, for the durable contenders).\n",
                set.name,
                config.label(),
                count(l.rate)
            );
            let _ = writeln!(
                md,
                "| contender | read p50 | read p99 | read p99.9 | write p50 | write p99 | write p99.9 | |\n\
                 |---|---:|---:|---:|---:|---:|---:|---|"
            );
            for (c, _, l) in &set.latency {
                let [r50, r99, r999] = percentiles(&l.read);
                let [w50, w99, w999] = percentiles(&l.write);
                let flag = if l.saturated { "fell behind" } else { "" };
                let _ = writeln!(
                    md,
                    "| {c} | {} | {} | {} | {} | {} | {} | {flag} |",
                    dur(r50),
                    dur(r99),
                    dur(r999),
                    dur(w50),
                    dur(w99),
                    dur(w999)
                );
            }
            md.push('\n');
        }
        if !set.staleness.is_empty() {
            let _ = writeln!(
                md,
                "### {} set: snapshot staleness over the {} throughput run\n\n\
                 Events the writers had sent that the snapshot a reader loaded did not show \
                 yet (sampled every 64th read).\n\n| contender | p50 | p99 | max |\n|---|---:|---:|---:|",
                set.name,
                headline(
                    set.rows
                        .iter()
                        .map(|r| r.config.keys)
                        .max()
                        .unwrap_or(crate::sets::BIG)
                )
                .label()
            );
            for (c, h) in &set.staleness {
                let _ = writeln!(
                    md,
                    "| {c} | {} | {} | {} |",
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.99),
                    h.max()
                );
            }
            md.push('\n');
        }
        for note in &set.notes {
            let _ = writeln!(md, "- {note}");
        }
        if !set.notes.is_empty() {
            md.push('\n');
        }
    }

    fn memory_markdown(&self, md: &mut String) {
        if self.memory.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "## Memory\n\nEach contender alone in a child process: resident memory with every \
             key loaded (and 100 writes done), net of the child's own baseline, and the \
             child's peak.\n\n| contender | keys | RSS | bytes/key | peak RSS | x RwLock<HashMap> |\n\
             |---|---:|---:|---:|---:|---:|"
        );
        let base = self
            .memory
            .iter()
            .find(|m| m.contender == maps::RWLOCK_STD)
            .map(|m| m.rss_kb.saturating_sub(m.base_kb) as f64);
        for m in &self.memory {
            let net = m.rss_kb.saturating_sub(m.base_kb);
            let vs = base.map_or("-".to_string(), |b| ratio(net as f64 / b));
            let _ = writeln!(
                md,
                "| {} | {} | {} MiB | {:.0} | {} MiB | {vs} |",
                m.contender,
                m.keys,
                net / 1024,
                m.bytes_per_key(),
                m.peak_kb / 1024
            );
        }
        md.push('\n');
    }
}

fn at_least(what: String, goal: &'static str, floor: f64, ratio: Option<f64>) -> Target {
    Target {
        what,
        goal,
        ratio,
        met: ratio.map(|r| r >= floor),
    }
}

fn at_most(what: String, goal: &'static str, ceiling: f64, ratio: Option<f64>) -> Target {
    Target {
        what,
        goal,
        ratio,
        met: ratio.map(|r| r <= ceiling),
    }
}

/// The heading of the section that the `replicated` binary's run fills
/// in by hand (it runs apart from this report, so a rewrite must keep it).
pub const REPLICATION_HEADING: &str = "## Replication (loopback, 3 nodes in one process)";

/// The section of `old` (a previous `BENCHMARKS.md`) that starts at the
/// line `heading` and runs to the next `## ` heading or the end, or `None`
/// if there is no such line. Why: `BENCHMARKS.md` is rewritten whole by
/// this report, and a section written by another binary must survive it.
pub fn kept_section<'a>(old: &'a str, heading: &str) -> Option<&'a str> {
    let start = if old.starts_with(heading) {
        0
    } else {
        old.find(&format!("\n{heading}"))? + 1
    };
    let rest = &old[start..];
    let end = rest[heading.len()..]
        .find("\n## ")
        .map_or(rest.len(), |i| heading.len() + i + 1);
    Some(rest[..end].trim_end())
}

/// `1.23x`, `0.045x`, `120x`: three significant digits at most.
pub fn ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("{r:.3}x")
    }
}

/// `1.2G`, `12.3M`, `456k`, `789`.
pub fn count(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.1}G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// `85 ns`, `12.5 us`, `3.20 ms`.
pub fn dur(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
