//! Many readers: tasks and plain threads querying snapshots while one writer
//! pipelines puts.
//!
//! What it shows:
//!
//! * reading never waits for the writer: async tasks take
//!   [`Reader::snapshot`] (an `Arc` they may hold across `.await`), and
//!   std threads answer queries with [`Reader::read`] (a loan, no
//!   reference count), all concurrently with a pipelined writer;
//! * every snapshot is one exact version: event `i` is
//!   `put(i % KEYS, i)` and takes sequence number `i`, so a snapshot at seq
//!   `s` must hold `s` under key `s % KEYS` and exactly `min(s, KEYS)` keys.
//!   Every reader checks that on every read;
//! * an **old snapshot never changes**: one is taken early, held through
//!   the whole run, and is still identical at the end;
//! * [`Reader::wait_for`]: a task that sleeps until half the puts are
//!   visible, and the writer reading its own last write;
//! * the reads per second all readers managed together.
//!
//! Run it from the workspace root:
//!
//! ```text
//! cargo run --release --example many_readers
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::VecDeque;
use std::time::Instant;

use solostate::{Engine, Pending, Reader, SnapshotOf, StateEvent};

/// The built-in key-value vocabulary, with `u64` keys and values.
type Ev = StateEvent<u64, u64>;

/// Errors that cross task and thread boundaries in this example.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Distinct keys the writer cycles through.
const KEYS: u64 = 1_000;
/// Puts in total (the first `KEYS` of them before the readers start).
const PUTS: u64 = 200_000;
/// Acks the writer keeps in flight.
const IN_FLIGHT: usize = 1_024;
/// Async reader tasks.
const TASKS: usize = 6;
/// Reader threads outside the runtime.
const THREADS: usize = 2;
/// Reads a task makes before it yields to the scheduler.
const READS_PER_YIELD: u64 = 64;

/// The put with sequence number `i`.
fn put(i: u64) -> Ev {
    StateEvent::put(i % KEYS, i)
}

/// Checks that `snapshot` is exactly the state after puts `1..=seq`.
/// Cheap enough to run on every read: one lookup and a length.
fn check(snapshot: &SnapshotOf<Ev>) -> Result<(), String> {
    let seq = snapshot.seq();
    if snapshot.len() as u64 != seq.min(KEYS) {
        return Err(format!(
            "snapshot at seq {seq} has {} keys, expected {}",
            snapshot.len(),
            seq.min(KEYS)
        ));
    }
    if seq > 0 && snapshot.get(&(seq % KEYS)).as_deref() != Some(&seq) {
        return Err(format!(
            "snapshot at seq {seq} holds {:?} under key {}, expected {seq}",
            snapshot.get(&(seq % KEYS)),
            seq % KEYS
        ));
    }
    Ok(())
}

/// Pipelines puts `range` and checks that each ack has the expected seq
/// (sequence numbers are dense: one per applied event). Returns the last
/// ack's seq.
async fn write(engine: &Engine<Ev>, range: std::ops::RangeInclusive<u64>) -> Result<u64, BoxError> {
    let mut in_flight: VecDeque<(u64, Pending<Ev>)> = VecDeque::with_capacity(IN_FLIGHT);
    let mut last = 0;
    let mut settle = |i: u64, ack: solostate::Ack| -> Result<(), BoxError> {
        if ack.seq != i {
            return Err(format!("put {i} was acked with seq {}", ack.seq).into());
        }
        last = ack.seq;
        Ok(())
    };
    for i in range {
        if in_flight.len() == IN_FLIGHT
            && let Some((j, pending)) = in_flight.pop_front()
        {
            settle(j, pending.await?)?;
        }
        in_flight.push_back((i, engine.send(put(i)).await?));
    }
    for (j, pending) in in_flight {
        settle(j, pending.await?)?;
    }
    Ok(last)
}

/// An async reader: loads snapshots until the engine stops, checking each.
/// Returns how many it read.
async fn task_reader(reader: Reader<Ev>) -> Result<u64, String> {
    let mut reads = 0;
    let mut last_seq = 0;
    loop {
        let stopped = reader.is_stopped();
        let snapshot = reader.snapshot();
        check(&snapshot)?;
        if snapshot.seq() < last_seq {
            return Err(format!(
                "seq went back from {last_seq} to {}",
                snapshot.seq()
            ));
        }
        last_seq = snapshot.seq();
        reads += 1;
        if stopped {
            return Ok(reads);
        }
        if reads % READS_PER_YIELD == 0 {
            // Holding `snapshot` across an await is fine: it is an Arc.
            tokio::task::yield_now().await;
            check(&snapshot)?;
        }
    }
}

/// A thread reader: answers queries with `read`, which lends the current
/// snapshot without touching its reference count. Returns how many it read.
fn thread_reader(reader: Reader<Ev>) -> Result<u64, String> {
    let mut reads = 0;
    loop {
        let stopped = reader.is_stopped();
        reader.read(check)?;
        reads += 1;
        if stopped {
            return Ok(reads);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let engine = Engine::<Ev>::builder().open().await?;
    let reader = engine.reader();

    // Fill every key once, then take a snapshot and hold on to it.
    write(&engine, 1..=KEYS).await?;
    let old = reader.snapshot();
    check(&old)?;
    let old_seq = old.seq();
    let old_sum: u64 = old.view().iter().map(|(_, value)| *value).sum();

    let tasks: Vec<_> = (0..TASKS)
        .map(|_| tokio::spawn(task_reader(reader.clone())))
        .collect();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let reader = reader.clone();
            std::thread::spawn(move || thread_reader(reader))
        })
        .collect();
    // A follower that sleeps until half the puts are visible.
    let halfway = {
        let reader = reader.clone();
        tokio::spawn(async move { reader.wait_for(PUTS / 2).await })
    };

    let started = Instant::now();
    let last = write(&engine, KEYS + 1..=PUTS).await?;
    // Read-your-writes: the snapshot holds at least the last put.
    let mine = reader.wait_for(last).await?;
    check(&mine)?;
    let halfway = halfway.await??;
    check(&halfway)?;
    engine.shutdown().await?;
    let elapsed = started.elapsed();

    let mut task_reads = 0;
    for handle in tasks {
        task_reads += handle.await??;
    }
    let mut thread_reads = 0;
    for handle in threads {
        // Join off the runtime's workers: `join` blocks.
        thread_reads += tokio::task::spawn_blocking(move || handle.join())
            .await?
            .map_err(|_| "a reader thread panicked")??;
    }

    // The old snapshot is exactly as it was, though every key changed since.
    check(&old)?;
    let old_sum_now: u64 = old.view().iter().map(|(_, value)| *value).sum();
    if old.seq() != old_seq || old_sum_now != old_sum {
        return Err("the old snapshot changed".into());
    }
    let latest = reader.snapshot();

    let seconds = elapsed.as_secs_f64();
    println!(
        "solostate many_readers: {TASKS} tasks + {THREADS} threads reading while 1 writer puts"
    );
    println!(
        "writes:  {} puts in {seconds:.2} s ({:.0} puts/s), {} batches",
        PUTS - KEYS,
        (PUTS - KEYS) as f64 / seconds,
        engine.stats().batches
    );
    println!(
        "reads:   {} ({:.0} reads/s): {task_reads} by tasks, {thread_reads} by threads, all checked",
        task_reads + thread_reads,
        (task_reads + thread_reads) as f64 / seconds
    );
    println!(
        "wait_for: the follower woke at seq {} (asked for {}), the writer read its own seq {}",
        halfway.seq(),
        PUTS / 2,
        mine.seq()
    );
    println!(
        "old snapshot: still seq {old_seq} with value sum {old_sum}; the latest is seq {} with sum {}",
        latest.seq(),
        latest.view().iter().map(|(_, value)| *value).sum::<u64>()
    );
    Ok(())
}
