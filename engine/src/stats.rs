//! [`Stats`]: counters the owner task keeps, readable from any handle.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::AckError;
use crate::metrics::Metrics;

/// A point-in-time view of the engine's counters, from
/// [`Engine::stats`](crate::Engine::stats).
///
/// The owner counts every event before it answers it, so an answer a
/// caller holds is always counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Events applied (each took one sequence number).
    pub applied: u64,
    /// Events rejected by their own `apply` returning `Err`.
    pub rejected: u64,
    /// Events whose `apply` panicked, and events refused because restoring
    /// the state after a later failure in their batch panicked (see
    /// [`AckError::Panicked`](crate::AckError::Panicked)).
    pub panicked: u64,
    /// Events rejected with [`AckError::Diverged`](crate::AckError::Diverged).
    /// Always 0 now: the engine undoes a failure from its write set and
    /// re-applies nothing, which is where a divergence was found.
    pub diverged: u64,
    /// Events refused by a handle before they were queued (see
    /// [`Refusal`](crate::Refusal)): the journal could not store them, or
    /// a blocking submit was called where it cannot block. Counted before
    /// the error is returned.
    pub refused: u64,
    /// Batches committed (each published one snapshot).
    pub batches: u64,
    /// The most events committed in one batch.
    pub largest_batch: u64,
    /// Committed batches whose flush ran while the owner applied the next
    /// batch (see [`Builder::pipelined`](crate::Builder::pipelined)).
    pub pipelined: u64,
    /// Commands waiting in the queue right now.
    pub queue_depth: usize,
    /// The sequence number of the last committed step (an event or a
    /// rollback).
    pub last_seq: u64,
    /// Rollbacks committed.
    pub rollbacks: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Checkpoints that failed to write (each is logged with its cause; the
    /// journal still holds everything, so recovery only takes longer).
    pub checkpoint_failures: u64,
}

/// The shared counters behind [`Stats`]. Only the owner writes them,
/// except `refused` (handles) and the checkpoint counts (the checkpoint
/// task), which use atomic adds.
///
/// They carry the engine's [`Metrics`] too, so that every count in
/// `Stats` that is also a metric is recorded in one place, before the
/// answer it counts is sent.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) metrics: Metrics,
    applied: AtomicU64,
    rejected: AtomicU64,
    panicked: AtomicU64,
    diverged: AtomicU64,
    refused: AtomicU64,
    batches: AtomicU64,
    largest_batch: AtomicU64,
    pipelined: AtomicU64,
    last_seq: AtomicU64,
    rollbacks: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_failures: AtomicU64,
}

impl Counters {
    /// Counters of an engine that recovered up to `last_seq`, recording
    /// into `metrics` too.
    pub(crate) fn starting_at(last_seq: u64, metrics: Metrics) -> Self {
        let zero = || AtomicU64::new(0);
        Counters {
            metrics,
            applied: zero(),
            rejected: zero(),
            panicked: zero(),
            diverged: zero(),
            refused: zero(),
            batches: zero(),
            largest_batch: zero(),
            pipelined: zero(),
            last_seq: AtomicU64::new(last_seq),
            rollbacks: zero(),
            checkpoints: zero(),
            checkpoint_failures: zero(),
        }
    }

    /// Adds a committed batch of `applied` events. Single writer, so plain
    /// loads and stores suffice.
    pub(crate) fn record_commit(&self, applied: u64, last_seq: u64) {
        self.metrics.committed(applied);
        if applied > 0 {
            bump(&self.applied, applied);
            bump(&self.batches, 1);
            self.largest_batch.fetch_max(applied, Ordering::Relaxed);
        }
        self.last_seq.store(last_seq, Ordering::Relaxed);
    }

    /// Counts a batch whose flush overlapped the next batch's applying,
    /// before that batch is committed (so before its acks).
    pub(crate) fn record_pipelined(&self) {
        bump(&self.pipelined, 1);
    }

    /// Counts a rollback committed at `seq`.
    pub(crate) fn record_rollback(&self, seq: u64) {
        bump(&self.rollbacks, 1);
        self.last_seq.store(seq, Ordering::Relaxed);
    }

    /// Counts a checkpoint attempt. Called from the checkpoint task, so it
    /// uses atomic adds.
    pub(crate) fn record_checkpoint(&self, ok: bool) {
        let counter = if ok {
            &self.checkpoints
        } else {
            &self.checkpoint_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one event a handle refused before queueing it. Any thread
    /// may call it, so it uses an atomic add.
    pub(crate) fn record_refused(&self) {
        self.metrics.refused();
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one event that was answered with `error`. Called before the
    /// answer is sent, so a caller holding it finds it counted.
    pub(crate) fn record_refusal<R>(&self, error: &AckError<R>) {
        match error {
            AckError::Rejected(_) => {
                self.metrics.rejected();
                bump(&self.rejected, 1);
            }
            AckError::Panicked { .. } => {
                self.metrics.panicked();
                bump(&self.panicked, 1);
            }
            AckError::Diverged { .. } => bump(&self.diverged, 1),
            AckError::Journal { .. } | AckError::Aborted => {}
        }
    }

    pub(crate) fn snapshot(&self, queue_depth: usize) -> Stats {
        Stats {
            applied: self.applied.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            diverged: self.diverged.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            pipelined: self.pipelined.load(Ordering::Relaxed),
            queue_depth,
            last_seq: self.last_seq.load(Ordering::Relaxed),
            rollbacks: self.rollbacks.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            checkpoint_failures: self.checkpoint_failures.load(Ordering::Relaxed),
        }
    }
}

/// Adds `n` to a counter that only the owner writes.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}
