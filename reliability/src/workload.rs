//! What the harnesses share: the seedable generator, the runtime they
//! drive the engine on, and latency summaries; and for the soak and
//! overload harnesses, their event type and how an event index becomes a
//! key. (The fault harnesses' events and model are in
//! [`fault_workload`](crate::fault_workload).)

use std::time::Duration;

use hdrhistogram::Histogram;
use solostate::StateEvent;

/// The harnesses' event: `u64` keys and 32-byte values, so that the map
/// is big enough for its memory to show in RSS but cheap to copy.
pub type KvEvent = StateEvent<u64, [u64; 4]>;

/// A small deterministic generator (SplitMix64), so that a failing run
/// can be rerun from its seed. No dependency for a few random numbers.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.bits() % (high - low + 1)
    }

    /// An index below `n` (0 when `n` is 0), for picking from a slice.
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.bits() % 100 < percent
    }
}

/// Spreads event indices over `keys` keys in a scrambled order (the
/// first draw of an [`Rng`] seeded with the index), so that consecutive
/// events touch unrelated map nodes as real traffic does, and the same
/// index always hits the same key.
pub fn key_of(index: u64, keys: u64) -> u64 {
    Rng::new(index).bits() % keys
}

/// A two-worker multi-thread runtime with timers, the shape an engine
/// runs on in a service (and the shape of the reference machine's cores).
///
/// # Errors
///
/// If the runtime cannot start (out of threads or memory).
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// A histogram of latencies in microseconds, from 1 µs to 10 minutes.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds are valid")
}

/// Percentiles of a latency histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// How many latencies were recorded.
    pub count: u64,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The 99.9th percentile.
    pub p999: Duration,
    /// The largest.
    pub max: Duration,
}

impl Latency {
    /// Summarises a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let at = |q: f64| Duration::from_micros(histogram.value_at_quantile(q));
        Latency {
            count: histogram.len(),
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(histogram.max()),
        }
    }

    /// `p50 / p99 / p99.9 / max` in milliseconds, for a figure.
    pub fn display(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "{:.2} / {:.2} / {:.2} / {:.1} ms",
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// Events per second, with a k or M suffix, for a figure.
pub fn rate(events: u64, elapsed: Duration) -> String {
    let per_sec = events as f64 / elapsed.as_secs_f64().max(1e-9);
    if per_sec >= 1e6 {
        format!("{:.2}M events/s", per_sec / 1e6)
    } else {
        format!("{:.0}k events/s", per_sec / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cover_the_key_set() {
        let keys = 1_000;
        let mut seen = vec![false; keys as usize];
        for i in 0..20 * keys {
            seen[key_of(i, keys) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "some key never drawn");
        assert_eq!(key_of(12, keys), key_of(12, keys));
    }

    #[test]
    fn latency_summary_reads_the_histogram() {
        let mut h = latency_histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50, Duration::from_micros(500));
        assert_eq!(l.max, Duration::from_micros(1000));
        assert_eq!(rate(2_000_000, Duration::from_secs(1)), "2.00M events/s");
    }
}
