//! The journal's trees on disk: a small ordered key-value store with a
//! few named trees and atomic multi-tree writes, which is all the journal
//! needs from its storage (the journal's own modules say what each tree
//! holds and which writes must be atomic together).
//!
//! Two backends stand behind it, chosen by [`Backend`] when a journal is
//! created and recognised from the files when one is opened:
//!
//! * [`Backend::Segments`], the default: the `seglog` module, append-only
//!   segment files of crc-framed write batches, each batch made durable
//!   with one `fdatasync`, recovered as a prefix of what was written.
//! * [`Backend::Sled`]: sled 0.34.7, made durable by the `durable` module.
//!   Kept for the journals written before the segment log, and as a
//!   choice; its own recovery fails the power-cut simulator after some
//!   cuts (README, Known limitations).
//!
//! The store maps every backend error to a [`JournalError`] naming the
//! journal's path, so the journal's logic never sees a backend's types
//! beyond [`IVec`], the cheap shared byte string sled hands out (and the
//! segment log's values are turned into).

use std::ops::Bound;
use std::path::{Path, PathBuf};

use sled::IVec;

use super::JournalError;
use super::storage::Storage;

mod on_segments;
mod on_sled;

/// The storage a journal is written to. See the module docs of
/// [`crate::journal`] for what each is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// solostate's own segment-file log (the default): durable through a
    /// power cut by construction, and checked so by the power-cut
    /// simulator.
    #[default]
    Segments,
    /// sled 0.34.7, for journals written before the segment log, and for
    /// whoever prefers it. Made durable by the journal, but its own
    /// recovery sometimes cannot open its log after a power cut that
    /// reorders unsynced writes (see the README's Known limitations).
    Sled,
}

impl Backend {
    /// The backend whose files are in `dir`, if either's are: sled keeps
    /// a `conf` file, the segment log a `lock` file and `.seg` segments.
    pub fn detect(dir: &Path) -> Option<Backend> {
        if dir.join("conf").is_file() || dir.join("db").is_file() {
            Some(Backend::Sled)
        } else if on_segments::holds_segments(dir) {
            Some(Backend::Segments)
        } else {
            None
        }
    }
}

/// A tree of the journal (see the journal's module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tree {
    /// The timeline: batches and rollback markers, keyed by first seq.
    Records,
    /// Records rolled back out of the timeline.
    Archive,
    /// Records set aside by quarantine.
    Quarantine,
    /// The determinism guard's state hashes.
    StateHashes,
    /// The header and the pruned-through and resumed-after marks.
    Meta,
    /// The chunks of records too large for one sled value.
    Chunks,
}

impl Tree {
    /// Every tree, in the order of their ids.
    const ALL: [Tree; 6] = [
        Tree::Records,
        Tree::Archive,
        Tree::Quarantine,
        Tree::StateHashes,
        Tree::Meta,
        Tree::Chunks,
    ];

    /// The tree's id: its index in [`Tree::ALL`], and its tag in the
    /// segment log's frames (so it never changes).
    fn id(self) -> u8 {
        self as u8
    }

    /// The tree's name in sled (unchanged since the first journals).
    fn sled_name(self) -> &'static str {
        match self {
            Tree::Records => "journal",
            Tree::Archive => "archive",
            Tree::Quarantine => "quarantine",
            Tree::StateHashes => "state_hashes",
            Tree::Meta => "meta",
            Tree::Chunks => "chunks",
        }
    }
}

/// One write of an atomic batch.
#[derive(Debug, Clone, Copy)]
pub(super) enum Op<'a> {
    /// Sets `key` of the tree to the value.
    Insert(Tree, &'a [u8], &'a [u8]),
    /// Removes `key` from the tree (nothing if absent).
    Remove(Tree, &'a [u8]),
}

/// What opening a store found, beside the store.
pub(super) struct Opened {
    /// The store.
    pub(super) store: Store,
    /// Whether the files held any data before this open (a store with data
    /// but no journal header is a journal its backend lost, not a new one).
    pub(super) had_data: bool,
    /// What the segment log cut off its last segment at open: bytes after
    /// the last whole frame, never synced, so never acknowledged.
    pub(super) torn_tail: Option<TornTail>,
}

/// Bytes the segment log cut off the end of its last segment at open,
/// because they do not form whole, verifying frames: writes that were
/// never synced (a crash or a power cut in the middle of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the last whole frame ended: the file's length now.
    pub offset: u64,
    /// How many bytes were cut off.
    pub dropped_bytes: u64,
    /// Whether any of them was not zero. Always true when a frame was
    /// cut: a tail of zeros only is the log's preallocated free space (or
    /// a write whose data never arrived), which open keeps and does not
    /// report. It can be false only for a removed torn header.
    pub nonzero: bool,
    /// The segment's own header was torn (a power cut while the log moved
    /// on to a new segment, before it held any frame), so the file was
    /// removed: `offset` is then 0.
    pub header_torn: bool,
}

/// The journal's storage: one of the backends, behind one set of calls.
#[derive(Debug)]
pub(super) struct Store {
    path: PathBuf,
    backend: Inner,
}

#[derive(Debug)]
enum Inner {
    Sled(on_sled::SledStore),
    Segments(on_segments::SegStore),
}

/// Entries of one tree in key order, as [`Store::range`] gives them.
pub(super) struct Iter<'a> {
    inner: IterInner<'a>,
    path: &'a Path,
}

enum IterInner<'a> {
    Sled(sled::Iter),
    Segments(on_segments::SegIter<'a>),
}

impl Iterator for Iter<'_> {
    type Item = Result<(IVec, IVec), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterInner::Sled(iter) => Some(iter.next()?.map_err(|e| on_sled::error(self.path, e))),
            IterInner::Segments(iter) => iter.next(),
        }
    }
}

impl Store {
    /// Opens (or, with `create`, creates) the store of `backend` in
    /// `path`; `cache_bytes` is sled's page cache (the segment log keeps
    /// only its index in memory). `path` exists. (Tests only: the journal
    /// opens through [`Store::open_as`].)
    #[cfg(test)]
    pub(super) fn open(
        path: &Path,
        backend: Backend,
        cache_bytes: u64,
        create: bool,
    ) -> Result<Opened, JournalError> {
        Self::open_as(path, backend, cache_bytes, create, false)
    }

    /// [`Store::open`], and with `read_only` (never with `create`) the
    /// segment log opened for reading only (see
    /// [`Journal::open_read_only`](super::Journal::open_read_only)); sled
    /// has no read-only open, so it opens as usual.
    pub(super) fn open_as(
        path: &Path,
        backend: Backend,
        cache_bytes: u64,
        create: bool,
        read_only: bool,
    ) -> Result<Opened, JournalError> {
        let (backend, had_data, torn_tail) = match backend {
            Backend::Sled => {
                let (store, had_data) = on_sled::SledStore::open(path, cache_bytes)?;
                (Inner::Sled(store), had_data, None)
            }
            Backend::Segments => {
                let (store, had_data, torn_tail) =
                    on_segments::SegStore::open(path, create, read_only)?;
                (Inner::Segments(store), had_data, torn_tail)
            }
        };
        Ok(Opened {
            store: Store {
                path: path.to_path_buf(),
                backend,
            },
            had_data,
            torn_tail,
        })
    }

    /// Which backend this is.
    pub(super) fn backend(&self) -> Backend {
        match self.backend {
            Inner::Sled(_) => Backend::Sled,
            Inner::Segments(_) => Backend::Segments,
        }
    }

    /// The largest value the journal should store whole: sled writes
    /// values over about 131 KB to blob files it never syncs (the
    /// `chunks` module), the segment log has no such limit.
    pub(super) fn chunk_limit(&self) -> usize {
        match self.backend {
            Inner::Sled(_) => super::CHUNK_BYTES,
            Inner::Segments(_) => usize::MAX,
        }
    }

    /// The value at `key` of `tree`.
    pub(super) fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<IVec>, JournalError> {
        match &self.backend {
            Inner::Sled(store) => store.get(tree, key),
            Inner::Segments(store) => store.get(tree, key),
        }
    }

    /// The entries of `tree` with keys from `from` to `to`, in order.
    pub(super) fn range(&self, tree: Tree, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Iter<'_> {
        let inner = match &self.backend {
            Inner::Sled(store) => IterInner::Sled(store.range(tree, from, to)),
            Inner::Segments(store) => IterInner::Segments(store.range(tree, from, to)),
        };
        Iter {
            inner,
            path: &self.path,
        }
    }

    /// The entries of `tree` from `from` on.
    pub(super) fn range_from(&self, tree: Tree, from: &[u8]) -> Iter<'_> {
        self.range(tree, Bound::Included(from), Bound::Unbounded)
    }

    /// Every entry of `tree`.
    pub(super) fn iter(&self, tree: Tree) -> Iter<'_> {
        self.range(tree, Bound::Unbounded, Bound::Unbounded)
    }

    /// The entries of `tree` whose keys begin with `prefix`.
    pub(super) fn scan_prefix<'a>(
        &'a self,
        tree: Tree,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = Result<(IVec, IVec), JournalError>> + 'a {
        self.range_from(tree, prefix).take_while(move |item| {
            item.as_ref()
                .map_or(true, |(key, _)| key.starts_with(prefix))
        })
    }

    /// The keys of `tree` from `from` through `through`.
    pub(super) fn keys_between(
        &self,
        tree: Tree,
        from: &[u8],
        through: &[u8],
    ) -> Result<Vec<IVec>, JournalError> {
        self.range(tree, Bound::Included(from), Bound::Included(through))
            .map(|item| item.map(|(key, _)| key))
            .collect()
    }

    /// The entry with the first key of `tree`.
    pub(super) fn first(&self, tree: Tree) -> Result<Option<(IVec, IVec)>, JournalError> {
        match &self.backend {
            Inner::Sled(_) => self.iter(tree).next().transpose(),
            Inner::Segments(store) => store.first(tree),
        }
    }

    /// The entry with the last key of `tree`.
    pub(super) fn last(&self, tree: Tree) -> Result<Option<(IVec, IVec)>, JournalError> {
        match &self.backend {
            Inner::Sled(store) => store.last(tree),
            Inner::Segments(store) => store.last(tree),
        }
    }

    /// The entry with the greatest key at or before `key` in `tree`.
    pub(super) fn floor(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<(IVec, IVec)>, JournalError> {
        match &self.backend {
            Inner::Sled(store) => store.floor(tree, key),
            Inner::Segments(store) => store.floor(tree, key),
        }
    }

    /// Applies `ops` atomically: after any crash, all of them or none.
    /// Not durable until [`Store::flush`].
    pub(super) fn apply(&self, ops: &[Op<'_>]) -> Result<(), JournalError> {
        match &self.backend {
            Inner::Sled(store) => store.apply(ops),
            Inner::Segments(store) => store.apply(ops),
        }
    }

    /// A fresh id, never handed out before in this store (for chunked
    /// records and quarantines).
    pub(super) fn generate_id(&self) -> Result<u64, JournalError> {
        match &self.backend {
            Inner::Sled(store) => store.generate_id(),
            Inner::Segments(store) => store.generate_id(),
        }
    }

    /// Makes every write so far durable, through `storage` (the fault
    /// seam), blocking the calling thread.
    pub(super) fn flush(&self, storage: &dyn Storage) -> Result<(), JournalError> {
        match &self.backend {
            Inner::Sled(store) => store.flush(storage),
            Inner::Segments(store) => store.flush(storage),
        }
    }

    /// Reclaims space freed by removals, where the backend can: the
    /// segment log deletes old segments whose entries are mostly gone
    /// (after copying what is left of them forward). Returns the bytes
    /// reclaimed.
    pub(super) fn compact(&self) -> Result<u64, JournalError> {
        match &self.backend {
            Inner::Sled(_) => Ok(0),
            Inner::Segments(store) => store.compact(),
        }
    }

    /// sled's file handles, for the `durable` module's tests.
    #[cfg(test)]
    pub(super) fn sled_files(&self) -> Option<&super::durable::Files> {
        match &self.backend {
            Inner::Sled(store) => Some(store.files()),
            Inner::Segments(_) => None,
        }
    }

    /// The bytes the store uses on disk.
    pub(super) fn size_on_disk(&self) -> Result<u64, JournalError> {
        match &self.backend {
            Inner::Sled(store) => store.size_on_disk(),
            Inner::Segments(store) => Ok(store.size_on_disk()),
        }
    }
}
