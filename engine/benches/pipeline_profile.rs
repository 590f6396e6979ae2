//! A profiling harness for the write pipeline, without criterion: fixed
//! work, so that `perf record` or `valgrind --tool=callgrind` see one
//! steady run rather than criterion's sampling and analysis.
//!
//! Two modes, chosen by the `PROFILE_MODE` environment variable:
//!
//! * `engine` (the default): the `pipeline` bench's headline workload
//!   (2 writer tasks, up to 1024 `Pending` acks each, `max_batch` 1024,
//!   capacity 4096, 100k prefilled keys) for `PROFILE_EVENTS` events
//!   (default 4M; 20k under `cargo test`, which runs it as a smoke test). `PROFILE_WRITERS` (default 2), `PROFILE_WORKERS`
//!   (tokio workers, default 2), `PROFILE_BATCH` (default 1024),
//!   `PROFILE_IN_FLIGHT` (pendings per writer, default 1024) and
//!   `PROFILE_CAPACITY` (queue, default 4096) vary it, and `PROFILE_KEYS` (default: the whole 2^20-long key pattern,
//!   which covers all 100k keys) shrinks the set of keys written, to see
//!   the pipeline with a cache-resident working set. `PROFILE_STORE=versioned`
//!   runs it on the versioned store. Prints events/s and the mean batch
//!   size.
//! * `breakdown`: each stage of the pipeline alone on one thread, in
//!   ns/event, to show where an event's time goes: the map update with and
//!   without a published snapshot sharing the map, the oneshot reply, the
//!   flume queue, the admission gate's atomics, and the arc-swap publish.
//!
//! Run it as a bench target, e.g.
//! `PROFILE_MODE=breakdown cargo bench -p solostate --bench pipeline_profile`,
//! or build it with `cargo bench --no-run` and run the binary under
//! `perf record -g` or `valgrind --tool=callgrind`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use solostate::{Ack, AckError, Engine, Pending, StateEvent, StateRejection};

const PATTERN_LEN: usize = 1 << 20;

mod common;

use common::{Ev, KEYS, Map, Value64, key_pattern, prefilled};

type Reply = Result<Ack, AckError<StateRejection<u64>>>;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    match std::env::var("PROFILE_MODE").as_deref() {
        Ok("breakdown") => breakdown(),
        Ok("engine") | Err(_) => engine(),
        Ok(other) => panic!("unknown PROFILE_MODE {other:?}: use engine or breakdown"),
    }
}

fn engine() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not,
    // and there a short smoke run keeps the test suite fast.
    let benching = std::env::args().any(|arg| arg == "--bench");
    let events = env_or("PROFILE_EVENTS", if benching { 4_000_000 } else { 20_000 });
    let writers = env_or("PROFILE_WRITERS", 2).max(1);
    let workers = env_or("PROFILE_WORKERS", 2).max(1);
    let max_batch = env_or("PROFILE_BATCH", 1024);
    let depth = env_or("PROFILE_IN_FLIGHT", 1024).max(1);
    let capacity = env_or("PROFILE_CAPACITY", 4096).max(1);
    // Keys each writer cycles through: all 100k by default; fewer to see
    // the pipeline with a cache-resident working set.
    let hot = env_or("PROFILE_KEYS", PATTERN_LEN).clamp(1, PATTERN_LEN);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("build the tokio runtime");
    rt.block_on(async {
        let store = match std::env::var("PROFILE_STORE").as_deref() {
            Ok("versioned") => solostate::StoreKind::Versioned,
            _ => solostate::StoreKind::Persistent,
        };
        let engine = Engine::<Ev>::builder()
            .store(store)
            .channel_capacity(capacity)
            .max_batch(max_batch)
            .initial_state(prefilled())
            .open()
            .await
            .expect("open the engine");
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let engine = engine.clone();
                let keys = key_pattern(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1), PATTERN_LEN, KEYS);
                let count = events / writers;
                tokio::spawn(async move {
                    let value = Value64([7; 8]);
                    let mut in_flight: VecDeque<Pending<Ev>> = VecDeque::with_capacity(depth);
                    for i in 0..count {
                        let pending = engine
                            .send(StateEvent::put(keys[i % hot], value))
                            .await
                            .expect("engine is open");
                        if in_flight.len() == depth {
                            let oldest = in_flight.pop_front().expect("queue is full");
                            oldest.await.expect("a put is never rejected");
                        }
                        in_flight.push_back(pending);
                    }
                    for pending in in_flight {
                        pending.await.expect("a put is never rejected");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("writer task");
        }
        let elapsed = start.elapsed();
        let stats = engine.stats();
        println!(
            "engine: {} events, {writers} writers x {depth} in flight, {workers} workers, \
             capacity {capacity}, max_batch {max_batch}: \
             {:.3} s, {:.2} M events/s, mean batch {:.0}, key pattern {hot}, {store:?}",
            stats.applied,
            elapsed.as_secs_f64(),
            stats.applied as f64 / elapsed.as_secs_f64() / 1e6,
            stats.applied as f64 / stats.batches.max(1) as f64,
        );
        engine.shutdown().await.expect("clean shutdown");
    });
}

/// Times `f` over `n` events and prints ns/event. `PROFILE_STAGE=text`
/// runs only the stages whose name contains `text`.
fn stage(name: &str, n: usize, f: impl FnOnce()) {
    if let Ok(only) = std::env::var("PROFILE_STAGE")
        && !name.contains(only.as_str())
    {
        return;
    }
    let start = Instant::now();
    f();
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{name:<58} {ns:>8.1} ns/event");
}

/// A thread that drops old map versions, so the caller does not pay for
/// freeing the nodes that only they held.
struct Dropper {
    tx: std::sync::mpsc::Sender<Arc<Map>>,
    thread: std::thread::JoinHandle<()>,
}

impl Dropper {
    fn spawn() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Map>>();
        let thread = std::thread::spawn(move || rx.into_iter().for_each(drop));
        Dropper { tx, thread }
    }

    fn send(&self, old: Arc<Map>) {
        self.tx.send(old).expect("dropper thread runs");
    }

    fn join(self) {
        drop(self.tx);
        self.thread.join().expect("dropper thread");
    }
}

/// The resident memory one prefilled map adds, from `/proc/self/statm`
/// (Linux; 0 elsewhere).
fn footprint_mib() -> u64 {
    fn resident_pages() -> u64 {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }
    let before = resident_pages();
    let map = prefilled();
    let after = resident_pages();
    black_box(&map);
    after.saturating_sub(before) * 4096 / (1 << 20)
}

fn breakdown() {
    const N: usize = 1 << 21;
    const BATCH: usize = 1024;
    let keys = key_pattern(0x9E37_79B9_7F4A_7C15, PATTERN_LEN, KEYS);
    let value = Value64([7; 8]);
    println!("breakdown over {N} events, batches of {BATCH}, 100k keys, 64-byte values");

    // 1. The map update alone, on a map no one else holds: no path copies.
    let mut map = prefilled();
    stage("imbl insert, map unshared (in-place)", N, || {
        for i in 0..N {
            map.insert(keys[i & (PATTERN_LEN - 1)], value);
        }
    });

    // 2. As the owner does it: a snapshot shares the map at every batch
    //    boundary, so the first write to each node in a batch copies it.
    let mut map = prefilled();
    let mut published = map.clone();
    stage(
        "imbl insert, clone published per batch (path copy)",
        N,
        || {
            for chunk in 0..N / BATCH {
                for i in chunk * BATCH..(chunk + 1) * BATCH {
                    map.insert(keys[i & (PATTERN_LEN - 1)], value);
                }
                published = map.clone();
            }
        },
    );
    black_box(&published);
    drop(published);

    // 2a. What the owner pays per event for the map, by batch size, with
    //     the replaced version dropped inline (as `Publisher::publish`
    //     does today, inside `ArcSwap::store`) or handed to another thread.
    for batch in [64, 256, 1024, 2048, 4096, 16384] {
        for defer in [false, true] {
            let name = format!(
                "map per batch {batch:>5}: insert + publish, drop {}",
                if defer { "on another thread" } else { "inline" }
            );
            let map = prefilled();
            let mut dropper = defer.then(Dropper::spawn);
            stage(&name, N, || {
                let mut map = map;
                let mut published = Arc::new(map.clone());
                for chunk in 0..N / batch {
                    for i in chunk * batch..(chunk + 1) * batch {
                        map.insert(keys[i & (PATTERN_LEN - 1)], value);
                    }
                    let old = std::mem::replace(&mut published, Arc::new(map.clone()));
                    match &dropper {
                        Some(dropper) => dropper.send(old),
                        None => drop(old),
                    }
                }
            });
            if let Some(dropper) = dropper.take() {
                dropper.join();
            }
        }
    }

    // 2b. The same with the touched keys cache-resident (1024 hot keys).
    let mut map = prefilled();
    let mut published = map.clone();
    stage("imbl insert, clone per batch, 1024 hot keys", N, || {
        for chunk in 0..N / BATCH {
            for i in chunk * BATCH..(chunk + 1) * BATCH {
                map.insert(keys[i & (BATCH - 1)], value);
            }
            published = map.clone();
        }
    });
    drop(published);

    // 2c. The same with 8-byte values: smaller nodes to copy.
    let mut small: imbl::HashMap<u64, u64> = (0..KEYS).map(|k| (k, k)).collect();
    let mut published = small.clone();
    stage(
        "imbl<u64,u64> insert, clone per batch (path copy)",
        N,
        || {
            for chunk in 0..N / BATCH {
                for i in chunk * BATCH..(chunk + 1) * BATCH {
                    small.insert(keys[i & (PATTERN_LEN - 1)], 7);
                }
                published = small.clone();
            }
        },
    );
    drop(published);

    // References: a read of the same map, and std's HashMap.
    let map = prefilled();
    stage("reference: imbl get", N, || {
        for i in 0..N {
            black_box(map.get(&keys[i & (PATTERN_LEN - 1)]));
        }
    });
    let mut std_map: std::collections::HashMap<u64, Value64> =
        (0..KEYS).map(|k| (k, Value64([k; 8]))).collect();
    stage("reference: std HashMap insert", N, || {
        for i in 0..N {
            std_map.insert(keys[i & (PATTERN_LEN - 1)], value);
        }
    });
    drop(std_map);

    // 3. Through `Event::apply`, as the owner calls it: a `Txn` over the
    // map with one reused write-set buffer, in catch_unwind, the buffer
    // cleared after each accepted event.
    let mut map = prefilled();
    let mut published = map.clone();
    let mut writes = Vec::new();
    stage(
        "Event::apply Put via Txn in catch_unwind, clone per batch",
        N,
        || {
            use solostate::{Event, Txn};
            for chunk in 0..N / BATCH {
                for i in chunk * BATCH..(chunk + 1) * BATCH {
                    let event: Ev = StateEvent::put(keys[i & (PATTERN_LEN - 1)], value);
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        event.apply(&mut Txn::new(&mut map, &mut writes))
                    }));
                    writes.clear();
                    black_box(result.is_ok());
                    black_box(event);
                }
                published = map.clone();
            }
        },
    );
    drop(published);

    // 4. The reply channel: allocate, send, receive.
    let ack = sample_ack();
    stage("tokio oneshot: channel + send + try_recv", N, || {
        for _ in 0..N {
            let (tx, mut rx) = tokio::sync::oneshot::channel::<Reply>();
            let _ = tx.send(Ok(black_box(ack)));
            black_box(rx.try_recv().is_ok());
        }
    });

    // 5. The command queue, one thread: try_send a batch, drain it.
    let (tx, rx) = flume::bounded::<Ev>(4096);
    stage(
        "flume bounded(4096): try_send x1024, then drain()",
        N,
        || {
            for chunk in 0..N / BATCH {
                for i in chunk * BATCH..(chunk + 1) * BATCH {
                    tx.try_send(StateEvent::put(keys[i & (PATTERN_LEN - 1)], value))
                        .map_err(|_| ())
                        .expect("room in the queue");
                }
                for event in rx.drain() {
                    black_box(event);
                }
            }
        },
    );

    // 6. The admission gate: SeqCst fetch_add, load, fetch_sub per send.
    let in_flight = AtomicUsize::new(0);
    let closed = AtomicBool::new(false);
    stage(
        "gate: fetch_add + load + fetch_sub (SeqCst, uncontended)",
        N,
        || {
            for _ in 0..N {
                in_flight.fetch_add(1, Ordering::SeqCst);
                black_box(closed.load(Ordering::SeqCst));
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        },
    );

    // 7. Publishing: one ArcSwap store of a map clone per batch.
    let map = prefilled();
    let swap = ArcSwap::from_pointee(map.clone());
    stage(
        "arc-swap store(Arc::new(map.clone())) per batch, /event",
        N,
        || {
            for _ in 0..N / BATCH {
                swap.store(Arc::new(map.clone()));
            }
        },
    );

    println!(
        "sizes: event {} B, oneshot reply payload {} B, map footprint ~{} MiB",
        std::mem::size_of::<Ev>(),
        std::mem::size_of::<Reply>(),
        footprint_mib(),
    );
}

/// `Ack` is non-exhaustive, so get a real one from a tiny engine.
fn sample_ack() -> Ack {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("build the tokio runtime");
    rt.block_on(async {
        let engine = Engine::<Ev>::builder().open().await.expect("open");
        let ack = engine
            .submit(StateEvent::put(0, Value64([0; 8])))
            .await
            .expect("put");
        engine.shutdown().await.expect("shutdown");
        ack
    })
}
