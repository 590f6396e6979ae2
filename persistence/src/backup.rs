//! Writing a backup: a new engine directory that holds one state, at one
//! seq, and opens as an engine of the same schema.
//!
//! A backup is the smallest directory recovery opens to exactly that
//! state: a checkpoint of the state at `seq` in `checkpoints/`, and an
//! empty journal in `journal/` that begins after `seq`
//! ([`Journal::begin_after`]: it reads as a journal pruned through `seq`,
//! which recovery opens without reporting anything), on the same backend
//! as the source. Both carry the schema, so a copy opened under another
//! schema is refused. The history before `seq` is not copied.
//!
//! It is written under a temporary name beside `dest` (in `dest`'s
//! parent, so the final rename stays on one filesystem), every file
//! fdatasynced and every directory fsynced there, then renamed to `dest`
//! and the parent fsynced. So `dest` either does not exist (or is still
//! the empty directory it was) or holds a whole, durable backup: a failure
//! removes the temporary directory, and a crash leaves at most a
//! `.{name}.backup-*.tmp` directory that nothing opens by mistake.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use solostate_commands::Event;

use crate::checkpoint::{CheckpointError, Checkpoints};
use crate::journal::{Backend, Journal, JournalError};
use crate::replay::Layout;
use crate::sync;

/// sled's page cache while the backup's journal is created: it holds only
/// its header and mark, so a small cache is plenty.
const CACHE_BYTES: u64 = 1 << 20;

/// Why [`write()`] did not leave a backup at its destination. Nothing was
/// left there, and its temporary directory was removed (best effort).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupWriteError {
    /// The destination holds something: a backup goes into a new or empty
    /// directory, and never mixes with files already there.
    #[error(
        "backup destination {path} is not empty (or is not a directory); back up into a new or empty directory"
    )]
    DestinationInUse {
        /// The destination.
        path: PathBuf,
    },
    /// A file system operation on the destination or the temporary
    /// directory failed.
    #[error("backup to {path}: cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Writing the backup's checkpoint failed (its error names the file
    /// and seq).
    #[error("backup: writing its checkpoint failed: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// Creating the backup's journal failed (its error names the path).
    #[error("backup: creating its journal failed: {0}")]
    Journal(#[from] JournalError),
}

/// What [`write()`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// The seq whose state the backup holds.
    pub seq: u64,
    /// The bytes of the files in the backup, as their lengths say
    /// (the checkpoint, and the journal's files including any space the
    /// segment log filled ahead).
    pub bytes: u64,
    /// The backup's checkpoint file, under `dest`.
    pub checkpoint: PathBuf,
}

/// Writes a backup of `state`, the state at `seq`, to `dest`, for events
/// of `schema` and with its journal on `backend`. `dest` must not exist or
/// must be an empty directory; its parent is created if missing. Blocking.
///
/// # Errors
///
/// [`BackupWriteError::DestinationInUse`] when `dest` holds anything (or
/// is a file), [`BackupWriteError::Checkpoint`] and
/// [`BackupWriteError::Journal`] when writing either part fails, and
/// [`BackupWriteError::Io`] for the rest (naming the path).
pub fn write<'a, E: Event>(
    dest: &Path,
    schema: &str,
    backend: Backend,
    seq: u64,
    state: impl IntoIterator<Item = (&'a E::Key, impl std::ops::Deref<Target = E::Value>)>,
) -> Result<Written, BackupWriteError> {
    check_destination(dest)?;
    let parent = sync::parent_of(dest);
    sync::create_dir_all(parent).map_err(io("create the destination's parent", parent))?;
    let tmp = Temporary::create(dest)?;
    let layout = Layout::new(&tmp.path);
    {
        // Dropped (closed) before the files are synced and renamed.
        let journal = Journal::open_with(&layout.journal, schema, CACHE_BYTES, backend)?;
        journal.begin_after(seq)?;
    }
    let checkpoints = Checkpoints::open(&layout.checkpoints, schema)?;
    checkpoints.write::<E>(seq, state)?;
    // The journal's backend syncs what its flush needs, and the checkpoint
    // writer its own file; this makes sure of every file and directory,
    // whatever the backend, before the name that says "a backup" appears.
    let bytes = sync_tree(&tmp.path)?;
    match fs::rename(&tmp.path, dest) {
        Ok(()) => {}
        // Something appeared in `dest` since it was checked.
        Err(error) if dest.is_dir() && error.kind() != io::ErrorKind::NotFound => {
            return Err(BackupWriteError::DestinationInUse {
                path: dest.to_owned(),
            });
        }
        Err(error) => return Err(io("rename the finished backup into place", dest)(error)),
    }
    tmp.disarm();
    sync::sync_dir(parent).map_err(io("sync the destination's parent", parent))?;
    let checkpoint = Layout::new(dest)
        .checkpoints
        .join(checkpoints.path_of(seq).file_name().unwrap_or_default());
    Ok(Written {
        seq,
        bytes,
        checkpoint,
    })
}

/// `dest` may be missing or an empty directory, nothing else.
fn check_destination(dest: &Path) -> Result<(), BackupWriteError> {
    let in_use = || BackupWriteError::DestinationInUse {
        path: dest.to_owned(),
    };
    match fs::symlink_metadata(dest) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io("inspect the destination", dest)(error)),
        Ok(meta) if !meta.is_dir() => Err(in_use()),
        Ok(_) => {
            let mut entries = fs::read_dir(dest).map_err(io("read the destination", dest))?;
            match entries.next() {
                None => Ok(()),
                Some(_) => Err(in_use()),
            }
        }
    }
}

/// fdatasyncs every file and fsyncs every directory under `root` (itself
/// included); returns the files' total length.
fn sync_tree(root: &Path) -> Result<u64, BackupWriteError> {
    let mut bytes = 0;
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).map_err(io("read a backup directory", &dir))? {
            let entry = entry.map_err(io("read a backup directory", &dir))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(io("inspect a backup file", &path))?;
            if kind.is_dir() {
                dirs.push(path);
            } else {
                let file = fs::File::open(&path).map_err(io("open a backup file", &path))?;
                file.sync_data().map_err(io("sync a backup file", &path))?;
                bytes += file
                    .metadata()
                    .map_err(io("inspect a backup file", &path))?
                    .len();
            }
        }
        sync::sync_dir(&dir).map_err(io("sync a backup directory", &dir))?;
    }
    Ok(bytes)
}

/// The directory a backup is written in before it is renamed to its
/// destination; removed when dropped unless [`Temporary::disarm`]ed.
struct Temporary {
    path: PathBuf,
    armed: bool,
}

impl Temporary {
    /// Creates `.{name}.backup-{pid}-{n}.tmp` beside `dest`: hidden, and
    /// unique in this process and across processes.
    fn create(dest: &Path) -> Result<Temporary, BackupWriteError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = dest
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".to_owned());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            sync::parent_of(dest).join(format!(".{name}.backup-{}-{n}.tmp", std::process::id()));
        fs::create_dir(&path).map_err(io("create the temporary backup directory", &path))?;
        Ok(Temporary { path, armed: true })
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover is only a hidden `.tmp` directory.
            if let Err(error) = fs::remove_dir_all(&self.path) {
                tracing::warn!(path = %self.path.display(), %error, "could not remove a failed backup's temporary directory");
            }
        }
    }
}

/// Maps an I/O error to [`BackupWriteError::Io`] for `what` at `path`.
fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BackupWriteError + 'a {
    move |source| BackupWriteError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests;
