//! Runs a workload against a contender: closed-loop throughput, and
//! open-loop latency at a fixed rate, measured from each op's intended
//! start so that a stall counts against every op it delayed (no
//! coordinated omission).

use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::adapters::Contender;
use crate::metrics::latency_histogram;
use crate::workload::{Op, Value64, value};

/// Ops between clock checks in a throughput run.
const CHECK_EVERY: usize = 256;

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
/// start again when it runs out) for `duration`, then completing what it
/// deferred. The time is the slowest thread's, including that last sync.
pub fn throughput(contender: &dyn Contender, ops: &[Vec<Op>], duration: Duration) -> Throughput {
    let barrier = Barrier::new(ops.len());
    let per_thread: Vec<(u64, u64, u64, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ops
            .iter()
            .enumerate()
            .map(|(thread, ops)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let value = thread_value(thread);
                    let mut session = contender.session();
                    let (mut reads, mut writes, mut found) = (0u64, 0u64, 0u64);
                    barrier.wait();
                    let start = Instant::now();
                    'run: loop {
                        for chunk in ops.chunks(CHECK_EVERY) {
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
                            }
                            if start.elapsed() >= duration {
                                break 'run;
                            }
                        }
                        found += session.sync();
                    }
                    found += session.sync();
                    let elapsed = start.elapsed();
                    drop(session);
                    (reads, writes, found, elapsed)
                })
            })
            .collect();
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

/// Each thread runs its ops at `rate / threads` per second for `duration`,
/// one at a time: an op starts at its scheduled time (or at once, when the
/// previous one ran late), is completed (a write acknowledged), and is
/// timed from its scheduled start. A contender that cannot keep up is
/// stopped after twice `duration` and marked saturated.
pub fn latency(
    contender: &dyn Contender,
    ops: &[Vec<Op>],
    rate: f64,
    duration: Duration,
) -> Latency {
    let interval = Duration::from_secs_f64(ops.len() as f64 / rate);
    let per_thread_ops = (duration.as_secs_f64() * rate / ops.len() as f64) as usize;
    let budget = duration * 2;
    let barrier = Barrier::new(ops.len());
    let results: Vec<(Histogram<u64>, Histogram<u64>, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ops
            .iter()
            .enumerate()
            .map(|(thread, ops)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let value = thread_value(thread);
                    let mut session = contender.session();
                    let (mut read, mut write) = (latency_histogram(), latency_histogram());
                    barrier.wait();
                    let start = Instant::now();
                    let mut late = false;
                    for (i, op) in ops.iter().cycle().take(per_thread_ops).enumerate() {
                        let intended = start + interval * i as u32;
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
                        if start.elapsed() > budget {
                            late = true;
                            break;
                        }
                    }
                    late |= start.elapsed() > duration.mul_f64(1.1);
                    (read, write, late)
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
