//! `seglog`: a small durable, ordered key-value store of our own, with
//! several trees and atomic multi-tree write batches, built as append-only
//! segment files whose durability we argue here from first principles and
//! whose every `fsync` we issue ourselves.
//!
//! It exists because sled 0.34.7's own recovery fails the power-cut
//! simulator: after a cut that keeps a random subset of unsynced writes,
//! sled cannot open its log. The journal's semantics (records by seq,
//! archive, quarantine, state hashes, chunks; rollback, prune, quarantine)
//! stay in the journal, which needs only what this offers.
//!
//! It is public for other stores that need the same guarantees: the
//! replication crate keeps its Raft log (entries, vote, applied point) in
//! one, so that a power cut there is judged by the same argument as the
//! journal's.
//!
//! # On disk
//!
//! A directory holds a `lock` file (held with an exclusive
//! `File::try_lock` for the log's lifetime: a second open is
//! [`SegError::AlreadyOpen`]) and segments named `<16 hex digits>.seg`,
//! numbered from 1 and consecutive (only the oldest is ever deleted).
//! Every integer is little-endian.
//!
//! * A segment starts with a 28-byte header: magic `SSEGLOG1`, the segment
//!   number (u64), the frame number of its first frame (u64), and a crc32
//!   of those 24 bytes. The first-frame field (beyond a bare segment
//!   number) lets open check the frame chain across every segment
//!   boundary, even into a segment that holds no frame yet.
//! * Then frames: `len: u32` (payload bytes), `crc: u32` (crc32 over the
//!   frame number and the payload), `frame_no: u64` (global: +1 per frame
//!   across segments), and the payload: ops, each `tag: u8` (1 insert,
//!   2 remove), `tree: u8`, `key_len: u32`, the key, and for an insert
//!   `value_len: u32` and the value. Keys and values are arbitrary bytes
//!   up to `u32::MAX` each; a frame's payload is at most `u32::MAX` bytes
//!   ([`SegError::TooLarge`] beyond), which holds a 256 MiB record with
//!   room to spare.
//!
//! One frame is one [`SegLog::apply`]: it is the unit of atomicity. Its
//! ops take effect in order, so a later op on the same key wins. Frame
//! numbers start at 1 in a new log, so a zero-filled region (what a power
//! cut leaves of pages that were never written back) can never pass for a
//! frame: its number would read 0.
//!
//! # What is durable, and why recovery yields a prefix
//!
//! [`SegLog::apply`] only `write`s; nothing it writes is durable until
//! [`SegLog::sync`] (an `fdatasync` of the active segment) returns. The
//! log rolls over to a new segment only after `fdatasync`ing the old one,
//! writing and `fdatasync`ing the new one's header, and fsyncing the
//! directory. Hence, at any instant, every segment but the last is
//! entirely durable, and so is the last one's header.
//!
//! After a power cut the last segment can hold any subset of the pages
//! written since its last `fdatasync` (or a torn prefix of them), with the
//! rest reading as zeros or as whatever was there before. Open scans the
//! frames in order, and the first frame that does not verify (cut short,
//! a length past the end of the file, a frame number that is not the
//! previous one plus one, a bad crc, ops that do not decode) ends the log:
//! everything from there is cut off (`set_len` + `fdatasync`) and reported
//! in [`TailCut`], unless it is all zeros (free space: see
//! Preallocation). A frame verifies only if every one of its bytes is the
//! bytes we wrote for that frame number (up to crc32's odds), and frame
//! numbers rise by one, so what survives is frames 1..=k exactly as they
//! were applied: a **prefix** of the applied frames. Every frame applied
//! before a `sync()` that returned was on durable pages, so it verifies,
//! and so does everything before it: the prefix contains every synced
//! frame.
//!
//! The cut is made durable before anything new is appended. Otherwise new
//! frames, written over the cut, could after another power cut be
//! followed by a stale old frame that happens to sit at the right offset
//! with the right number: a frame from a branch of history that was
//! dropped. Likewise a failed write is truncated back to the frame's
//! start before the error is returned (and the log is poisoned if even
//! that fails).
//!
//! Anywhere but the tail of the last segment (a non-last segment, or a
//! header) nothing was unsynced, so a frame that does not verify there is
//! damage: [`SegError::Corrupt`], never skipped. The one exception is a
//! last segment no longer than a header whose header does not verify: the
//! power went while rolling over to it, before it held any frame, so it is
//! removed (the directory synced) and reported as a [`TailCut`] with
//! `header_torn`.
//!
//! # Preallocation
//!
//! The active segment is zero-filled [`Options::preallocate_bytes`]
//! (1 MiB) past its last frame whenever its frames reach the end of what
//! was filled before, never past `segment_bytes`. So most frames overwrite
//! blocks that already exist, and the `fdatasync` after them has data to
//! write but no new file length to commit; the one that reaches the end
//! carries the next fill with it. Zeros are safe to leave behind: no frame
//! is all zeros (its number is at least 1), so open treats zeros from the
//! first invalid frame to the end of the last segment as free space,
//! neither cut nor reported, and appends over them. Anything non-zero
//! there is a torn frame and is cut as below. A segment the log rolls over
//! from is first truncated to its last frame, in the same `fdatasync` that
//! makes it whole, so every segment but the last still ends exactly at a
//! frame.
//!
//! # Compaction
//!
//! [`SegLog::compact`] deletes segments whose live bytes (values an index
//! entry still points to) are at most a quarter of their length. It only
//! ever takes the **oldest** segment, and never the active one: it appends
//! that segment's live entries to the active segment (as insert frames),
//! `fdatasync`s the active segment (making those copies, and every
//! removal that shadows the rest of the old segment, durable), deletes
//! the file and fsyncs the directory before it considers the next one.
//!
//! Why that is safe: every key the deleted segment held is either copied
//! forward (durably) or shadowed by a later insert or removal in a
//! segment that still exists, synced. A removal in the deleted segment
//! could only shadow keys in the same segment or in older ones, and those
//! are already gone (their deletion was durable before this one began),
//! so dropping the removal resurrects nothing. If a power cut undoes a
//! deletion (the directory fsync had not happened), the segment reappears
//! as the oldest, and replaying it before the segments that follow it is
//! harmless: everything it says is then said again, or overridden, later.
//!
//! # Concurrency
//!
//! [`SegLog`] is `Send + Sync` and every method takes `&self`. Writers
//! (`apply`, `compact`) serialise on one lock; the index is behind a
//! read-write lock that a writer takes only to update entries after the
//! bytes are written, and readers take only briefly to locate a value,
//! which they then read from the file outside any lock. [`SegLog::sync`]
//! takes neither lock while it waits on `fdatasync`, so a flush thread
//! never blocks the writer, and `range` re-locates its next key at each
//! step, so the caller may `apply` while iterating.
//!
//! Values are verified (crc) when open replays them; later reads trust the
//! file, so rot after open is caught by the journal's own record crc.
//!
//! This targets Unix: a reader may still read from a segment compaction
//! has just unlinked, through its open handle.

mod compact;
mod error;
mod format;
mod grow;
mod index;
mod range;
mod replay;
pub(crate) use replay::holds_log;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_damage;
#[cfg(test)]
mod tests_full;
#[cfg(test)]
mod tests_model;
#[cfg(test)]
mod tests_order;
mod trace;

use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use error::SegError;
use error::io_error;
use index::{Index, Loc};
pub use range::Range;

/// A key and its value, as reads return them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// How a log is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Roll over to a new segment file once the active one exceeds this
    /// many bytes. Smaller segments let compaction reclaim a pruned prefix
    /// sooner; each rollover costs two `fdatasync`s and a directory fsync.
    pub segment_bytes: u64,
    /// How far past its last frame the active segment is zero-filled
    /// ahead of the frames (0: never). See the module docs, on
    /// preallocation.
    pub preallocate_bytes: u64,
}

impl Default for Options {
    /// 64 MiB segments, preallocated 1 MiB at a time.
    fn default() -> Self {
        Options {
            segment_bytes: 64 << 20,
            preallocate_bytes: 1 << 20,
        }
    }
}

/// One change in a write batch; a batch is applied all or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Sets `key` in `tree` to `value`.
    Insert {
        /// The tree (the journal's records, archive, meta, ... trees).
        tree: u8,
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Removes `key` from `tree` (nothing if it is absent).
    Remove {
        /// The tree.
        tree: u8,
        /// The key.
        key: &'a [u8],
    },
}

/// What [`SegLog::open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The open log.
    pub log: SegLog,
    /// Whether open created the log (there was no segment yet). The
    /// journal tells a new journal by its missing header instead (a log
    /// can exist and still hold nothing); the tests read this.
    pub created: bool,
    /// What open cut off the end of the last segment, if anything: the
    /// caller reports it (invariant: anything decided at open is
    /// reported).
    pub tail: Option<TailCut>,
}

/// What open cut off the last segment: everything past `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailCut {
    /// The segment that was cut (or removed, with `header_torn`).
    pub segment: PathBuf,
    /// The end of its last valid frame (0 when the file was removed).
    pub offset: u64,
    /// How many bytes were dropped.
    pub dropped_bytes: u64,
    /// Whether any dropped byte was non-zero: always, for a cut frame (a
    /// tail of zeros only is preallocated free space, neither cut nor
    /// reported); a removed torn header may have been zeros.
    pub nonzero: bool,
    /// The segment's own header was torn (a power cut while rolling over
    /// to it, before it held any frame), so the file was removed and the
    /// directory synced.
    pub header_torn: bool,
}

/// The writer's side: the active segment and where the next frame goes.
/// Behind one mutex, so `apply` and `compact` serialise.
struct Writer {
    /// The active segment's number.
    segment: u64,
    /// Its file.
    file: Arc<File>,
    /// Its path.
    path: PathBuf,
    /// Where its frames end: where the next frame starts.
    end: u64,
    /// The file's length: `end` plus the zeros preallocated past it.
    allocated: u64,
    /// The next frame's number.
    next_frame: u64,
}

/// The active segment's handle, for `sync` and `active_file`, behind a
/// lock of its own that is held only to clone it: a flush thread never
/// waits for the writer, and never makes it wait.
struct Active {
    /// The segment's number.
    segment: u64,
    /// The file.
    file: Arc<File>,
    /// Its path, for errors.
    path: PathBuf,
}

/// An open segment log. See the module docs for the format and the
/// durability argument.
pub struct SegLog {
    /// The log's directory.
    dir: PathBuf,
    /// Its layout.
    options: Options,
    /// The writer's state (lock order: `writer`, then `index`).
    writer: Mutex<Writer>,
    /// The index, read by readers and updated by the writer.
    index: RwLock<Index>,
    /// The active segment's handle, for syncs.
    active: Mutex<Active>,
    /// Set once a write or sync fails in a way that may have lost data.
    poisoned: AtomicBool,
    /// The held `lock` file: dropping it releases the directory. `None`
    /// only for a read-only open of a log that has no `lock` file.
    _lock: Option<File>,
    /// The durability steps taken, in order, for tests of that order.
    #[cfg(test)]
    steps: Mutex<Vec<trace::Step>>,
}

impl std::fmt::Debug for SegLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Takes a mutex, ignoring std's poisoning: every critical section here
/// leaves its data consistent (or sets our own `poisoned` flag).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SegLog {
    /// Opens the log in `dir`, replaying every segment to rebuild the
    /// index and cutting off a torn tail (see the module docs). With
    /// `create`, a missing directory or log is created (and made durable).
    ///
    /// # Errors
    ///
    /// [`SegError::NotFound`] without `create` when there is no segment;
    /// [`SegError::AlreadyOpen`] when another owner still holds the
    /// directory's lock after about 500 ms of retries; [`SegError::Corrupt`] for damage
    /// anywhere but the last segment's tail; [`SegError::Io`].
    pub fn open(dir: &Path, create: bool, options: Options) -> Result<Opened, SegError> {
        replay::open(dir, create, false, options)
    }

    /// Opens the existing log in `dir` for reading only, for inspection
    /// tools: nothing in the directory is created, cut or removed, and the
    /// files are opened read-only, so the log cannot be written through
    /// it. The lock is still taken (read-only handles can hold it), so a
    /// writer that has the log open is refused with
    /// [`SegError::AlreadyOpen`] and none can open it meanwhile. A torn
    /// tail a writer's open would cut (or a torn last header it would
    /// remove) is reported in [`Opened::tail`] as if cut, and the index
    /// ends before it.
    ///
    /// # Errors
    ///
    /// As [`SegLog::open`] without `create`.
    pub fn open_read_only(dir: &Path, options: Options) -> Result<Opened, SegError> {
        replay::open(dir, false, true, options)
    }

    /// Applies `ops` as one frame: after any crash or power cut, all of
    /// them or none. The frame is written (one `write` at the end of the
    /// active segment), not synced: [`SegLog::sync`] makes it durable.
    ///
    /// # Errors
    ///
    /// [`SegError::Poisoned`]; [`SegError::TooLarge`]; [`SegError::Io`]
    /// when the write fails (the segment is cut back to where the frame
    /// began, so nothing of it remains) or a rollover fails (poisoning).
    pub fn apply(&self, ops: &[Op<'_>]) -> Result<(), SegError> {
        let mut writer = lock(&self.writer);
        self.check_poisoned()?;
        self.append_frame(&mut writer, ops)?;
        self.roll_if_full(&mut writer)
    }

    /// The value of `key` in `tree`.
    ///
    /// # Errors
    ///
    /// [`SegError::Io`] reading the value.
    pub fn get(&self, tree: u8, key: &[u8]) -> Result<Option<Vec<u8>>, SegError> {
        let found = self.read_index().locate(tree, key);
        match found {
            None => Ok(None),
            Some((loc, file)) => self.read_value(&file, loc).map(Some),
        }
    }

    /// The entries of `tree` within the bounds, in ascending key order.
    /// No lock is held between steps: each step re-locates the first key
    /// after the one it returned last, so the caller may `apply` while
    /// iterating (remove what it returns, say) and sees its own changes to
    /// keys it has not reached yet.
    pub fn range(&self, tree: u8, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> Range<'_> {
        Range {
            log: self,
            tree,
            from,
            to,
            done: false,
        }
    }

    /// The keys of `tree` within the bounds, ascending, read at one
    /// instant and without their values: for a caller that removes a
    /// range (the Raft log's truncate and purge) and needs no value.
    pub fn keys(&self, tree: u8, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Vec<Vec<u8>> {
        self.read_index().keys_in(tree, from, to)
    }

    /// The entry of `tree` with the smallest key.
    ///
    /// # Errors
    ///
    /// [`SegError::Io`] reading the value.
    pub fn first(&self, tree: u8) -> Result<Option<Entry>, SegError> {
        self.edge(tree, false)
    }

    /// The entry of `tree` with the greatest key at or before `key`.
    ///
    /// # Errors
    ///
    /// [`SegError::Io`] reading the value.
    pub fn floor(&self, tree: u8, key: &[u8]) -> Result<Option<Entry>, SegError> {
        let found = self.read_index().floor(tree, key);
        match found {
            None => Ok(None),
            Some((key, loc, file)) => Ok(Some((key, self.read_value(&file, loc)?))),
        }
    }

    /// The entry of `tree` with the largest key.
    ///
    /// # Errors
    ///
    /// [`SegError::Io`] reading the value.
    pub fn last(&self, tree: u8) -> Result<Option<Entry>, SegError> {
        self.edge(tree, true)
    }

    /// The active segment's file. `fdatasync`ing it makes every frame
    /// applied before this call durable: earlier segments were synced
    /// when the log rolled over from them. For a flush thread that wants
    /// to sync without going through [`SegLog::sync`].
    /// (Tests only: the journal syncs through [`SegLog::sync_with`].)
    #[cfg(test)]
    pub(crate) fn active_file(&self) -> Arc<File> {
        Arc::clone(&lock(&self.active).file)
    }

    /// Makes every frame applied before the call durable
    /// (`fdatasync` of the active segment). Holds no lock while it waits,
    /// so the writer keeps applying.
    ///
    /// # Errors
    ///
    /// [`SegError::Poisoned`]; [`SegError::Io`] when the sync fails, which
    /// poisons the log: after a failed `fdatasync` the kernel may have
    /// dropped the dirty pages, so no later sync could vouch for them.
    pub fn sync(&self) -> Result<(), SegError> {
        self.sync_with(File::sync_data)
    }

    /// [`SegLog::sync`] with `sync` doing the `fdatasync` of the active
    /// segment's file: for a caller that routes its syncs through a seam
    /// of its own (the journal's fault plan). A failure poisons the log
    /// just the same, and names the segment.
    ///
    /// # Errors
    ///
    /// Those of [`SegLog::sync`].
    pub(crate) fn sync_with(
        &self,
        sync: impl FnOnce(&File) -> std::io::Result<()>,
    ) -> Result<(), SegError> {
        self.check_poisoned()?;
        let (segment, file, path) = {
            let active = lock(&self.active);
            (
                active.segment,
                Arc::clone(&active.file),
                active.path.clone(),
            )
        };
        sync(&file).map_err(|source| {
            self.poison();
            SegError::Io { path, source }
        })?;
        self.record(trace::Step::SyncFile(segment));
        Ok(())
    }

    /// Compacts from the oldest segment on; see the module docs. Returns
    /// the bytes reclaimed (0 when no segment qualified).
    ///
    /// # Errors
    ///
    /// [`SegError::Poisoned`]; [`SegError::Io`] (a failed sync or
    /// directory sync poisons the log).
    pub fn compact(&self) -> Result<u64, SegError> {
        compact::compact(self)
    }

    /// The sum of the segment files' lengths.
    pub fn size_on_disk(&self) -> u64 {
        self.read_index().size_on_disk()
    }

    /// Whether no tree holds a live key.
    pub fn is_empty(&self) -> bool {
        self.read_index().is_empty()
    }

    /// The log's directory.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The index, for reading.
    fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index, for updating.
    fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses writes once poisoned.
    fn check_poisoned(&self) -> Result<(), SegError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(SegError::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Marks the log poisoned.
    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    /// Reads the value at `loc` from `file`.
    fn read_value(&self, file: &File, loc: Loc) -> Result<Vec<u8>, SegError> {
        let mut value = vec![0u8; loc.len as usize];
        format::read_at(file, &mut value, loc.offset)
            .map_err(io_error(&self.dir.join(format::segment_name(loc.segment))))?;
        Ok(value)
    }

    /// The first or last entry of `tree`.
    fn edge(&self, tree: u8, last: bool) -> Result<Option<Entry>, SegError> {
        let found = self.read_index().edge(tree, last);
        match found {
            None => Ok(None),
            Some((key, loc, file)) => Ok(Some((key, self.read_value(&file, loc)?))),
        }
    }

    /// Writes `ops` as the next frame at the end of the active segment,
    /// then points the index at it.
    fn append_frame(&self, writer: &mut Writer, ops: &[Op<'_>]) -> Result<(), SegError> {
        let frame =
            format::encode_frame(writer.next_frame, ops).map_err(|bytes| SegError::TooLarge {
                path: self.dir.clone(),
                bytes,
                limit: format::MAX_PAYLOAD,
            })?;
        let start = writer.end;
        if let Err(source) = format::write_at(&writer.file, &frame.bytes, start) {
            // Nothing of a failed frame may stay: a later frame written
            // after it would hide a partial one from the tail cut.
            if writer.file.set_len(start).is_err() {
                self.poison();
            }
            writer.allocated = start;
            return Err(SegError::Io {
                path: writer.path.clone(),
                source,
            });
        }
        writer.end = start + frame.bytes.len() as u64;
        writer.next_frame += 1;
        self.record(trace::Step::Write(writer.segment));
        self.preallocate(writer);
        let mut index = self.write_index();
        for (op, value) in ops.iter().zip(frame.values) {
            match (op, value) {
                (Op::Insert { tree, key, .. }, Some((at, len))) => {
                    let loc = Loc {
                        segment: writer.segment,
                        offset: start + at,
                        len,
                    };
                    index.insert(*tree, key.to_vec(), loc);
                }
                (Op::Remove { tree, key }, _) => index.remove(*tree, key),
                (Op::Insert { .. }, None) => {}
            }
        }
        if let Some(segment) = index.segments.get_mut(&writer.segment) {
            segment.len = writer.allocated;
        }
        Ok(())
    }
}
