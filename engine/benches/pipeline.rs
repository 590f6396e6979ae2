//! Pipeline throughput: how many events per second one in-memory engine
//! applies, publishes and acknowledges when writers keep many submissions
//! in flight.
//!
//! What is measured: the wall time for writer tasks on a multi-thread tokio
//! runtime (2 workers, one per core of the reference machine) to submit
//! [`EVENTS_PER_ITER`] `StateEvent::Put`s in total and receive every ack.
//! Criterion reports it as events/s (`Throughput::Elements`). Each writer
//! calls `engine.send(event).await` and keeps up to [`IN_FLIGHT`]
//! [`Pending`] acks in a `VecDeque`; with that many in flight it awaits the
//! oldest before sending again. The target is >= 2M events/s with 2
//! writers.
//!
//! The variants, side by side in one group on the same data:
//!
//! * `pipelined/w2/batch1024`: the headline: 2 writers, `max_batch` 1024.
//! * `pipelined/w2/batch256`: the same with smaller batches (4x more
//!   snapshots published and ack bursts per event).
//! * `pipelined/w1/batch1024`: one writer, for context.
//! * `fire_and_forget/w2/batch1024` and `fire_and_forget/w1/batch1024`:
//!   each `Pending` is dropped at once; at the end every writer submits one
//!   more event and awaits it. A batch is acked only after it is
//!   published, and each writer's sends are queued in order, so that one
//!   ack covers all of the writer's earlier events. This is the ceiling without ack waits.
//! * `pipelined/w2/batch1024/one_key`: context only: every put writes the
//!   same key, so the map update is nearly free (the batch owns the path
//!   after its first write) and what remains is the pipeline's own cost:
//!   queue, gate, oneshot acks, publish and tokio scheduling.
//!
//! The state is prefilled with [`KEYS`] u64 keys (through
//! `Builder::initial_state`), and the writers update those keys in a
//! precomputed pseudo-random order, so the map stays at 100k entries and
//! every put copies the path to a leaf that the last published snapshot
//! still shares: the realistic steady state. The channel capacity is 4096.
//!
//! The value type is [`Value64`], a 64-byte `Copy` newtype over
//! `[u64; 8]`. It is not `[u8; 64]` because serde (which `Event` requires)
//! implements its traits only for arrays of up to 32 elements; `[u64; 8]`
//! has the same size, is as cheap to clone (a 64-byte memcpy), and derives
//! serde.
//!
//! After each variant the bench prints the engine's average batch size from
//! `Engine::stats`, since it explains most of the differences.
//!
//! Run: `cargo bench -p solostate --bench pipeline`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{Ev, KEYS, Value64, key_pattern, prefilled};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use solostate::{Engine, Pending, StateEvent};
use tokio::runtime::Runtime;

/// Events submitted per measured iteration, split evenly among writers.
const EVENTS_PER_ITER: u64 = 65_536;
/// The most unacknowledged submissions each pipelined writer keeps.
const IN_FLIGHT: usize = 1024;
/// The command queue's capacity.
const CHANNEL_CAPACITY: usize = 4096;
/// Length of the precomputed key pattern (a power of two).
const PATTERN_LEN: usize = 1 << 20;

/// How a writer treats its acks.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Keep up to `IN_FLIGHT` pendings; await the oldest when full.
    Pipelined,
    /// Drop every pending; await one final event at the end.
    FireAndForget,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}

/// One writer's share of an iteration: `count` events starting at
/// `offset` in its key pattern.
async fn write(engine: Engine<Ev>, keys: Arc<Vec<u64>>, offset: usize, count: u64, mode: Mode) {
    let value = Value64([7; 8]);
    let mut in_flight: VecDeque<Pending<Ev>> = VecDeque::with_capacity(IN_FLIGHT);
    for i in 0..count as usize {
        let key = keys[(offset + i) & (PATTERN_LEN - 1)];
        let pending = engine
            .send(StateEvent::put(key, value))
            .await
            .expect("engine is open");
        match mode {
            Mode::Pipelined => {
                if in_flight.len() == IN_FLIGHT {
                    let oldest = in_flight.pop_front().expect("queue is full");
                    oldest.await.expect("a put is never rejected");
                }
                in_flight.push_back(pending);
            }
            Mode::FireAndForget => drop(pending),
        }
    }
    match mode {
        Mode::Pipelined => {
            for pending in in_flight {
                pending.await.expect("a put is never rejected");
            }
        }
        Mode::FireAndForget => {
            // Seqs follow queue order and an ack follows the publish of
            // its batch, so this one covers the rest.
            let last = engine
                .send(StateEvent::put(keys[offset & (PATTERN_LEN - 1)], value))
                .await
                .expect("engine is open");
            black_box(last.await.expect("a put is never rejected"));
        }
    }
}

fn bench_variant(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    name: &str,
    writers: u64,
    max_batch: usize,
    mode: Mode,
    keys_written: u64,
) {
    let engine = rt.block_on(async {
        Engine::<Ev>::builder()
            .channel_capacity(CHANNEL_CAPACITY)
            .max_batch(max_batch)
            .initial_state(prefilled())
            .open()
            .await
            .expect("open the engine")
    });
    let patterns: Vec<Arc<Vec<u64>>> = (0..writers)
        .map(|w| {
            Arc::new(key_pattern(
                0x9E37_79B9_7F4A_7C15 ^ (w + 1),
                PATTERN_LEN,
                keys_written,
            ))
        })
        .collect();
    let mut cursor = 0usize;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let per_writer = iters * EVENTS_PER_ITER / writers;
            let offset = cursor;
            cursor = cursor.wrapping_add(per_writer as usize);
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = patterns
                    .iter()
                    .map(|keys| {
                        tokio::spawn(write(
                            engine.clone(),
                            Arc::clone(keys),
                            offset,
                            per_writer,
                            mode,
                        ))
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
        "{name}: applied {} in {} batches (mean {:.0}, largest {})",
        stats.applied,
        stats.batches,
        stats.applied as f64 / stats.batches.max(1) as f64,
        stats.largest_batch
    );
    rt.block_on(engine.shutdown()).expect("clean shutdown");
}

fn pipeline(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("pipeline");
    group
        .throughput(Throughput::Elements(EVENTS_PER_ITER))
        // One iteration is tens to hundreds of milliseconds: flat sampling
        // keeps the run short and every sample the same size.
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    use Mode::{FireAndForget, Pipelined};
    bench_variant(
        &mut group,
        &rt,
        "pipelined/w2/batch1024",
        2,
        1024,
        Pipelined,
        KEYS,
    );
    bench_variant(
        &mut group,
        &rt,
        "pipelined/w2/batch256",
        2,
        256,
        Pipelined,
        KEYS,
    );
    bench_variant(
        &mut group,
        &rt,
        "pipelined/w1/batch1024",
        1,
        1024,
        Pipelined,
        KEYS,
    );
    let name = "fire_and_forget/w2/batch1024";
    bench_variant(&mut group, &rt, name, 2, 1024, FireAndForget, KEYS);
    let name = "fire_and_forget/w1/batch1024";
    bench_variant(&mut group, &rt, name, 1, 1024, FireAndForget, KEYS);
    // Context: one key, so after its first write in a batch every put
    // updates nodes the batch already owns. What is left is the pipeline
    // itself: queue, oneshot acks, publish, tokio.
    let name = "pipelined/w2/batch1024/one_key";
    bench_variant(&mut group, &rt, name, 2, 1024, Pipelined, 1);
    group.finish();
}

criterion_group! {
    name = benches;
    // Fewer bootstrap resamples and no plots: analysis time stays small
    // next to the measurement.
    config = Criterion::default().nresamples(20_000).without_plots();
    targets = pipeline
}
criterion_main!(benches);
