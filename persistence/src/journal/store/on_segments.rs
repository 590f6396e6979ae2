//! The store on the segment log (`crate::seglog`): each journal tree is a
//! tree of the log, each atomic batch one frame, and a flush one
//! `fdatasync` of the active segment.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sled::IVec;

use super::{Op, TornTail, Tree};
use crate::journal::JournalError;
use crate::journal::storage::{Storage, Sync};
use crate::seglog::{self, SegError, SegLog};

/// Whether `dir` holds a segment log's files.
pub(super) fn holds_segments(dir: &Path) -> bool {
    seglog::holds_log(dir)
}

/// A journal's segment log.
#[derive(Debug)]
pub(in crate::journal) struct SegStore {
    log: SegLog,
    /// The next id [`SegStore::generate_id`] hands out: one past the
    /// largest id any chunk or quarantine key holds, found at open. An id
    /// is only ever written in the same frame as what it names, so an id
    /// handed out and then lost in a crash is lost with its only use.
    next_id: AtomicU64,
    path: PathBuf,
}

/// The journal error for a segment log error.
pub(super) fn error(source: SegError) -> JournalError {
    match source {
        SegError::AlreadyOpen { path } => JournalError::AlreadyOpen { path },
        SegError::NotFound { path } => JournalError::NotFound { path },
        SegError::Io { path, source } => JournalError::Io { path, source },
        SegError::Corrupt {
            path,
            offset,
            reason,
        } => JournalError::BadSegment {
            path,
            offset,
            reason,
        },
        SegError::TooLarge { path, bytes, limit } => JournalError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "one atomic write of {bytes} bytes is over the segment log's {limit}-byte frame \
                     limit (nothing was written)"
                ),
            ),
        },
        SegError::Poisoned { path } => JournalError::Io {
            path,
            source: std::io::Error::other(
                "an earlier write or sync of the segment log failed, so it refuses writes until \
                 it is reopened",
            ),
        },
    }
}

impl SegStore {
    /// Opens (or creates) the log in `path`, or with `read_only` opens it
    /// for reading only ([`SegLog::open_read_only`]). Also says whether it
    /// held any data, and what it cut (or, read-only, would cut) off its
    /// last segment.
    pub(super) fn open(
        path: &Path,
        create: bool,
        read_only: bool,
    ) -> Result<(SegStore, bool, Option<TornTail>), JournalError> {
        let opened = if read_only {
            SegLog::open_read_only(path, seglog::Options::default())
        } else {
            SegLog::open(path, create, seglog::Options::default())
        }
        .map_err(error)?;
        let log = opened.log;
        let had_data = !log.is_empty();
        let torn_tail = opened.tail.map(|tail| TornTail {
            segment: tail.segment,
            offset: tail.offset,
            dropped_bytes: tail.dropped_bytes,
            nonzero: tail.nonzero,
            header_torn: tail.header_torn,
        });
        let mut next_id = 1;
        for tree in [Tree::Chunks, Tree::Quarantine] {
            if let Some((key, _)) = log.last(tree.id()).map_err(error)? {
                let id = key
                    .first_chunk::<8>()
                    .map_or(0, |id| u64::from_be_bytes(*id));
                next_id = next_id.max(id.saturating_add(1));
            }
        }
        let store = SegStore {
            log,
            next_id: AtomicU64::new(next_id),
            path: path.to_path_buf(),
        };
        Ok((store, had_data, torn_tail))
    }

    pub(super) fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<IVec>, JournalError> {
        Ok(self.log.get(tree.id(), key).map_err(error)?.map(IVec::from))
    }

    pub(super) fn range(&self, tree: Tree, from: Bound<&[u8]>, to: Bound<&[u8]>) -> SegIter<'_> {
        SegIter {
            inner: self
                .log
                .range(tree.id(), from.map(<[u8]>::to_vec), to.map(<[u8]>::to_vec)),
        }
    }

    pub(super) fn first(&self, tree: Tree) -> Result<Option<(IVec, IVec)>, JournalError> {
        Ok(self.log.first(tree.id()).map_err(error)?.map(pair))
    }

    pub(super) fn last(&self, tree: Tree) -> Result<Option<(IVec, IVec)>, JournalError> {
        Ok(self.log.last(tree.id()).map_err(error)?.map(pair))
    }

    pub(super) fn floor(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<(IVec, IVec)>, JournalError> {
        Ok(self.log.floor(tree.id(), key).map_err(error)?.map(pair))
    }

    pub(super) fn apply(&self, ops: &[Op<'_>]) -> Result<(), JournalError> {
        let ops: Vec<seglog::Op<'_>> = ops
            .iter()
            .map(|op| match *op {
                Op::Insert(tree, key, value) => seglog::Op::Insert {
                    tree: tree.id(),
                    key,
                    value,
                },
                Op::Remove(tree, key) => seglog::Op::Remove {
                    tree: tree.id(),
                    key,
                },
            })
            .collect();
        self.log.apply(&ops).map_err(error)
    }

    pub(super) fn generate_id(&self) -> Result<u64, JournalError> {
        Ok(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// `fdatasync` of the active segment, through `storage` (the fault
    /// seam): every frame applied before this call is then durable, since
    /// the log syncs a segment before it moves past it.
    pub(super) fn flush(&self, storage: &dyn Storage) -> Result<(), JournalError> {
        storage.before_flush().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.log
            .sync_with(|file| storage.sync(Sync::Data(file)))
            .map_err(|error| match error {
                SegError::Io { path, source } => JournalError::Sync { path, source },
                other => self::error(other),
            })
    }

    pub(super) fn compact(&self) -> Result<u64, JournalError> {
        self.log.compact().map_err(error)
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        self.log.size_on_disk()
    }
}

fn pair((key, value): (Vec<u8>, Vec<u8>)) -> (IVec, IVec) {
    (IVec::from(key), IVec::from(value))
}

/// A range of one tree of the log, as journal results.
pub(super) struct SegIter<'a> {
    inner: seglog::Range<'a>,
}

impl Iterator for SegIter<'_> {
    type Item = Result<(IVec, IVec), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.inner.next()?.map(pair).map_err(error))
    }
}
