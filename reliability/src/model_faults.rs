//! The model test across faults: random sessions against one engine
//! directory, checked against a model after every step.
//!
//! Each session opens the engine (so every session is also a restart that
//! recovers what the last one left) and is one of:
//!
//! * **normal**: bursts of pipelined puts, deletes and atomic batches, and
//!   rollbacks to a random live seq, with checkpoints written as the
//!   policy (drawn per session, sometimes pruning the journal) says; it
//!   ends with a clean shutdown;
//! * **fault**: the same bursts on an engine with a [`FaultPlan`] that
//!   fails the Nth journal write, the Nth flush, the Nth checkpoint file,
//!   or fills the disk at the Nth write (N small, so it fires), sometimes
//!   with slow flushes; the engine may stop, and only what it acked
//!   enters the model;
//! * **crash**: a child process (the `reliability` bin's hidden
//!   [`CHILD_COMMAND`]) writes pipelined events and prints each ack, and
//!   is SIGKILLed at a random moment.
//!
//! The event at each seq is a function of the run's seed and the seq
//! ([`fault_workload::event_at`]), so the parent knows what a killed child wrote
//! at every seq the journal kept. After every step of a running engine,
//! its published state equals the model; after every session (the engine
//! closed), the read-only replay of the directory equals the model, every
//! acked seq is present, and the next open recovers the model again.
//! Acked events lost must be 0: a run that loses one fails.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use solostate::persistence::replay::Replay;
use solostate::{
    AckError, AsOfError, CheckpointPolicy, Durability, Engine, FaultPlan, Injected, Retention,
    RollbackError, ShutdownError,
};

use crate::fault_workload::{self, Ev, Model};
use crate::report::{Mode, Section};
use crate::workload::{Rng, runtime};

/// The `reliability` bin's hidden subcommand that runs a crash child:
/// `reliability __model-crash-child DIR SEED EVERY_EVENTS`.
pub const CHILD_COMMAND: &str = "__model-crash-child";

/// Acks a writer keeps waiting before it awaits the oldest.
const DEPTH: usize = 32;
/// Live seqs whose model state is kept, as rollback targets.
const HISTORY: usize = 512;

/// How long a run is.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sessions to run.
    pub sessions: u64,
    /// The seed of everything random, events included.
    pub seed: u64,
    /// The `reliability` bin, run with [`CHILD_COMMAND`] for crash sessions.
    pub child: PathBuf,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Sessions that ended in a SIGKILL, each recovered by the next.
    pub kill_cycles: u64,
    /// Sessions with a fault plan.
    pub fault_sessions: u64,
    /// Sessions that ended in a clean shutdown (restarts).
    pub restarts: u64,
    /// Faults the plans injected, by kind.
    pub injected: Injected,
    /// Fault sessions the fault stopped (a failed journal write or flush).
    pub stopped_by_fault: u64,
    /// Events acked, by the parent's engines and by the children.
    pub acked: u64,
    /// Events refused with `AckError::Journal`.
    pub refused: u64,
    /// Rollbacks acked.
    pub rollbacks: u64,
    /// Checkpoints the parent's engines wrote.
    pub checkpoints: u64,
    /// Acked events missing after a reopen. A run fails unless it is 0.
    pub lost: u64,
}

/// The model side of the run: the state at the engine's last seq, and the
/// states at recent live seqs for rollbacks.
struct Modeled {
    seed: u64,
    last: u64,
    state: Model,
    history: BTreeMap<u64, Model>,
}

impl Modeled {
    /// Applies the event at the next seq.
    fn advance(&mut self) {
        self.last += 1;
        fault_workload::apply(
            &mut self.state,
            &fault_workload::event_at(self.seed, self.last),
        );
        self.remember();
    }

    fn remember(&mut self) {
        self.history.insert(self.last, self.state.clone());
        while self.history.len() > HISTORY {
            self.history.pop_first();
        }
    }

    /// A rollback to `target` acked at the next seq.
    fn roll_back(&mut self, target: u64) {
        self.state = self.history[&target].clone();
        self.history.split_off(&(target + 1));
        self.last += 1;
        self.remember();
    }
}

/// Runs `config.sessions` sessions. `Err` says which promise broke, with
/// the seed and session to rerun it.
pub fn run(config: &Config) -> Result<Figures, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let runtime = runtime()?;
    let mut rng = Rng::new(config.seed);
    let mut model = Modeled {
        seed: config.seed,
        last: 0,
        state: Model::new(),
        history: BTreeMap::from([(0, Model::new())]),
    };
    let mut figures = Figures::default();
    for session in 0..config.sessions {
        let policy = CheckpointPolicy::default()
            .every_events(rng.range(20, 400))
            .keep(2);
        let retention = if rng.chance(30) {
            Retention::SinceOldestCheckpoint
        } else {
            Retention::FullHistory
        };
        let kind = rng.bits() % 10;
        let result = if kind < 3 {
            figures.kill_cycles += 1;
            crash(config, dir.path(), &mut rng, &mut model, &mut figures)
        } else {
            let plan = (kind < 6).then(|| random_plan(&mut rng));
            runtime.block_on(session_run(
                dir.path(),
                policy,
                retention,
                plan,
                &mut rng,
                &mut model,
                &mut figures,
            ))
        };
        result
            .and_then(|()| check_replay(dir.path(), &model))
            .map_err(|broken| format!("seed {:#x}, session {session}: {broken}", config.seed))?;
    }
    Ok(figures)
}

fn random_plan(rng: &mut Rng) -> FaultPlan {
    let n = rng.range(1, 8);
    let plan = match rng.bits() % 4 {
        0 => FaultPlan::new().fail_write(n),
        1 => FaultPlan::new().fail_flush(n),
        2 => FaultPlan::new().disk_full_at_write(n),
        _ => FaultPlan::new().fail_checkpoint_write(n.min(3)),
    };
    if rng.chance(20) {
        plan.flush_delay(Duration::from_micros(rng.range(100, 2000)))
    } else {
        plan
    }
}

async fn open(
    dir: &Path,
    policy: CheckpointPolicy,
    retention: Retention,
    plan: Option<FaultPlan>,
) -> Result<Engine<Ev>, String> {
    let mut builder = Engine::<Ev>::builder()
        .path(dir)
        .schema("model-faults-v1")
        .durability(Durability::Always)
        .checkpoints(policy)
        .retention(retention)
        .journal_cache_bytes(4 << 20)
        .max_batch(64);
    if let Some(plan) = plan {
        builder = builder.faults(plan);
    }
    builder.open().await.map_err(|e| format!("open: {e}"))
}

/// Whether the engine's published state is the model's.
fn check_live(engine: &Engine<Ev>, model: &Modeled, when: &str) -> Result<(), String> {
    let snapshot = engine.reader().snapshot();
    if snapshot.seq() != model.last {
        return Err(format!(
            "{when}: the engine is at seq {}, the model at {}",
            snapshot.seq(),
            model.last
        ));
    }
    let state = snapshot.to_map();
    if state != model.state {
        return Err(fault_workload::diff(when, &state, &model.state));
    }
    Ok(())
}

/// With the engine closed: the replay of the directory is the model, and
/// nothing acked is missing.
fn check_replay(dir: &Path, model: &Modeled) -> Result<(), String> {
    let replay = Replay::<Ev>::open(dir, "model-faults-v1").map_err(|e| format!("replay: {e}"))?;
    let last = replay.last_seq().map_err(|e| format!("replay: {e}"))?;
    if last != model.last {
        return Err(format!(
            "the replay ends at seq {last}, the model at {}",
            model.last
        ));
    }
    let state = replay
        .state_at(last)
        .map_err(|e| format!("replay at {last}: {e}"))?;
    if state != model.state {
        return Err(fault_workload::diff("replay", &state, &model.state));
    }
    Ok(())
}

/// A normal session (`plan` is `None`) or a fault session.
#[allow(clippy::too_many_arguments)]
async fn session_run(
    dir: &Path,
    policy: CheckpointPolicy,
    retention: Retention,
    plan: Option<FaultPlan>,
    rng: &mut Rng,
    model: &mut Modeled,
    figures: &mut Figures,
) -> Result<(), String> {
    let engine = open(dir, policy, retention, plan.clone()).await?;
    check_live(&engine, model, "after open")?;
    let mut stopped = false;
    for _ in 0..rng.range(1, 6) {
        if plan.is_none() && rng.chance(20) {
            rollback(&engine, rng, model, figures).await?;
        } else {
            stopped = burst(&engine, rng.range(1, 300), model, figures).await?;
        }
        check_live(&engine, model, "after a step")?;
        if stopped {
            break;
        }
    }
    figures.checkpoints += engine.stats().checkpoints;
    let shutdown = engine.shutdown().await;
    drop(engine);
    let Some(plan) = plan else {
        figures.restarts += 1;
        return shutdown.map_err(|e| format!("shutdown: {e}"));
    };
    figures.fault_sessions += 1;
    let injected = plan.injected();
    figures.injected += injected;
    let journal_faults = injected.writes + injected.flushes + injected.disk_full;
    match shutdown {
        Ok(()) if stopped => Err("the engine refused a batch but shut down cleanly".into()),
        Ok(()) => Ok(()),
        Err(ShutdownError::Journal { message, io }) if journal_faults > 0 => {
            figures.stopped_by_fault += 1;
            let named = message.contains("injected i/o error")
                || message.contains("no space left on device");
            if !named || io.is_none() {
                return Err(format!(
                    "shutdown's error {message:?} ({io:?}) hides the cause"
                ));
            }
            Ok(())
        }
        Err(error) => Err(format!("shutdown gave {error:?} after {injected:?}")),
    }
}

/// Sends `count` events pipelined. Returns whether a journal failure
/// stopped the engine; from the first refused event on, every later one
/// must be refused too.
async fn burst(
    engine: &Engine<Ev>,
    count: u64,
    model: &mut Modeled,
    figures: &mut Figures,
) -> Result<bool, String> {
    let mut in_flight = VecDeque::new();
    let mut refused = false;
    let mut settle = |seq: u64,
                      outcome: Result<solostate::Ack, AckError<_>>,
                      model: &mut Modeled|
     -> Result<(), String> {
        match outcome {
            Ok(ack) if !refused && ack.seq == seq => {
                model.advance();
                figures.acked += 1;
                Ok(())
            }
            Ok(ack) => Err(format!(
                "acked seq {} where seq {seq} was expected{}",
                ack.seq,
                if refused { ", after a refusal" } else { "" }
            )),
            Err(AckError::Journal { .. }) => {
                refused = true;
                figures.refused += 1;
                Ok(())
            }
            Err(other) => Err(format!("the event at seq {seq} got {other}")),
        }
    };
    let first = model.last + 1;
    for seq in first..first + count {
        let Ok(pending) = engine.send(fault_workload::event_at(model.seed, seq)).await else {
            break; // closed after a failure
        };
        in_flight.push_back((seq, pending));
        if in_flight.len() >= DEPTH {
            let (seq, pending) = in_flight.pop_front().expect("non-empty");
            settle(seq, pending.await, model)?;
        }
    }
    for (seq, pending) in in_flight {
        settle(seq, pending.await, model)?;
    }
    Ok(refused || engine.is_closed())
}

/// Rolls back to a random live seq the model remembers.
async fn rollback(
    engine: &Engine<Ev>,
    rng: &mut Rng,
    model: &mut Modeled,
    figures: &mut Figures,
) -> Result<(), String> {
    let index = rng.bits() as usize % model.history.len();
    let target = *model.history.keys().nth(index).expect("in range");
    match engine.rollback_to(target).await {
        Ok(ack) if ack.seq == model.last + 1 => {
            model.roll_back(target);
            figures.rollbacks += 1;
            Ok(())
        }
        Ok(ack) => Err(format!(
            "rollback acked at seq {}, not {}",
            ack.seq,
            model.last + 1
        )),
        // Behind a pruned journal prefix with no checkpoint for it:
        // refused before anything changed.
        Err(RollbackError::Unavailable(AsOfError::Pruned { .. })) => Ok(()),
        Err(error) => Err(format!("rollback to {target}: {error}")),
    }
}

/// A crash session: the child writes until it is killed; then the
/// journal must hold every seq it acked, and the model takes the events
/// the journal kept.
fn crash(
    config: &Config,
    dir: &Path,
    rng: &mut Rng,
    model: &mut Modeled,
    figures: &mut Figures,
) -> Result<(), String> {
    let mut child = Command::new(&config.child)
        .arg(CHILD_COMMAND)
        .arg(dir)
        .arg(config.seed.to_string())
        .arg(rng.range(20, 400).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", config.child.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line
                .strip_prefix("ACK ")
                .and_then(|s| s.parse::<u64>().ok())
            {
                acked.push(seq);
            }
        }
        acked
    });
    // A random moment: during open, or anywhere in the writing.
    std::thread::sleep(Duration::from_millis(rng.range(5, 300)));
    let _ = child.kill(); // it may have died already; `wait` tells
    let status = child.wait().map_err(|e| format!("reap the child: {e}"))?;
    if !killed(&status) {
        return Err(format!("the crash child exited on its own: {status}"));
    }
    let acked = reader.join().map_err(|_| "the ack reader panicked")?;
    figures.acked += acked.len() as u64;
    let replay = Replay::<Ev>::open(dir, "model-faults-v1")
        .map_err(|e| format!("replay after the kill: {e}"))?;
    let recovered = replay.last_seq().map_err(|e| format!("replay: {e}"))?;
    drop(replay);
    let lost = acked.iter().filter(|&&seq| seq > recovered).count() as u64;
    if lost > 0 {
        figures.lost += lost;
        return Err(format!(
            "{lost} acked events lost: the child acked up to seq {}, the journal ends at {recovered}",
            acked.iter().max().expect("some")
        ));
    }
    if acked.iter().any(|&seq| seq <= model.last) {
        return Err(format!(
            "the child acked a seq at or before its start {}",
            model.last
        ));
    }
    while model.last < recovered {
        model.advance();
    }
    Ok(())
}

#[cfg(unix)]
fn killed(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
fn killed(status: &std::process::ExitStatus) -> bool {
    !status.success()
}

/// The crash child: `DIR SEED EVERY_EVENTS`. Opens the engine in `DIR`,
/// then writes the seed's events forever, pipelined, printing `ACK seq`
/// for each ack, until it is killed.
pub fn child_main(mut args: impl Iterator<Item = String>) -> ExitCode {
    let parsed = (|| {
        let dir = PathBuf::from(args.next()?);
        let seed = args.next()?.parse::<u64>().ok()?;
        let every = args.next()?.parse::<u64>().ok()?;
        Some((dir, seed, every))
    })();
    let Some((dir, seed, every)) = parsed else {
        eprintln!("usage: reliability {CHILD_COMMAND} DIR SEED EVERY_EVENTS");
        return ExitCode::FAILURE;
    };
    let runtime = runtime().expect("a runtime");
    let failed = runtime.block_on(async move {
        let policy = CheckpointPolicy::default().every_events(every).keep(2);
        let engine = open(&dir, policy, Retention::FullHistory, None).await?;
        let mut out = std::io::stdout().lock();
        let mut in_flight = VecDeque::new();
        for seq in engine.reader().seq() + 1.. {
            let pending = engine
                .send(fault_workload::event_at(seed, seq))
                .await
                .map_err(|e| e.to_string())?;
            in_flight.push_back((seq, pending));
            if in_flight.len() >= DEPTH {
                let (seq, pending) = in_flight.pop_front().expect("non-empty");
                let ack = pending.await.map_err(|e| e.to_string())?;
                if ack.seq != seq {
                    return Err(format!("acked seq {} where {seq} was expected", ack.seq));
                }
                writeln!(out, "ACK {seq}")
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok::<(), String>(())
    });
    if let Err(error) = failed {
        eprintln!("crash child: {error}");
    }
    ExitCode::FAILURE
}

/// The harness: 30 sessions (quick) or 2,500 (full: about 3 minutes on 2 cores), crash children run
/// from `child` (the `reliability` bin).
pub fn harness(mode: Mode, child: &Path) -> Result<Section, String> {
    let sessions = match mode {
        Mode::Quick => 30,
        Mode::Full => 2_500,
    };
    let config = Config {
        sessions,
        seed: 0x5EED_F417,
        child: child.to_owned(),
    };
    let figures = run(&config)?;
    let mut section = Section::new(
        "Model test across faults, restarts and kills",
        "Across random writes, rollbacks, checkpoints, restarts, injected I/O errors and \
         SIGKILLs, the live state equals a plain model after every step; the replayed \
         journal and the reopened engine equal it after every session (1 to 6 steps, since \
         a replay needs the engine closed); and no acknowledged event is lost.",
    )
    .checked_by("reliability/src/model_faults.rs")
    .checked_by("reliability/tests/model_faults.rs");
    section.figure("sessions (seed 0x5EEDF417)", sessions);
    section.figure("kill cycles survived (SIGKILL)", figures.kill_cycles);
    section.figure("clean restarts", figures.restarts);
    section.figure("fault sessions", figures.fault_sessions);
    section.figure("faults injected: failed writes", figures.injected.writes);
    section.figure("faults injected: failed flushes", figures.injected.flushes);
    section.figure(
        "faults injected: full disk (ENOSPC)",
        figures.injected.disk_full,
    );
    section.figure(
        "faults injected: failed checkpoint files",
        figures.injected.checkpoint_writes,
    );
    section.figure("engines stopped by a fault", figures.stopped_by_fault);
    section.figure("acked events", figures.acked);
    section.figure("refused events (AckError::Journal)", figures.refused);
    section.figure("rollbacks", figures.rollbacks);
    section.figure("checkpoints written", figures.checkpoints);
    section.figure("acked events lost", figures.lost);
    Ok(section)
}
