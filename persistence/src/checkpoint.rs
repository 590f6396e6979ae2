//! Checkpoints: a directory of files, each the full state at one seq.
//!
//! Recovery loads the newest checkpoint that verifies and replays only the
//! journal after it, and as-of reads and replay start from the newest one
//! at or before the seq they want. A file is named
//! `ckpt-{seq:020}.ckpt` (zero-padded, so names sort as seqs do) and holds a
//! header naming the format, schema, seq, entry count and state hash,
//! then the entries; the layout is documented in `checkpoint/format.rs`.
//!
//! A write is atomic: the file is streamed to `ckpt-{seq:020}.tmp`, synced,
//! renamed over its final name and the directory synced, so a crash leaves
//! either the whole checkpoint or a stray `.tmp` that [`Checkpoints::open`]
//! removes. A load verifies everything before it trusts anything: magic,
//! header checksum, version, schema, the payload checksum, the entry count
//! and the state hash of what it decoded. Errors tell damage (the bytes
//! changed: [`CheckpointError::Corrupt`]) from incompatibility (intact,
//! but for another schema, format version or types:
//! [`CheckpointError::is_incompatible`]).
//!
//! ```
//! use solostate_commands::{State, StateEvent};
//! use solostate_persistence::checkpoint::Checkpoints;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! type Ev = StateEvent<String, u64>;
//! let dir = tempfile::tempdir()?;
//! let store = Checkpoints::open(dir.path(), "accounts-v1")?;
//! let mut state = State::<Ev>::new();
//! state.insert("alice".to_owned(), 10);
//! store.write::<Ev>(7, &state)?;
//! let (found, info) = store.newest::<Ev>(u64::MAX)?.found.expect("one checkpoint");
//! assert_eq!((info.seq, found), (7, state));
//! # Ok(())
//! # }
//! ```

use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use solostate_commands::{Event, State};

use crate::codec::CodecError;
use crate::hash::{self, StateHasher};

mod error;
mod format;
mod inspect;
#[cfg(test)]
mod tests;

pub use error::CheckpointError;
pub use inspect::CheckpointSummary;

use format::Header;

/// File name prefix of checkpoints and their temporary files.
const PREFIX: &str = "ckpt-";
/// File name suffix of a finished checkpoint.
const SUFFIX: &str = ".ckpt";
/// File name suffix of a checkpoint being written.
const TMP_SUFFIX: &str = ".tmp";
/// Write buffer: large enough that a big state costs few system calls.
const WRITE_BUFFER: usize = 1 << 20;

/// A checkpoint [`Checkpoints::set_aside_after`] renamed out of use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// The checkpoint's seq.
    pub seq: u64,
    /// Where the file is now.
    pub path: PathBuf,
}

/// What a written or loaded checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The seq whose state the checkpoint holds.
    pub seq: u64,
    /// Entries in the state.
    pub entries: u64,
    /// [`hash::state_hash`] of the state.
    pub state_hash: u64,
    /// The same hash as a running sum ([`StateHasher::finish`] gives
    /// `state_hash`), so that a replay after the checkpoint can follow the
    /// state's hash without hashing the whole state again.
    pub hasher: StateHasher,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The file.
    pub path: PathBuf,
}

/// What [`Checkpoints::newest`] found: the newest checkpoint that
/// verified, if any, and the newer ones it passed over.
pub struct Newest<E: Event> {
    /// The newest checkpoint that verified: its state and what it is.
    pub found: Option<(State<E>, CheckpointInfo)>,
    /// Newer checkpoints (within the bound) that failed to verify and were
    /// passed over, newest first. Reported even when none verified, so a
    /// recovery report can say why it replayed the whole journal.
    pub skipped: Vec<CheckpointError>,
}

impl<E: Event> std::fmt::Debug for Newest<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values need not be `Debug`, and a whole state is too long to print.
        f.debug_struct("Newest")
            .field(
                "entries",
                &self.found.as_ref().map(|(state, _)| state.len()),
            )
            .field("info", &self.found.as_ref().map(|(_, info)| info))
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// A directory of checkpoint files for one event schema.
///
/// It holds no open files and no lock, so it is `Send + Sync` and cheap to
/// share; writes of different seqs may run concurrently with loads. Two
/// concurrent writes of the *same* seq would share a temporary file, and
/// are the caller's to avoid (the engine has one checkpointer).
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    schema: String,
    /// Older schemas whose checkpoints load too: the engine's upcasters'
    /// (see [`crate::upcast`]: the state's encoding does not change).
    older: Vec<String>,
    /// The unfinished `.tmp` files [`Checkpoints::open`] removed, so that
    /// recovery can report them.
    removed_at_open: Vec<PathBuf>,
    /// A test's plan for failing checkpoint files (feature
    /// `fault-injection`).
    #[cfg(feature = "fault-injection")]
    faults: Option<crate::faults::FaultPlan>,
}

impl Checkpoints {
    /// Opens the checkpoint directory `dir` for `schema`, creating it (and
    /// syncing its parent, so the new name is durable) if it is missing.
    ///
    /// Opening writes: it removes stray `ckpt-*.tmp` files, which only a
    /// crash mid-write leaves behind (never renamed into place, so never a
    /// checkpoint anyone could load), and lists them in
    /// [`Checkpoints::removed_at_open`]. Nothing is read or verified yet.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when the directory cannot be created or read,
    /// or a stray file cannot be removed.
    pub fn open(dir: &Path, schema: &str) -> Result<Checkpoints, CheckpointError> {
        // Synced into its parent when created: a checkpoint synced into a
        // directory whose own name is lost is lost with it.
        crate::sync::create_dir_all(dir).map_err(io_error(dir))?;
        let mut removed = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(PREFIX) && name.ends_with(TMP_SUFFIX) {
                let path = entry.path();
                tracing::warn!(path = %path.display(), "removing a checkpoint left unfinished by a crash");
                fs::remove_file(&path).map_err(io_error(&path))?;
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            sync_dir(dir)?;
        }
        removed.sort();
        Ok(Checkpoints {
            dir: dir.to_owned(),
            schema: schema.to_owned(),
            older: Vec::new(),
            removed_at_open: removed,
            #[cfg(feature = "fault-injection")]
            faults: None,
        })
    }

    /// Lets `plan` fail the checkpoint files written from now on (see
    /// [`FaultPlan::fail_checkpoint_write`]). Testing only.
    ///
    /// [`FaultPlan::fail_checkpoint_write`]: crate::faults::FaultPlan::fail_checkpoint_write
    #[cfg(feature = "fault-injection")]
    pub fn inject_faults(&mut self, plan: crate::faults::FaultPlan) {
        self.faults = Some(plan);
    }

    /// Also loads checkpoints written under the `older` schemas, as this
    /// store's schema: for an engine that reads them through upcasters
    /// ([`crate::upcast`]), whose state is encoded as it was. New
    /// checkpoints are still written under this store's schema.
    pub fn accept_older<S: Into<String>>(&mut self, older: impl IntoIterator<Item = S>) {
        self.older.extend(older.into_iter().map(Into::into));
    }

    /// The unfinished checkpoint files (`ckpt-*.tmp`, left by a crash
    /// mid-write) that [`Checkpoints::open`] removed, sorted.
    pub fn removed_at_open(&self) -> &[PathBuf] {
        &self.removed_at_open
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) the checkpoint at `seq`.
    pub fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"))
    }

    /// Writes `state` as the checkpoint at `seq`, atomically, replacing any
    /// checkpoint already there.
    ///
    /// Entries are encoded one at a time into a buffered file, hashed and
    /// checksummed as they go, so memory stays flat however large the state.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Encode`] when an entry cannot be encoded, and
    /// [`CheckpointError::Io`] when writing, syncing or renaming fails. The
    /// temporary file is removed on either.
    pub fn write<'a, E: Event>(
        &self,
        seq: u64,
        state: impl IntoIterator<Item = (&'a E::Key, impl std::ops::Deref<Target = E::Value>)>,
    ) -> Result<CheckpointInfo, CheckpointError> {
        let tmp = self.dir.join(format!("{PREFIX}{seq:020}{TMP_SUFFIX}"));
        let path = self.path_of(seq);
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &self.faults {
            plan.checkpoint_write().map_err(io_error(&tmp))?;
        }
        let written = self.write_tmp::<E>(&tmp, seq, state).and_then(|info| {
            fs::rename(&tmp, &path).map_err(io_error(&path))?;
            Ok(info)
        });
        let (hasher, bytes) = match written {
            Ok(info) => info,
            Err(error) => {
                // Best effort: open removes it next time if this fails.
                let _ = fs::remove_file(&tmp);
                return Err(error);
            }
        };
        sync_dir(&self.dir)?;
        Ok(CheckpointInfo {
            seq,
            entries: hasher.entries(),
            state_hash: hasher.finish(),
            hasher,
            bytes,
            path,
        })
    }

    /// Streams the checkpoint into `tmp` and syncs it; returns the state's
    /// hash (with its entry count) and the file size.
    fn write_tmp<'a, E: Event>(
        &self,
        tmp: &Path,
        seq: u64,
        state: impl IntoIterator<Item = (&'a E::Key, impl std::ops::Deref<Target = E::Value>)>,
    ) -> Result<(StateHasher, u64), CheckpointError> {
        let io = io_error(tmp);
        let header_len = Header::len(&self.schema);
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, File::create(tmp).map_err(&io)?);
        // A placeholder, overwritten once the payload's crc and hash are known.
        out.write_all(&vec![0; header_len]).map_err(&io)?;
        let mut hasher = StateHasher::new();
        let mut crc = crc32fast::Hasher::new();
        let mut payload_len = 0u64;
        let mut buf = Vec::new();
        for (key, value) in state {
            hash::encode_entry(key, &*value, &mut buf).map_err(|source| {
                CheckpointError::Encode {
                    path: tmp.to_owned(),
                    seq,
                    source,
                }
            })?;
            hasher.add_encoded_entry(&buf);
            crc.update(&buf);
            payload_len += buf.len() as u64;
            out.write_all(&buf).map_err(&io)?;
        }
        let header = Header {
            seq,
            entries: hasher.entries(),
            state_hash: hasher.finish(),
            payload_len,
            payload_crc: crc.finalize(),
            schema: &self.schema,
        };
        let mut file = out.into_inner().map_err(|error| io(error.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(&io)?;
        file.write_all(&header.encode()).map_err(&io)?;
        file.sync_all().map_err(&io)?;
        Ok((hasher, header_len as u64 + payload_len))
    }

    /// The seqs of the checkpoints in the directory, ascending. Files that
    /// are not named like checkpoints are ignored.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<u64>, CheckpointError> {
        let mut seqs = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let entry = entry.map_err(io_error(&self.dir))?;
            if let Some(seq) = entry.file_name().to_str().and_then(seq_of) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Loads and verifies the checkpoint at `seq`.
    ///
    /// The file is read whole, then checked (magic, version, header crc,
    /// schema, seq, payload length and crc) before any entry is decoded;
    /// the decoded entries must match the header's count and state hash.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when the file cannot be read (including when
    /// it does not exist), [`CheckpointError::SchemaMismatch`],
    /// [`CheckpointError::UnsupportedVersion`], [`CheckpointError::Decode`]
    /// and [`CheckpointError::Corrupt`] for everything else.
    pub fn load<E: Event>(&self, seq: u64) -> Result<(State<E>, CheckpointInfo), CheckpointError> {
        let path = self.path_of(seq);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let (header, payload) = format::verify(&bytes, &path, seq)?;
        if header.schema != self.schema && !self.older.iter().any(|old| old == header.schema) {
            return Err(CheckpointError::SchemaMismatch {
                path,
                seq,
                found: header.schema.to_owned(),
                expected: self.schema.clone(),
            });
        }
        if header.seq != seq {
            return Err(CheckpointError::Corrupt {
                path,
                seq,
                reason: format!("file holds seq {}, its name says {seq}", header.seq),
            });
        }
        // A key or value type's `Deserialize` may panic on bytes it does
        // not expect; that is this checkpoint failing to decode, not a
        // reason to take down whoever is opening the engine.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            format::decode_entries::<E>(&header, payload, &path)
        }));
        let (state, hasher) = decoded.unwrap_or_else(|panic| {
            Err(CheckpointError::Decode {
                path: path.clone(),
                seq,
                source: CodecError::Decode {
                    type_name: std::any::type_name::<(E::Key, E::Value)>(),
                    message: format!(
                        "deserializing panicked: {}",
                        crate::journal::panic_message(panic.as_ref())
                    ),
                },
            })
        })?;
        let info = CheckpointInfo {
            seq,
            entries: header.entries,
            state_hash: header.state_hash,
            hasher,
            bytes: bytes.len() as u64,
            path,
        };
        Ok((state, info))
    }

    /// The newest checkpoint with seq `<= at_most` that verifies
    /// ([`Newest::found`] is `None` when there is none).
    ///
    /// Newer checkpoints that fail to load are passed over, logged with
    /// `tracing::warn!`, and listed in [`Newest::skipped`]: a damaged
    /// checkpoint costs only a longer journal replay.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::SchemaMismatch`] is returned rather than passed
    /// over: the store was opened with the wrong type, which an older
    /// checkpoint will not fix. [`CheckpointError::Io`] when the directory
    /// cannot be listed.
    pub fn newest<E: Event>(&self, at_most: u64) -> Result<Newest<E>, CheckpointError> {
        let mut skipped = Vec::new();
        for seq in self.list()?.into_iter().rev().filter(|&seq| seq <= at_most) {
            match self.load::<E>(seq) {
                Ok(found) => {
                    return Ok(Newest {
                        found: Some(found),
                        skipped,
                    });
                }
                Err(error @ CheckpointError::SchemaMismatch { .. }) => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, "passing over a checkpoint that does not load");
                    skipped.push(error);
                }
            }
        }
        Ok(Newest {
            found: None,
            skipped,
        })
    }

    /// Deletes all but the newest `keep` checkpoints and returns the seqs
    /// deleted, ascending.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::KeepZero`] when `keep` is 0, and
    /// [`CheckpointError::Io`] when listing or deleting fails.
    pub fn prune(&self, keep: usize) -> Result<Vec<u64>, CheckpointError> {
        if keep == 0 {
            return Err(CheckpointError::KeepZero);
        }
        let mut seqs = self.list()?;
        seqs.truncate(seqs.len().saturating_sub(keep));
        self.remove(&seqs)?;
        Ok(seqs)
    }

    /// Deletes the checkpoints with seq `> seq` and returns their seqs,
    /// ascending: after a rollback to `seq` they describe states that no
    /// longer happened. (Recovery never deletes a checkpoint; it uses
    /// [`Checkpoints::set_aside_after`].)
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when listing or deleting fails.
    pub fn remove_after(&self, seq: u64) -> Result<Vec<u64>, CheckpointError> {
        let mut seqs = self.list()?;
        seqs.retain(|&found| found > seq);
        self.remove(&seqs)?;
        Ok(seqs)
    }

    /// Renames the checkpoints with seq `> seq` out of use, keeping them
    /// ([`crate::aside::move_aside`]: `ckpt-….ckpt.{tag}-{time}`, which
    /// [`Checkpoints::list`] no longer sees, the directory synced), and
    /// returns them, ascending. For recovery, which must not load them
    /// (they describe seqs the journal no longer has, and those seqs are
    /// about to be written anew) but must not delete what it did not
    /// write either.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when listing or renaming fails; the ones
    /// renamed before it stay renamed.
    pub fn set_aside_after(&self, seq: u64, tag: &str) -> Result<Vec<SetAside>, CheckpointError> {
        let mut moved = Vec::new();
        for found in self.list()?.into_iter().filter(|&found| found > seq) {
            let path = self.path_of(found);
            let aside = crate::aside::move_aside(&path, tag).map_err(io_error(&path))?;
            moved.push(SetAside {
                seq: found,
                path: aside,
            });
        }
        Ok(moved)
    }

    /// Deletes the checkpoints at `seqs`, then syncs the directory so the
    /// deletions are durable. One already gone is not an error.
    fn remove(&self, seqs: &[u64]) -> Result<(), CheckpointError> {
        if seqs.is_empty() {
            return Ok(());
        }
        for &seq in seqs {
            let path = self.path_of(seq);
            match fs::remove_file(&path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    return Err(CheckpointError::Io {
                        path,
                        source: error,
                    });
                }
                _ => {}
            }
        }
        sync_dir(&self.dir)
    }
}

/// The seq in a checkpoint's file name, or `None` for any other file.
fn seq_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Maps an I/O error to [`CheckpointError::Io`] naming `path`.
fn io_error(path: &Path) -> impl Fn(io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Syncs a directory, so that a rename or removal in it is durable.
fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    crate::sync::sync_dir(dir).map_err(io_error(dir))
}
