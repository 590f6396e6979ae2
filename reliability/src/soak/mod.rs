//! Soak: millions of overwrites of a fixed key set, with continuous
//! readers and one reader that pins an old snapshot for a whole phase.
//!
//! The live map has a fixed size (every event is a `Put` to one of `keys`
//! keys, after one `Put` per key fills it), so any lasting growth of
//! memory is a leak: in the owner loop (its flume receiver, its batch
//! buffers, the as-of window), in the published snapshots, or in the
//! journal. The run has four phases; the last three are measured at their
//! start, middle and end:
//!
//! 1. **fill**: one `Put` per key. Its RSS growth is "one map", the unit
//!    the margins below are stated in. Then a **warm-up** of overwrites
//!    that is charted but not judged: a durable engine's RSS climbs in
//!    steps over its first few checkpoint and compaction cycles (sled's
//!    buffers, checkpoint serialisation) before it levels off (a 30M-event
//!    run held flat from about 5M events on), and the bounds are about the
//!    steady state.
//! 2. **unpinned**: overwrites with readers loading snapshots
//!    continuously. RSS after all of it must be within a margin of RSS
//!    after half of it (N and 2N events, same key set: flat).
//! 3. **pinned**: a reader holds the snapshot taken at the start of the
//!    phase throughout. Overwrites copy every node it shares, so live
//!    memory grows by at most one map; RSS must stay under the unpinned
//!    level plus two maps plus the margin, and again be flat from the
//!    middle to the end. At the end the pinned snapshot must be unchanged.
//! 4. **released**: the pinned snapshot is dropped. By the end of the
//!    phase it must be freed (no engine structure keeps it; the as-of
//!    window, 4096 seqs by default, is far shorter than a phase), and RSS
//!    must not grow from the start to the end of the phase: the freed
//!    nodes are reused. Whether RSS also *falls* depends on the allocator
//!    (see [`crate::memory`]); the report says what it did.
//!
//! Writers record each event's ack latency, so the unpinned and pinned
//! phases give the writer's latency without and with a pinned reader.
//!
//! On the versioned store ([`SoakConfig::store`]) a pinned snapshot keeps
//! every version written while it is held, not one map: that is its
//! contract (memory in proportion to the writes made meanwhile). So its
//! pinned phase is bounded by one version per overwrite (a version costs
//! less than a key's whole share of the map, the unit used), and it is
//! not expected to be flat; the unpinned and released bounds are the
//! same as the persistent store's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use solostate::{CheckpointPolicy, Durability, Engine, Reader, Retention, StateEvent, StoreKind};

use crate::memory::{self, Sample, Sampler};
use crate::report::Mode;
use crate::workload::{KvEvent, Latency, key_of, latency_histogram, runtime};

mod section;

pub use section::section;

/// The durable soak's journal cache, in bytes.
pub const JOURNAL_CACHE: u64 = 16 << 20;

/// How big a soak is and how the engine is configured.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The size of the key set, and so of the live map.
    pub keys: u64,
    /// Overwrites after the fill and before the unpinned phase, not judged.
    pub warmup_events: u64,
    /// Overwrites in each of the unpinned, pinned and released phases.
    pub events_per_phase: u64,
    /// Writer tasks, each pipelining `in_flight` events.
    pub writers: usize,
    /// Events each writer keeps in flight.
    pub in_flight: usize,
    /// Reader threads loading snapshots throughout.
    pub readers: usize,
    /// `None` for an in-memory engine; otherwise a durable engine in a
    /// temporary directory with this durability, compacting its journal
    /// behind checkpoints so the disk stays bounded too.
    pub durability: Option<Durability>,
    /// Which store holds the state.
    pub store: StoreKind,
    /// How often RSS is sampled for the chart and the peaks.
    pub sample_every: Duration,
}

impl SoakConfig {
    /// The configuration for a mode: 10.1M events over 100k keys in full
    /// (a 4M warm-up and three phases of 2M), 200k over 10k keys in quick.
    pub fn for_mode(mode: Mode, durability: Option<Durability>) -> Self {
        let (keys, warmup_events, events_per_phase, sample_every) = match mode {
            Mode::Quick => (10_000, 40_000, 50_000, Duration::from_millis(20)),
            Mode::Full => (100_000, 4_000_000, 2_000_000, Duration::from_millis(200)),
        };
        SoakConfig {
            keys,
            warmup_events,
            events_per_phase,
            writers: 2,
            in_flight: 256,
            readers: 2,
            durability,
            store: StoreKind::Persistent,
            sample_every,
        }
    }

    /// Every event the run submits, fill included.
    pub fn total_events(&self) -> u64 {
        self.keys + self.warmup_events + 3 * self.events_per_phase
    }

    /// How many events have been applied when phase `i` (0 = unpinned)
    /// starts.
    pub fn phase_start(&self, i: u64) -> u64 {
        self.keys + self.warmup_events + i * self.events_per_phase
    }
}

/// One phase's measurements.
#[derive(Debug, Clone)]
pub struct Phase {
    /// "unpinned", "pinned" or "released".
    pub name: &'static str,
    /// How long the phase took.
    pub elapsed: Duration,
    /// RSS when the phase started, after its first half, and at its end.
    pub rss: [u64; 3],
    /// The highest RSS sampled during the phase.
    pub rss_peak: u64,
    /// The writers' ack latency (send to ack) over the phase.
    pub latency: Latency,
}

/// What a soak measured. Everything the harness could check by itself
/// (acks, dense seqs, the pinned snapshot intact and then freed, readers
/// seeing seqs only go forward) has already passed when a `SoakOutcome`
/// exists; the memory bounds are judged by [`SoakOutcome::memory_checks`].
#[derive(Debug, Clone)]
pub struct SoakOutcome {
    /// The run's configuration.
    pub config: SoakConfig,
    /// RSS with the engine open and empty.
    pub rss_empty: u64,
    /// RSS after the fill: `rss_filled - rss_empty` is one map.
    pub rss_filled: u64,
    /// The unpinned, pinned and released phases.
    pub phases: [Phase; 3],
    /// RSS over the whole run, by events applied.
    pub samples: Vec<Sample>,
    /// The seq of the snapshot the pinned reader held.
    pub pinned_seq: u64,
    /// Snapshot loads by the continuous readers.
    pub reads: u64,
    /// The whole run's duration.
    pub elapsed: Duration,
}

/// A memory bound: what is compared, the bound, the measured value.
#[derive(Debug, Clone)]
pub struct MemoryCheck {
    /// The claim, such as "unpinned: RSS flat from N to 2N events".
    pub claim: String,
    /// The highest RSS allowed, in bytes.
    pub bound: u64,
    /// The RSS measured, in bytes.
    pub measured: u64,
}

impl MemoryCheck {
    /// Whether the measurement is within the bound.
    pub fn holds(&self) -> bool {
        self.measured <= self.bound
    }
}

impl SoakOutcome {
    /// One map's worth of RSS: what filling the key set added (at least
    /// 1 MiB, so a tiny map does not make the margins vanish).
    pub fn map_rss(&self) -> u64 {
        self.rss_filled.saturating_sub(self.rss_empty).max(1 << 20)
    }

    /// The slack every bound allows: 16 MiB or a quarter of a map,
    /// whichever is larger, for allocator fragmentation and the as-of
    /// window's recent snapshots. A durable engine adds one map and its
    /// journal cache: a checkpoint is written from an O(1) clone of the
    /// map, which, while it is written, costs up to one map as overwrites
    /// diverge from it (like a pinned reader), and sled's cache fills up to
    /// [`JOURNAL_CACHE`]. A leak shows in the middle-to-end comparisons
    /// once it exceeds this over half a phase: in the full form (1M events
    /// per half) that is 16 bytes per event in memory.
    pub fn margin(&self) -> u64 {
        let base = (16 << 20).max(self.map_rss() / 4);
        match self.config.durability {
            None => base,
            Some(_) => base + self.map_rss() + JOURNAL_CACHE,
        }
    }

    /// The memory bounds of the run, each with its measurement.
    pub fn memory_checks(&self) -> Vec<MemoryCheck> {
        let [unpinned, pinned, released] = &self.phases;
        let (map, margin) = (self.map_rss(), self.margin());
        let mut checks = vec![MemoryCheck {
            claim: "unpinned: RSS after 2N overwrites ≤ RSS after N + margin".into(),
            bound: unpinned.rss[1] + margin,
            measured: unpinned.rss[2],
        }];
        match self.config.store {
            StoreKind::Versioned => {
                // One key's share of the map per overwrite made while the
                // snapshot is held.
                let per_key = map / self.config.keys.max(1);
                let half = self.config.events_per_phase / 2;
                checks.extend([
                    MemoryCheck {
                        claim: "pinned: peak RSS ≤ unpinned end + 2N versions + margin".into(),
                        bound: unpinned.rss[2] + 2 * half * per_key + margin,
                        measured: pinned.rss_peak,
                    },
                    MemoryCheck {
                        claim:
                            "pinned: RSS after 2N overwrites ≤ RSS after N + N versions + margin"
                                .into(),
                        bound: pinned.rss[1] + half * per_key + margin,
                        measured: pinned.rss[2],
                    },
                ]);
            }
            _ => checks.extend([
                MemoryCheck {
                    claim: "pinned: peak RSS ≤ unpinned end + 2 maps + margin".into(),
                    bound: unpinned.rss[2] + 2 * map + margin,
                    measured: pinned.rss_peak,
                },
                MemoryCheck {
                    claim: "pinned: RSS after 2N overwrites ≤ RSS after N + margin".into(),
                    bound: pinned.rss[1] + margin,
                    measured: pinned.rss[2],
                },
            ]),
        }
        checks.push(MemoryCheck {
            claim: "released: RSS at the end ≤ RSS when the pin was dropped + margin (freed memory is reused)".into(),
            bound: pinned.rss[2] + margin,
            measured: released.rss[2],
        });
        checks
    }
}

/// Runs a soak on its own two-worker runtime.
///
/// # Errors
///
/// A description of the first broken promise (a failed ack, a seq gap, a
/// pinned snapshot that changed or was never freed, a reader that saw a
/// seq go backwards), or of a setup failure. Memory bounds are not
/// judged here; see [`SoakOutcome::memory_checks`].
pub fn run(config: &SoakConfig) -> Result<SoakOutcome, String> {
    runtime()?.block_on(soak(config.clone()))
}

async fn soak(config: SoakConfig) -> Result<SoakOutcome, String> {
    let started = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let mut builder = Engine::<KvEvent>::builder().store(config.store);
    if let Some(durability) = config.durability {
        builder = builder
            .path(dir.path())
            .schema("soak-v1")
            .durability(durability)
            .journal_cache_bytes(JOURNAL_CACHE)
            .checkpoints(CheckpointPolicy::default().every_events(config.keys * 10))
            .retention(Retention::SinceOldestCheckpoint);
    }
    let engine = builder
        .open()
        .await
        .map_err(|e| format!("soak engine did not open in {}: {e}", dir.path().display()))?;
    let rss_empty = memory::rss()?;
    let probe = engine.clone();
    let sampler = Sampler::start(config.sample_every, move || probe.stats().applied);

    let mut next = 0;
    fill(&engine, config.keys).await?;
    next += config.keys;
    let rss_filled = memory::rss()?;

    let readers = Readers::start(&engine.reader(), config.readers, config.keys);
    overwrite(&engine, &config, next, config.warmup_events).await?;
    next += config.warmup_events;
    let unpinned = phase("unpinned", &engine, &config, &mut next).await?;

    let pinned_snapshot = engine.reader().snapshot();
    let pinned_seq = pinned_snapshot.seq();
    let pinned_sum = checksum(&pinned_snapshot);
    let pinned = phase("pinned", &engine, &config, &mut next).await?;
    if pinned_snapshot.seq() != pinned_seq || checksum(&pinned_snapshot) != pinned_sum {
        return Err(format!(
            "the snapshot pinned at seq {pinned_seq} changed while it was held"
        ));
    }
    let pinned_weak = Arc::downgrade(&pinned_snapshot);
    drop(pinned_snapshot);

    let released = phase("released", &engine, &config, &mut next).await?;
    if pinned_weak.strong_count() != 0 {
        return Err(format!(
            "the snapshot pinned at seq {pinned_seq} is still alive after its reader dropped it \
             and {} more events: something in the engine keeps old snapshots",
            config.events_per_phase
        ));
    }
    let reads = readers.stop()?;
    let samples = sampler.finish();
    let last_seq = engine.stats().last_seq;
    if last_seq != next {
        return Err(format!(
            "{next} puts were acked but the engine's last seq is {last_seq}"
        ));
    }
    engine
        .shutdown()
        .await
        .map_err(|e| format!("soak engine did not shut down cleanly: {e}"))?;

    let mut phases = [unpinned, pinned, released];
    for (i, phase) in phases.iter_mut().enumerate() {
        let (from, to) = (
            config.phase_start(i as u64),
            config.phase_start(i as u64 + 1),
        );
        phase.rss_peak = samples
            .iter()
            .filter(|s| (from..=to).contains(&s.progress))
            .map(|s| s.rss)
            .chain(phase.rss)
            .max()
            .unwrap_or(0);
    }
    Ok(SoakOutcome {
        config,
        rss_empty,
        rss_filled,
        phases,
        samples,
        pinned_seq,
        reads,
        elapsed: started.elapsed(),
    })
}

/// Puts every key once, in order.
async fn fill(engine: &Engine<KvEvent>, keys: u64) -> Result<(), String> {
    let mut pending = Vec::with_capacity(1024);
    for key in 0..keys {
        let sent = engine
            .send(StateEvent::put(key, [key, 0, 0, 0]))
            .await
            .map_err(|_| format!("engine closed while filling key {key}"))?;
        pending.push(sent);
        if pending.len() == 1024 || key + 1 == keys {
            for ack in pending.drain(..) {
                ack.await.map_err(|e| format!("fill put failed: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Runs one phase in two halves, measuring RSS at the start, the middle
/// and the end.
async fn phase(
    name: &'static str,
    engine: &Engine<KvEvent>,
    config: &SoakConfig,
    next: &mut u64,
) -> Result<Phase, String> {
    let started = Instant::now();
    let mut rss = [memory::rss()?, 0, 0];
    let mut histogram = latency_histogram();
    let half = config.events_per_phase / 2;
    for (i, count) in [half, config.events_per_phase - half]
        .into_iter()
        .enumerate()
    {
        let h = overwrite(engine, config, *next, count).await?;
        histogram
            .add(&h)
            .map_err(|e| format!("latency histograms do not merge: {e}"))?;
        *next += count;
        rss[i + 1] = memory::rss()?;
    }
    Ok(Phase {
        name,
        elapsed: started.elapsed(),
        rss,
        rss_peak: 0,
        latency: Latency::of(&histogram),
    })
}

/// `count` overwrites, event indices `first..first + count`, spread over
/// the writers round-robin; returns their ack latencies.
async fn overwrite(
    engine: &Engine<KvEvent>,
    config: &SoakConfig,
    first: u64,
    count: u64,
) -> Result<Histogram<u64>, String> {
    let mut tasks = Vec::new();
    for w in 0..config.writers as u64 {
        let engine = engine.clone();
        let (writers, keys, depth) = (config.writers as u64, config.keys, config.in_flight);
        tasks.push(tokio::spawn(async move {
            let mut histogram = latency_histogram();
            let mut in_flight = std::collections::VecDeque::with_capacity(depth);
            let mut last_seq = 0;
            let mut index = first + w;
            while index < first + count || !in_flight.is_empty() {
                if index < first + count && in_flight.len() < depth {
                    let key = key_of(index, keys);
                    let sent = engine
                        .send(StateEvent::put(key, [key, index, 0, 0]))
                        .await
                        .map_err(|_| format!("engine closed at event {index}"))?;
                    in_flight.push_back((Instant::now(), sent));
                    index += writers;
                    continue;
                }
                let (sent_at, pending) = in_flight.pop_front().expect("not empty");
                let ack = pending
                    .await
                    .map_err(|e| format!("a put was not acked: {e}"))?;
                if ack.seq <= last_seq {
                    return Err(format!(
                        "writer {w} got seq {} after seq {last_seq}: acks out of order",
                        ack.seq
                    ));
                }
                last_seq = ack.seq;
                let micros = sent_at.elapsed().as_micros().max(1) as u64;
                histogram.saturating_record(micros);
            }
            Ok::<_, String>(histogram)
        }));
    }
    let mut histogram = latency_histogram();
    for task in tasks {
        let h = task
            .await
            .map_err(|e| format!("a writer task failed: {e}"))??;
        histogram
            .add(&h)
            .map_err(|e| format!("latency histograms do not merge: {e}"))?;
    }
    Ok(histogram)
}

/// An order-independent digest of a snapshot, to tell whether it changed.
fn checksum(snapshot: &solostate::SnapshotOf<KvEvent>) -> (usize, u64) {
    let sum = snapshot.view().iter().fold(0u64, |acc, (k, v)| {
        acc.wrapping_add(k.wrapping_mul(0x9e37_79b9).wrapping_add(v[1]) ^ v[0])
    });
    (snapshot.len(), sum)
}

/// Reader threads that load snapshots in a loop, read a few keys from
/// each, and check that the seqs they see never go backwards.
struct Readers {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Result<(), String>>>,
}

impl Readers {
    fn start(reader: &Reader<KvEvent>, count: usize, keys: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let threads = (0..count)
            .map(|r| {
                let (reader, stop, reads) = (reader.clone(), Arc::clone(&stop), Arc::clone(&reads));
                std::thread::spawn(move || {
                    let mut last = 0;
                    let mut i = r as u64;
                    while !stop.load(Ordering::Relaxed) {
                        let snapshot = reader.snapshot();
                        if snapshot.seq() < last {
                            return Err(format!(
                                "reader {r} loaded seq {} after seq {last}",
                                snapshot.seq()
                            ));
                        }
                        last = snapshot.seq();
                        for _ in 0..64 {
                            i += 1;
                            std::hint::black_box(snapshot.get(&key_of(i, keys)));
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                        // Continuous but not a spin: leave the two cores
                        // mostly to the writers and the owner.
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Ok(())
                })
            })
            .collect();
        Readers {
            stop,
            reads,
            threads,
        }
    }

    fn stop(self) -> Result<u64, String> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread
                .join()
                .map_err(|_| "a reader thread panicked".to_string())??;
        }
        Ok(self.reads.load(Ordering::Relaxed))
    }
}
