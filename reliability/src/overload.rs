//! Overload: producers offer about ten times what a durable engine can
//! absorb, and the engine must push back instead of queueing without
//! bound.
//!
//! The engine journals under `Durability::Always`, so every batch waits
//! for a flush and the journal is what limits throughput. The run first
//! measures what the engine absorbs with producers that wait for room
//! (`send`), then runs two kinds of producer together:
//!
//! * **shedding** producers call `try_submit` on a schedule paced at
//!   `factor` times the measured rate, and drop what comes back `Full`;
//! * **waiting** producers call `send` as fast as it lets them, so they
//!   are held back by the bounded queue (their time blocked in `send` is
//!   the push-back).
//!
//! RSS must stay under a stated cap (the empty engine's RSS plus a fixed
//! budget, far below what the offered-but-unabsorbed events would take in
//! an unbounded queue) the whole time, every admitted event
//! must be acked, and after a shutdown and a reopen of the directory the
//! state must hold, for every key, the last event admitted for it.
//!
//! The journal is opened through [`OverloadConfig::journal`], the one
//! place to plug in a slower journal: a flush-delay fault, once the
//! storage layer has one, makes the overload larger without more
//! producers.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use solostate::{Builder, Durability, Engine, Pending, StateEvent, TrySubmitError};

use crate::memory::{self, Sampler, delta_mib, mib};
use crate::report::{Mode, Section};
use crate::workload::{KvEvent, Latency, latency_histogram, rate, runtime};

/// How an overload run is shaped.
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    /// How long the absorbed rate is measured before the overload.
    pub calibrate: Duration,
    /// How long the overload lasts.
    pub duration: Duration,
    /// The shedding producers' offered rate, as a multiple of the
    /// absorbed rate measured first.
    pub factor: f64,
    /// The engine's command queue capacity.
    pub channel_capacity: usize,
    /// The engine's largest batch. Small batches make the per-batch flush
    /// the limit, as a slow disk would; with the default of 4096 and
    /// producers that never wait for acks, group commit amortises the
    /// flush so well that the map, not the journal, sets the pace.
    pub max_batch: usize,
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
    /// Opens the engine's builder on a directory. [`always_journal`] is a
    /// real journal flushing every batch; a journal with a delayed flush
    /// plugs in here.
    pub journal: fn(&Path) -> Builder<KvEvent>,
}

/// A durable engine on `dir` that flushes every batch before acking it
/// (`Durability::Always`), with a 16 MiB journal cache.
pub fn always_journal(dir: &Path) -> Builder<KvEvent> {
    Engine::builder()
        .path(dir)
        .durability(Durability::Always)
        .journal_cache_bytes(16 << 20)
        .checkpoints(solostate::CheckpointPolicy::default().every_events(1 << 18))
        .retention(solostate::Retention::SinceOldestCheckpoint)
}

impl OverloadConfig {
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
            shedding: 4,
            waiting: 4,
            keys_per_producer: 1_000,
            rss_budget: 192 << 20,
            journal: always_journal,
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
    /// The shedding producers' target rate.
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

/// Counters the producers share.
#[derive(Default)]
struct Tally {
    attempts: AtomicU64,
    full: AtomicU64,
    sends: AtomicU64,
    /// Time the waiting producers spent in `send` during the overload.
    blocked_micros: AtomicU64,
    /// Time the waiting producers spent in all, over the same turns.
    running_micros: AtomicU64,
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
    let engine = (config.journal)(dir.path())
        .channel_capacity(config.channel_capacity)
        .max_batch(config.max_batch)
        .open()
        .await
        .map_err(|e| {
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
    let target_rate = calibrated_rate * config.factor;

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
        let per_producer = target_rate / config.shedding as f64;
        producers.push(tokio::spawn(ctx.shedding(per_producer)));
    }
    tokio::time::sleep(config.duration).await;
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
        send_blocked_share: tally.blocked_micros.load(Ordering::Relaxed) as f64
            / tally.running_micros.load(Ordering::Relaxed).max(1) as f64,
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

/// One producer's identity and what it shares with the others.
struct Producer {
    index: usize,
    engine: Engine<KvEvent>,
    keys: u64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    overloading: Arc<AtomicBool>,
}

/// What a producer did: how many events it had admitted (its counters
/// `0..admitted`, each acked) and how long its `send`s waited.
struct Produced {
    index: usize,
    admitted: u64,
    send_wait: Histogram<u64>,
}

impl Producer {
    fn new(
        index: usize,
        engine: &Engine<KvEvent>,
        config: &OverloadConfig,
        tally: &Arc<Tally>,
        stop: &Arc<AtomicBool>,
        overloading: &Arc<AtomicBool>,
    ) -> Self {
        Producer {
            index,
            engine: engine.clone(),
            keys: config.keys_per_producer,
            tally: Arc::clone(tally),
            stop: Arc::clone(stop),
            overloading: Arc::clone(overloading),
        }
    }

    /// The event for this producer's `counter`th admitted event.
    fn event(&self, counter: u64) -> KvEvent {
        let key = self.index as u64 * self.keys + counter % self.keys;
        StateEvent::put(key, [counter, self.index as u64, 0, 0])
    }

    /// Calls `send` in a loop, timing how long each waits for room.
    async fn waiting(self) -> Result<Produced, String> {
        let mut acks = Acks::new(self.index);
        let mut send_wait = latency_histogram();
        let mut admitted = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let asked = Instant::now();
            let pending = self
                .engine
                .send(self.event(admitted))
                .await
                .map_err(|_| format!("engine closed under producer {}", self.index))?;
            let blocked = asked.elapsed();
            acks.push(admitted, pending);
            acks.take_ready()?;
            admitted += 1;
            if self.overloading.load(Ordering::Relaxed) {
                send_wait.saturating_record(blocked.as_micros().max(1) as u64);
                self.tally.sends.fetch_add(1, Ordering::Relaxed);
                let micros = |d: Duration| d.as_micros() as u64;
                self.tally
                    .blocked_micros
                    .fetch_add(micros(blocked), Ordering::Relaxed);
                self.tally
                    .running_micros
                    .fetch_add(micros(asked.elapsed()), Ordering::Relaxed);
            }
        }
        self.done(acks, admitted, send_wait).await
    }

    /// Calls `try_submit` at `rate` per second on a schedule, dropping
    /// what comes back `Full`. When it falls behind the schedule it
    /// catches up in bursts of at most 10 ms of events.
    async fn shedding(self, rate: f64) -> Result<Produced, String> {
        let mut acks = Acks::new(self.index);
        let started = Instant::now();
        let (mut attempted, mut admitted) = (0u64, 0u64);
        let burst = (rate / 100.0).max(1.0) as u64;
        while !self.stop.load(Ordering::Relaxed) {
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            let now = due.saturating_sub(attempted).min(burst);
            for _ in 0..now {
                match self.engine.try_submit(self.event(admitted)) {
                    Ok(pending) => {
                        acks.push(admitted, pending);
                        admitted += 1;
                    }
                    Err(TrySubmitError::Full(_)) => {
                        self.tally.full.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return Err(format!("producer {}: {e}", self.index)),
                }
            }
            attempted = attempted.max(due.saturating_sub(burst)) + now;
            self.tally.attempts.fetch_add(now, Ordering::Relaxed);
            acks.take_ready()?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.done(acks, admitted, latency_histogram()).await
    }

    /// Awaits the remaining acks and checks that every admitted event was
    /// acked.
    async fn done(
        self,
        acks: Acks,
        admitted: u64,
        send_wait: Histogram<u64>,
    ) -> Result<Produced, String> {
        let acked = acks.finish().await?;
        if acked != admitted {
            return Err(format!(
                "producer {}: {admitted} events admitted, {acked} acked",
                self.index
            ));
        }
        Ok(Produced {
            index: self.index,
            admitted,
            send_wait,
        })
    }
}

/// A producer's admitted events whose acks it has not taken yet, oldest
/// first. The producer takes the acks that have arrived after every send
/// or burst, without waiting, so it never waits for the journal and holds
/// only what the engine has admitted and not yet answered, which its
/// queue bounds. (A first version awaited acks on a separate task per
/// producer; under overload those tasks fell behind the producers and
/// their channels held millions of answered acks, so memory grew in the
/// harness instead of the engine.)
struct Acks {
    index: usize,
    waiting: std::collections::VecDeque<(u64, Pending<KvEvent>)>,
    acked: u64,
    last_seq: u64,
}

impl Acks {
    fn new(index: usize) -> Self {
        Acks {
            index,
            waiting: std::collections::VecDeque::new(),
            acked: 0,
            last_seq: 0,
        }
    }

    /// Remembers an admitted event's pending ack.
    fn push(&mut self, counter: u64, pending: Pending<KvEvent>) {
        self.waiting.push_back((counter, pending));
    }

    /// Takes the acks that have already arrived, oldest first, and stops
    /// at the first that has not. The polls are `unconstrained`: tokio's
    /// cooperative budget would otherwise answer `Pending` for ready acks
    /// once a producer had run a while without yielding (a `send` that
    /// finds room does not yield), and the backlog would grow.
    fn take_ready(&mut self) -> Result<(), String> {
        let mut cx = Context::from_waker(Waker::noop());
        while let Some((_, pending)) = self.waiting.front_mut() {
            let mut ready = tokio::task::unconstrained(pending);
            let Poll::Ready(answer) = Pin::new(&mut ready).poll(&mut cx) else {
                return Ok(());
            };
            let (counter, _) = self.waiting.pop_front().expect("front exists");
            self.check(counter, answer)?;
        }
        Ok(())
    }

    /// Awaits every remaining ack.
    async fn finish(mut self) -> Result<u64, String> {
        while let Some((counter, pending)) = self.waiting.pop_front() {
            let answer = pending.await;
            self.check(counter, answer)?;
        }
        Ok(self.acked)
    }

    /// Checks that the ack of the `counter`th admitted event is a success
    /// and comes in order.
    fn check(
        &mut self,
        counter: u64,
        answer: Result<solostate::Ack, solostate::AckError<solostate::StateRejection<u64>>>,
    ) -> Result<(), String> {
        let index = self.index;
        let ack = answer.map_err(|e| {
            format!("producer {index}: admitted event {counter} was not acked: {e}")
        })?;
        if ack.seq <= self.last_seq || counter != self.acked {
            return Err(format!(
                "producer {index}: event {counter} acked with seq {} after seq {}",
                ack.seq, self.last_seq
            ));
        }
        self.acked += 1;
        self.last_seq = ack.seq;
        Ok(())
    }
}

/// Reopens the directory and checks that every key holds the last event
/// admitted for it; returns the recovered seq.
async fn verify_reopened(
    dir: &Path,
    config: &OverloadConfig,
    produced: &[Produced],
) -> Result<u64, String> {
    let engine = (config.journal)(dir)
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
            if snapshot.get(&key) != Some(&want) {
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

/// The overload harness for the report.
///
/// # Errors
///
/// A broken promise, from [`run`].
pub fn section(mode: Mode) -> Result<Section, String> {
    let o = run(&OverloadConfig::for_mode(mode))?;
    let c = &o.config;
    let mut s = Section::new(
        "Overload: the queue pushes back",
        format!(
            "Producers offering about {:.0}× what a durable engine absorbs are held back by the \
             bounded queue (`send` waits, `try_submit` says `Full`) instead of growing memory; \
             every admitted event is acked and found after reopening. The engine flushes every \
             batch (`Durability::Always`); {} producers call `try_submit` on a schedule and drop \
             what is `Full`, {} call `send` as fast as it returns.",
            c.factor, c.shedding, c.waiting
        ),
    )
    .checked_by("reliability/tests/overload.rs")
    .checked_by("reliability/src/overload.rs");
    s.figure(
        "absorbed before the overload (waiting producers alone)",
        format!("{:.0}k events/s", o.calibrated_rate / 1e3),
    );
    s.figure(
        "offered during the overload (try_submit + send)",
        format!(
            "{:.0}k events/s ({:.1}× what it absorbed; try_submit target {:.0}k/s)",
            o.offered_rate() / 1e3,
            o.offered_rate() / o.absorbed_rate(),
            o.target_rate / 1e3
        ),
    );
    s.figure("absorbed during the overload", rate(o.absorbed, o.elapsed));
    s.figure(
        "channel capacity / deepest queue sampled / max batch",
        format!(
            "{} / {} / {}",
            c.channel_capacity, o.max_queue_depth, c.max_batch
        ),
    );
    s.figure(
        "try_submit said Full",
        format!(
            "{} of {} ({:.1}%)",
            o.full,
            o.attempts,
            100.0 * o.full as f64 / o.attempts.max(1) as f64
        ),
    );
    s.figure(
        "send blocked for room: share of the waiting producers' time / p50 / p99 / p99.9 / max",
        format!(
            "{:.0}% / {} over {} sends",
            100.0 * o.send_blocked_share,
            o.send_wait.display(),
            o.sends
        ),
    );
    s.figure(
        "RSS empty engine / at the overload's start / peak / cap",
        format!(
            "{} / {} / {} ({} over empty) / {}",
            mib(o.rss_empty),
            mib(o.rss_before),
            mib(o.rss_peak),
            delta_mib(o.rss_peak, o.rss_empty),
            mib(o.rss_cap())
        ),
    );
    let event = std::mem::size_of::<KvEvent>();
    let unabsorbed = (o.attempts + o.sends).saturating_sub(o.absorbed);
    s.figure(
        "what an unbounded queue would have held at the end",
        format!(
            "{unabsorbed} events offered and not absorbed: at least {:.1} GiB at {event} bytes \
             each (the event alone; a queued command also holds its ack channel)",
            unabsorbed as f64 * event as f64 / (1u64 << 30) as f64
        ),
    );
    s.figure(
        "acked, then found after shutdown and reopen",
        format!(
            "all {} admitted events; recovered to seq {}",
            o.admitted, o.recovered_seq
        ),
    );
    s.figure(
        "overload length",
        format!("{:.1} s", o.elapsed.as_secs_f64()),
    );
    s.note(
        "The reopen follows a graceful shutdown, so it shows that acked events were journaled \
         and recovered, not that they survive a crash (the crash harness does that). The slow \
         journal here is a real one flushing every batch; `OverloadConfig::journal` is where a \
         delayed-flush fault plugs in to push the overload further.",
    );
    s.note(
        "How the push-back falls: the waiting producers spend nearly all their time blocked in \
         `send`, but in a few long waits rather than many short ones. Each owner turn drains \
         the whole queue, so room comes in bursts; a woken sender fills some of it at once, \
         and the `try_submit` callers, which do not queue behind parked senders, take the \
         rest, so a `send` can wait through several turns (the max above). Nothing is lost \
         or reordered, but `send` is not fair against `try_submit` under overload.",
    );
    Ok(s)
}
