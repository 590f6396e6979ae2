//! The data every contender gets: the key set, the value bytes, and each
//! thread's op sequence, generated once per configuration and shared, so
//! that every contender in a comparison set runs exactly the same ops.

use serde::{Deserialize, Serialize};

/// A 64-byte value. `[u64; 8]` rather than `[u8; 64]` because serde (which
/// the engine's events need) implements its traits only for arrays of up
/// to 32 elements; the other contenders store the same 64 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value64(pub [u64; 8]);

impl Value64 {
    /// The value's 64 bytes, little-endian, for the byte-oriented stores
    /// (sled, Redis).
    pub fn to_bytes(self) -> [u8; 64] {
        let mut bytes = [0u8; 64];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }
}

/// The value stored under `key` (and written over it): full-width words,
/// so that no codec can shrink it below 64 bytes of entropy.
pub fn value(key: u64) -> Value64 {
    let mut rng = SplitMix64(key);
    Value64(std::array::from_fn(|_| rng.next_u64() | (1 << 63)))
}

/// splitmix64: a tiny, fast, deterministic generator, good enough to pick
/// keys and ops (no `rand` dependency for that).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipfian ranks in `0..n` (rank 0 the most popular) with skew `theta`,
/// by Gray et al.'s method ("Quickly generating billion-record synthetic
/// databases", the generator YCSB uses): O(n) setup for `zeta(n)`, then
/// O(1) per draw.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: u64,
    theta: f64,
    zeta_n: f64,
    alpha: f64,
    eta: f64,
}

impl Zipf {
    /// YCSB's default skew: the hottest 1% of keys take about half the
    /// accesses at a million keys.
    pub const YCSB_THETA: f64 = 0.99;

    /// A generator over `0..n`. `n` must be at least 2 and `theta` in
    /// `(0, 1)`.
    pub fn new(n: u64, theta: f64) -> Self {
        assert!(n >= 2, "zipf needs at least 2 keys, got {n}");
        assert!(
            theta > 0.0 && theta < 1.0,
            "zipf theta {theta} not in (0, 1)"
        );
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zeta_n = zeta(n);
        let zeta_2 = zeta(2);
        Zipf {
            n,
            theta,
            zeta_n,
            alpha: 1.0 / (1.0 - theta),
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n),
        }
    }

    /// The probability of rank 0, `1 / zeta(n)`: what the tests check.
    pub fn p_first(&self) -> f64 {
        1.0 / self.zeta_n
    }

    /// One rank.
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// Spreads ranks over the key space (a bijection of `0..n`), so that the
/// hot keys are not the first ones inserted: multiplying by a prime that
/// does not divide `n` permutes the residues mod `n`.
pub fn scramble(rank: u64, n: u64) -> u64 {
    const PRIME: u64 = 1_000_000_007;
    debug_assert!(!n.is_multiple_of(PRIME));
    ((rank as u128 * PRIME as u128) % n as u128) as u64
}

/// How keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    /// Every key equally likely.
    Uniform,
    /// Scrambled zipfian with [`Zipf::YCSB_THETA`].
    Zipf,
}

impl Dist {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Dist::Uniform => "uniform",
            Dist::Zipf => "zipf",
        }
    }
}

/// One operation: a read or a write of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read the key.
    Read(u64),
    /// Write the key's value.
    Write(u64),
}

/// A workload's shape: the share of writes, the keys, how they are chosen,
/// and how many threads run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Writes per 100 ops: 0, 1, 10, 50 or 100.
    pub write_pct: u32,
    /// Distinct keys, all present before the run.
    pub keys: u64,
    /// How keys are chosen.
    pub dist: Dist,
    /// Threads running ops at once.
    pub threads: usize,
}

impl Config {
    /// The mix as people write it: `90/10` is 90% reads, 10% writes.
    pub fn mix(&self) -> String {
        match self.write_pct {
            100 => "write-only".to_string(),
            w => format!("{}/{}", 100 - w, w),
        }
    }

    /// `90/10 1e6 uniform 2t`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} {}t",
            self.mix(),
            keys_label(self.keys),
            self.dist.name(),
            self.threads
        )
    }
}

/// `1e6` for a million.
pub fn keys_label(keys: u64) -> String {
    let exp = (keys as f64).log10();
    if keys >= 10 && exp.fract() == 0.0 {
        format!("1e{}", exp as u32)
    } else {
        keys.to_string()
    }
}

/// Each thread's op sequence for `config`, `len` ops each, deterministic:
/// the same for every contender that runs the configuration.
pub fn op_sequences(config: &Config, len: usize) -> Vec<Vec<Op>> {
    let zipf = (config.dist == Dist::Zipf).then(|| Zipf::new(config.keys, Zipf::YCSB_THETA));
    (0..config.threads)
        .map(|thread| {
            let mut rng = SplitMix64(0x5EED_0000 + thread as u64);
            (0..len)
                .map(|_| {
                    let key = match &zipf {
                        Some(zipf) => scramble(zipf.sample(&mut rng), config.keys),
                        None => rng.next_u64() % config.keys,
                    };
                    if (rng.next_u64() % 100) < u64::from(config.write_pct) {
                        Op::Write(key)
                    } else {
                        Op::Read(key)
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_ranks_stay_in_range_and_rank_zero_has_its_share() {
        let n = 1000;
        let zipf = Zipf::new(n, Zipf::YCSB_THETA);
        let mut rng = SplitMix64(42);
        let draws = 200_000;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..draws {
            let rank = zipf.sample(&mut rng);
            assert!(rank < n, "rank {rank} out of 0..{n}");
            counts[rank as usize] += 1;
        }
        let share = counts[0] as f64 / draws as f64;
        let expected = zipf.p_first();
        assert!(
            (share - expected).abs() < 0.1 * expected,
            "rank 0 drew {share:.4} of samples, expected {expected:.4}"
        );
        // Popularity falls with rank: the first ten outdraw the last half.
        let head: u64 = counts[..10].iter().sum();
        let tail: u64 = counts[500..].iter().sum();
        assert!(head > tail, "head {head} <= tail {tail}");
        assert!(counts[1] > counts[100], "rank 1 not hotter than rank 100");
    }

    #[test]
    fn zipf_is_deterministic_for_a_seed() {
        let zipf = Zipf::new(10_000, Zipf::YCSB_THETA);
        let draw = |seed| {
            let mut rng = SplitMix64(seed);
            (0..100).map(|_| zipf.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn scramble_is_a_permutation() {
        for n in [2u64, 1000, 1024, 999_983] {
            let mut seen = vec![false; n as usize];
            for rank in 0..n {
                let key = scramble(rank, n);
                assert!(!seen[key as usize], "key {key} hit twice for n={n}");
                seen[key as usize] = true;
            }
        }
    }

    #[test]
    fn op_sequences_follow_the_mix_and_repeat() {
        let config = Config {
            write_pct: 10,
            keys: 1000,
            dist: Dist::Zipf,
            threads: 2,
        };
        let ops = op_sequences(&config, 10_000);
        assert_eq!(ops, op_sequences(&config, 10_000));
        assert_ne!(ops[0], ops[1], "threads got the same sequence");
        let writes = ops[0]
            .iter()
            .filter(|op| matches!(op, Op::Write(_)))
            .count();
        assert!(
            (800..1200).contains(&writes),
            "{writes} writes in 10,000 at 10%"
        );
        let all_in_range = ops
            .iter()
            .flatten()
            .all(|op| matches!(op, Op::Read(k) | Op::Write(k) if *k < 1000));
        assert!(all_in_range);
    }

    #[test]
    fn labels_read_like_the_issue() {
        let config = Config {
            write_pct: 100,
            keys: 1_000_000,
            dist: Dist::Uniform,
            threads: 32,
        };
        assert_eq!(config.label(), "write-only 1e6 uniform 32t");
        assert_eq!(
            Config {
                write_pct: 1,
                ..config
            }
            .mix(),
            "99/1"
        );
        assert_eq!(keys_label(1000), "1e3");
        assert_eq!(keys_label(1500), "1500");
    }
}
