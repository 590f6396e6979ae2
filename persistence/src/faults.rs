//! Fault injection for tests (feature `fault-injection`): a [`FaultPlan`]
//! stands between the journal (and the checkpoint store) and the disk and
//! fails chosen writes or flushes, or slows every flush down.
//!
//! This is a testing tool. It exists so that the failure paths (a batch
//! whose record could not be written, a full disk, a flush that failed)
//! run in tests, where otherwise they would run for the first time on a
//! user's broken disk. Do not enable the feature in production builds:
//! nothing in it is needed there, and a plan left in place fails writes on
//! purpose.
//!
//! ```
//! use solostate_persistence::faults::FaultPlan;
//! use solostate_persistence::journal::Journal;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut journal = Journal::open(dir.path(), "doc", 1 << 20)?;
//! let plan = FaultPlan::new().disk_full_at_write(2);
//! journal.inject_faults(plan.clone());
//! journal.append(1, &["a"])?;
//! let error = journal.append(2, &["b"]).unwrap_err();
//! assert_eq!(error.io_kind(), Some(std::io::ErrorKind::StorageFull));
//! assert!(error.to_string().contains("no space left on device"));
//! assert_eq!(plan.injected().disk_full, 1);
//! # Ok(())
//! # }
//! ```

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::journal::storage::{Os, Storage, Sync, Write};

/// Which writes and flushes to fail, and how slow flushes are. Counting
/// starts when the plan is handed to a journal (or an engine, after it
/// has opened): the first write after that is write 1. Only the journal's
/// writes are counted ([`Journal::append`], and the transactions of
/// [`Journal::rollback`], [`Journal::prune_through`] and
/// [`Journal::quarantine_from`]); flushes are every
/// [`Journal::flush`] and [`Journal::flush_async`]; syncs are the
/// `fdatasync`s and directory `fsync`s inside each flush (one per flush
/// when sled wrote no blob file). Checkpoint files are counted apart.
///
/// Clones share their counters, so a test keeps a clone to read
/// [`FaultPlan::injected`] after giving one away. Set the knobs before
/// handing the plan over.
///
/// [`Journal::append`]: crate::journal::Journal::append
/// [`Journal::rollback`]: crate::journal::Journal::rollback
/// [`Journal::prune_through`]: crate::journal::Journal::prune_through
/// [`Journal::quarantine_from`]: crate::journal::Journal::quarantine_from
/// [`Journal::flush`]: crate::journal::Journal::flush
/// [`Journal::flush_async`]: crate::journal::Journal::flush_async
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    fail_write: Option<u64>,
    fail_flush: Option<u64>,
    fail_sync: Option<u64>,
    disk_full_at_write: Option<u64>,
    fail_checkpoint_write: Option<u64>,
    flush_delay: Duration,
    seen: Arc<Seen>,
}

/// Counters shared by a plan's clones.
#[derive(Debug, Default)]
struct Seen {
    writes: AtomicU64,
    flushes: AtomicU64,
    syncs: AtomicU64,
    checkpoint_writes: AtomicU64,
    injected_writes: AtomicU64,
    injected_flushes: AtomicU64,
    injected_syncs: AtomicU64,
    injected_disk_full: AtomicU64,
    injected_checkpoint_writes: AtomicU64,
}

/// How many faults a [`FaultPlan`] injected, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Injected {
    /// Writes failed by [`FaultPlan::fail_write`].
    pub writes: u64,
    /// Flushes failed by [`FaultPlan::fail_flush`].
    pub flushes: u64,
    /// Syncs failed by [`FaultPlan::fail_sync`].
    pub syncs: u64,
    /// Writes failed by [`FaultPlan::disk_full_at_write`].
    pub disk_full: u64,
    /// Checkpoint files failed by [`FaultPlan::fail_checkpoint_write`].
    pub checkpoint_writes: u64,
}

impl Injected {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.writes + self.flushes + self.syncs + self.disk_full + self.checkpoint_writes
    }
}

impl std::ops::AddAssign for Injected {
    /// Adds another plan's counts, for totals over many plans.
    fn add_assign(&mut self, more: Injected) {
        self.writes += more.writes;
        self.flushes += more.flushes;
        self.syncs += more.syncs;
        self.disk_full += more.disk_full;
        self.checkpoint_writes += more.checkpoint_writes;
    }
}

impl FaultPlan {
    /// A plan that injects nothing (but counts).
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the `n`th write (1-based) with an I/O error of kind
    /// [`io::ErrorKind::Other`] whose message says it was injected. Only
    /// that one: later writes succeed again, as after a transient error.
    pub fn fail_write(mut self, n: u64) -> Self {
        self.fail_write = Some(n);
        self
    }

    /// Fails the `n`th flush (1-based), before sled flushes anything, with
    /// an I/O error of kind [`io::ErrorKind::Other`]. What was written
    /// before it stays in sled's memory, unflushed.
    pub fn fail_flush(mut self, n: u64) -> Self {
        self.fail_flush = Some(n);
        self
    }

    /// Fails the `n`th sync (1-based) with an I/O error of kind
    /// [`io::ErrorKind::Other`], before anything is synced: sled's flush
    /// before it went through, but its writes are not durable. The
    /// engine treats it as a failed flush.
    pub fn fail_sync(mut self, n: u64) -> Self {
        self.fail_sync = Some(n);
        self
    }

    /// From the `n`th write (1-based) on, fails every write with
    /// "no space left on device", of kind [`io::ErrorKind::StorageFull`]:
    /// a full disk stays full.
    pub fn disk_full_at_write(mut self, n: u64) -> Self {
        self.disk_full_at_write = Some(n);
        self
    }

    /// Fails the `n`th checkpoint file written (1-based) with an I/O error
    /// of kind [`io::ErrorKind::Other`], before the file is created.
    pub fn fail_checkpoint_write(mut self, n: u64) -> Self {
        self.fail_checkpoint_write = Some(n);
        self
    }

    /// Sleeps this long before every flush, for a disk that cannot keep
    /// up. It sleeps on the flushing thread: the caller's for
    /// [`Journal::flush`](crate::journal::Journal::flush), the journal's
    /// flush thread for `flush_async`, so no runtime is blocked.
    pub fn flush_delay(mut self, delay: Duration) -> Self {
        self.flush_delay = delay;
        self
    }

    /// The journal writes counted so far.
    pub fn writes(&self) -> u64 {
        self.seen.writes.load(Ordering::Relaxed)
    }

    /// The flushes counted so far.
    pub fn flushes(&self) -> u64 {
        self.seen.flushes.load(Ordering::Relaxed)
    }

    /// The syncs counted so far.
    pub fn syncs(&self) -> u64 {
        self.seen.syncs.load(Ordering::Relaxed)
    }

    /// The faults injected so far, by kind.
    pub fn injected(&self) -> Injected {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Injected {
            writes: load(&self.seen.injected_writes),
            flushes: load(&self.seen.injected_flushes),
            syncs: load(&self.seen.injected_syncs),
            disk_full: load(&self.seen.injected_disk_full),
            checkpoint_writes: load(&self.seen.injected_checkpoint_writes),
        }
    }

    /// Counts a checkpoint file about to be written, and fails it if it is
    /// the chosen one.
    pub(crate) fn checkpoint_write(&self) -> io::Result<()> {
        let n = self.seen.checkpoint_writes.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fail_checkpoint_write == Some(n) {
            self.seen
                .injected_checkpoint_writes
                .fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::other(format!(
                "injected i/o error at checkpoint write {n}"
            )));
        }
        Ok(())
    }

    /// Counts a flush, and fails it if it is the chosen one.
    fn count_flush(&self) -> io::Result<()> {
        let n = self.seen.flushes.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fail_flush == Some(n) {
            self.seen.injected_flushes.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::other(format!("injected i/o error at flush {n}")));
        }
        Ok(())
    }
}

impl Storage for FaultPlan {
    fn write(&self, what: Write) -> io::Result<()> {
        if what == Write::Discard {
            return Ok(());
        }
        let n = self.seen.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if self.disk_full_at_write.is_some_and(|full| n >= full) {
            self.seen.injected_disk_full.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no space left on device (injected at write {n})"),
            ));
        }
        if self.fail_write == Some(n) {
            self.seen.injected_writes.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::other(format!("injected i/o error at write {n}")));
        }
        Ok(())
    }

    fn before_flush(&self) -> io::Result<()> {
        self.count_flush()?;
        if !self.flush_delay.is_zero() {
            std::thread::sleep(self.flush_delay);
        }
        Ok(())
    }

    fn sync(&self, what: Sync<'_>) -> io::Result<()> {
        let n = self.seen.syncs.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fail_sync == Some(n) {
            self.seen.injected_syncs.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::other(format!("injected i/o error at sync {n}")));
        }
        Os.sync(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoints;
    use crate::journal::Journal;
    use solostate_commands::{State, StateEvent};

    const CACHE: u64 = 4 << 20;
    type Ev = StateEvent<String, u64>;

    #[test]
    fn fail_write_fails_only_the_nth_write_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
        let plan = FaultPlan::new().fail_write(2);
        journal.inject_faults(plan.clone());
        journal.append(1, &["a"]).unwrap();
        let error = journal.append(2, &["b"]).unwrap_err();
        assert_eq!(error.io_kind(), Some(io::ErrorKind::Other));
        assert!(
            error.to_string().contains("injected i/o error at write 2"),
            "{error}"
        );
        assert_eq!(
            journal.last_seq::<String>().unwrap(),
            1,
            "the failed write wrote"
        );
        journal.append(2, &["b"]).unwrap();
        assert_eq!(journal.last_seq::<String>().unwrap(), 2);
        assert_eq!((plan.writes(), plan.injected().writes), (3, 1));
    }

    #[test]
    fn a_discarded_record_whose_flush_failed_does_not_come_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
            journal.append(1, &["a"]).unwrap();
            journal.flush().unwrap();
            let plan = FaultPlan::new().fail_flush(1);
            journal.inject_faults(plan.clone());
            journal.append(2, &["b", "c"]).unwrap();
            let error = journal.flush().unwrap_err();
            assert!(
                error.to_string().contains("injected i/o error at flush 1"),
                "{error}"
            );
            journal.discard(2).unwrap();
            assert_eq!(plan.injected().flushes, 1);
            // Dropping flushes: without the discard, seqs 2..=3 would land.
        }
        let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
        assert_eq!(journal.last_seq::<String>().unwrap(), 1);
    }

    #[test]
    fn every_flush_fdatasyncs_the_log_through_the_seam() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
        let plan = FaultPlan::new();
        journal.inject_faults(plan.clone());
        for seq in 1..=3 {
            journal.append(seq, &["x"]).unwrap();
            journal.flush().unwrap();
        }
        // One sync per flush: the log's fdatasync (sled's `db` or the
        // active segment).
        assert_eq!((plan.flushes(), plan.syncs()), (3, 3));
    }

    #[test]
    fn a_failed_sync_fails_the_flush_and_names_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
        let plan = FaultPlan::new().fail_sync(2);
        journal.inject_faults(plan.clone());
        journal.append(1, &["a"]).unwrap();
        journal.flush().unwrap();
        journal.append(2, &["b"]).unwrap();
        let error = journal.flush().unwrap_err();
        assert!(
            matches!(&error, crate::journal::JournalError::Sync { path, .. }
                if path.ends_with("db") || path.extension().is_some_and(|ext| ext == "seg")),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("injected i/o error at sync 2"),
            "{error}"
        );
        assert_eq!(error.io_kind(), Some(io::ErrorKind::Other));
        assert_eq!(plan.injected().syncs, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_async_flush_lets_the_runtimes_other_tasks_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
        let plan = FaultPlan::new()
            .flush_delay(Duration::from_millis(100))
            .fail_sync(2);
        journal.inject_faults(plan.clone());
        journal.append(1, &["a"]).unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other = tokio::spawn({
            let ran = Arc::clone(&ran);
            async move { ran.store(true, Ordering::SeqCst) }
        });
        // On a current-thread runtime the spawned task can only run while
        // the flush is pending: a flush that blocked the thread would
        // finish before it ran.
        journal.flush_async().await.unwrap();
        assert!(ran.load(Ordering::SeqCst), "the flush blocked the runtime");
        other.await.unwrap();
        assert_eq!((plan.flushes(), plan.syncs()), (1, 1));
        // A sync failing on the flush thread comes back as the flush's.
        journal.append(2, &["b"]).unwrap();
        let error = journal.flush_async().await.unwrap_err();
        assert!(
            error.to_string().contains("injected i/o error at sync 2"),
            "{error}"
        );
    }

    #[test]
    fn disk_full_stays_full_but_discard_still_goes_through() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
        let plan = FaultPlan::new().disk_full_at_write(1);
        journal.inject_faults(plan.clone());
        for seq in 1..=3 {
            let error = journal.append(seq, &["x"]).unwrap_err();
            assert_eq!(error.io_kind(), Some(io::ErrorKind::StorageFull));
        }
        journal.discard(1).unwrap();
        assert_eq!(plan.injected().disk_full, 3);
    }

    #[test]
    fn fail_checkpoint_write_fails_the_nth_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Checkpoints::open(dir.path(), "strings").unwrap();
        let plan = FaultPlan::new().fail_checkpoint_write(1);
        store.inject_faults(plan.clone());
        let state = State::<Ev>::new();
        let error = store.write::<Ev>(5, &state).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("injected i/o error at checkpoint write 1"),
            "{error}"
        );
        assert!(
            store.list().unwrap().is_empty(),
            "a failed checkpoint left a file"
        );
        store.write::<Ev>(5, &state).unwrap();
        assert_eq!(store.list().unwrap(), [5]);
        assert_eq!(plan.injected().checkpoint_writes, 1);
    }
}
