//! The order of the log's durability steps, recorded in tests only, so
//! that a test can check the order the durability argument rests on
//! (rollover: sync the old segment, create the new one, sync the
//! directory, then write to it; compaction: sync the active segment,
//! remove the oldest, sync the directory, then the next) without a
//! filesystem that watches `fsync`.

use super::SegLog;

/// One durability step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// A frame written to a segment.
    Write(u64),
    /// `fdatasync` of a segment.
    SyncFile(u64),
    /// A segment created, its header written and synced.
    Created(u64),
    /// The directory fsynced.
    SyncDir,
    /// A segment file removed.
    Removed(u64),
}

impl SegLog {
    /// Records `step` (in tests; nothing otherwise).
    pub(super) fn record(&self, step: Step) {
        #[cfg(test)]
        super::lock(&self.steps).push(step);
        #[cfg(not(test))]
        let _ = step;
    }

    /// The steps recorded so far.
    #[cfg(test)]
    pub(super) fn steps(&self) -> Vec<Step> {
        super::lock(&self.steps).clone()
    }
}
