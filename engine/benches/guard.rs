//! What the determinism guard (`Builder::state_hash_every`) costs, side by
//! side in one process on the same data ([`KEYS`] keys of 72-byte values,
//! the `durable` bench's event type):
//!
//! * `guard_write`: events/s of a journaling engine under
//!   `Durability::Never` (where the journal costs least, so the guard's
//!   share shows most) with [`WRITERS`] pipelined writers on random keys,
//!   with the guard off, at its default interval (every batch), and every
//!   2^14 events. With the guard on, the owner folds each write into the
//!   state hash (two entry encodings per write) whatever the interval;
//!   the interval only sets how often a hash record is written.
//! * `guard_hash`: `state_hash` of the [`KEYS`]-entry map: what an open
//!   pays once for the starting hash, and what each check cost before the
//!   hash became incremental.
//! * `guard_replay`: reopening an engine over a journal of
//!   [`REPLAY_EVENTS`] events and no checkpoint (the whole journal is
//!   replayed), written with the guard off, at the default interval, and
//!   every 2^16 events: with any hash to check, replay folds every event's
//!   writes into the hash (after one full hash of the starting state).
//!
//! Run: `cargo bench -p solostate --bench guard` (about 2 minutes).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

mod common;

use common::{Ev, KEYS, Map, Value64, key_pattern, prefilled};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use solostate::persistence::hash::state_hash;
use solostate::persistence::journal::Journal;
use solostate::{Builder, CheckpointPolicy, Durability, Engine, Pending, StateEvent};
use tokio::runtime::Runtime;

const WRITERS: u64 = 4;
const IN_FLIGHT: usize = 1024;
const EVENTS_PER_ITER: u64 = 32_768;
const REPLAY_EVENTS: u64 = 1 << 20;

/// The keys and replayed events of this run: the full sizes under `cargo
/// bench` (which passes `--bench`), and small ones when `cargo test
/// --all-targets` runs each benchmark once as a smoke test, so that CI
/// does not spend minutes writing journals in a debug build.
fn sizes() -> (u64, u64) {
    if std::env::args().any(|arg| arg == "--bench") {
        (KEYS, REPLAY_EVENTS)
    } else {
        (1_000, 1 << 13)
    }
}
const SCHEMA: &str = "solostate-bench/guard";
const DEFAULT: u64 = Builder::<Ev>::DEFAULT_STATE_HASH_EVERY;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open(dir: &Path, every: u64) -> Engine<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema(SCHEMA)
        .durability(Durability::Never)
        .checkpoints(CheckpointPolicy::never())
        .state_hash_every(every)
        .open()
        .await
        .expect("open")
}

/// `count` puts on `keys` from `offset`, up to [`IN_FLIGHT`] outstanding.
async fn write(engine: Engine<Ev>, keys: Arc<Vec<u64>>, offset: usize, count: u64) {
    let value = Value64([offset as u64; 8].map(|w| w.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut in_flight: VecDeque<Pending<Ev>> = VecDeque::with_capacity(IN_FLIGHT);
    for i in 0..count as usize {
        let key = keys[(offset + i) % keys.len()];
        let pending = engine
            .send(StateEvent::put(key, value))
            .await
            .expect("open");
        if in_flight.len() == IN_FLIGHT {
            in_flight.pop_front().expect("full").await.expect("put");
        }
        in_flight.push_back(pending);
    }
    for pending in in_flight {
        pending.await.expect("put");
    }
}

/// `count` events from the writers' patterns, split among them.
async fn fill(engine: &Engine<Ev>, patterns: &[Arc<Vec<u64>>], offset: usize, count: u64) {
    let tasks: Vec<_> = patterns
        .iter()
        .map(|keys| {
            let keys = Arc::clone(keys);
            tokio::spawn(write(engine.clone(), keys, offset, count / WRITERS))
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
}

fn patterns(keys: u64) -> Vec<Arc<Vec<u64>>> {
    (0..WRITERS)
        .map(|w| Arc::new(key_pattern(0x5EED ^ (w + 1), 1 << 20, keys)))
        .collect()
}

fn recorded_hashes(dir: &Path) -> usize {
    let journal = Journal::open(&dir.join("journal"), SCHEMA, 8 << 20).expect("journal");
    journal.state_hashes(0..=u64::MAX).expect("hashes").len()
}

fn guard_write(c: &mut Criterion) {
    let rt = runtime();
    let (keys, _) = sizes();
    let patterns = patterns(keys);
    let mut group = c.benchmark_group("guard_write");
    group.sample_size(20);
    group.throughput(Throughput::Elements(EVENTS_PER_ITER));
    for (name, every) in [("off", 0), ("default", DEFAULT), ("every_16384", 1 << 14)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = rt.block_on(open(dir.path(), every));
        let all = Arc::new((0..keys).collect::<Vec<_>>());
        rt.block_on(write(engine.clone(), all, 0, keys));
        let mut cursor = 0usize;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let offset = cursor;
                cursor = cursor.wrapping_add((iters * EVENTS_PER_ITER / WRITERS) as usize);
                rt.block_on(async {
                    let start = Instant::now();
                    fill(&engine, &patterns, offset, iters * EVENTS_PER_ITER).await;
                    start.elapsed()
                })
            });
        });
        let applied = engine.stats().applied;
        rt.block_on(engine.shutdown()).expect("shutdown");
        eprintln!(
            "guard_write/{name}: {applied} events, {} state hashes recorded",
            recorded_hashes(dir.path())
        );
    }
    group.finish();
}

fn guard_hash(c: &mut Criterion) {
    let map: Map = prefilled().into_iter().take(sizes().0 as usize).collect();
    let mut group = c.benchmark_group("guard_hash");
    group.throughput(Throughput::Elements(map.len() as u64));
    group.bench_function("state_hash_100k", |b| {
        b.iter(|| state_hash::<Ev>(&map).expect("hash"))
    });
    group.finish();
}

fn guard_replay(c: &mut Criterion) {
    let rt = runtime();
    let (keys, events) = sizes();
    let patterns = patterns(keys);
    let mut group = c.benchmark_group("guard_replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    for (name, every) in [("off", 0), ("default", DEFAULT), ("every_65536", 1 << 16)] {
        let dir = tempfile::tempdir().expect("tempdir");
        rt.block_on(async {
            let engine = open(dir.path(), every).await;
            let all = Arc::new((0..keys).collect::<Vec<_>>());
            write(engine.clone(), all, 0, keys).await;
            fill(&engine, &patterns, 0, events - keys).await;
            engine.shutdown().await.expect("shutdown");
        });
        eprintln!(
            "guard_replay/{name}: {} state hashes recorded",
            recorded_hashes(dir.path())
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let engine = open(dir.path(), every).await;
                    assert_eq!(engine.reader().seq(), events);
                    engine.shutdown().await.expect("shutdown");
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, guard_hash, guard_write, guard_replay);
criterion_main!(benches);
