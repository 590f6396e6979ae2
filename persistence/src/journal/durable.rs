//! What makes a flushed journal survive a power cut on sled 0.34.7.
//!
//! sled's `flush` writes its buffers and calls `sync_file_range` on its
//! log file `db` (`pagecache/iobuf.rs`). That starts and waits for the
//! writeback of those pages, but commits neither the file's grown size
//! and new extents (the filesystem's metadata) nor the device's volatile
//! cache: after a power cut the bytes can be gone even though the flush
//! returned. So after every sled flush the journal `fdatasync`s `db`
//! through a [`File`] of its own, opened once at open (an `fsync` acts on
//! the file, not on the descriptor, so ours covers sled's writes).
//!
//! `fdatasync` rather than `fsync`: sled's log grows by writing segments
//! past its end (it never preallocates), so the size and the extents
//! change with the data. `fdatasync` commits exactly the metadata needed
//! to read the data back, size and extents included (ext4 and xfs log the
//! inode for a datasync whenever anything but timestamps changed); only
//! the modification times are left, which nothing reads.
//!
//! What else sled writes, and why it is covered (from sled 0.34.7's
//! source):
//!
//! * `conf`, written once when the database is created and never synced by
//!   sled, and the names `conf`, `db`, `blobs/` and `snap.*` in the
//!   journal's directory: synced once at open ([`Files::open`]), which is
//!   when sled creates or renames them (it writes its snapshot only while
//!   opening; its data is synced, its rename is not).
//! * Blob files in `blobs/`, for any page fragment over 131,020 bytes
//!   (`pagecache/logger.rs`): written by `blob_io::write_blob` and never
//!   synced. The journal keeps every value small enough that sled never
//!   writes one (see the `chunks` module); [`Files::sync`] still syncs
//!   any blob file it finds after a flush, and the directory, and warns,
//!   so that a journal written by an older build (or a page that
//!   outgrows the analysis) stays durable, if slower.
//! * Truncations and the zeroing of torn segments at recovery: sled
//!   `sync_all`s those itself.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::flush_thread::FlushThread;
use super::storage::{Storage, Sync};
use super::{Journal, JournalError};

/// The journal's own handles on sled's files, for syncing them.
#[derive(Debug)]
pub(super) struct Files {
    /// The journal's directory.
    pub(super) dir: PathBuf,
    /// sled's log, opened read-only: fsyncing it syncs sled's writes.
    db: File,
    /// sled's blob directory.
    blobs: PathBuf,
    /// Blob files already synced, so a journal that has some does not
    /// sync them again at every flush.
    synced_blobs: Mutex<HashSet<OsString>>,
    /// Whether the warning about a blob written by sled was given.
    warned: AtomicBool,
}

impl Files {
    /// Opens sled's log for syncing and makes everything sled created or
    /// renamed while opening durable: the data of `conf` and `db`, any
    /// blob files, and the entries of `blobs/` and of the journal's
    /// directory. Runs after sled opened the database in `dir`.
    pub(super) fn open(dir: &Path, storage: &dyn Storage) -> Result<Files, JournalError> {
        let db_path = dir.join("db");
        let db = File::open(&db_path).map_err(|source| JournalError::Sync {
            path: db_path.clone(),
            source,
        })?;
        let files = Files {
            dir: dir.to_path_buf(),
            db,
            blobs: dir.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
            warned: AtomicBool::new(true),
        };
        let conf = dir.join("conf");
        sync(storage, Sync::File(&conf), &conf)?;
        sync(storage, Sync::Data(&files.db), &db_path)?;
        files.sync_blobs(storage)?;
        sync(storage, Sync::Dir(dir), dir)?;
        files.warned.store(false, Ordering::Relaxed);
        Ok(files)
    }

    /// Makes what sled's flush wrote durable: `fdatasync` of `db`, then
    /// any blob file not synced before, and then their directory.
    pub(super) fn sync(&self, storage: &dyn Storage) -> Result<(), JournalError> {
        sync(storage, Sync::Data(&self.db), &self.dir.join("db"))?;
        self.sync_blobs(storage)
    }

    /// Syncs blob files that were not synced before, and then `blobs/`.
    /// One directory read when there are none.
    fn sync_blobs(&self, storage: &dyn Storage) -> Result<(), JournalError> {
        let listing = std::fs::read_dir(&self.blobs);
        let entries = match listing {
            Ok(entries) => entries,
            // A journal being opened by sled always has one; a missing one
            // holds no blobs to sync.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(JournalError::Sync {
                    path: self.blobs.clone(),
                    source,
                });
            }
        };
        let mut synced = self
            .synced_blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut new = 0usize;
        for entry in entries {
            let entry = entry.map_err(|source| JournalError::Sync {
                path: self.blobs.clone(),
                source,
            })?;
            let name = entry.file_name();
            if synced.contains(&name) {
                continue;
            }
            let path = entry.path();
            match storage.sync(Sync::File(&path)) {
                // sled removes a blob (from whichever thread writes) once
                // nothing points to it: nothing left to sync, and its
                // removal is made durable by the directory sync below.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(JournalError::Sync { path, source }),
                Ok(()) => {
                    synced.insert(name);
                }
            }
            new += 1;
        }
        if new > 0 {
            // Removed blobs leave stale names in the set; harmless, and
            // sled never reuses a blob's name (it is the lsn).
            sync(storage, Sync::Dir(&self.blobs), &self.blobs)?;
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    path = %self.blobs.display(),
                    new,
                    "sled wrote blob files; they were synced, but the journal should never make sled write one"
                );
            }
        }
        Ok(())
    }
}

/// Runs one sync through `storage`, naming `path` on failure.
fn sync(storage: &dyn Storage, what: Sync<'_>, path: &Path) -> Result<(), JournalError> {
    storage.sync(what).map_err(|source| JournalError::Sync {
        path: path.to_path_buf(),
        source,
    })
}

impl Journal {
    /// Makes every write so far durable through a power cut, blocking the
    /// calling thread. On the segment log: `fdatasync` of the active
    /// segment (earlier ones were synced when the log moved past them).
    /// On sled: sled's flush (its buffers written, then `sync_file_range`
    /// on its log, which commits neither the log's grown size nor the
    /// device's cache), then `fdatasync` of the log through the journal's
    /// own handle, then any blob file sled wrote (it should write none;
    /// see the module docs).
    ///
    /// # Errors
    ///
    /// [`JournalError::Storage`] when sled cannot write, and
    /// [`JournalError::Sync`] when a sync fails.
    pub fn flush(&self) -> Result<(), JournalError> {
        self.store.flush(&*self.storage)
    }

    /// [`Journal::flush`] without blocking the calling thread: the flush
    /// and the `fdatasync` run on the journal's flush thread (started by
    /// the first call), and the returned future waits for them on any
    /// executor. For an async owner, on a current-thread runtime too.
    ///
    /// # Errors
    ///
    /// The errors of [`Journal::flush`], and [`JournalError::Sync`] naming
    /// the journal directory when the flush thread cannot be started or
    /// the flush panicked.
    pub async fn flush_async(&self) -> Result<(), JournalError> {
        self.start_flush()?.wait().await
    }

    /// Starts [`Journal::flush`] on the journal's flush thread now, and
    /// returns at once: the caller goes on working (the engine's owner
    /// applies its next batch) and awaits [`PendingFlush::wait`] later.
    /// The flush covers every write made before this call; writes made
    /// after it may or may not be covered, so a caller that needs one
    /// durable starts another flush after it.
    ///
    /// Unlike the future of [`Journal::flush_async`], which sends the job
    /// only when first polled, the flush is under way when this returns.
    ///
    /// # Errors
    ///
    /// [`JournalError::Sync`] naming the journal directory when the flush
    /// thread cannot be started.
    pub fn start_flush(&self) -> Result<PendingFlush, JournalError> {
        let stopped = || JournalError::Sync {
            path: self.path.clone(),
            source: std::io::Error::other("the journal's flush thread is gone"),
        };
        let thread = match self.flush_thread.get() {
            Some(thread) => thread,
            None => {
                let spawned = FlushThread::spawn().map_err(|source| JournalError::Sync {
                    path: self.path.clone(),
                    source,
                })?;
                // A racing caller may have set it first; either is fine.
                let _ = self.flush_thread.set(spawned);
                self.flush_thread.get().expect("just set")
            }
        };
        let (store, storage) = (Arc::clone(&self.store), Arc::clone(&self.storage));
        let result = thread
            .start(move || store.flush(&*storage))
            .ok_or_else(stopped)?;
        Ok(PendingFlush {
            result,
            path: self.path.clone(),
        })
    }

    /// Sends this journal's writes, flushes and syncs through `plan` from
    /// now on, so that a test can fail chosen ones (feature
    /// `fault-injection`; see [`crate::faults`]). Testing only.
    #[cfg(feature = "fault-injection")]
    pub fn inject_faults(&mut self, plan: crate::faults::FaultPlan) {
        self.storage = Arc::new(plan);
    }
}

/// A flush under way on the journal's flush thread, from
/// [`Journal::start_flush`].
#[derive(Debug)]
#[must_use = "a flush is only known to have succeeded once `wait` says so"]
pub struct PendingFlush {
    result: flume::Receiver<Result<(), JournalError>>,
    path: PathBuf,
}

impl PendingFlush {
    /// Whether the flush has ended (so that [`wait`](Self::wait) returns
    /// at once), without waiting.
    pub fn is_done(&self) -> bool {
        !self.result.is_empty() || self.result.is_disconnected()
    }

    /// Waits, without blocking the thread, for the flush to end.
    ///
    /// Cancel-safe: dropping the future before it is ready loses
    /// nothing, and a later call waits for the same flush. Once it has
    /// returned, the outcome is spent: a second call reports the flush
    /// thread as gone.
    ///
    /// # Errors
    ///
    /// The errors of [`Journal::flush`], and [`JournalError::Sync`] naming
    /// the journal directory when the flush panicked.
    pub async fn wait(&self) -> Result<(), JournalError> {
        self.result.recv_async().await.unwrap_or_else(|_| {
            Err(JournalError::Sync {
                path: self.path.clone(),
                source: std::io::Error::other(
                    "the journal's flush panicked; its writes may not be durable",
                ),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::storage::{Os, Write};
    use crate::journal::{Backend, store::Store};

    /// Removes a blob file just before syncing it: sled removing a blob
    /// from another thread between the directory listing and the sync.
    #[derive(Debug)]
    struct RemovesBlobs;

    impl Storage for RemovesBlobs {
        fn write(&self, what: Write) -> std::io::Result<()> {
            Os.write(what)
        }
        fn before_flush(&self) -> std::io::Result<()> {
            Os.before_flush()
        }
        fn sync(&self, what: Sync<'_>) -> std::io::Result<()> {
            match what {
                Sync::File(path) if path.parent().is_some_and(|dir| dir.ends_with("blobs")) => {
                    std::fs::remove_file(path)?;
                }
                _ => {}
            }
            Os.sync(what)
        }
    }

    #[test]
    fn a_blob_removed_by_sled_while_it_is_synced_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Store::open(dir.path(), Backend::Sled, 1 << 20, true).unwrap();
        let files = opened.store.sled_files().unwrap();
        std::fs::write(dir.path().join("blobs").join("12345"), b"blob").unwrap();
        files.sync(&RemovesBlobs).unwrap();
        // A blob still there is synced, and only once.
        std::fs::write(dir.path().join("blobs").join("12346"), b"blob").unwrap();
        files.sync(&Os).unwrap();
        files.sync(&RemovesBlobs).unwrap();
        assert!(dir.path().join("blobs").join("12346").exists());
    }
}
