//! Overload: producers offer about ten times what a durable engine can
//! absorb, and the engine must push back instead of queueing without
//! bound.
//!
//! The engine journals under `Durability::Always` on a slow disk: a
//! [`FaultPlan::flush_delay`] sleeps [`OverloadConfig::flush_delay`]
//! before every flush of the real sled journal underneath, and batches
//! hold at most [`OverloadConfig::max_batch`] events, so the journal
//! absorbs at most `max_batch / flush_delay` events per second (12,800/s
//! with 64 events per 5 ms flush) and sets the pace. The run first
//! measures what the engine absorbs with producers that wait for room
//! (`send`), then runs two kinds of producer together:
//!
//! * **shedding** producers call `try_submit` on a schedule paced at
//!   `factor` times the rate the engine absorbs (re-measured every
//!   [`ADJUST_EVERY`]), and drop what comes back `Full`;
//! * **waiting** producers call `send` as fast as it lets them, so they
//!   are held back by the bounded queue (their time blocked in `send` is
//!   the push-back).
//!
//! RSS must stay under a stated cap (the empty engine's RSS plus a fixed
//! budget; in the 30 s form, well below what the offered-but-unabsorbed
//! events alone would take in an unbounded queue) the whole time, every
//! admitted event must be acked, and after a shutdown and a reopen of the
//! directory the state must hold, for every key, the last event admitted
//! for it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use solostate::{Builder, Durability, Engine, FaultPlan};

use crate::memory::{self, Sampler, mib};
use crate::report::Mode;
use crate::workload::{KvEvent, Latency, latency_histogram, runtime};

mod producer;
mod section;

use producer::{Produced, Producer, Tally};
pub use section::section;

/// How often the shedding producers' rate is reset to `factor` times
/// what the engine absorbed since the last reset.
pub const ADJUST_EVERY: Duration = Duration::from_millis(250);

/// How an overload run is shaped.
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    /// How long the absorbed rate is measured before the overload.
    pub calibrate: Duration,
    /// How long the overload lasts.
    pub duration: Duration,
    /// The shedding producers' offered rate, as a multiple of the rate
    /// the engine absorbs (measured first, then every [`ADJUST_EVERY`]).
    pub factor: f64,
    /// The engine's command queue capacity.
    pub channel_capacity: usize,
    /// The engine's largest batch. With a full queue every batch holds
    /// this many events, so together with `flush_delay` it fixes the most
    /// the journal can absorb; with the default of 4096, group commit
    /// would amortise even a slow flush until the map, not the journal,
    /// set the pace.
    pub max_batch: usize,
    /// How long every journal flush sleeps first ([`FaultPlan::flush_delay`]):
    /// a disk that cannot keep up.
    pub flush_delay: Duration,
    /// Producers that call `try_submit` on a schedule.
    pub shedding: usize,
    /// Producers that call `send` and wait for room.
    pub waiting: usize,
    /// Keys each producer writes, round-robin; producers never share a key,
    /// so each key's last admitted value is known exactly.
    pub keys_per_producer: u64,
    /// How far RSS may rise above the freshly opened, empty engine's, at
    /// any point of the run: the queue, the journal's cache and buffers,
    /// checkpoints and the producers' pending acks all count against it.
    pub rss_budget: u64,
}

impl OverloadConfig {
    /// The engine on `dir`: it flushes every batch before acking it
    /// (`Durability::Always`), every flush delayed by `flush_delay`, with
    /// this configuration's queue capacity and largest batch and a 16 MiB
    /// journal cache.
    pub fn journal(&self, dir: &Path) -> Builder<KvEvent> {
        Engine::builder()
            .path(dir)
            .schema("overload-v1")
            .durability(Durability::Always)
            .faults(FaultPlan::new().flush_delay(self.flush_delay))
            .channel_capacity(self.channel_capacity)
            .max_batch(self.max_batch)
            .journal_cache_bytes(16 << 20)
            .checkpoints(solostate::CheckpointPolicy::default().every_events(1 << 18))
            .retention(solostate::Retention::SinceOldestCheckpoint)
    }

    /// The configuration for a mode: 30 s of overload in full, 2 s in
    /// quick, both at 10× with the default queue capacity.
    pub fn for_mode(mode: Mode) -> Self {
        let (calibrate, duration) = match mode {
            Mode::Quick => (Duration::from_millis(500), Duration::from_secs(2)),
            Mode::Full => (Duration::from_secs(3), Duration::from_secs(30)),
        };
        OverloadConfig {
            calibrate,
            duration,
            factor: 10.0,
            channel_capacity: Builder::<KvEvent>::DEFAULT_CHANNEL_CAPACITY,
            max_batch: 64,
            flush_delay: Duration::from_millis(5),
            shedding: 4,
            waiting: 4,
            keys_per_producer: 1_000,
            rss_budget: 96 << 20,
        }
    }
}

/// What an overload run measured. It exists only if every admitted event
/// was acked and found after reopening.
#[derive(Debug, Clone)]
pub struct OverloadOutcome {
    /// The run's configuration.
    pub config: OverloadConfig,
    /// Events applied per second while calibrating (waiting producers only).
    pub calibrated_rate: f64,
    /// The shedding producers' target rate, averaged over the overload
    /// (it is reset every [`ADJUST_EVERY`] to `factor` times the rate
    /// absorbed over the last interval).
    pub target_rate: f64,
    /// `try_submit` calls during the overload.
    pub attempts: u64,
    /// Of those, how many came back `Full`.
    pub full: u64,
    /// `send` calls by the waiting producers during the overload.
    pub sends: u64,
    /// How long the waiting producers' `send`s were blocked.
    pub send_wait: Latency,
    /// The share of the overload the waiting producers spent blocked in
    /// `send`, from 0 to 1: the push-back they felt.
    pub send_blocked_share: f64,
    /// Events the engine applied during the overload.
    pub absorbed: u64,
    /// The overload's measured length.
    pub elapsed: Duration,
    /// RSS of the freshly opened, empty engine.
    pub rss_empty: u64,
    /// RSS when the overload started, after calibrating.
    pub rss_before: u64,
    /// The highest RSS sampled during the run (calibration included).
    pub rss_peak: u64,
    /// The deepest queue seen by the sampler.
    pub max_queue_depth: usize,
    /// Events admitted (and so acked) over the whole run.
    pub admitted: u64,
    /// The seq the reopened engine recovered to.
    pub recovered_seq: u64,
}

impl OverloadOutcome {
    /// The RSS cap: the empty engine's RSS plus the budget.
    pub fn rss_cap(&self) -> u64 {
        self.rss_empty + self.config.rss_budget
    }

    /// Events offered per second during the overload, both kinds.
    pub fn offered_rate(&self) -> f64 {
        (self.attempts + self.sends) as f64 / self.elapsed.as_secs_f64()
    }

    /// Events absorbed per second during the overload.
    pub fn absorbed_rate(&self) -> f64 {
        self.absorbed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs an overload on its own two-worker runtime.
///
/// # Errors
///
/// A description of the first broken promise: an admitted event that was
/// not acked, a state after reopening that lacks an acked event, a
/// `try_submit` that never said `Full` (no push-back), or RSS above the
/// cap; or of a setup failure.
pub fn run(config: &OverloadConfig) -> Result<OverloadOutcome, String> {
    runtime()?.block_on(overload(config.clone()))
}

async fn overload(config: OverloadConfig) -> Result<OverloadOutcome, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let engine = config.journal(dir.path()).open().await.map_err(|e| {
        format!(
            "overload engine did not open in {}: {e}",
            dir.path().display()
        )
    })?;
    let rss_empty = memory::rss()?;
    let probe = engine.clone();
    let max_depth = Arc::new(AtomicU64::new(0));
    let depth = Arc::clone(&max_depth);
    let sampler = Sampler::start(Duration::from_millis(10), move || {
        let stats = probe.stats();
        depth.fetch_max(stats.queue_depth as u64, Ordering::Relaxed);
        stats.applied
    });
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let overloading = Arc::new(AtomicBool::new(false));

    // Waiting producers run from the start: alone, they measure what the
    // engine absorbs; then they keep pushing through the overload.
    let mut producers = Vec::new();
    for p in 0..config.waiting {
        let ctx = Producer::new(p, &engine, &config, &tally, &stop, &overloading);
        producers.push(tokio::spawn(ctx.waiting()));
    }
    let calibration_start = engine.stats().applied;
    tokio::time::sleep(config.calibrate).await;
    let calibrated_rate =
        (engine.stats().applied - calibration_start) as f64 / config.calibrate.as_secs_f64();
    let rate = Arc::new(AtomicU64::new(
        (calibrated_rate * config.factor / config.shedding.max(1) as f64) as u64,
    ));

    let rss_before = memory::rss()?;
    let applied_before = engine.stats().applied;
    let started = Instant::now();
    overloading.store(true, Ordering::Relaxed);
    for p in 0..config.shedding {
        let ctx = Producer::new(
            config.waiting + p,
            &engine,
            &config,
            &tally,
            &stop,
            &overloading,
        );
        producers.push(tokio::spawn(ctx.shedding(Arc::clone(&rate))));
    }
    // Keep the offer at `factor` times what the engine absorbs now, which
    // drifts from the calibration as the journal warms up and as the
    // machine's other load comes and goes.
    let mut targets = Vec::new();
    let (mut window_start, mut window_applied) = (Instant::now(), applied_before);
    while started.elapsed() < config.duration {
        tokio::time::sleep(ADJUST_EVERY.min(config.duration)).await;
        let applied = engine.stats().applied;
        let absorbing = (applied - window_applied) as f64 / window_start.elapsed().as_secs_f64();
        (window_start, window_applied) = (Instant::now(), applied);
        let target = absorbing * config.factor;
        targets.push(target);
        rate.store(
            (target / config.shedding.max(1) as f64) as u64,
            Ordering::Relaxed,
        );
    }
    let target_rate = targets.iter().sum::<f64>() / targets.len().max(1) as f64;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let absorbed = engine.stats().applied - applied_before;
    let samples = sampler.finish();

    let mut admitted_by = Vec::new();
    let mut send_wait = latency_histogram();
    for task in producers {
        let done = task
            .await
            .map_err(|e| format!("a producer task failed: {e}"))??;
        send_wait
            .add(&done.send_wait)
            .map_err(|e| format!("histograms do not merge: {e}"))?;
        admitted_by.push(done);
    }
    engine
        .shutdown()
        .await
        .map_err(|e| format!("overload engine did not shut down cleanly: {e}"))?;
    drop(engine);

    let admitted: u64 = admitted_by.iter().map(|d| d.admitted).sum();
    let recovered_seq = verify_reopened(dir.path(), &config, &admitted_by).await?;
    if recovered_seq != admitted {
        return Err(format!(
            "{admitted} events were admitted and acked but {} recovered to seq {recovered_seq}",
            dir.path().display()
        ));
    }
    let outcome = OverloadOutcome {
        calibrated_rate,
        target_rate,
        attempts: tally.attempts.load(Ordering::Relaxed),
        full: tally.full.load(Ordering::Relaxed),
        sends: tally.sends.load(Ordering::Relaxed),
        send_wait: Latency::of(&send_wait),
        send_blocked_share: tally.blocked_nanos.load(Ordering::Relaxed) as f64
            / tally.running_nanos.load(Ordering::Relaxed).max(1) as f64,
        absorbed,
        elapsed,
        rss_empty,
        rss_before,
        rss_peak: memory::peak(&samples),
        max_queue_depth: max_depth.load(Ordering::Relaxed) as usize,
        admitted,
        recovered_seq,
        config,
    };
    if outcome.full == 0 {
        return Err(format!(
            "try_submit never said Full in {} attempts at {:.0} offered/s: no push-back",
            outcome.attempts,
            outcome.offered_rate()
        ));
    }
    if outcome.rss_peak > outcome.rss_cap() {
        return Err(format!(
            "RSS peaked at {} under overload, above the cap of {} ({} empty + {} budget)",
            mib(outcome.rss_peak),
            mib(outcome.rss_cap()),
            mib(outcome.rss_empty),
            mib(outcome.config.rss_budget)
        ));
    }
    Ok(outcome)
}

/// Reopens the directory and checks that every key holds the last event
/// admitted for it; returns the recovered seq.
async fn verify_reopened(
    dir: &Path,
    config: &OverloadConfig,
    produced: &[Produced],
) -> Result<u64, String> {
    let engine = config
        .journal(dir)
        .open()
        .await
        .map_err(|e| format!("reopening {} after the overload failed: {e}", dir.display()))?;
    let snapshot = engine.reader().snapshot();
    for p in produced {
        for slot in 0..config.keys_per_producer.min(p.admitted) {
            // The last counter below `admitted` that lands on this slot.
            let last = (p.admitted - 1 - slot) / config.keys_per_producer
                * config.keys_per_producer
                + slot;
            let key = p.index as u64 * config.keys_per_producer + slot;
            let want = [last, p.index as u64, 0, 0];
            if snapshot.get(&key).as_deref() != Some(&want) {
                return Err(format!(
                    "after reopening {}, key {key} holds {:?}, but the last acked event for it \
                     wrote {want:?}",
                    dir.display(),
                    snapshot.get(&key)
                ));
            }
        }
    }
    let seq = snapshot.seq();
    engine
        .shutdown()
        .await
        .map_err(|e| format!("reopened engine did not shut down cleanly: {e}"))?;
    Ok(seq)
}
