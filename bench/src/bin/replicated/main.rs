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

mod report;
mod settings;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use solostate::{Engine, StateEvent};
use solostate_bench::metrics::{Machine, latency_histogram};
use solostate_bench::report::{count, dur};
use solostate_replication::ReplicatedEngine;
use tokio::time::Instant;

use report::{Figures, QUANTILES, markdown, summarize};
use settings::{CONTENDERS, Contender, Settings};

type Ev = StateEvent<String, u64>;
type Node = ReplicatedEngine<Ev>;

/// How long a new cluster may take to elect a leader all nodes agree on
/// before the start counts as failed; not a performance figure.
const ELECTION_PATIENCE: Duration = Duration::from_secs(30);

/// After a failed submit, a task pauses this long before the next one, so
/// that a cluster without a leader is not spun on. Failures are counted
/// and reported, never hidden.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

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
    solostate_replication::loopback_listener()
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

    /// What the table shows of this run.
    fn figures(&self) -> Figures {
        Figures {
            per_sec: self.per_sec(),
            latency: (self.acked > 0)
                .then(|| QUANTILES.map(|q| Duration::from_nanos(self.hist.value_at_quantile(q)))),
        }
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
                    .push(measured.figures());
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
