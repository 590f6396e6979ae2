//! Runs a workload against a contender: closed-loop throughput, and
//! open-loop latency at a fixed rate, measured from each op's intended
//! start so that a stall counts against every op it delayed (no
//! coordinated omission).

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::adapters::Contender;
use crate::metrics::latency_histogram;
use crate::workload::{Op, Value64, value};

/// Ops between syncs in a throughput run: a pipelining contender
/// completes what it deferred at least this often.
const SYNC_EVERY: usize = 4096;

/// What a throughput run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Reads completed per second.
    pub reads_per_s: f64,
    /// Writes completed (acknowledged) per second.
    pub writes_per_s: f64,
    /// Whether every read found its key (all keys are present throughout:
    /// a miss means the adapter lost or never served something).
    pub all_found: bool,
}

impl Throughput {
    /// Ops of both kinds per second.
    pub fn ops_per_s(&self) -> f64 {
        self.reads_per_s + self.writes_per_s
    }
}

/// The value a thread writes: the same bytes for every contender.
fn thread_value(thread: usize) -> Value64 {
    value(u64::MAX - thread as u64)
}

/// One thread per op sequence, each running its ops in a loop (from the
/// start again when it runs out) until `duration` is up, then completing
/// what it deferred. The time is the slowest thread's, including that last
/// sync. The threads check a stop flag after every op (a load of a line
/// no one writes until the end), so that a contender whose ops take a
/// tenth of a second (a full copy of a million keys) stops on time too.
pub fn throughput(contender: &dyn Contender, ops: &[Vec<Op>], duration: Duration) -> Throughput {
    let barrier = Barrier::new(ops.len() + 1);
    let stop = AtomicBool::new(false);
    let per_thread: Vec<(u64, u64, u64, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ops
            .iter()
            .enumerate()
            .map(|(thread, ops)| {
                let (barrier, stop) = (&barrier, &stop);
                scope.spawn(move || {
                    let value = thread_value(thread);
                    let mut session = contender.session();
                    let (mut reads, mut writes, mut found) = (0u64, 0u64, 0u64);
                    barrier.wait();
                    let start = Instant::now();
                    'run: loop {
                        for chunk in ops.chunks(SYNC_EVERY) {
                            for op in chunk {
                                match *op {
                                    Op::Read(key) => {
                                        session.read(key);
                                        reads += 1;
                                    }
                                    Op::Write(key) => {
                                        session.write(key, &value);
                                        writes += 1;
                                    }
                                }
                                if stop.load(Ordering::Relaxed) {
                                    break 'run;
                                }
                            }
                            found += session.sync();
                        }
                    }
                    found += session.sync();
                    let elapsed = start.elapsed();
                    drop(session);
                    (reads, writes, found, elapsed)
                })
            })
            .collect();
        barrier.wait();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread panicked"))
            .collect()
    });
    let slowest = per_thread
        .iter()
        .map(|t| t.3)
        .max()
        .unwrap_or(duration)
        .as_secs_f64();
    let reads: u64 = per_thread.iter().map(|t| t.0).sum();
    let writes: u64 = per_thread.iter().map(|t| t.1).sum();
    let found: u64 = per_thread.iter().map(|t| t.2).sum();
    Throughput {
        reads_per_s: reads as f64 / slowest,
        writes_per_s: writes as f64 / slowest,
        all_found: found == reads,
    }
}

/// What a fixed-rate run measured.
#[derive(Debug, Clone)]
pub struct Latency {
    /// The rate asked for, ops/s over all threads.
    pub rate: f64,
    /// Read latency from intended start to answer, ns.
    pub read: Histogram<u64>,
    /// Write latency from intended start to ack, ns.
    pub write: Histogram<u64>,
    /// Whether the contender fell behind the schedule (finished late, or
    /// hit the time budget): then its latencies are queueing delay.
    pub saturated: bool,
}

/// Readers and a writer at fixed rates: one writer thread runs every
/// write of `ops` and the other threads (at least one) share the reads,
/// so that a read waits only for what the contender makes it wait for,
/// not for a write its own thread just did. Together they run `rate` ops/s
/// in the mix of `ops`, for `duration`. Each op starts at its scheduled
/// time (or at once, when the previous one ran late), is completed (a
/// write acknowledged), and is timed from its scheduled start. A contender
/// that cannot keep up is stopped after twice `duration` and marked
/// saturated.
pub fn latency(
    contender: &dyn Contender,
    ops: &[Vec<Op>],
    rate: f64,
    duration: Duration,
) -> Latency {
    let all = || ops.iter().flatten().copied();
    let writes: Vec<Op> = all().filter(|op| matches!(op, Op::Write(_))).collect();
    let reads: Vec<Op> = all().filter(|op| matches!(op, Op::Read(_))).collect();
    let write_share = writes.len() as f64 / (writes.len() + reads.len()).max(1) as f64;
    let readers = ops.len().saturating_sub(1).max(1);
    let mut roles: Vec<(Vec<Op>, f64)> = (0..readers)
        .map(|r| {
            let mine = reads.iter().skip(r).step_by(readers).copied().collect();
            (mine, rate * (1.0 - write_share) / readers as f64)
        })
        .collect();
    roles.push((writes, rate * write_share));
    roles.retain(|(ops, rate)| !ops.is_empty() && *rate > 0.0);
    let barrier = Barrier::new(roles.len());
    let results: Vec<(Histogram<u64>, Histogram<u64>, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = roles
            .iter()
            .enumerate()
            .map(|(thread, (ops, rate))| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let session = contender.session();
                    barrier.wait();
                    paced(session, ops, *rate, duration, thread_value(thread))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread panicked"))
            .collect()
    });
    let (mut read, mut write) = (latency_histogram(), latency_histogram());
    let mut saturated = false;
    for (r, w, late) in results {
        read.add(&r).expect("same bounds");
        write.add(&w).expect("same bounds");
        saturated |= late;
    }
    Latency {
        rate,
        read,
        write,
        saturated,
    }
}

/// One thread's open-loop run of `ops` (cycled) at `rate` per second.
/// Returns the read and write histograms and whether it fell behind.
fn paced(
    mut session: Box<dyn crate::adapters::Session + '_>,
    ops: &[Op],
    rate: f64,
    duration: Duration,
    value: Value64,
) -> (Histogram<u64>, Histogram<u64>, bool) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let count = (duration.as_secs_f64() * rate) as usize;
    let (mut read, mut write) = (latency_histogram(), latency_histogram());
    let start = Instant::now();
    for (i, op) in ops.iter().cycle().take(count).enumerate() {
        let intended = start + interval.mul_f64(i as f64);
        wait_until(intended);
        match *op {
            Op::Read(key) => session.read(key),
            Op::Write(key) => session.write(key, &value),
        }
        session.sync();
        let took = intended.elapsed().as_nanos() as u64;
        match op {
            Op::Read(_) => read.saturating_record(took),
            Op::Write(_) => write.saturating_record(took),
        }
        if start.elapsed() > duration * 2 {
            return (read, write, true);
        }
    }
    (read, write, start.elapsed() > duration.mul_f64(1.1))
}

/// Waits for `when`: sleeps while it is far off (sleeping wakes up to
/// ~60 us late), then yields the core until it comes, so that waiting
/// threads leave the cores to the contender's own threads.
fn wait_until(when: Instant) {
    loop {
        let now = Instant::now();
        if now >= when {
            return;
        }
        let left = when - now;
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(100));
        } else {
            std::thread::yield_now();
        }
    }
}
