//! A profiling harness shaped like the solostate-bench adapter: plain OS
//! threads, `send_blocking`, a window of acks in flight per thread and
//! `wait_blocking` on the oldest. Fixed work, no criterion, so that `perf
//! record -g` or callgrind see one steady run, and two builds of the engine
//! can be run side by side (A/B) on the same machine.
//!
//! Environment: `THREADS_EVENTS` (total, default 2M; 20k under `cargo
//! test`, which runs it as a smoke test), `THREADS_WRITERS` (default 2),
//! `THREADS_IN_FLIGHT` (per writer, default 256), `THREADS_KEYS` (written keys,
//! prefilled in memory, default 1M; 10k under `cargo test`),
//! `THREADS_DURABILITY` (`memory`, the default, `always` or `every`, which
//! flushes every second; the journal goes to a temporary directory), and
//! `THREADS_WINDOW` (the as-of window in seqs, default the builder's).
//!
//! `cargo bench -p solostate --bench threads_profile` runs it; it prints
//! events/s and the batch sizes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use solostate::{Durability, Engine, Pending, StateEvent};

mod common;

use common::{Ev, Map, Value64, key_pattern};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not.
    let benching = std::env::args().any(|arg| arg == "--bench");
    let events = env_or("THREADS_EVENTS", if benching { 2_000_000 } else { 20_000 });
    let writers = env_or("THREADS_WRITERS", 2).max(1);
    let depth = env_or("THREADS_IN_FLIGHT", 256).max(1);
    let keys = env_or("THREADS_KEYS", if benching { 1_000_000 } else { 10_000 }).max(1) as u64;
    let durability = std::env::var("THREADS_DURABILITY").unwrap_or_else(|_| "memory".into());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let dir = tempfile::tempdir().expect("make a temporary directory");
    // A journaled engine takes no initial state: its map starts empty.
    let builder = Engine::<Ev>::builder().as_of_window(env_or(
        "THREADS_WINDOW",
        solostate::Builder::<Ev>::DEFAULT_AS_OF_WINDOW as usize,
    ) as u64);
    let builder = match durability.as_str() {
        "memory" => builder.initial_state((0..keys).map(|k| (k, Value64([k; 8]))).collect::<Map>()),
        "always" => builder
            .path(dir.path())
            .schema("threads-profile-v1")
            .durability(Durability::Always),
        "every" => builder
            .path(dir.path())
            .schema("threads-profile-v1")
            .durability(Durability::Every(Duration::from_secs(1))),
        other => panic!("unknown THREADS_DURABILITY {other:?}: use memory, always or every"),
    };
    let engine = rt.block_on(builder.open()).expect("open the engine");

    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let engine = engine.clone();
            let pattern = key_pattern(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1), 1 << 20, keys);
            let count = events / writers;
            std::thread::spawn(move || {
                let value = Value64([7; 8]);
                let mut in_flight: VecDeque<Pending<Ev>> = VecDeque::with_capacity(depth);
                for i in 0..count {
                    if in_flight.len() == depth {
                        let oldest = in_flight.pop_front().expect("the window is full");
                        oldest.wait_blocking().expect("a put is never rejected");
                    }
                    let event = StateEvent::put(pattern[i % pattern.len()], value);
                    in_flight.push_back(engine.send_blocking(event).expect("engine is open"));
                }
                for pending in in_flight {
                    pending.wait_blocking().expect("a put is never rejected");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer thread");
    }
    let elapsed = start.elapsed();
    let stats = engine.stats();
    println!(
        "threads {durability}: {} events, {writers} writers x {depth} in flight, {keys} keys: \
         {:.3} s, {:.0} events/s, {} batches, mean batch {:.1}, largest {}",
        stats.applied,
        elapsed.as_secs_f64(),
        stats.applied as f64 / elapsed.as_secs_f64(),
        stats.batches,
        stats.applied as f64 / stats.batches.max(1) as f64,
        stats.largest_batch,
    );
    rt.block_on(engine.shutdown()).expect("clean shutdown");
}
