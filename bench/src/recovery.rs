//! Recovery: how fast a journal replays, how fast an engine opens from a
//! checkpoint, and what the journal costs on disk per event.

use std::path::Path;
use std::time::{Duration, Instant};

use solostate::{CheckpointPolicy, Durability};

use crate::adapters::solo::{open, put_all, runtime};

/// What recovery measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// Events in the replayed journal (one put per distinct key).
    pub events: u64,
    /// Opening an engine that replays all of them, with no checkpoint.
    pub replay: Duration,
    /// Journal directory bytes per event after writing them.
    pub journal_bytes_per_event: f64,
    /// Keys in the checkpoint.
    pub checkpoint_keys: u64,
    /// Opening from that checkpoint with nothing after it (the best of
    /// three opens).
    pub open_from_checkpoint: Duration,
}

impl Recovery {
    /// Events replayed per second.
    pub fn replay_per_s(&self) -> f64 {
        self.events as f64 / self.replay.as_secs_f64()
    }
}

/// Writes `events` puts of distinct keys to a fresh engine directory
/// (under `Never`: loading, not the flushes, is not what is measured
/// here), and checkpoints at shutdown when `checkpoint` is set.
fn write(dir: &Path, events: u64, checkpoint: bool) -> Result<(), String> {
    let rt = runtime();
    let policy = CheckpointPolicy::never().on_shutdown(checkpoint);
    let engine = open(
        &rt,
        solostate::StoreKind::Persistent,
        Some(dir),
        Durability::Never,
        policy,
        Default::default(),
    )
    .map_err(|e| format!("open {}: {e}", dir.display()))?;
    put_all(&engine, 0..events);
    rt.block_on(engine.shutdown())
        .map_err(|e| format!("shutdown {}: {e}", dir.display()))
}

/// Opens the engine in `dir` (writing no checkpoints) and returns how
/// long opening took and what it recovered; closing is not timed.
fn time_open(dir: &Path) -> Result<(Duration, solostate::Recovery), String> {
    let rt = runtime();
    let start = Instant::now();
    let engine = open(
        &rt,
        solostate::StoreKind::Persistent,
        Some(dir),
        Durability::Always,
        CheckpointPolicy::never(),
        Default::default(),
    )
    .map_err(|e| format!("reopen {}: {e}", dir.display()))?;
    let took = start.elapsed();
    let recovery = engine.recovery().clone();
    rt.block_on(engine.shutdown())
        .map_err(|e| format!("shutdown {}: {e}", dir.display()))?;
    Ok((took, recovery))
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .flatten()
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                Ok(meta) => meta.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// Measures replay of `events` events and opening from a checkpoint of as
/// many keys.
///
/// # Errors
///
/// Writing or reopening an engine failed, or it recovered something other
/// than what was written.
pub fn run(events: u64) -> Result<Recovery, String> {
    let journal_only = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    write(journal_only.path(), events, false)?;
    let journal_bytes = dir_bytes(&journal_only.path().join("journal"));
    let (replay, recovered) = time_open(journal_only.path())?;
    if recovered.replayed != events || recovered.checkpoint.is_some() {
        return Err(format!(
            "replay recovered {recovered:?}, expected {events} events and no checkpoint"
        ));
    }
    eprintln!("replayed {events} events in {replay:.2?}");
    drop(journal_only);

    let checkpointed = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    write(checkpointed.path(), events, true)?;
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let (took, recovered) = time_open(checkpointed.path())?;
        if recovered.checkpoint != Some(events) || recovered.replayed != 0 {
            return Err(format!(
                "open recovered {recovered:?}, expected the checkpoint at {events} alone"
            ));
        }
        best = best.min(took);
    }
    eprintln!("opened from a checkpoint of {events} keys in {best:.2?}");
    Ok(Recovery {
        events,
        replay,
        journal_bytes_per_event: journal_bytes as f64 / events as f64,
        checkpoint_keys: events,
        open_from_checkpoint: best,
    })
}
