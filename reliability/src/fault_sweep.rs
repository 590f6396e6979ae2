//! The fault sweep: for each N in a range, an engine whose Nth journal
//! write fails, whose Nth flush fails, or whose disk fills at the Nth
//! write, driven by pipelined writers until the fault stops it.
//!
//! Each run checks what the engine promises about a failed batch:
//!
//! * nobody in it is acked: every event not acked got
//!   [`AckError::Journal`], whose message names the cause (the injected
//!   error or "no space left on device"), the failed seqs and the
//!   journal's path, and whose `io` is the I/O error's kind;
//! * the published state stops at the last acked seq (acked seqs are
//!   exactly `1..=K`, and the snapshot at `K` holds exactly the acked
//!   events);
//! * `shutdown` reports the same failure;
//! * reopened without faults, the engine (and a read-only replay) is at
//!   `K` with exactly the acked events: none lost, none of the refused
//!   ones back.
//!
//! Odd runs use a current-thread runtime (the owner flushes with sled's
//! `flush_async`), even ones a multi-thread runtime (the owner flushes in
//! place), so both flush paths fail in turn.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;

use solostate::persistence::replay::Replay;
use solostate::{
    AckError, CheckpointPolicy, Durability, Engine, FaultPlan, ShutdownError, StateEvent,
};

use crate::report::{Mode, Section};
use crate::workload::runtime;

type Ev = StateEvent<u64, u64>;

/// Which fault a sweep run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// [`FaultPlan::fail_write`]: the Nth journal write fails.
    Write,
    /// [`FaultPlan::fail_flush`]: the Nth flush fails.
    Flush,
    /// [`FaultPlan::disk_full_at_write`]: the disk is full from the Nth
    /// write on.
    DiskFull,
}

impl Fault {
    /// Every kind, in report order.
    pub const ALL: [Fault; 3] = [Fault::Write, Fault::Flush, Fault::DiskFull];

    fn plan(self, n: u64) -> FaultPlan {
        match self {
            Fault::Write => FaultPlan::new().fail_write(n),
            Fault::Flush => FaultPlan::new().fail_flush(n),
            Fault::DiskFull => FaultPlan::new().disk_full_at_write(n),
        }
    }

    /// What the engine's errors must say, and the I/O kind they carry.
    fn expected(self, n: u64) -> (String, ErrorKind) {
        match self {
            Fault::Write => (format!("injected i/o error at write {n}"), ErrorKind::Other),
            Fault::Flush => (format!("injected i/o error at flush {n}"), ErrorKind::Other),
            Fault::DiskFull => ("no space left on device".into(), ErrorKind::StorageFull),
        }
    }
}

/// What one run saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOutcome {
    /// Events acked before the fault: seqs `1..=acked`.
    pub acked: u64,
    /// Events answered with `AckError::Journal`.
    pub refused: u64,
}

/// Pipelined writers per run, and the most acks each keeps waiting.
const WRITERS: u64 = 4;
const DEPTH: usize = 16;
/// The most events a writer sends: far more than N batches hold, so the
/// fault always fires first.
const MAX_EVENTS: u64 = 20_000;

/// One run: `fault` at `n`, in a fresh directory. `Err` says which promise
/// broke.
pub fn run(fault: Fault, n: u64, multi_thread: bool) -> Result<RunOutcome, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let runtime = if multi_thread {
        runtime()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?
    };
    runtime
        .block_on(drive(dir.path(), fault, n))
        .map_err(|broken| format!("{fault:?} at {n}: {broken}"))
}

async fn open(dir: &Path, plan: Option<FaultPlan>) -> Result<Engine<Ev>, String> {
    let mut builder = Engine::<Ev>::builder()
        .path(dir)
        .schema("fault-sweep-v1")
        .durability(Durability::Always)
        // No checkpoints: every journal write and flush is the owner's, so
        // the Nth one is the Nth batch's.
        .checkpoints(CheckpointPolicy::never())
        .journal_cache_bytes(4 << 20)
        .max_batch(8)
        .channel_capacity(64);
    if let Some(plan) = plan {
        builder = builder.faults(plan);
    }
    builder.open().await.map_err(|e| format!("open: {e}"))
}

async fn drive(dir: &Path, fault: Fault, n: u64) -> Result<RunOutcome, String> {
    let plan = fault.plan(n);
    let engine = open(dir, Some(plan.clone())).await?;
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write(engine.clone(), writer)))
        .collect();
    let mut outcomes = Vec::new();
    for writer in writers {
        outcomes.extend(writer.await.map_err(|e| format!("writer panicked: {e}"))?);
    }
    let (cause, kind) = fault.expected(n);
    let path = dir.display().to_string();
    let check_message = |what: &str, message: &str| -> Result<(), String> {
        for needle in [cause.as_str(), "seqs ", path.as_str()] {
            if !message.contains(needle) {
                return Err(format!("{what} {message:?} does not say {needle:?}"));
            }
        }
        Ok(())
    };

    // Acks: exactly 1..=K; every other event refused with the cause.
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut seqs = Vec::new();
    let mut refused = 0u64;
    for (key, value, outcome) in outcomes {
        match outcome {
            Ok(seq) => {
                seqs.push(seq);
                acked.insert(key, value);
            }
            Err(AckError::Journal { message, io }) => {
                check_message("an ack error", &message)?;
                if io != Some(kind) {
                    return Err(format!("an ack error's io is {io:?}, not {kind:?}"));
                }
                refused += 1;
            }
            Err(other) => return Err(format!("an event got {other}, not a journal error")),
        }
    }
    seqs.sort_unstable();
    let last = seqs.len() as u64;
    if seqs.iter().copied().ne(1..=last) {
        return Err(format!("acked seqs are not 1..={last}"));
    }
    if refused == 0 {
        return Err("the fault fired but no event was refused".into());
    }
    let first_failed = format!("seqs {}..=", last + 1);
    let injected = plan.injected();
    if injected.total() == 0 {
        return Err("the plan injected nothing".into());
    }

    // The published state stopped at the last acked seq.
    let snapshot = engine.reader().snapshot();
    if snapshot.seq() != last {
        return Err(format!(
            "published seq {} after the last ack {last}",
            snapshot.seq()
        ));
    }
    let expected: HashMap<u64, u64> = acked;
    let live: HashMap<u64, u64> = snapshot.view().iter().map(|(k, v)| (*k, *v)).collect();
    if live != expected {
        return Err(format!(
            "the published state has {} keys, the acked events {}",
            live.len(),
            expected.len()
        ));
    }
    match engine.shutdown().await {
        Err(ShutdownError::Journal { message, io }) => {
            check_message("shutdown's error", &message)?;
            if !message.contains(&first_failed) {
                return Err(format!(
                    "shutdown's error {message:?} does not name {first_failed}"
                ));
            }
            if io != Some(kind) {
                return Err(format!("shutdown's io is {io:?}, not {kind:?}"));
            }
        }
        other => return Err(format!("shutdown gave {other:?}, not the journal failure")),
    }
    drop(engine);

    // Reopened without faults: the acked events, exactly.
    let engine = open(dir, None).await?;
    let reopened = engine.reader().snapshot();
    let state: HashMap<u64, u64> = reopened.view().iter().map(|(k, v)| (*k, *v)).collect();
    engine
        .shutdown()
        .await
        .map_err(|e| format!("shutdown after reopen: {e}"))?;
    if reopened.seq() != last || state != expected {
        return Err(format!(
            "reopened at seq {} with {} keys; acked: seq {last}, {} keys",
            reopened.seq(),
            state.len(),
            expected.len()
        ));
    }
    let replay = Replay::<Ev>::open(dir, "fault-sweep-v1").map_err(|e| format!("replay: {e}"))?;
    let replayed: HashMap<u64, u64> = replay
        .state_at(last)
        .map_err(|e| format!("replay: {e}"))?
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    let replay_last = replay.last_seq().map_err(|e| format!("replay: {e}"))?;
    if replay_last != last || replayed != expected {
        return Err(format!(
            "the replay ends at seq {replay_last} and differs from the acked events"
        ));
    }
    Ok(RunOutcome {
        acked: last,
        refused,
    })
}

/// One writer: unique keys (`writer << 32 | i`), pipelined, until the
/// engine stops taking events. Returns `(key, value, ack's seq or error)`.
async fn write(
    engine: Engine<Ev>,
    writer: u64,
) -> Vec<(
    u64,
    u64,
    Result<u64, AckError<solostate::StateRejection<u64>>>,
)> {
    let mut in_flight = std::collections::VecDeque::new();
    let mut outcomes = Vec::new();
    for i in 0..MAX_EVENTS {
        let key = writer << 32 | i;
        let Ok(pending) = engine.send(Ev::put(key, i)).await else {
            break; // closed: the fault stopped the engine
        };
        in_flight.push_back((key, i, pending));
        if in_flight.len() >= DEPTH {
            let (key, value, pending) = in_flight.pop_front().expect("non-empty");
            outcomes.push((key, value, pending.await.map(|ack| ack.seq)));
        }
    }
    for (key, value, pending) in in_flight {
        outcomes.push((key, value, pending.await.map(|ack| ack.seq)));
    }
    outcomes
}

/// The sweep: every fault kind at N = 1..=`max_n`.
pub fn sweep(max_n: u64) -> Result<Section, String> {
    let mut section = Section::new(
        "Fault sweep: failed writes, failed flushes, full disk",
        "a batch whose journal write or flush fails is not acknowledged, the published \
         state stays at the last durable batch, the error names the cause, the seqs and \
         the path, and a reopen recovers every acked event and none of the refused ones",
    )
    .checked_by("reliability/src/fault_sweep.rs")
    .checked_by("reliability/tests/fault_sweep.rs");
    let (mut runs, mut acked, mut refused) = (0u64, 0u64, 0u64);
    for fault in Fault::ALL {
        for n in 1..=max_n {
            let outcome = run(fault, n, n % 2 == 0)?;
            runs += 1;
            acked += outcome.acked;
            refused += outcome.refused;
        }
        section.figure(format!("{fault:?} runs (N = 1..={max_n})"), max_n);
    }
    section.figure("runs", runs);
    section.figure("acked events", acked);
    section.figure("refused events (AckError::Journal)", refused);
    section.figure("acked events lost", 0);
    section.figure("refused events back after reopen", 0);
    Ok(section)
}

/// The harness: N up to 6 (quick) or 64 (full).
pub fn harness(mode: Mode) -> Result<Section, String> {
    sweep(match mode {
        Mode::Quick => 6,
        Mode::Full => 64,
    })
}
