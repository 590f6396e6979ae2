//! The contenders, each a small adapter behind [`Contender`]: one module
//! per family. A contender is built already holding every key of the
//! workload (`0..keys`, each with [`value`](crate::workload::value)), so
//! that runs measure steady-state reads and overwrites.

use std::fmt;

use hdrhistogram::Histogram;

use crate::workload::Value64;

pub mod durable;
pub mod maps;
pub mod redis;
pub mod solo;

/// Why a contender could not be built or driven.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdapterError {
    /// `redis-server` is not on PATH.
    RedisMissing,
    /// Starting or talking to a store failed.
    Store {
        /// The contender.
        contender: &'static str,
        /// What went wrong, and where.
        reason: String,
    },
}

impl fmt::Display for AdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterError::RedisMissing => write!(
                f,
                "redis-server not found on PATH: skipping the redis contenders \
                 (install it with `apt-get install -y redis-server`)"
            ),
            AdapterError::Store { contender, reason } => write!(f, "{contender}: {reason}"),
        }
    }
}

impl std::error::Error for AdapterError {}

/// One thing a user might store their state in.
pub trait Contender: Send + Sync {
    /// The name in tables and charts.
    fn name(&self) -> &'static str;

    /// A per-thread session: its own connection, pipeline or pending acks.
    fn session(&self) -> Box<dyn Session + '_>;

    /// For solostate: how far behind the engine's last committed seq the
    /// snapshots that readers loaded were, since the last call (in seqs).
    /// `None` for everyone else.
    fn take_staleness(&self) -> Option<Histogram<u64>> {
        None
    }

    /// For a store in another process (Redis): that process's resident
    /// memory in KiB, which the bench's own RSS does not include.
    fn server_rss_kb(&self) -> Option<u64> {
        None
    }
}

/// One thread's view of a contender. Reads and writes may be deferred
/// (pipelined) until [`Session::sync`]; a contender without pipelining
/// completes each at once.
pub trait Session {
    /// Reads `key`.
    fn read(&mut self, key: u64);
    /// Writes `value` under `key`.
    fn write(&mut self, key: u64, value: &Value64);
    /// Completes everything deferred: every read answered, every write
    /// acknowledged (durable, for a durable contender). Returns how many
    /// reads since the last sync found their key, so that a run can check
    /// that every read was really served.
    fn sync(&mut self) -> u64;
}

/// Every contender, by family, as the comparison sets use them.
pub const MAPS: &[&str] = &[
    maps::MUTEX,
    maps::RWLOCK_STD,
    maps::RWLOCK_PL,
    maps::DASHMAP,
    maps::PAPAYA,
    maps::ARCSWAP_COPY,
    maps::ARCSWAP_IMBL,
    solo::IN_MEMORY,
    solo::VERSIONED,
];

/// The durable contenders.
pub const DURABLE: &[&str] = &[
    solo::ALWAYS,
    solo::EVERY_1S,
    solo::VERSIONED_ALWAYS,
    solo::VERSIONED_EVERY_1S,
    durable::SLED_FLUSH,
    durable::SLED_FLUSH_EVERY,
    redis::ALWAYS,
    redis::EVERYSEC,
];

/// Builds the contender called `name`, filled with `keys` keys.
///
/// # Errors
///
/// A durable store could not be opened or started.
pub fn build(name: &str, keys: u64) -> Result<Box<dyn Contender>, AdapterError> {
    if let Some(map) = maps::build(name, keys) {
        return Ok(map);
    }
    if let Some(engine) = solo::build(name, keys) {
        return engine;
    }
    if let Some(sled) = durable::build(name, keys) {
        return sled;
    }
    if let Some(redis) = redis::build(name, keys) {
        return redis;
    }
    panic!("no contender is called {name:?}")
}
