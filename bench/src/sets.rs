//! The comparison sets: which contenders run side by side in this
//! process, on which workloads, for how long. A set builds each contender
//! once per key count (filled with every key), runs every configuration of
//! that key count on it, then drops it before the next contender is built.

use std::process::Command;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::adapters::{self, Contender};
use crate::driver::{self, Latency, Throughput};
use crate::workload::{Config, Dist, op_sequences};

/// How much to run: `--quick` or `--full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The headline configurations only, briefly: under 3 minutes.
    Quick,
    /// The whole matrix.
    Full,
}

impl Mode {
    /// The flag's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    fn run_for(self, durable: bool) -> Duration {
        match (self, durable) {
            (Mode::Quick, _) => Duration::from_millis(500),
            (Mode::Full, false) => Duration::from_secs(1),
            (Mode::Full, true) => Duration::from_secs(2),
        }
    }

    fn latency_for(self) -> Duration {
        match self {
            Mode::Quick => Duration::from_secs(1),
            Mode::Full => Duration::from_secs(3),
        }
    }
}

/// The key count the headline figures use.
pub const BIG: u64 = 1_000_000;
/// The mixes, as writes per 100 ops.
pub const MIXES: [u32; 5] = [0, 1, 10, 50, 100];

/// The configuration the read targets are about: 90/10, 1e6 keys, 2
/// threads (uniform).
pub fn headline(keys: u64) -> Config {
    Config {
        write_pct: 10,
        keys,
        dist: Dist::Uniform,
        threads: 2,
    }
}

/// A comparison set: its contenders and workloads.
#[derive(Debug, Clone)]
pub struct Set {
    /// Its name in the report.
    pub name: &'static str,
    /// Its contenders, by name.
    pub contenders: Vec<&'static str>,
    /// Its throughput configurations.
    pub configs: Vec<Config>,
    /// The fixed-rate latency run: the headline configuration at this
    /// rate (ops/s over all threads).
    pub latency_rate: f64,
    /// Whether its contenders write to disk (they run longer).
    pub durable: bool,
}

impl Set {
    /// The in-process maps and solostate in memory.
    pub fn maps(mode: Mode) -> Self {
        let base = headline(BIG);
        let configs = match mode {
            Mode::Quick => {
                let mut configs: Vec<Config> = MIXES
                    .iter()
                    .map(|&write_pct| Config { write_pct, ..base })
                    .collect();
                configs.push(Config {
                    dist: Dist::Zipf,
                    ..base
                });
                configs.push(Config {
                    threads: 32,
                    ..base
                });
                configs
            }
            Mode::Full => matrix(&[1_000, BIG], &[Dist::Uniform, Dist::Zipf], &[1, 2, 4, 32]),
        };
        Set {
            name: "in-memory",
            contenders: adapters::MAPS.to_vec(),
            configs,
            // 10,000 writes/s among 90,000 reads/s: easy for a lock, hard
            // for a full copy of a million keys.
            latency_rate: 100_000.0,
            durable: false,
        }
    }

    /// The durable contenders. Quick mode uses 1e5 keys, to keep filling
    /// six stores inside its time.
    pub fn durable(mode: Mode) -> Self {
        let configs = match mode {
            Mode::Quick => [100, 10]
                .map(|write_pct| Config {
                    write_pct,
                    ..headline(100_000)
                })
                .to_vec(),
            Mode::Full => matrix(&[BIG], &[Dist::Uniform], &[1, 2, 4, 32]),
        };
        let mut contenders = adapters::DURABLE.to_vec();
        if !adapters::redis::available() {
            contenders.retain(|c| !c.starts_with("redis"));
        }
        Set {
            name: "durable",
            contenders,
            configs,
            // 100 writes/s: a flush per write (a few ms on this disk) keeps up.
            latency_rate: 1_000.0,
            durable: true,
        }
    }

    /// The key count of its headline configuration (the largest).
    pub fn keys(&self) -> u64 {
        self.configs.iter().map(|c| c.keys).max().unwrap_or(BIG)
    }
}

fn matrix(keys: &[u64], dists: &[Dist], threads: &[usize]) -> Vec<Config> {
    let mut configs = Vec::new();
    for &keys in keys {
        for &dist in dists {
            for &threads in threads {
                for write_pct in MIXES {
                    configs.push(Config {
                        write_pct,
                        keys,
                        dist,
                        threads,
                    });
                }
            }
        }
    }
    configs
}

/// One contender's throughput on one configuration.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workload.
    pub config: Config,
    /// The contender.
    pub contender: &'static str,
    /// What it did.
    pub result: Throughput,
}

/// What a set measured.
#[derive(Debug, Clone)]
pub struct SetResult {
    /// The set's name.
    pub name: &'static str,
    /// Its contenders that ran, in order.
    pub contenders: Vec<&'static str>,
    /// Throughput rows.
    pub rows: Vec<Row>,
    /// The fixed-rate run of the headline configuration, per contender.
    pub latency: Vec<(&'static str, Config, Latency)>,
    /// Snapshot staleness (seqs) over the headline throughput run, for
    /// the solostate contenders.
    pub staleness: Vec<(&'static str, Histogram<u64>)>,
    /// What went wrong or was skipped, in words.
    pub notes: Vec<String>,
}

/// Ops per thread in a generated sequence (threads loop over theirs).
fn ops_per_thread(threads: usize) -> usize {
    ((1 << 20) / threads).max(1 << 14)
}

/// Runs `set`, printing progress to stderr.
pub fn run(set: &Set, mode: Mode) -> SetResult {
    let mut result = SetResult {
        name: set.name,
        contenders: Vec::new(),
        rows: Vec::new(),
        latency: Vec::new(),
        staleness: Vec::new(),
        notes: Vec::new(),
    };
    if set.durable && !adapters::redis::available() {
        result
            .notes
            .push(adapters::AdapterError::RedisMissing.to_string());
    }
    let mut key_counts: Vec<u64> = set.configs.iter().map(|c| c.keys).collect();
    key_counts.sort_unstable();
    key_counts.dedup();
    let headline = headline(set.keys());
    let started = std::time::Instant::now();
    for &name in &set.contenders {
        for &keys in &key_counts {
            let filling = std::time::Instant::now();
            let contender = match adapters::build(name, keys) {
                Ok(contender) => contender,
                Err(e) => {
                    eprintln!("skipped: {e}");
                    result.notes.push(format!("skipped: {e}"));
                    continue;
                }
            };
            eprintln!(
                "[{:>5.1?}] {name}: filled {keys} keys in {:.1?}",
                started.elapsed(),
                filling.elapsed()
            );
            if !result.contenders.contains(&name) {
                result.contenders.push(name);
            }
            for config in set.configs.iter().filter(|c| c.keys == keys) {
                let ops = op_sequences(config, ops_per_thread(config.threads));
                contender.take_staleness();
                let measured = driver::throughput(&*contender, &ops, mode.run_for(set.durable));
                eprintln!(
                    "  {:<28} {:>12.0} ops/s ({:.0} reads/s, {:.0} writes/s)",
                    config.label(),
                    measured.ops_per_s(),
                    measured.reads_per_s,
                    measured.writes_per_s
                );
                if !measured.all_found {
                    result.notes.push(format!(
                        "{name}, {}: some reads did not find their key",
                        config.label()
                    ));
                }
                if *config == headline
                    && let Some(staleness) = contender.take_staleness()
                {
                    result.staleness.push((name, staleness));
                }
                result.rows.push(Row {
                    config: *config,
                    contender: name,
                    result: measured,
                });
            }
            if keys == headline.keys {
                result
                    .latency
                    .push((name, headline, latency(&*contender, set, headline, mode)));
            }
        }
    }
    result
}

fn latency(contender: &dyn Contender, set: &Set, config: Config, mode: Mode) -> Latency {
    let ops = op_sequences(&config, ops_per_thread(config.threads));
    let measured = driver::latency(contender, &ops, set.latency_rate, mode.latency_for());
    let [r50, r99, _] = crate::metrics::percentiles(&measured.read);
    let [w50, w99, _] = crate::metrics::percentiles(&measured.write);
    eprintln!(
        "  latency at {} ops/s: read p50 {r50:?} p99 {r99:?}, write p50 {w50:?} p99 {w99:?}{}",
        set.latency_rate,
        if measured.saturated {
            " (saturated)"
        } else {
            ""
        }
    );
    measured
}

/// A contender's memory, measured alone in a child process.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// The contender.
    pub contender: &'static str,
    /// Keys it held.
    pub keys: u64,
    /// The child's RSS before building the contender, KiB.
    pub base_kb: u64,
    /// RSS with the contender filled, KiB.
    pub rss_kb: u64,
    /// Peak RSS (VmHWM) over the child's life, KiB.
    pub peak_kb: u64,
}

impl Memory {
    /// Resident bytes per key, net of the child's baseline.
    pub fn bytes_per_key(&self) -> f64 {
        self.rss_kb.saturating_sub(self.base_kb) as f64 * 1024.0 / self.keys as f64
    }
}

/// The hidden subcommand that measures one contender's memory.
pub const MEMORY_CHILD: &str = "__memory";

/// Runs in the child: builds `name` with `keys` keys, writes a few keys
/// (so copy-on-write contenders show a write's peak), and prints
/// `base rss peak` in KiB on one line.
///
/// # Errors
///
/// The contender could not be built, or `/proc/self/status` is missing.
pub fn memory_child(name: &str, keys: u64) -> Result<String, String> {
    let (base, _) = crate::metrics::own_memory_kb().ok_or("no /proc/self/status")?;
    let contender = adapters::build(name, keys).map_err(|e| e.to_string())?;
    {
        let mut session = contender.session();
        for key in 0..100 {
            session.write(key, &crate::workload::value(key + 1));
        }
        session.sync();
    }
    let (rss, peak) = crate::metrics::own_memory_kb().ok_or("no /proc/self/status")?;
    drop(contender);
    Ok(format!("{base} {rss} {peak}"))
}

/// Measures each contender's memory in a child process of its own
/// (this binary, re-executed with [`MEMORY_CHILD`]), so that no
/// contender's freed pages or allocator state count for another.
pub fn memory(contenders: &[&'static str], keys: u64) -> (Vec<Memory>, Vec<String>) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return (
                Vec::new(),
                vec![format!("memory: no path to this binary: {e}")],
            );
        }
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &contender in contenders {
        let output = Command::new(&exe)
            .args([MEMORY_CHILD, contender, &keys.to_string()])
            .output();
        let parsed = output
            .map_err(|e| format!("run {}: {e}", exe.display()))
            .and_then(|out| {
                if out.status.success() {
                    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            })
            .and_then(|line| parse_memory_line(contender, keys, &line));
        match parsed {
            Ok(row) => {
                eprintln!(
                    "{contender}: {:.0} bytes/key, peak {} MiB",
                    row.bytes_per_key(),
                    row.peak_kb / 1024
                );
                rows.push(row);
            }
            Err(e) => notes.push(format!("memory of {contender}: {}", e.trim())),
        }
    }
    (rows, notes)
}

fn parse_memory_line(contender: &'static str, keys: u64, line: &str) -> Result<Memory, String> {
    let numbers: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("child printed {line:?}: {e}"))?;
    let [base_kb, rss_kb, peak_kb] = numbers[..] else {
        return Err(format!("child printed {line:?}, not three numbers"));
    };
    Ok(Memory {
        contender,
        keys,
        base_kb,
        rss_kb,
        peak_kb,
    })
}
