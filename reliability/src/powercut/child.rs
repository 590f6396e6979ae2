//! The harness's child processes, both the `reliability` bin's hidden
//! [`CHILD_COMMAND`]:
//!
//! * `write DIR SEED RETENTION EVERY_EVENTS DEPTH [backups]`: opens a
//!   durable engine in `DIR` with the default settings
//!   (`Durability::Always`, the default `max_batch` and cache) but
//!   checkpoints every `EVERY_EVENTS`, and writes from [`WRITERS`]
//!   pipelined tasks (`DEPTH` events in flight each) and one task that
//!   rolls back now and then, until it is killed; with `backups`, one more
//!   task backs the engine up beside `DIR` again and again
//!   ([`super::backups`]). It prints one line per fact, as it happens (see
//!   [`Line`]);
//! * `check DIR RETENTION EVERY_EVENTS FROM OUT`: reopens `DIR` with the
//!   same settings, records the recovered seq and state, shuts down, then
//!   reads every journaled step after `FROM` (live and archived) with
//!   `Replay`, and writes a [`CheckOutcome`] to `OUT`. A panic anywhere is
//!   caught and reported in the outcome, so that the parent counts it
//!   instead of dying of it;
//! * `backups RETENTION EVERY_EVENTS OUT DEST...`: opens each backup
//!   destination the writer started, and writes what each held to `OUT`
//!   ([`super::backups::Found`]).

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use solostate::persistence::journal::{JournalError, Step};
use solostate::persistence::recovery::ReplayError;
use solostate::persistence::replay::Replay;
use solostate::{CheckpointPolicy, Engine, Retention, RollbackError};

use super::workload::{PcEvent, SCHEMA, WRITERS, digest, event, writer_of};
use crate::workload::{Rng, runtime};

/// The `reliability` bin's hidden subcommand for both children.
pub const CHILD_COMMAND: &str = "__powercut-child";

/// The largest outcome file the parent reads back.
pub const MAX_OUTCOME: usize = 512 << 20;

/// A fact the writer child prints, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `OPEN seq`: the engine opened at `seq`.
    Open(u64),
    /// `ACK seq writer index`: writer `writer`'s `index`-th event was
    /// acknowledged at `seq`.
    Ack {
        /// The acked seq.
        seq: u64,
        /// The writer.
        writer: u32,
        /// Its event index.
        index: u64,
    },
    /// `RB target`: a rollback to `target` is about to be sent.
    RollingBack(u64),
    /// `ACKRB seq target`: the rollback to `target` was acknowledged at
    /// `seq`.
    RolledBack {
        /// The rollback step's seq.
        seq: u64,
        /// Its target.
        target: u64,
    },
    /// `RBNO target`: the rollback was refused (its target was pruned).
    RollbackRefused(u64),
    /// `BK i`: the `i`-th backup (to [`super::backups::dest`]) is about to
    /// be called.
    BackingUp(u64),
    /// `BKOK i seq`: the `i`-th backup returned `Ok`, holding the state at
    /// `seq`.
    BackedUp {
        /// Which backup.
        index: u64,
        /// The seq its report named.
        seq: u64,
    },
}

impl Line {
    /// Parses a line the writer child printed.
    pub fn parse(line: &str) -> Option<Line> {
        let mut words = line.split_ascii_whitespace();
        let tag = words.next()?;
        let mut num = || words.next()?.parse::<u64>().ok();
        Some(match tag {
            "OPEN" => Line::Open(num()?),
            "ACK" => Line::Ack {
                seq: num()?,
                writer: u32::try_from(num()?).ok()?,
                index: num()?,
            },
            "RB" => Line::RollingBack(num()?),
            "ACKRB" => Line::RolledBack {
                seq: num()?,
                target: num()?,
            },
            "RBNO" => Line::RollbackRefused(num()?),
            "BK" => Line::BackingUp(num()?),
            "BKOK" => Line::BackedUp {
                index: num()?,
                seq: num()?,
            },
            _ => return None,
        })
    }
}

/// The engine settings that vary between cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How much journal to keep.
    pub retention: Retention,
    /// Checkpoint after this many events.
    pub every_events: u64,
    /// Whether the writer also backs the engine up, again and again (a
    /// backup cycle: the cut is aimed at the backups).
    pub backups: bool,
}

impl Settings {
    /// The retention as the command line spells it.
    pub fn retention_arg(&self) -> &'static str {
        match self.retention {
            Retention::SinceOldestCheckpoint => "since-oldest-checkpoint",
            _ => "full-history",
        }
    }

    pub(super) fn parse(retention: &str, every: &str) -> Option<Settings> {
        let retention = match retention {
            "since-oldest-checkpoint" => Retention::SinceOldestCheckpoint,
            "full-history" => Retention::FullHistory,
            _ => return None,
        };
        Some(Settings {
            retention,
            every_events: every.parse().ok()?,
            backups: false,
        })
    }
}

/// A journaled step as the check child reports it: an event by its
/// writer and a digest rather than its bytes, because the parent can
/// regenerate every event a writer sends, and the bytes (large values
/// included) would make the outcome file as big as the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JournalStep {
    /// An event.
    Event {
        /// The writer its first key belongs to, if it is one the writers
        /// could have sent.
        writer: Option<u32>,
        /// Its [`digest`].
        digest: u64,
    },
    /// A rollback to this seq.
    Rollback(u64),
}

impl JournalStep {
    /// The step for a journaled `event`.
    pub fn of(event: &PcEvent) -> Self {
        JournalStep::Event {
            writer: writer_of(event),
            digest: digest(event),
        }
    }
}

/// What the reopened engine held.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Opened {
    /// The seq it resumed from.
    pub seq: u64,
    /// Its state, sorted by key.
    pub state: Vec<(u64, Vec<u8>)>,
    /// Its `Recovery` report, as `Debug` text.
    pub recovery: String,
    /// A failed shutdown after the open, if any.
    pub shutdown: Option<String>,
}

/// What the check child found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckOutcome {
    /// The open: what it recovered, or its error.
    pub open: Result<Opened, String>,
    /// A panic during the open, with its message.
    pub open_panic: Option<String>,
    /// The journaled steps after `FROM` (live and archived, in seq order),
    /// or why `Replay` could not read them.
    pub steps: Result<Vec<(u64, JournalStep)>, String>,
}

/// The engine both children open: the defaults, plus the schema,
/// retention and checkpoint interval. `on_shutdown` is off in the check
/// child, whose shutdown checkpoint would prune (with
/// `SinceOldestCheckpoint`) the very journal it is about to read back.
pub(super) async fn open(
    dir: &Path,
    settings: Settings,
    on_shutdown: bool,
) -> Result<Engine<PcEvent>, String> {
    Engine::<PcEvent>::builder()
        .path(dir)
        .schema(SCHEMA)
        .checkpoints(
            CheckpointPolicy::default()
                .every_events(settings.every_events)
                .on_shutdown(on_shutdown),
        )
        .retention(settings.retention)
        .journal_backend(super::section::backend())
        .store(super::section::store())
        .open()
        .await
        .map_err(|e| format!("{e}"))
}

/// Runs the child named by the first argument.
pub fn child_main(mut args: impl Iterator<Item = String>) -> ExitCode {
    let args: Vec<String> = args.by_ref().collect();
    let result = match args.first().map(String::as_str) {
        Some("write") => write_main(&args[1..]),
        Some("check") => check_main(&args[1..]),
        Some("backups") => super::backups::check_main(&args[1..]),
        _ => Err(format!(
            "usage: reliability {CHILD_COMMAND} write DIR SEED RETENTION EVERY_EVENTS DEPTH [backups]\n       \
             reliability {CHILD_COMMAND} check DIR RETENTION EVERY_EVENTS FROM OUT\n       \
             reliability {CHILD_COMMAND} backups RETENTION EVERY_EVENTS OUT DEST..."
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("power-cut child: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints one line and flushes it, so that the parent sees each ack as
/// soon as it happens.
pub(super) fn say(line: std::fmt::Arguments<'_>) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}

/// What the writers and the rollback task share: the acked seqs (rollback
/// targets) and the ranges rollbacks undid.
#[derive(Default)]
struct Live {
    acked: BTreeSet<u64>,
    undone: Vec<(u64, u64)>,
}

fn write_main(args: &[String]) -> Result<(), String> {
    let (args, backups) = match args {
        [rest @ .., last] if last == "backups" => (rest, true),
        _ => (args, false),
    };
    let [dir, seed, retention, every, depth] = args else {
        return Err("write needs DIR SEED RETENTION EVERY_EVENTS DEPTH [backups]".into());
    };
    let dir = PathBuf::from(dir);
    let seed: u64 = seed.parse().map_err(|_| "SEED is a number")?;
    let depth: usize = depth.parse().map_err(|_| "DEPTH is a number")?;
    let settings = Settings::parse(retention, every).ok_or("bad RETENTION or EVERY_EVENTS")?;
    runtime()?.block_on(async move {
        let engine = open(&dir, settings, true).await?;
        let start = engine.reader().seq();
        say(format_args!("OPEN {start}"))?;
        let live = Arc::new(Mutex::new(Live {
            acked: BTreeSet::from([start]),
            undone: Vec::new(),
        }));
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let (engine, live) = (engine.clone(), Arc::clone(&live));
            tasks.push(tokio::spawn(write_forever(
                engine, seed, writer, depth, live,
            )));
        }
        if backups {
            let (engine, dir) = (engine.clone(), dir.clone());
            tasks.push(tokio::spawn(super::backups::back_up_now_and_then(
                engine, dir, seed,
            )));
        }
        tasks.push(tokio::spawn(roll_back_now_and_then(engine, seed, live)));
        for task in tasks {
            task.await.map_err(|e| format!("a task failed: {e}"))??;
        }
        Ok(())
    })
}

/// One writer: its events in order, `depth` in flight, each ack printed.
async fn write_forever(
    engine: Engine<PcEvent>,
    seed: u64,
    writer: u32,
    depth: usize,
    live: Arc<Mutex<Live>>,
) -> Result<(), String> {
    let mut in_flight = VecDeque::with_capacity(depth);
    for index in 0.. {
        let pending = engine
            .send(event(seed, writer, index))
            .await
            .map_err(|e| format!("writer {writer}: {e}"))?;
        in_flight.push_back((index, pending));
        while in_flight.len() >= depth {
            let (index, pending) = in_flight.pop_front().expect("non-empty");
            let ack = pending
                .await
                .map_err(|e| format!("writer {writer}, event {index}: {e}"))?;
            say(format_args!("ACK {} {writer} {index}", ack.seq))?;
            live.lock()
                .unwrap_or_else(|p| p.into_inner())
                .acked
                .insert(ack.seq);
        }
    }
    Ok(())
}

/// Rolls back to a recent acked seq every few tens of milliseconds.
async fn roll_back_now_and_then(
    engine: Engine<PcEvent>,
    seed: u64,
    live: Arc<Mutex<Live>>,
) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0x0B0B);
    loop {
        tokio::time::sleep(Duration::from_millis(rng.range(20, 150))).await;
        let target = {
            let live = live.lock().unwrap_or_else(|p| p.into_inner());
            let candidates: Vec<u64> = live
                .acked
                .iter()
                .rev()
                .filter(|&&s| !live.undone.iter().any(|&(t, r)| s > t && s < r))
                .take(256)
                .copied()
                .collect();
            candidates[rng.below(candidates.len())]
        };
        say(format_args!("RB {target}"))?;
        match engine.rollback_to(target).await {
            Ok(ack) => {
                say(format_args!("ACKRB {} {target}", ack.seq))?;
                let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
                live.undone.push((target, ack.seq));
                let undone: Vec<u64> = live.acked.range(target + 1..ack.seq).copied().collect();
                for seq in undone {
                    live.acked.remove(&seq);
                }
                live.acked.insert(ack.seq);
            }
            Err(RollbackError::Unavailable(_)) => say(format_args!("RBNO {target}"))?,
            Err(e) => return Err(format!("rollback to {target}: {e}")),
        }
    }
}

fn check_main(args: &[String]) -> Result<(), String> {
    let [dir, retention, every, from, out] = args else {
        return Err("check needs DIR RETENTION EVERY_EVENTS FROM OUT".into());
    };
    let dir = PathBuf::from(dir);
    let settings = Settings::parse(retention, every).ok_or("bad RETENTION or EVERY_EVENTS")?;
    let from: u64 = from.parse().map_err(|_| "FROM is a number")?;
    let opened = std::panic::catch_unwind(|| reopen(&dir, settings));
    let (open, open_panic) = match opened {
        Ok(open) => (open, None),
        Err(panic) => (Err("the open panicked".into()), Some(panic_text(&*panic))),
    };
    let steps = std::panic::catch_unwind(|| journaled_steps(&dir, from))
        .unwrap_or_else(|panic| Err(format!("Replay panicked: {}", panic_text(&*panic))));
    let outcome = CheckOutcome {
        open,
        open_panic,
        steps,
    };
    let config = bincode::config::standard().with_limit::<MAX_OUTCOME>();
    let bytes = bincode::serde::encode_to_vec(&outcome, config).map_err(|e| e.to_string())?;
    std::fs::write(out, bytes).map_err(|e| format!("{out}: {e}"))
}

pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Opens the engine as the writer did, takes its seq and state, and shuts
/// it down.
pub(super) fn reopen(dir: &Path, settings: Settings) -> Result<Opened, String> {
    runtime()?.block_on(async {
        let engine = open(dir, settings, false).await?;
        let snapshot = engine.reader().snapshot();
        let mut state: Vec<(u64, Vec<u8>)> = snapshot
            .view()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        state.sort_unstable_by_key(|(k, _)| *k);
        let recovery = format!("{:?}", engine.recovery());
        let shutdown = engine.shutdown().await.err().map(|e| e.to_string());
        Ok(Opened {
            seq: snapshot.seq(),
            state,
            recovery,
            shutdown,
        })
    })
}

/// Every step after `from`, live and archived, in seq order.
fn journaled_steps(dir: &Path, from: u64) -> Result<Vec<(u64, JournalStep)>, String> {
    // The engine just shut down; its sled threads may hold the lock a
    // little longer than the journal's own patience.
    let started = std::time::Instant::now();
    let replay = loop {
        match Replay::<PcEvent>::open(dir, SCHEMA) {
            Err(ReplayError::Journal(JournalError::AlreadyOpen { .. }))
                if started.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other.map_err(|e| e.to_string())?,
        }
    };
    let mut steps = Vec::new();
    // Under `SinceOldestCheckpoint` the journal's prefix may be pruned;
    // those steps are the parent's to know from the acks.
    let first = replay.journal().first_seq().map_err(|e| e.to_string())?;
    let live = replay.steps(first.max(from + 1)..);
    let archived = replay.archived();
    for entry in live.chain(archived.filter(|e| e.as_ref().map_or(true, |e| e.seq > from))) {
        let entry = entry.map_err(|e| e.to_string())?;
        let step = match entry.step {
            Step::Event(event) => JournalStep::of(&event),
            Step::Rollback { target } => JournalStep::Rollback(target),
        };
        steps.push((entry.seq, step));
    }
    steps.sort_by_key(|(seq, _)| *seq);
    Ok(steps)
}
