//! The store on sled 0.34.7: one sled tree per journal tree, multi-tree
//! writes in sled transactions, and flushes made durable by the `durable`
//! module (sled's own flush is only `sync_file_range`).

use std::convert::Infallible;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use sled::IVec;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{Op, Tree};
use crate::journal::JournalError;
use crate::journal::durable::Files;
use crate::journal::storage::{self, Storage};

/// A journal's sled database and its trees.
#[derive(Debug)]
pub(in crate::journal) struct SledStore {
    db: sled::Db,
    /// The trees, indexed by [`Tree::id`].
    trees: Vec<sled::Tree>,
    /// The journal's own handles on sled's files, for syncing them.
    files: Files,
    path: PathBuf,
}

/// [`JournalError::Storage`] for a sled error in the journal at `path`.
pub(super) fn error(path: &Path, source: sled::Error) -> JournalError {
    JournalError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

impl SledStore {
    /// Opens sled in `path` and its trees, and makes what sled created
    /// durable. Also says whether sled's log held data before (see
    /// [`super::Opened::had_data`]).
    pub(super) fn open(path: &Path, cache_bytes: u64) -> Result<(SledStore, bool), JournalError> {
        // sled's log file has bytes only once something was flushed to it,
        // and the header is flushed as soon as a journal is created.
        let had_data = path.join("db").metadata().is_ok_and(|meta| meta.len() > 0);
        let db = open_db(path, cache_bytes)?;
        let files = Files::open(path, &storage::Os)?;
        let trees = Tree::ALL
            .iter()
            .map(|tree| db.open_tree(tree.sled_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| error(path, source))?;
        let store = SledStore {
            db,
            trees,
            files,
            path: path.to_path_buf(),
        };
        Ok((store, had_data))
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[usize::from(tree.id())]
    }

    fn error(&self, source: sled::Error) -> JournalError {
        error(&self.path, source)
    }

    pub(super) fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<IVec>, JournalError> {
        self.tree(tree).get(key).map_err(|e| self.error(e))
    }

    pub(super) fn range(&self, tree: Tree, from: Bound<&[u8]>, to: Bound<&[u8]>) -> sled::Iter {
        self.tree(tree).range::<&[u8], _>((from, to))
    }

    pub(super) fn last(&self, tree: Tree) -> Result<Option<(IVec, IVec)>, JournalError> {
        self.tree(tree).last().map_err(|e| self.error(e))
    }

    pub(super) fn floor(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<(IVec, IVec)>, JournalError> {
        self.tree(tree)
            .range(..=key)
            .next_back()
            .transpose()
            .map_err(|e| self.error(e))
    }

    /// One insert or removal goes straight to its tree (sled makes each
    /// atomic); more go in one transaction over the trees they touch.
    pub(super) fn apply(&self, ops: &[Op<'_>]) -> Result<(), JournalError> {
        if let [op] = ops {
            let result = match *op {
                Op::Insert(tree, key, value) => self.tree(tree).insert(key, value).map(drop),
                Op::Remove(tree, key) => self.tree(tree).remove(key).map(drop),
            };
            return result.map_err(|e| self.error(e));
        }
        let mut touched: Vec<Tree> = Vec::new();
        for op in ops {
            let (Op::Insert(tree, ..) | Op::Remove(tree, _)) = *op;
            if !touched.contains(&tree) {
                touched.push(tree);
            }
        }
        let trees: Vec<sled::Tree> = touched
            .iter()
            .map(|&tree| self.tree(tree).clone())
            .collect();
        let view = |tree: Tree| {
            touched
                .iter()
                .position(|&t| t == tree)
                .expect("listed above")
        };
        trees
            .as_slice()
            .transaction(|views| {
                for op in ops {
                    match *op {
                        Op::Insert(tree, key, value) => {
                            views[view(tree)].insert(key, value)?;
                        }
                        Op::Remove(tree, key) => {
                            views[view(tree)].remove(key)?;
                        }
                    }
                }
                Ok::<_, ConflictableTransactionError<Infallible>>(())
            })
            .map_err(|error| match error {
                TransactionError::Abort(never) => match never {},
                TransactionError::Storage(source) => self.error(source),
            })
    }

    pub(super) fn generate_id(&self) -> Result<u64, JournalError> {
        self.db.generate_id().map_err(|e| self.error(e))
    }

    /// sled's flush (its buffers written, then `sync_file_range` on its
    /// log, which is not durable on its own), then the syncs that make it
    /// durable (`durable::Files::sync`).
    pub(super) fn flush(&self, storage: &dyn Storage) -> Result<(), JournalError> {
        storage
            .before_flush()
            .map_err(|source| JournalError::Storage {
                path: self.path.clone(),
                source: sled::Error::Io(source),
            })?;
        self.db.flush().map_err(|e| self.error(e))?;
        self.files.sync(storage)
    }

    pub(super) fn size_on_disk(&self) -> Result<u64, JournalError> {
        self.db.size_on_disk().map_err(|e| self.error(e))
    }

    /// The handles the `durable` module keeps, for its tests.
    #[cfg(test)]
    pub(in crate::journal) fn files(&self) -> &Files {
        &self.files
    }
}

/// How long [`open_db`] keeps trying a locked directory.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(300);

/// Opens sled's database in `path`. A handle that was just dropped can
/// still hold the directory's lock for a few milliseconds, because sled's
/// I/O threads finish their queued writes with their own references to the
/// file; so a locked directory is retried for [`LOCK_PATIENCE`] before it
/// is reported as [`JournalError::AlreadyOpen`]. A directory another
/// process really holds therefore fails after that long, not at once.
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, JournalError> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // The owner decides when to flush (its durability setting).
            // sled's own background flush, every 500 ms by default, would
            // make `Never` flush twice a second and add flushes that
            // compete with `Always`'s per-batch ones.
            .flush_every_ms(None)
            .open();
        match opened.map_err(|source| open_error(path, source)) {
            Err(JournalError::AlreadyOpen { .. }) if started.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// sled reports a held directory lock as a generic I/O error whose message
/// says so; turn that into [`JournalError::AlreadyOpen`].
fn open_error(path: &Path, source: sled::Error) -> JournalError {
    match &source {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            JournalError::AlreadyOpen {
                path: path.to_path_buf(),
            }
        }
        _ => error(path, source),
    }
}
