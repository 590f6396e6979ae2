//! The engine's metrics, through the `metrics` facade (feature `metrics`;
//! the names, kinds and meanings are in the crate docs' Metrics section).
//!
//! Every call site goes through the types here, whichever way the feature
//! is set, so that no other module carries a `cfg`. With the feature on,
//! [`Metrics`] holds one registered handle per metric, made once at open,
//! so that recording is an atomic add or a histogram push with no lookup
//! by name. With it off, every type here is empty and every method does
//! nothing and is inlined away: no clock is read, no value that only a
//! metric needs is computed (those come as closures), and the crate does
//! not depend on `metrics` at all.

pub(crate) use imp::{ApplyTimer, Metrics, Settings, Stamp, Stamps};

/// The metric names, stable: dashboards and alerts depend on them.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
mod names {
    pub(super) const APPLIED: &str = "solostate_events_applied_total";
    pub(super) const REJECTED: &str = "solostate_events_rejected_total";
    pub(super) const PANICKED: &str = "solostate_events_panicked_total";
    pub(super) const REFUSED: &str = "solostate_events_refused_total";
    pub(super) const JOURNAL_BYTES: &str = "solostate_journal_bytes_total";
    pub(super) const CHECKPOINT_FAILURES: &str = "solostate_checkpoint_failures_total";
    pub(super) const QUEUE_DEPTH: &str = "solostate_queue_depth";
    pub(super) const READER_LAG: &str = "solostate_reader_lag_batches";
    pub(super) const BATCH_SIZE: &str = "solostate_batch_size_events";
    pub(super) const APPLY: &str = "solostate_apply_duration_seconds";
    pub(super) const FLUSH: &str = "solostate_flush_duration_seconds";
    pub(super) const ACK: &str = "solostate_ack_latency_seconds";
    pub(super) const CHECKPOINT: &str = "solostate_checkpoint_duration_seconds";
    pub(super) const RECOVERY: &str = "solostate_recovery_duration_seconds";
}

#[cfg(feature = "metrics")]
mod imp {
    use std::time::{Duration, Instant};

    use metrics::{
        Counter, Gauge, Histogram, Label, Unit, counter, describe_counter, describe_gauge,
        describe_histogram, gauge, histogram,
    };

    use super::names::*;

    /// What the builder knows about metrics: the `engine` label's value.
    #[derive(Debug, Clone)]
    pub(crate) struct Settings {
        pub(crate) label: Option<String>,
    }

    impl Settings {
        pub(crate) fn new() -> Self {
            Settings { label: None }
        }
    }

    /// One registered handle per metric, labelled `engine` when the
    /// builder named the engine.
    pub(crate) struct Metrics {
        applied: Counter,
        rejected: Counter,
        panicked: Counter,
        refused: Counter,
        journal_bytes: Counter,
        checkpoint_failures: Counter,
        queue_depth: Gauge,
        reader_lag: Gauge,
        batch_size: Histogram,
        apply: Histogram,
        flush: Histogram,
        ack: Histogram,
        checkpoint: Histogram,
        recovery: Histogram,
    }

    impl std::fmt::Debug for Metrics {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Metrics").finish_non_exhaustive()
        }
    }

    impl Metrics {
        /// Describes every metric to the installed recorder and registers
        /// the handles. A recorder installed after this sees none of them.
        pub(crate) fn new(settings: &Settings) -> Self {
            describe();
            let labels: Vec<Label> = settings
                .label
                .iter()
                .map(|engine| Label::new("engine", engine.clone()))
                .collect();
            Metrics {
                applied: counter!(APPLIED, labels.iter()),
                rejected: counter!(REJECTED, labels.iter()),
                panicked: counter!(PANICKED, labels.iter()),
                refused: counter!(REFUSED, labels.iter()),
                journal_bytes: counter!(JOURNAL_BYTES, labels.iter()),
                checkpoint_failures: counter!(CHECKPOINT_FAILURES, labels.iter()),
                queue_depth: gauge!(QUEUE_DEPTH, labels.iter()),
                reader_lag: gauge!(READER_LAG, labels.iter()),
                batch_size: histogram!(BATCH_SIZE, labels.iter()),
                apply: histogram!(APPLY, labels.iter()),
                flush: histogram!(FLUSH, labels.iter()),
                ack: histogram!(ACK, labels.iter()),
                checkpoint: histogram!(CHECKPOINT, labels.iter()),
                recovery: histogram!(RECOVERY, labels.iter()),
            }
        }

        /// A committed batch of `events` accepted events.
        #[inline]
        pub(crate) fn committed(&self, events: u64) {
            if events > 0 {
                self.applied.increment(events);
                self.batch_size.record(events as f64);
            }
        }

        #[inline]
        pub(crate) fn rejected(&self) {
            self.rejected.increment(1);
        }

        #[inline]
        pub(crate) fn panicked(&self) {
            self.panicked.increment(1);
        }

        #[inline]
        pub(crate) fn refused(&self) {
            self.refused.increment(1);
        }

        #[inline]
        pub(crate) fn journal_bytes(&self, bytes: u64) {
            self.journal_bytes.increment(bytes);
        }

        #[inline]
        pub(crate) fn queue_depth(&self, depth: impl FnOnce() -> usize) {
            self.queue_depth.set(depth() as f64);
        }

        #[inline]
        pub(crate) fn reader_lag(&self, batches: impl FnOnce() -> usize) {
            self.reader_lag.set(batches() as f64);
        }

        /// A batch's journal record, appended at `appending`, is durable
        /// now.
        #[inline]
        pub(crate) fn flushed(&self, appending: Stamp) {
            self.flush.record(appending.0.elapsed());
        }

        /// The owner's time applying a batch's events.
        #[inline]
        pub(crate) fn applied_in(&self, elapsed: Elapsed) {
            self.apply.record(elapsed.0);
        }

        /// Every event of `stamps` was acked at `acked`.
        #[inline]
        pub(crate) fn acked(&self, stamps: &Stamps, acked: Stamp) {
            for submitted in &stamps.0 {
                self.ack
                    .record(acked.0.saturating_duration_since(*submitted));
            }
        }

        /// A checkpoint attempt that took `elapsed`.
        pub(crate) fn checkpoint(&self, elapsed: Duration, ok: bool) {
            if ok {
                self.checkpoint.record(elapsed);
            } else {
                self.checkpoint_failures.increment(1);
            }
        }

        /// Opening recovered the state in `elapsed`.
        pub(crate) fn recovered(&self, elapsed: Elapsed) {
            self.recovery.record(elapsed.0);
        }
    }

    /// Names each metric's unit and meaning for the recorder (Prometheus
    /// puts them in `# HELP`). Once per open; recorders keep the last.
    fn describe() {
        describe_counter!(
            APPLIED,
            Unit::Count,
            "Events applied and acknowledged (each took one sequence number)."
        );
        describe_counter!(
            REJECTED,
            Unit::Count,
            "Events rejected by their own apply returning Err."
        );
        describe_counter!(
            PANICKED,
            Unit::Count,
            "Events refused because their apply panicked, or because restoring the state after a later panic in their batch panicked."
        );
        describe_counter!(
            REFUSED,
            Unit::Count,
            "Events a handle refused before queueing them (too large, or not encodable)."
        );
        describe_counter!(
            JOURNAL_BYTES,
            Unit::Bytes,
            "Bytes of batch records appended to the journal."
        );
        describe_counter!(
            CHECKPOINT_FAILURES,
            Unit::Count,
            "Checkpoints that failed to write (the journal still holds every event)."
        );
        describe_gauge!(
            QUEUE_DEPTH,
            Unit::Count,
            "Commands waiting in the queue when the owner last took from it."
        );
        describe_gauge!(
            READER_LAG,
            Unit::Count,
            "Committed batches the slowest change-feed subscriber had not received yet, right after the last publish (the new batch included; 0 without subscribers)."
        );
        describe_histogram!(
            BATCH_SIZE,
            Unit::Count,
            "Events per committed batch (one journal record, one snapshot)."
        );
        describe_histogram!(
            APPLY,
            Unit::Seconds,
            "Owner time applying a batch's events, rejected ones included, not counting waits."
        );
        describe_histogram!(
            FLUSH,
            Unit::Seconds,
            "Durability::Always: from the start of a batch's journal append to the end of its flush, pipelined batches included. Durability::Every: each periodic flush."
        );
        describe_histogram!(
            ACK,
            Unit::Seconds,
            "From a handle queueing an event (waiting for room included) to its ack being sent, for acked events."
        );
        describe_histogram!(
            CHECKPOINT,
            Unit::Seconds,
            "Writing one checkpoint, pruning included."
        );
        describe_histogram!(
            RECOVERY,
            Unit::Seconds,
            "Recovery at open: loading the newest checkpoint that verifies and replaying the journal after it."
        );
    }

    /// A moment, for a latency.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Stamp(Instant);

    impl Stamp {
        #[inline]
        pub(crate) fn now() -> Self {
            Stamp(Instant::now())
        }

        /// The time since this stamp.
        #[inline]
        pub(crate) fn elapsed(self) -> Elapsed {
            Elapsed(self.0.elapsed())
        }
    }

    /// A duration that only a metric needs.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Elapsed(Duration);

    /// The submission stamps of a batch's accepted events, one for one
    /// with its replies.
    #[derive(Debug, Default)]
    pub(crate) struct Stamps(Vec<Instant>);

    impl Stamps {
        pub(crate) fn with_capacity(capacity: usize) -> Self {
            Stamps(Vec::with_capacity(capacity))
        }

        #[inline]
        pub(crate) fn push(&mut self, stamp: Stamp) {
            self.0.push(stamp.0);
        }

        #[inline]
        pub(crate) fn clear(&mut self) {
            self.0.clear();
        }
    }

    /// The owner's time applying the open batch: it runs while events
    /// are applied and stops while the owner waits or commits, so one
    /// batch filled over several turns (behind a batch in flight) counts
    /// only its applying. Two clock reads per stretch of applying, not
    /// per event.
    #[derive(Debug)]
    pub(crate) struct ApplyTimer {
        running: Option<Instant>,
        total: Duration,
    }

    impl ApplyTimer {
        pub(crate) fn new() -> Self {
            ApplyTimer {
                running: None,
                total: Duration::ZERO,
            }
        }

        /// Starts the clock, unless it is running.
        #[inline]
        pub(crate) fn resume(&mut self) {
            if self.running.is_none() {
                self.running = Some(Instant::now());
            }
        }

        /// Stops the clock, adding the stretch since `resume`.
        #[inline]
        pub(crate) fn pause(&mut self) {
            if let Some(started) = self.running.take() {
                self.total += started.elapsed();
            }
        }

        /// Stops the clock and returns the total, starting again from 0.
        #[inline]
        pub(crate) fn take(&mut self) -> Elapsed {
            self.pause();
            Elapsed(std::mem::take(&mut self.total))
        }
    }
}

/// The same API, empty: every method does nothing.
#[cfg(not(feature = "metrics"))]
mod imp {
    use std::time::Duration;

    #[derive(Debug, Clone)]
    pub(crate) struct Settings;

    impl Settings {
        #[inline(always)]
        pub(crate) fn new() -> Self {
            Settings
        }
    }

    #[derive(Debug)]
    pub(crate) struct Metrics;

    impl Metrics {
        #[inline(always)]
        pub(crate) fn new(_: &Settings) -> Self {
            Metrics
        }
        #[inline(always)]
        pub(crate) fn committed(&self, _: u64) {}
        #[inline(always)]
        pub(crate) fn rejected(&self) {}
        #[inline(always)]
        pub(crate) fn panicked(&self) {}
        #[inline(always)]
        pub(crate) fn refused(&self) {}
        #[inline(always)]
        pub(crate) fn journal_bytes(&self, _: u64) {}
        #[inline(always)]
        pub(crate) fn queue_depth(&self, _: impl FnOnce() -> usize) {}
        #[inline(always)]
        pub(crate) fn reader_lag(&self, _: impl FnOnce() -> usize) {}
        #[inline(always)]
        pub(crate) fn flushed(&self, _: Stamp) {}
        #[inline(always)]
        pub(crate) fn applied_in(&self, _: Elapsed) {}
        #[inline(always)]
        pub(crate) fn acked(&self, _: &Stamps, _: Stamp) {}
        #[inline(always)]
        pub(crate) fn checkpoint(&self, _: Duration, _: bool) {}
        #[inline(always)]
        pub(crate) fn recovered(&self, _: Elapsed) {}
    }

    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Stamp;

    impl Stamp {
        #[inline(always)]
        pub(crate) fn now() -> Self {
            Stamp
        }
        #[inline(always)]
        pub(crate) fn elapsed(self) -> Elapsed {
            Elapsed
        }
    }

    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Elapsed;

    #[derive(Debug, Default)]
    pub(crate) struct Stamps;

    impl Stamps {
        #[inline(always)]
        pub(crate) fn with_capacity(_: usize) -> Self {
            Stamps
        }
        #[inline(always)]
        pub(crate) fn push(&mut self, _: Stamp) {}
        #[inline(always)]
        pub(crate) fn clear(&mut self) {}
    }

    #[derive(Debug)]
    pub(crate) struct ApplyTimer;

    impl ApplyTimer {
        #[inline(always)]
        pub(crate) fn new() -> Self {
            ApplyTimer
        }
        #[inline(always)]
        pub(crate) fn resume(&mut self) {}
        #[inline(always)]
        pub(crate) fn pause(&mut self) {}
        #[inline(always)]
        pub(crate) fn take(&mut self) -> Elapsed {
            Elapsed
        }
    }
}
