//! [`Durability`]: when an acknowledged event is on disk.

use std::time::Duration;

/// When journaled batches are flushed to disk, relative to their acks.
/// Only matters for an engine opened with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Journal and flush each batch before publishing it and acking its
    /// events (group commit: one record and one flush per batch). An ack
    /// means durable through a power cut, and no reader sees state a crash
    /// could take back: the flush is an `fdatasync` of the segment log's
    /// active segment (on sled: sled's own flush, which only calls
    /// `sync_file_range`, not enough on its own, followed by an
    /// `fdatasync` of sled's log file, with every sled value kept small
    /// enough that sled never writes the blob files it would not sync).
    #[default]
    Always,
    /// Journal each batch and ack at once; a background task flushes every
    /// interval, like Redis's `appendfsync everysec`. A crash can lose the
    /// acked events of the last interval (plus one flush's duration), and
    /// readers may see state a crash takes back. The flushes run on a
    /// thread of the engine's own, so the runtime needs no timers.
    Every(Duration),
    /// Journal each batch and let the OS decide when it reaches the disk;
    /// flush only at shutdown. For bulk loads that can be redone.
    Never,
}
