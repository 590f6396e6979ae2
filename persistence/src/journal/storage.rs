//! The seam between the journal and the disk: every write the journal
//! makes to sled (an insert, a removal, a transaction) is announced to a
//! [`Storage`] first, and every flush goes through it.
//!
//! Production uses [`Sled`], which announces nothing and flushes sled
//! directly: one virtual call per write or flush beside sled's own work
//! (an insert costs microseconds, a flush tens to hundreds). With the
//! `fault-injection` feature a
//! [`FaultPlan`](crate::faults::FaultPlan) can stand in, to fail the Nth
//! write or flush, report a full disk, or slow every flush down, so that
//! tests can show what the engine does when the disk misbehaves.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

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

/// A boxed flush future: sled's own is not nameable.
pub(crate) type FlushFuture<'a> = Pin<Box<dyn Future<Output = sled::Result<()>> + Send + 'a>>;

/// Where the journal's writes and flushes go.
pub(crate) trait Storage: Send + Sync + fmt::Debug {
    /// Asked before each write of kind `what`; an error stops the write
    /// before sled sees it, and is reported as the write's.
    fn write(&self, what: Write) -> sled::Result<()>;

    /// Flushes `db`, blocking the calling thread.
    fn flush(&self, db: &sled::Db) -> sled::Result<()>;

    /// Flushes `db` without blocking the calling thread.
    fn flush_async<'a>(&'a self, db: &'a sled::Db) -> FlushFuture<'a>;
}

/// sled itself: writes go straight through.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sled;

impl Storage for Sled {
    #[inline]
    fn write(&self, _: Write) -> sled::Result<()> {
        Ok(())
    }

    fn flush(&self, db: &sled::Db) -> sled::Result<()> {
        db.flush().map(drop)
    }

    fn flush_async<'a>(&'a self, db: &'a sled::Db) -> FlushFuture<'a> {
        Box::pin(async move { db.flush_async().await.map(drop) })
    }
}
