//! Durable engine against the raw journal it writes to, side by side in
//! one process, on both journal backends: what the engine costs on top of
//! its journal, and what the segment log (the default) costs next to sled.
//!
//! Five groups, on the same event type ([`Ev`]: a `u64` key and a
//! [`Value64`] value) and the same machine:
//!
//! * `durable_throughput`: events/s of a journaling engine with
//!   [`WRITERS`] pipelining writers (each keeps up to [`IN_FLIGHT`] acks
//!   outstanding) under `Durability::Always` on the segment log
//!   (`engine/always`) and on sled (`engine/always_sled`), and under
//!   `Every(1s)` and `Never`; beside it, the raw `Journal` on each backend
//!   (`raw_segments/...`, `raw_sled/...`): one packed record per batch of
//!   1024 or 2048 events and one flush per batch (the engine's own group
//!   commit, minus the engine), with a blocking `flush` and with
//!   `flush_async` (what the owner task awaits).
//! * `pipelining`: `Durability::Always` with `Builder::pipelined` on and
//!   off, side by side, on both stores: batches of 1024 against 4096
//!   events in flight (a backlog that pipelining overlaps with the flush),
//!   and the default batch of 4096 (no backlog: the control); with
//!   `--features fault-injection`, also batches of 1024 on a disk whose
//!   every flush takes 2 ms more.
//! * `ack_latency`: one writer, submit then await, one event at a time:
//!   the engine in memory, under `Never` and under `Always` (on both
//!   backends on the 2-worker runtime, where the owner flushes in place,
//!   and on a current-thread runtime, where it awaits `flush_async`);
//!   beside it a raw `append` + `flush` of a one-event record on each
//!   backend, and on sled `append` + `flush_async`, `append` + `flush` on
//!   tokio's `spawn_blocking`, and `flush_async` with nothing to write
//!   (the bare hop to the flushing thread). Each row also prints context
//!   switches per operation: the thread hand-offs it took. Criterion gives
//!   the median; a separate run of up to [`HDR_ITERS`] iterations (or
//!   [`HDR_BUDGET`], whichever ends first) prints p50/p99/p99.9 to stderr.
//! * `replay`: a journal (segment log) of [`REPLAY_EVENTS`] events in
//!   records of 1024: reopening an engine over it (open, read, decode,
//!   apply), and the parts: the journal's open alone, reading and decoding
//!   every record through `Journal::read_from`, and `codec::decode_batch`
//!   alone on records already in memory.
//! * `open`: opening an engine from a checkpoint of [`CHECKPOINT_KEYS`]
//!   distinct keys with nothing after it to replay (the checkpoint load:
//!   read, verify, decode, build the map).
//! * Journal bytes per event, printed once: framed record bytes, bare
//!   per-event payload bytes, and the journal's `size_on_disk`, each per
//!   event.
//!
//! Values are full 64-bit words (not small numbers), so bincode's varint
//! encoding cannot shrink them: each `u64` takes 9 bytes, 72 per value.
//! That is the honest worst case for a 64-byte value of this type.
//!
//! Every durable variant writes to its own temporary directory on the same
//! disk. The runtime has 2 workers, one per core of the reference machine.
//!
//! Run: `cargo bench -p solostate --bench durable` (about 2 minutes). To
//! run some groups only (their setup too), name them:
//! `DURABLE_GROUPS=ack_latency,replay cargo bench ...`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{Ev, KEYS, Value64, key_pattern};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use hdrhistogram::Histogram;
use solostate::{
    Builder, CheckpointPolicy, Durability, Engine, JournalBackend, Pending, StateEvent,
};
use solostate_persistence::journal::Journal;
use tokio::runtime::Runtime;

#[path = "durable/pipelining.rs"]
mod pipelining;
#[path = "durable/replay.rs"]
mod replay;
use pipelining::pipelining;
use replay::replay;

/// Pipelining writers in `durable_throughput`.
const WRITERS: u64 = 4;
/// The most unacknowledged submissions each writer keeps.
const IN_FLIGHT: usize = 1024;
/// Events per measured iteration of an engine variant, over all writers.
const EVENTS_PER_ITER: u64 = 32_768;
/// The command queue's capacity: room for every writer's window.
const CHANNEL_CAPACITY: usize = 8192;
/// The journal's header schema, shared by the engine and the raw journals
/// so that an engine can reopen a journal the bench wrote directly.
const SCHEMA: &str = "solostate-bench/durable/StateEvent<u64,Value64>";
/// sled's page cache, the engine's default, for every journal here.
const CACHE_BYTES: u64 = 64 << 20;
/// Events in the replay journal.
const REPLAY_EVENTS: u64 = 1 << 20;
/// Events per record in the replay journal.
const REPLAY_BATCH: u64 = 1024;
/// Distinct keys in the checkpoint that `open` loads.
const CHECKPOINT_KEYS: u64 = 1 << 20;
/// Most iterations of a latency histogram run.
const HDR_ITERS: u64 = 20_000;
/// Longest a latency histogram run may take: an fsync-bound variant
/// stops early instead of taking a minute, and prints how many it did.
const HDR_BUDGET: Duration = Duration::from_secs(4);

/// Whether to run `group`: all of them, unless `DURABLE_GROUPS` lists some
/// (comma-separated). Criterion's own filter skips only the measurements,
/// not a group's setup and histogram runs; this skips those too, for
/// profiling one group.
fn wanted(group: &str) -> bool {
    std::env::var("DURABLE_GROUPS").map_or(true, |groups| groups.split(',').any(|g| g == group))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}

/// A 64-byte value of full-width words (splitmix64 of `seed`), so that
/// bincode's varints cannot compress it.
fn value(seed: u64) -> Value64 {
    let mut x = seed;
    Value64(std::array::from_fn(|_| {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) | (1 << 63)
    }))
}

/// `len` puts on pseudo-random keys in `0..KEYS`.
fn puts(seed: u64, len: usize) -> Vec<Ev> {
    key_pattern(seed, len, KEYS)
        .into_iter()
        .map(|key| StateEvent::put(key, value(key)))
        .collect()
}

/// An engine in `dir` (in memory when `None`) on the default backend.
async fn open_with(
    dir: Option<&Path>,
    durability: Durability,
    checkpoints: CheckpointPolicy,
) -> Engine<Ev> {
    open_on(
        dir,
        durability,
        checkpoints,
        JournalBackend::default(),
        |b| b,
    )
    .await
}

/// A change to an engine's builder, for one bench row.
type Tune = fn(Builder<Ev>) -> Builder<Ev>;

/// As [`open_with`], on a journal backend, with the builder's other
/// settings changed by `tune`.
async fn open_on(
    dir: Option<&Path>,
    durability: Durability,
    checkpoints: CheckpointPolicy,
    backend: JournalBackend,
    tune: Tune,
) -> Engine<Ev> {
    let builder = tune(Engine::<Ev>::builder())
        .journal_backend(backend)
        .checkpoints(checkpoints)
        .channel_capacity(CHANNEL_CAPACITY)
        .durability(durability)
        .schema(SCHEMA)
        .journal_cache_bytes(CACHE_BYTES);
    let builder = match dir {
        Some(dir) => builder.path(dir),
        None => builder,
    };
    builder.open().await.expect("open the engine")
}

/// One writer's share: `count` puts on `keys` from `offset`, keeping up to
/// [`IN_FLIGHT`] acks outstanding and awaiting the oldest when full.
async fn write(engine: Engine<Ev>, keys: Arc<Vec<u64>>, offset: usize, count: u64) {
    let value = value(offset as u64);
    let mut in_flight: VecDeque<Pending<Ev>> = VecDeque::with_capacity(IN_FLIGHT);
    for i in 0..count as usize {
        let key = keys[(offset + i) % keys.len()];
        let pending = engine
            .send(StateEvent::put(key, value))
            .await
            .expect("engine is open");
        if in_flight.len() == IN_FLIGHT {
            let oldest = in_flight.pop_front().expect("queue is full");
            oldest.await.expect("a put is never rejected");
        }
        in_flight.push_back(pending);
    }
    for pending in in_flight {
        pending.await.expect("a put is never rejected");
    }
}

/// A journaling engine under `durability` (in memory when `None`), with
/// [`WRITERS`] pipelined writers, its builder changed by `tune`.
fn engine_throughput(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    durability: Option<Durability>,
    backend: JournalBackend,
    tune: Tune,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (dir_used, durability) = match durability {
        Some(durability) => (Some(dir.path()), durability),
        None => (None, Durability::Never),
    };
    let checkpoints = CheckpointPolicy::default();
    let engine = rt.block_on(open_on(dir_used, durability, checkpoints, backend, tune));
    // Fill every key first (as events: a journaled engine takes no initial
    // state), so the map is at its steady size when measuring starts.
    let all: Arc<Vec<u64>> = Arc::new((0..KEYS).collect());
    rt.block_on(write(engine.clone(), all, 0, KEYS));
    let patterns: Vec<Arc<Vec<u64>>> = (0..WRITERS)
        .map(|w| Arc::new(key_pattern(0x5EED ^ (w + 1), 1 << 20, KEYS)))
        .collect();
    let mut cursor = 0usize;
    group.throughput(Throughput::Elements(EVENTS_PER_ITER));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let per_writer = iters * EVENTS_PER_ITER / WRITERS;
            let offset = cursor;
            cursor = cursor.wrapping_add(per_writer as usize);
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = patterns
                    .iter()
                    .map(|keys| {
                        let keys = Arc::clone(keys);
                        tokio::spawn(write(engine.clone(), keys, offset, per_writer))
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("writer task");
                }
                start.elapsed()
            })
        });
    });
    let stats = engine.stats();
    eprintln!(
        "{name}: applied {} in {} batches (mean {:.0}, largest {}, pipelined {}), sled blob files {}",
        stats.applied,
        stats.batches,
        stats.applied as f64 / stats.batches.max(1) as f64,
        stats.largest_batch,
        stats.pipelined,
        blob_files(&dir.path().join("journal")),
    );
    rt.block_on(engine.shutdown()).expect("clean shutdown");
}

/// The rows' prefix for raw journal writes on `backend`.
fn raw(backend: JournalBackend) -> &'static str {
    match backend {
        JournalBackend::Sled => "raw_sled",
        _ => "raw_segments",
    }
}

/// A raw journal on `backend`: one packed record of `batch` events and
/// one flush per batch.
fn raw_throughput(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    batch: usize,
    async_flush: bool,
    backend: JournalBackend,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal =
        Journal::open_with(dir.path(), SCHEMA, CACHE_BYTES, backend).expect("open the journal");
    let events = puts(0xBA7C4, batch);
    let flush = if async_flush { "flush_async" } else { "flush" };
    let mut seq = 1;
    let raw = raw(backend);
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(format!("{raw}/packed{batch}+{flush}"), |b| {
        b.iter(|| {
            journal.append(seq, &events).expect("append");
            if async_flush {
                rt.block_on(journal.flush_async()).expect("flush");
            } else {
                journal.flush().expect("flush");
            }
            seq += batch as u64;
        })
    });
    eprintln!(
        "{raw}/packed{batch}+{flush}: {} records, sled blob files {}",
        (seq - 1) / batch as u64,
        blob_files(dir.path()),
    );
}

/// sled writes any log item over about 128 KiB (a quarter of its 512 KiB
/// segment) to a file of its own under `blobs/` instead of its log, and
/// never syncs it: before the journal chunked its records (issue 11), a
/// record of more than ~1,700 of these events, and also a consolidated leaf
/// node (up to 17 records) once it outgrew that. The count (files present
/// at the end) says how often the journal took that path; it should be 0.
fn blob_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs")).map_or(0, |entries| entries.count())
}

fn durable_throughput(c: &mut Criterion) {
    if !wanted("durable_throughput") {
        return;
    }
    let rt = runtime();
    let mut group = c.benchmark_group("durable_throughput");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3));
    let every = Durability::Every(Duration::from_secs(1));
    let (segments, sled) = (JournalBackend::Segments, JournalBackend::Sled);
    let always = Some(Durability::Always);
    let same = |builder| builder;
    engine_throughput(&mut group, &rt, "engine/always", always, segments, same);
    engine_throughput(&mut group, &rt, "engine/always_sled", always, sled, same);
    engine_throughput(
        &mut group,
        &rt,
        "engine/every_1s",
        Some(every),
        segments,
        same,
    );
    engine_throughput(
        &mut group,
        &rt,
        "engine/never",
        Some(Durability::Never),
        segments,
        same,
    );
    // The control: the same writers and map with no journal at all.
    engine_throughput(&mut group, &rt, "engine/in_memory", None, segments, same);
    for backend in [segments, sled] {
        raw_throughput(&mut group, &rt, 1024, false, backend);
        raw_throughput(&mut group, &rt, 2048, false, backend);
        raw_throughput(&mut group, &rt, 1024, true, backend);
    }
    group.finish();
}

/// Benches `op` (one submit-and-wait or one write-and-flush) for a
/// criterion median, then runs it again alone into a histogram and prints
/// its percentiles.
fn latency(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    mut op: impl AsyncFnMut(),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    op().await;
                }
                start.elapsed()
            })
        })
    });
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let switches_before = context_switches();
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..HDR_ITERS {
            let t = Instant::now();
            op().await;
            hist.saturating_record(t.elapsed().as_nanos() as u64);
            if start.elapsed() > HDR_BUDGET {
                break;
            }
        }
    });
    let switches = context_switches().saturating_sub(switches_before);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
    eprintln!(
        "ack_latency/{name}: n={} p50={:.1}us p99={:.1}us p99.9={:.1}us max={:.1}us mean={:.1}us \
         context switches/op={:.2}",
        hist.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1e3,
        hist.mean() / 1e3,
        switches as f64 / hist.len().max(1) as f64,
    );
}

/// Context switches so far, voluntary and not, summed over this process's
/// live threads (Linux `/proc`; 0 elsewhere). Per operation, they count
/// the thread hops a submit or a flush takes: each hand-off parks one
/// thread and wakes another. Threads that exited meanwhile (sled retires
/// idle pool threads) are missing, so this is a lower bound.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|line| line.contains("ctxt_switches:"))
                .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// One writer awaiting each ack in turn, on an engine under `durability`
/// (in memory when `dir` is `None`).
fn engine_latency(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    dir: Option<&Path>,
    durability: Durability,
    backend: JournalBackend,
) {
    let checkpoints = CheckpointPolicy::default();
    let engine = rt.block_on(open_on(dir, durability, checkpoints, backend, |b| b));
    let mut key = 0u64;
    let value = value(1);
    latency(group, rt, name, async || {
        key = (key + 1) % KEYS;
        let ack = engine.submit(StateEvent::put(key, value)).await;
        black_box(ack.expect("a put is never rejected"));
    });
    rt.block_on(engine.shutdown()).expect("clean shutdown");
}

fn ack_latency(c: &mut Criterion) {
    if !wanted("ack_latency") {
        return;
    }
    let rt = runtime();
    let mut group = c.benchmark_group("ack_latency");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().expect("dir")).collect();
    let (segments, sled) = (JournalBackend::Segments, JournalBackend::Sled);
    let (never, always) = (Durability::Never, Durability::Always);
    engine_latency(&mut group, &rt, "engine/in_memory", None, never, segments);
    let at = |i: usize| Some(dirs[i].path());
    engine_latency(&mut group, &rt, "engine/never", at(0), never, segments);
    engine_latency(&mut group, &rt, "engine/always", at(1), always, segments);
    engine_latency(&mut group, &rt, "engine/always_sled", at(3), always, sled);
    // The owner on a current-thread runtime cannot block its thread on
    // the disk, so it awaits `Journal::flush_async` instead of flushing in
    // place: the hop to the flushing thread and back is in this row.
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the current-thread runtime");
    let always_current = tempfile::tempdir().expect("dir");
    engine_latency(
        &mut group,
        &current,
        "engine/always_current_thread",
        Some(always_current.path()),
        Durability::Always,
        segments,
    );

    let event = puts(0x1A7, 1);
    let on_segments = Journal::open_with(dirs[4].path(), SCHEMA, CACHE_BYTES, segments)
        .expect("open the journal");
    let mut seq = 1u64;
    latency(&mut group, &rt, "raw_segments/insert+flush", async || {
        on_segments.append(seq, &event).expect("append");
        on_segments.flush().expect("flush");
        seq += 1;
    });
    let journal =
        Journal::open_with(dirs[2].path(), SCHEMA, CACHE_BYTES, sled).expect("open the journal");
    let journal = Arc::new(journal);
    let mut seq = 1u64;
    latency(&mut group, &rt, "raw_sled/insert+flush", async || {
        journal.append(seq, &event).expect("append");
        journal.flush().expect("flush");
        seq += 1;
    });
    latency(&mut group, &rt, "raw_sled/insert+flush_async", async || {
        journal.append(seq, &event).expect("append");
        journal.flush_async().await.expect("flush");
        seq += 1;
    });
    // The blocking flush on tokio's blocking pool: one hop out and back,
    // instead of `flush_async`'s hop through the journal's flush thread
    // (sled's own threadpool before issue 11).
    latency(
        &mut group,
        &rt,
        "raw_sled/insert+spawn_blocking_flush",
        async || {
            journal.append(seq, &event).expect("append");
            let flusher = Arc::clone(&journal);
            tokio::task::spawn_blocking(move || flusher.flush())
                .await
                .expect("flush task")
                .expect("flush");
            seq += 1;
        },
    );
    // Nothing is dirty: sled returns at once (and the `fdatasync` of an
    // unchanged log is cheap), so what is left is the round trip through
    // the flushing thread and back to the tokio task.
    latency(&mut group, &rt, "raw_sled/flush_async_clean", async || {
        journal.flush_async().await.expect("flush");
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Fewer bootstrap resamples and no plots: analysis stays small next to
    // the measurement, and the whole run near two minutes.
    config = Criterion::default().nresamples(10_000).without_plots();
    targets = durable_throughput, pipelining, ack_latency, replay, replay::open
}
criterion_main!(benches);
