//! The seam between the journal and the disk: every write the journal
//! makes to its store (an insert, a removal, an atomic batch) is announced
//! to a [`Storage`] first, and so is every flush, and every `fsync` goes
//! through it.
//!
//! Production uses [`Os`], which announces nothing and syncs with the
//! operating system's calls: one virtual call
//! per write, flush or sync beside the real work (an insert costs
//! microseconds, a flush tens to hundreds, an `fdatasync` up to
//! milliseconds). With the `fault-injection` feature a
//! [`FaultPlan`](crate::faults::FaultPlan) can stand in, to fail the Nth
//! write, flush or sync, report a full disk, or slow every flush down, so
//! that tests can show what the engine does when the disk misbehaves.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;

/// What a journal write is for. A fault plan counts writes, and the kind
/// lets it leave alone the one write that must not fail (see
/// [`Write::Discard`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub(crate) enum Write {
    /// [`Journal::append`](super::Journal::append): one batch's record.
    Append,
    /// [`Journal::rollback`](super::Journal::rollback)'s transaction.
    Rollback,
    /// [`Journal::prune_through`](super::Journal::prune_through)'s
    /// transaction.
    Prune,
    /// [`Journal::quarantine_from`](super::Journal::quarantine_from)'s
    /// transaction.
    Quarantine,
    /// [`Journal::restore_quarantined`](super::Journal::restore_quarantined)'s
    /// transaction.
    Restore,
    /// [`Journal::repair_tail`](super::Journal::repair_tail)'s removal.
    Repair,
    /// [`Journal::record_state_hash`](super::Journal::record_state_hash):
    /// one determinism-guard check.
    StateHash,
    /// [`Journal::discard`](super::Journal::discard): taking back a record
    /// whose flush failed. It stands for sled's memory going back to what
    /// is on disk, so a fault plan never fails it (after a real failure
    /// sled refuses every later write itself, flushes included, which has
    /// the same effect on the disk).
    Discard,
}

/// What one sync makes durable.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sync<'a> {
    /// The data of an open file (`fdatasync`): the segment log's active
    /// segment, or sled's log through the journal's own handle on it.
    Data(&'a File),
    /// The data of the file at a path (`fdatasync`): sled's `conf`, or a
    /// blob file.
    File(&'a Path),
    /// The entries of a directory (`fsync` of the directory).
    Dir(&'a Path),
}

/// Where the journal's writes, flushes and syncs go.
pub(crate) trait Storage: Send + std::marker::Sync + fmt::Debug {
    /// Asked before each write of kind `what`; an error stops the write
    /// before the store sees it, and is reported as the write's.
    fn write(&self, what: Write) -> io::Result<()>;

    /// Asked before each flush, on the thread that flushes; an error stops
    /// the flush, and is reported as its error.
    fn before_flush(&self) -> io::Result<()>;

    /// Makes `what` durable, blocking the calling thread.
    fn sync(&self, what: Sync<'_>) -> io::Result<()>;
}

/// The store and the operating system themselves: everything goes
/// straight through.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Os;

impl Storage for Os {
    #[inline]
    fn write(&self, _: Write) -> io::Result<()> {
        Ok(())
    }

    #[inline]
    fn before_flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync(&self, what: Sync<'_>) -> io::Result<()> {
        match what {
            Sync::Data(file) => file.sync_data(),
            Sync::File(path) => crate::sync::sync_file_data(path),
            Sync::Dir(path) => crate::sync::sync_dir(path),
        }
    }
}
