//! Resident memory, read from `/proc/self/status`, and a sampler that
//! records it over a run.
//!
//! RSS is what the operating system charges the process, so it is the
//! number an operator sees. It is not the heap's live size: glibc's
//! allocator keeps freed memory in its arenas for reuse and returns it to
//! the OS only when a whole region at the top of a heap is free (and
//! `malloc_trim`, which could do more, needs `unsafe` FFI, which this
//! workspace forbids). So a drop in live memory often shows as RSS that
//! stops growing, not as RSS that falls. The harnesses read it that way:
//! they check that RSS is flat while the live size is constant, and that
//! memory freed by dropping something is reused instead of RSS growing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One MiB, for printing sizes.
pub const MIB: f64 = 1024.0 * 1024.0;

/// The process's resident set size in bytes (`VmRSS`), or `None` where
/// `/proc` is missing (not Linux).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// As [`rss_bytes`], or an error naming what is missing, for harnesses
/// that cannot judge memory without it.
pub fn rss() -> Result<u64, String> {
    rss_bytes().ok_or_else(|| "cannot read VmRSS from /proc/self/status (not Linux?)".to_string())
}

/// Bytes as MiB with one decimal, for figures.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

/// A signed difference of two byte counts as MiB, for figures.
pub fn delta_mib(to: u64, from: u64) -> String {
    format!("{:+.1} MiB", (to as f64 - from as f64) / MIB)
}

/// One RSS reading: when, how far the run had got (a caller-defined
/// progress counter, such as events applied), and the RSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Time since the sampler started.
    pub at: Duration,
    /// The progress counter at that moment.
    pub progress: u64,
    /// The resident set size, in bytes.
    pub rss: u64,
}

/// Samples RSS on a background thread every `period` until stopped. A
/// thread rather than a task, so that a busy runtime cannot delay or skip
/// the samples that would show a peak.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling; `progress` is called at each sample to place it
    /// on the run's x axis.
    pub fn start(period: Duration, progress: impl Fn() -> u64 + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            loop {
                if let Some(rss) = rss_bytes() {
                    samples.push(Sample {
                        at: started.elapsed(),
                        progress: progress(),
                        rss,
                    });
                }
                if flag.load(Ordering::Relaxed) {
                    return samples;
                }
                std::thread::sleep(period);
            }
        });
        Sampler { stop, thread }
    }

    /// Stops sampling (after one last sample) and returns the samples.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        // A panic in the sampler can only come from a bug in the closure;
        // losing the samples then is the honest outcome.
        self.thread.join().unwrap_or_default()
    }
}

/// The highest RSS among `samples`, or 0 when there are none.
pub fn peak(samples: &[Sample]) -> u64 {
    samples.iter().map(|s| s.rss).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_grows_when_memory_is_touched() {
        let Some(before) = rss_bytes() else {
            return; // not Linux: nothing to read
        };
        let block = vec![1u8; 64 << 20];
        let after = rss().expect("read once already");
        assert!(
            after >= before + (32 << 20),
            "touching 64 MiB raised RSS from {before} to {after} only"
        );
        std::hint::black_box(&block);
    }

    #[test]
    fn sampler_records_until_finished() {
        let sampler = Sampler::start(Duration::from_millis(1), || 7);
        std::thread::sleep(Duration::from_millis(20));
        let samples = sampler.finish();
        if rss_bytes().is_some() {
            assert!(samples.len() >= 2, "{samples:?}");
            assert!(samples.iter().all(|s| s.progress == 7 && s.rss > 0));
            assert_eq!(peak(&samples), samples.iter().map(|s| s.rss).max().unwrap());
        }
    }
}
