//! Replicated writes beside the single engine (issue 14), side by side in
//! one process: what a write costs once it must reach a Raft quorum.
//!
//! Three contenders get the same closed-loop workload (`C` tokio tasks,
//! each submitting one `put` at a time and waiting for its ack, for `D`
//! seconds after a warm-up), each on a fresh directory under the same
//! parent, with the default durability everywhere:
//!
//! 1. `single`: one `solostate::Engine` (fsync per batch, group commit);
//! 2. `replicated via leader`: a 3-node `ReplicatedEngine` cluster in this
//!    process, talking HTTP over loopback, each node with its own
//!    directory, the writes submitted on the leader;
//! 3. `replicated via follower`: the same, submitted on a follower, which
//!    forwards each write to the leader (one more HTTP hop).
//!
//! Every (submitters, round) runs the three in an order rotated by the
//! round, so drift in the machine (page cache, other load) spreads over
//! all of them. The table reports medians over the rounds and the ratio of
//! each replicated median to the single engine's median.
//!
//! Run: `cargo run --release -p solostate-bench --bin replicated -- --secs 5
//! --warmup 0.5 --rounds 3 --submitters 1,16,64` (these are the defaults;
//! `--dir` picks the parent of the data directories, default the system
//! temp dir). The same settings are read from `RBENCH_SECS`,
//! `RBENCH_WARMUP`, `RBENCH_ROUNDS`, `RBENCH_SUBMITTERS`, `RBENCH_KEYS`,
//! `RBENCH_DIR` and `RBENCH_WORKERS` when the flag is absent. `--workers`
//! sets the tokio worker threads (default one per core), which the nodes
//! and the submitters share: a diagnostic knob, named in the output.
//! Markdown goes to stdout, one line per run to stderr.
//!
//! A cluster whose nodes do not agree on a leader within 30 s of
//! `initialize` is retried with a fresh one (up to three tries); every
//! failed start is printed with each node's Raft metrics and listed under
//! the table, so a retry never hides it.
//!
//! Why closed loop with one write in flight per task: that is how an
//! application that waits for each ack behaves, and it makes the ack
//! latency and the throughput two views of the same run (Little's law:
//! throughput ~ C / mean latency).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use solostate::{Engine, StateEvent};
use solostate_bench::metrics::{Machine, latency_histogram};
use solostate_bench::report::{count, dur, ratio};
use solostate_replication::ReplicatedEngine;
use tokio::time::Instant;

type Ev = StateEvent<String, u64>;
type Node = ReplicatedEngine<Ev>;

/// How long a new cluster may take to elect a leader all nodes agree on
/// before the start counts as failed; not a performance figure.
const ELECTION_PATIENCE: Duration = Duration::from_secs(30);

/// After a failed submit, a task pauses this long before the next one, so
/// that a cluster without a leader is not spun on. Failures are counted
/// and reported, never hidden.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// The run's settings, from flags or `RBENCH_*` variables.
#[derive(Debug, Clone)]
struct Settings {
    /// Measured seconds per run.
    secs: f64,
    /// Seconds per run before measuring starts (the cluster's first
    /// entries, sled's first pages, the page cache).
    warmup: f64,
    /// Rounds: each contender runs this many times per submitter count.
    rounds: usize,
    /// Submitter task counts to run.
    submitters: Vec<usize>,
    /// Distinct keys the puts cycle over.
    keys: u64,
    /// Parent of the data directories.
    dir: PathBuf,
    /// Tokio worker threads (`None`: tokio's default, one per core). A
    /// diagnostic knob: the cluster's nodes, their servers and the
    /// submitters all share this one runtime.
    workers: Option<usize>,
}

impl Settings {
    fn parse() -> Result<Settings, String> {
        let mut flags: BTreeMap<String, String> = BTreeMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(USAGE.to_owned());
            }
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}\n{USAGE}"));
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => (
                    name.to_owned(),
                    args.next()
                        .ok_or_else(|| format!("--{name} needs a value\n{USAGE}"))?,
                ),
            };
            flags.insert(name, value);
        }
        let mut get = |name: &str| {
            flags
                .remove(name)
                .or_else(|| std::env::var(format!("RBENCH_{}", name.to_uppercase())).ok())
        };
        let num = |name: &str, value: Option<String>, default: f64| -> Result<f64, String> {
            value.map_or(Ok(default), |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| format!("--{name}: not a number >= 0: {v:?}"))
            })
        };
        let secs = num("secs", get("secs"), 5.0)?;
        let warmup = num("warmup", get("warmup"), 0.5)?;
        let rounds = num("rounds", get("rounds"), 3.0)? as usize;
        let keys = num("keys", get("keys"), 10_000.0)? as u64;
        let submitters = match get("submitters") {
            None => vec![1, 16, 64],
            Some(list) => list
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|c| *c > 0)
                        .ok_or_else(|| format!("--submitters: not a count > 0: {c:?}"))
                })
                .collect::<Result<_, _>>()?,
        };
        let dir = get("dir").map_or_else(std::env::temp_dir, PathBuf::from);
        let workers = match get("workers") {
            None => None,
            Some(w) => Some(
                w.parse::<usize>()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| format!("--workers: not a count > 0: {w:?}"))?,
            ),
        };
        if let Some(unknown) = flags.keys().next() {
            return Err(format!("unknown flag --{unknown}\n{USAGE}"));
        }
        if rounds == 0 || keys == 0 || secs == 0.0 {
            return Err("--rounds, --keys and --secs must be > 0".to_owned());
        }
        Ok(Settings {
            secs,
            warmup,
            rounds,
            submitters,
            keys,
            dir,
            workers,
        })
    }
}

const USAGE: &str = "usage: replicated [--secs 5] [--warmup 0.5] [--rounds 3] \
[--submitters 1,16,64] [--keys 10000] [--dir <parent of data dirs>] [--workers <tokio threads>] \
(or RBENCH_SECS, RBENCH_WARMUP, ...)";

/// The three contenders, in their base order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Contender {
    Single,
    ViaLeader,
    ViaFollower,
}

const CONTENDERS: [Contender; 3] = [
    Contender::Single,
    Contender::ViaLeader,
    Contender::ViaFollower,
];

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Single => "single engine",
            Contender::ViaLeader => "replicated, via leader",
            Contender::ViaFollower => "replicated, via follower",
        }
    }
}

/// Where the submitters send their writes. Cloned into every task.
#[derive(Clone)]
enum Target {
    Single(Engine<Ev>),
    Node(Arc<Node>),
}

impl Target {
    async fn submit(&self, event: Ev) -> Result<(), String> {
        match self {
            Target::Single(engine) => engine
                .submit(event)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Target::Node(node) => node
                .submit(&event)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }
}

/// One contender, open, with what must live as long as it does.
struct Opened {
    target: Target,
    /// The nodes of a cluster, to shut down afterwards (empty for the
    /// single engine).
    nodes: Vec<Arc<Node>>,
    /// The data directory, removed when dropped.
    _dir: tempfile::TempDir,
}

impl Opened {
    async fn open(contender: Contender, parent: &Path) -> Result<Opened, String> {
        let dir = tempfile::Builder::new()
            .prefix("rbench-")
            .tempdir_in(parent)
            .map_err(|e| format!("temp dir in {}: {e}", parent.display()))?;
        if contender == Contender::Single {
            let engine = Engine::<Ev>::builder()
                .path(dir.path().join("engine"))
                .schema("rbench")
                .open()
                .await
                .map_err(|e| format!("open the single engine: {e}"))?;
            return Ok(Opened {
                target: Target::Single(engine),
                nodes: Vec::new(),
                _dir: dir,
            });
        }
        let (nodes, leader) = start_cluster(dir.path()).await?;
        let via = match contender {
            Contender::ViaLeader => nodes.iter().find(|n| n.id() == leader),
            _ => nodes.iter().find(|n| n.id() != leader),
        }
        .cloned()
        .ok_or("no node to submit on")?;
        Ok(Opened {
            target: Target::Node(via),
            nodes,
            _dir: dir,
        })
    }

    /// The highest Raft term any node is in (`None` for the single
    /// engine): a change over a run means an election happened in it.
    fn term(&self) -> Option<u64> {
        self.nodes.iter().map(|n| n.metrics().current_term).max()
    }

    async fn close(self) -> Result<(), String> {
        match &self.target {
            Target::Single(engine) => engine
                .shutdown()
                .await
                .map_err(|e| format!("single engine shutdown: {e}"))?,
            Target::Node(_) => {
                for node in &self.nodes {
                    node.shutdown()
                        .await
                        .map_err(|e| format!("node {} shutdown: {e}", node.id()))?;
                }
            }
        }
        Ok(())
    }
}

/// A port that was free a moment ago (the cluster needs every address
/// before any node opens, for the membership).
fn free_addr() -> Result<SocketAddr, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("a free loopback port: {e}"))
}

/// Three nodes with the builder's default timing, snapshot policy and
/// durability, initialized as voters; returns them and the leader they
/// all agree on.
async fn start_cluster(root: &Path) -> Result<(Vec<Arc<Node>>, u64), String> {
    let mut addrs = BTreeMap::new();
    for id in 1..=3u64 {
        addrs.insert(id, free_addr()?);
    }
    let mut nodes = Vec::new();
    for (&id, &addr) in &addrs {
        let node = Node::builder()
            .id(id)
            .path(root.join(format!("node-{id}")))
            .listen(addr)
            .open()
            .await
            .map_err(|e| format!("open node {id}: {e}"))?;
        nodes.push(Arc::new(node));
    }
    let members = addrs.iter().map(|(id, a)| (*id, a.to_string())).collect();
    nodes[0]
        .initialize(members)
        .await
        .map_err(|e| format!("initialize: {e}"))?;
    let deadline = Instant::now() + ELECTION_PATIENCE;
    loop {
        let seen: Vec<Option<u64>> = nodes.iter().map(|n| n.leader()).collect();
        if let Some(Some(leader)) = seen.first()
            && seen.iter().all(|s| s == &Some(*leader))
        {
            return Ok((nodes, *leader));
        }
        if Instant::now() > deadline {
            // What each node thought, for the report; then stop them.
            let mut why = format!("no agreed leader after {ELECTION_PATIENCE:?}: {seen:?}");
            for node in &nodes {
                why.push_str(&format!("\n  node {}: {}", node.id(), node.metrics()));
            }
            for node in &nodes {
                if let Err(e) = node.shutdown().await {
                    why.push_str(&format!("\n  node {} shutdown: {e}", node.id()));
                }
            }
            return Err(why);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one run measured.
struct Run {
    /// Acks that arrived inside the measured window.
    acked: u64,
    /// Failed submits over the whole run, warm-up included.
    errors: u64,
    /// The first failure's message, to show what went wrong.
    first_error: Option<String>,
    /// How long the slowest failed submit took to fail.
    slowest_error: Duration,
    /// Ack latency of the acks counted in `acked`, in ns.
    hist: Histogram<u64>,
    /// The measured window.
    window: Duration,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.acked as f64 / self.window.as_secs_f64()
    }
}

/// `submitters` tasks, each submitting one put at a time until the end of
/// the window. An ack counts (and its latency is recorded) when it
/// arrives inside the measured window, whenever it was sent.
async fn drive(target: &Target, submitters: usize, settings: &Settings) -> Result<Run, String> {
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(settings.warmup);
    let window = Duration::from_secs_f64(settings.secs);
    let end = from + window;
    let keys = settings.keys;
    let mut tasks = Vec::with_capacity(submitters);
    for task in 0..submitters as u64 {
        let target = target.clone();
        let stride = submitters as u64;
        tasks.push(tokio::spawn(async move {
            let mut hist = latency_histogram();
            let (mut acked, mut errors, mut first_error) = (0u64, 0u64, None);
            let mut slowest_error = Duration::ZERO;
            let mut i = 0u64;
            while Instant::now() < end {
                // The tasks interleave over the key space: a put is an
                // insert the first time round and an overwrite after.
                let key = (i * stride + task) % keys;
                let sent = Instant::now();
                let result = target.submit(StateEvent::put(format!("k{key}"), i)).await;
                let done = Instant::now();
                match result {
                    Ok(()) if done >= from && done <= end => {
                        acked += 1;
                        let ns = (done - sent).as_nanos().min(u128::from(u64::MAX)) as u64;
                        hist.saturating_record(ns.max(1));
                    }
                    Ok(()) => {}
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        slowest_error = slowest_error.max(done - sent);
                        tokio::time::sleep(ERROR_BACKOFF).await;
                    }
                }
                i += 1;
            }
            (hist, acked, errors, first_error, slowest_error)
        }));
    }
    let mut run = Run {
        acked: 0,
        errors: 0,
        first_error: None,
        slowest_error: Duration::ZERO,
        hist: latency_histogram(),
        window,
    };
    for task in tasks {
        let (hist, acked, errors, first_error, slowest_error) = task
            .await
            .map_err(|e| format!("a submitter task failed: {e}"))?;
        run.hist
            .add(&hist)
            .map_err(|e| format!("merge histograms: {e}"))?;
        run.acked += acked;
        run.errors += errors;
        run.slowest_error = run.slowest_error.max(slowest_error);
        if run.first_error.is_none() {
            run.first_error = first_error;
        }
    }
    Ok(run)
}

/// The figures of one run that the table shows.
#[derive(Debug, Clone, Copy)]
struct Figures {
    per_sec: f64,
    /// p50, p90, p99, p99.9; `None` when nothing was acked in the window
    /// (a run with no acks has no latency, not a latency of zero).
    latency: Option<[Duration; 4]>,
}

const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

impl Figures {
    fn of(run: &Run) -> Figures {
        Figures {
            per_sec: run.per_sec(),
            latency: (run.acked > 0)
                .then(|| QUANTILES.map(|q| Duration::from_nanos(run.hist.value_at_quantile(q)))),
        }
    }
}

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
struct Summary {
    per_sec: f64,
    runs: Vec<f64>,
    /// Medians over the rounds that acked anything (`None`: none did).
    latency: Option<[Duration; 4]>,
    errors: u64,
    /// Term changes over all rounds (`None` for the single engine).
    elections: Option<u64>,
}

fn summarize(figures: &[Figures], errors: u64, elections: Option<u64>) -> Summary {
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

fn markdown(
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

async fn run(settings: Settings) -> Result<String, String> {
    let machine = Machine::describe();
    let mut figures: BTreeMap<(usize, Contender), Vec<Figures>> = BTreeMap::new();
    let mut errors: BTreeMap<(usize, Contender), u64> = BTreeMap::new();
    let mut elections: BTreeMap<(usize, Contender), u64> = BTreeMap::new();
    let mut failed_starts: Vec<String> = Vec::new();
    for &c in &settings.submitters {
        for round in 0..settings.rounds {
            for k in 0..CONTENDERS.len() {
                let contender = CONTENDERS[(k + round) % CONTENDERS.len()];
                let opened = open_retrying(contender, &settings.dir, &mut failed_starts).await?;
                let term_before = opened.term();
                let measured = drive(&opened.target, c, &settings).await?;
                let term_changes = opened
                    .term()
                    .zip(term_before)
                    .map(|(after, before)| after - before);
                opened.close().await?;
                eprintln!(
                    "C={c} round {} {}: {} events/s, p50 {}, p99 {}, max {}, {} failed submits{}{}",
                    round + 1,
                    contender.name(),
                    count(measured.per_sec()),
                    dur(Duration::from_nanos(measured.hist.value_at_quantile(0.5))),
                    dur(Duration::from_nanos(measured.hist.value_at_quantile(0.99))),
                    dur(Duration::from_nanos(measured.hist.max())),
                    measured.errors,
                    measured
                        .first_error
                        .as_ref()
                        .map(|e| format!(
                            " (first: {e}; slowest failed after {})",
                            dur(measured.slowest_error)
                        ))
                        .unwrap_or_default(),
                    term_changes
                        .map(|t| format!(", {t} term changes"))
                        .unwrap_or_default(),
                );
                figures
                    .entry((c, contender))
                    .or_default()
                    .push(Figures::of(&measured));
                *errors.entry((c, contender)).or_default() += measured.errors;
                if let Some(t) = term_changes {
                    *elections.entry((c, contender)).or_default() += t;
                }
            }
        }
    }
    let results = figures
        .iter()
        .map(|(key, f)| {
            let summary = summarize(f, errors[key], elections.get(key).copied());
            (*key, summary)
        })
        .collect();
    let mut report = markdown(&settings, &machine, &results);
    if !failed_starts.is_empty() {
        report.push_str(&format!(
            "\n**{} cluster start(s) failed** (no leader all three nodes agreed on within {ELECTION_PATIENCE:?} of `initialize`) and were retried with a fresh cluster; what each node reported:\n\n```\n{}\n```\n",
            failed_starts.len(),
            failed_starts.join("\n")
        ));
    }
    Ok(report)
}

/// How many fresh clusters to try before the run fails.
const CLUSTER_ATTEMPTS: usize = 3;

/// Opens `contender`, retrying a cluster that never agreed on a leader
/// with a fresh one. Every failed start is printed and kept in `failed`
/// for the report: a retry must not hide it.
async fn open_retrying(
    contender: Contender,
    parent: &Path,
    failed: &mut Vec<String>,
) -> Result<Opened, String> {
    let mut attempt = 1;
    loop {
        match Opened::open(contender, parent).await {
            Ok(opened) => return Ok(opened),
            Err(why) if contender != Contender::Single && attempt < CLUSTER_ATTEMPTS => {
                eprintln!("{} start {attempt} failed: {why}", contender.name());
                failed.push(why);
                attempt += 1;
            }
            Err(why) => return Err(why),
        }
    }
}

fn main() -> Result<(), String> {
    let settings = match Settings::parse() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = settings.workers {
        runtime.worker_threads(workers);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let report = runtime.block_on(run(settings))?;
    print!("{report}");
    Ok(())
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
