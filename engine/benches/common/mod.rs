//! Data shared by the engine benches, so that they measure the same map.

#![allow(dead_code)] // each bench uses a different part

use serde::{Deserialize, Serialize};
use solostate::StateEvent;

/// Keys in the prefilled map.
pub const KEYS: u64 = 100_000;

/// A 64-byte value that is cheap to clone. It is `[u64; 8]` rather than
/// `[u8; 64]` because serde (which `Event` requires) implements its traits
/// only for arrays of up to 32 elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value64(pub [u64; 8]);

/// The benches' event type.
pub type Ev = StateEvent<u64, Value64>;
/// The benches' map type.
pub type Map = imbl::HashMap<u64, Value64>;

/// xorshift64*: `len` deterministic pseudo-random keys in `0..keys`.
pub fn key_pattern(seed: u64, len: usize, keys: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D) % keys
        })
        .collect()
}

/// A map holding every key in `0..KEYS`.
pub fn prefilled() -> Map {
    (0..KEYS).map(|k| (k, Value64([k; 8]))).collect()
}
