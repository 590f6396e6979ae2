//! [`Stats`]: counters the owner task keeps, readable from any handle.

use std::sync::atomic::{AtomicU64, Ordering};

/// A point-in-time view of the engine's counters, from
/// [`Engine::stats`](crate::Engine::stats).
///
/// The owner updates the counters once per batch, so they may trail the
/// latest acks by one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events applied (each took one sequence number).
    pub applied: u64,
    /// Events rejected by their own `apply` returning `Err`.
    pub rejected: u64,
    /// Events whose `apply` panicked.
    pub panicked: u64,
    /// Events rejected because `apply` was not deterministic.
    pub diverged: u64,
    /// Batches committed (each published one snapshot).
    pub batches: u64,
    /// The most events committed in one batch.
    pub largest_batch: u64,
    /// Commands waiting in the queue right now.
    pub queue_depth: usize,
    /// The sequence number of the last applied event.
    pub last_seq: u64,
}

/// The shared counters behind [`Stats`]. Only the owner writes them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    applied: AtomicU64,
    rejected: AtomicU64,
    panicked: AtomicU64,
    diverged: AtomicU64,
    batches: AtomicU64,
    largest_batch: AtomicU64,
    last_seq: AtomicU64,
}

/// What one batch adds to the counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BatchTally {
    pub(crate) applied: u64,
    pub(crate) rejected: u64,
    pub(crate) panicked: u64,
    pub(crate) diverged: u64,
}

impl Counters {
    /// Counters of an engine that recovered up to `last_seq`.
    pub(crate) fn starting_at(last_seq: u64) -> Self {
        let counters = Counters::default();
        counters.last_seq.store(last_seq, Ordering::Relaxed);
        counters
    }

    /// Adds one batch. Single writer, so plain loads and stores suffice.
    pub(crate) fn record(&self, tally: BatchTally, last_seq: u64) {
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
            }
        };
        add(&self.applied, tally.applied);
        add(&self.rejected, tally.rejected);
        add(&self.panicked, tally.panicked);
        add(&self.diverged, tally.diverged);
        if tally.applied > 0 {
            add(&self.batches, 1);
            self.largest_batch
                .fetch_max(tally.applied, Ordering::Relaxed);
        }
        self.last_seq.store(last_seq, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, queue_depth: usize) -> Stats {
        Stats {
            applied: self.applied.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            diverged: self.diverged.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            queue_depth,
            last_seq: self.last_seq.load(Ordering::Relaxed),
        }
    }
}
