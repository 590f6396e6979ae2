//! [`CheckpointPolicy`] and [`Retention`]: when the engine writes
//! checkpoints, and how much journal it keeps.

/// When a persistent engine writes a checkpoint: a full copy of the state
/// at a seq, so that opening loads it and replays only the journal after
/// it. Checkpoints are written off the owner task from an O(1) clone of
/// the map, so the writer does not stall while a large map is serialized;
/// at most one is in flight at a time.
///
/// ```
/// # use solostate::CheckpointPolicy;
/// let policy = CheckpointPolicy::default()
///     .every_events(100_000)
///     .every_bytes(64 << 20)
///     .keep(3);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    pub(crate) every_events: Option<u64>,
    pub(crate) every_bytes: Option<u64>,
    pub(crate) on_shutdown: bool,
    pub(crate) keep: usize,
}

impl Default for CheckpointPolicy {
    /// Every 1,048,576 events or 256 MiB of journal records, whichever
    /// comes first, and on shutdown; keep the newest 2.
    fn default() -> Self {
        CheckpointPolicy {
            every_events: Some(1 << 20),
            every_bytes: Some(256 << 20),
            on_shutdown: true,
            keep: 2,
        }
    }
}

impl CheckpointPolicy {
    /// No checkpoints at all: opening always replays the whole journal.
    pub fn never() -> Self {
        CheckpointPolicy {
            every_events: None,
            every_bytes: None,
            on_shutdown: false,
            keep: 1,
        }
    }

    /// Checkpoint after this many events since the last checkpoint. Fewer
    /// means faster opens and more writing.
    pub fn every_events(mut self, events: u64) -> Self {
        self.every_events = Some(events);
        self
    }

    /// Checkpoint after this many bytes of journal records since the last
    /// checkpoint.
    pub fn every_bytes(mut self, bytes: u64) -> Self {
        self.every_bytes = Some(bytes);
        self
    }

    /// Whether a clean shutdown writes a checkpoint, so the next open
    /// replays nothing.
    pub fn on_shutdown(mut self, on_shutdown: bool) -> Self {
        self.on_shutdown = on_shutdown;
        self
    }

    /// How many checkpoints to keep (at least 1). Older ones are deleted
    /// after a new one is written. More than one guards against a damaged
    /// newest checkpoint: opening falls back to the next, loudly.
    pub fn keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }

    /// Whether `events` and `bytes` since the last checkpoint call for one.
    pub(crate) fn due(&self, events: u64, bytes: u64) -> bool {
        self.every_events.is_some_and(|n| events >= n)
            || self.every_bytes.is_some_and(|n| bytes >= n)
    }
}

/// How much of the journal a persistent engine keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Retention {
    /// Keep every record forever, for audit, replay and as-of reads of any
    /// seq. The journal grows without bound.
    #[default]
    FullHistory,
    /// After each checkpoint, prune the journal records that the oldest
    /// kept checkpoint covers. Opening and as-of reads still work for any
    /// seq from that checkpoint on; older history is gone.
    SinceOldestCheckpoint,
}
