//! Snapshots of a replica: building one off the engine's owner, keeping
//! the current one on disk, and installing one received from the leader.
//!
//! **Build.** [`Builder`] takes the engine's published snapshot when
//! openraft asks for a builder (an O(1) clone of the persistent map, or a
//! pin on the versioned store), between two `apply` calls, so it is the
//! state after exactly the last applied entry. Encoding and writing the
//! file run later on a blocking thread; the owner never waits for them.
//!
//! **Install**, in an order that a crash at any point can finish:
//! 1. check the snapshot (crc, state hash, its meta against openraft's);
//! 2. save it as the current snapshot file (temporary name, fdatasync,
//!    rename, directory fsync);
//! 3. record "installing this log id" in the log store, synced;
//! 4. write the snapshot's state as an engine directory beside the live
//!    one (persistence's backup writer: a checkpoint at the snapshot's seq
//!    and a journal that begins after it), stop the engine, swap the
//!    directories, fsync their parent, and reopen;
//! 5. record the new applied point and clear the mark, synced.
//!
//! A restart that finds the mark of step 3 redoes steps 4 and 5 from the
//! saved file ([`finish_interrupted`]), so the engine never holds a state
//! that the applied point does not describe.
//!
//! Swapping the engine ends everything tied to the old one: its change
//! feeds and `wait_for`s end as stopped, and its as-of window is gone
//! (the installed journal begins at the snapshot's seq). Readers taken
//! from the replicated handle after the install read the new engine.

use std::io;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::RaftSnapshotBuilder;
use openraft::{BasicNode, ErrorVerb, LogId, Snapshot, SnapshotMeta, StorageError};
use solostate::persistence::{backup, sync};
use solostate::{Event, SnapshotOf};

use crate::error::{MachineError, SnapshotError};
use crate::logged::Logged;
use crate::machine::{APPLIED_KEY, AppliedMeta, EngineSettings, Layout, Machine};
use crate::snapshot::{self, Decoded};
use crate::store::LogStore;
use crate::types::TypeConfig;

/// The meta-tree key that marks a snapshot install in progress (its log id).
const INSTALLING_KEY: &str = "machine_installing";

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MachineError {
    let path = path.to_owned();
    move |source| MachineError::Io { what, path, source }
}

/// The snapshot id: the log id's term and index, and the engine seq.
fn snapshot_id(log_id: Option<LogId<u64>>, seq: u64) -> String {
    match log_id {
        Some(id) => format!("{}-{}-{seq}", id.leader_id.term, id.index),
        None => format!("0-0-{seq}"),
    }
}

/// Builds a snapshot of the state at the last applied entry, as it was
/// when openraft asked for the builder.
pub struct Builder<E: Event> {
    state: Arc<SnapshotOf<Logged<E>>>,
    expected_seq: u64,
    meta: SnapshotMeta<u64, BasicNode>,
    layout: Layout,
}

impl<E: Event> Builder<E> {
    pub(crate) fn new(machine: &Machine<E>) -> Builder<E> {
        let state = machine.shared.engine().reader().snapshot();
        Builder {
            state,
            expected_seq: machine.seq,
            meta: SnapshotMeta {
                last_log_id: machine.meta.log_id,
                last_membership: machine.meta.membership.clone(),
                snapshot_id: snapshot_id(machine.meta.log_id, machine.seq),
            },
            layout: machine.layout.clone(),
        }
    }

    fn build(&self) -> Result<Vec<u8>, MachineError> {
        // The owner publishes before it acks, and only the machine submits,
        // so after `apply` returned the published seq is the applied one.
        if self.state.seq() != self.expected_seq {
            return Err(SnapshotError::Encode {
                reason: format!(
                    "the engine published seq {} but the machine applied through seq {}",
                    self.state.seq(),
                    self.expected_seq
                ),
            }
            .into());
        }
        let bytes = snapshot::encode::<Logged<E>>(&self.meta, &self.state)?;
        save(&self.layout, &self.meta.snapshot_id, &bytes)?;
        Ok(bytes)
    }
}

impl<E: Event> RaftSnapshotBuilder<TypeConfig> for Builder<E> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let builder = Builder::<E> {
            state: Arc::clone(&self.state),
            expected_seq: self.expected_seq,
            meta: self.meta.clone(),
            layout: self.layout.clone(),
        };
        let built = tokio::task::spawn_blocking(move || builder.build())
            .await
            .map_err(|e| {
                MachineError::from(SnapshotError::Encode {
                    reason: format!("the build thread failed: {e}"),
                })
            })
            .and_then(|built| built)
            .map_err(|e| e.into_storage(ErrorVerb::Write))?;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(io::Cursor::new(built)),
        })
    }
}

/// Saves `bytes` as the current snapshot file, durably: a temporary file
/// beside it, fdatasync, rename, fsync of the directory.
fn save(layout: &Layout, id: &str, bytes: &[u8]) -> Result<(), MachineError> {
    let tmp = layout.root.join(format!(".snapshot.{id}.tmp"));
    std::fs::write(&tmp, bytes).map_err(io_error("write the snapshot file", &tmp))?;
    sync::sync_file_data(&tmp).map_err(io_error("sync the snapshot file", &tmp))?;
    std::fs::rename(&tmp, &layout.snapshot)
        .map_err(io_error("rename the snapshot into place", &layout.snapshot))?;
    sync::sync_dir(&layout.root).map_err(io_error("sync the replica directory", &layout.root))
}

/// A snapshot file's bytes and what they decode to.
type Loaded<E> = (Vec<u8>, Decoded<Logged<E>>);

/// The current snapshot file's bytes, if there is one.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, MachineError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read the snapshot file", path)(e)),
    }
}

/// Reads and checks the current snapshot file, if there is one.
fn load<E: Event>(layout: &Layout) -> Result<Option<Loaded<E>>, MachineError> {
    let Some(bytes) = read_file(&layout.snapshot)? else {
        return Ok(None);
    };
    let decoded = snapshot::decode::<Logged<E>>(&bytes)?;
    Ok(Some((bytes, decoded)))
}

/// The current snapshot, for openraft to send to a lagging follower.
pub(crate) async fn current(layout: &Layout) -> Result<Option<Snapshot<TypeConfig>>, MachineError> {
    let path = layout.snapshot.clone();
    let file = path.clone();
    // Only the header, the crc and the meta: the follower that receives it
    // decodes and checks the whole snapshot when it installs it.
    let read = tokio::task::spawn_blocking(move || {
        read_file(&file)?
            .map(|bytes| Ok::<_, MachineError>((snapshot::meta(&bytes)?, bytes)))
            .transpose()
    });
    let read: Option<_> = read.await.map_err(|e| MachineError::Io {
        what: "read the snapshot file",
        path,
        source: io::Error::other(e.to_string()),
    })??;
    Ok(read.map(|(meta, bytes)| Snapshot {
        meta,
        snapshot: Box::new(io::Cursor::new(bytes)),
    }))
}

/// Installs a snapshot received from the leader (see the module docs for
/// the order of the steps).
pub(crate) async fn install<E: Event>(
    machine: &mut Machine<E>,
    meta: &SnapshotMeta<u64, BasicNode>,
    bytes: Vec<u8>,
) -> Result<(), MachineError> {
    let layout = machine.layout.clone();
    let offered = meta.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let decoded = snapshot::decode::<Logged<E>>(&bytes)?;
        if decoded.meta.last_log_id != offered.last_log_id {
            return Err(MachineError::from(SnapshotError::WrongMeta {
                inside: format!("{:?}", decoded.meta.last_log_id),
                offered: format!("{:?}", offered.last_log_id),
            }));
        }
        save(&layout, &offered.snapshot_id, &bytes)?;
        Ok(decoded)
    })
    .await
    .map_err(|e| MachineError::Install {
        message: format!("the install thread failed: {e}"),
    })??;
    machine
        .log
        .machine_put(INSTALLING_KEY, &decoded.meta.last_log_id)?;
    machine.log.flush_blocking().await?;
    swap_in::<E>(machine, decoded).await
}

/// Steps 4 and 5: the snapshot's state replaces the engine directory, the
/// engine reopens on it, and the applied point moves to the snapshot's.
async fn swap_in<E: Event>(
    machine: &mut Machine<E>,
    decoded: Decoded<Logged<E>>,
) -> Result<(), MachineError> {
    let old = machine.shared.engine();
    let written = write_dir::<E>(&machine.layout, &machine.settings, decoded).await?;
    if let Err(e) = old.shutdown().await {
        // An engine that a journal failure stopped is replaced all the same.
        tracing::warn!(error = %e, "the replaced engine did not shut down cleanly");
    }
    drop(old);
    swap_dirs(&machine.layout)?;
    let engine = machine.settings.open::<E>(&machine.layout.engine).await?;
    machine.shared.engine.store(Arc::new(engine));
    machine.seq = written.seq;
    machine.meta = written.meta;
    machine.log.machine_remove(INSTALLING_KEY)?;
    machine.record(true).await
}

/// What [`write_dir`] wrote: the seq and applied point it holds.
struct Written {
    seq: u64,
    meta: AppliedMeta,
}

/// Writes the snapshot's state to `layout.incoming` (replacing any
/// leftover of an interrupted install), on a blocking thread.
async fn write_dir<E: Event>(
    layout: &Layout,
    settings: &EngineSettings,
    decoded: Decoded<Logged<E>>,
) -> Result<Written, MachineError> {
    let (layout, settings) = (layout.clone(), settings.clone());
    tokio::task::spawn_blocking(move || {
        remove_if_present(&layout.incoming)?;
        backup::write::<Logged<E>>(
            &layout.incoming,
            &settings.schema,
            settings.backend,
            decoded.seq,
            decoded.entries.iter().map(|(k, v)| (k, v)),
        )
        .map_err(|e| MachineError::Install {
            message: e.to_string(),
        })?;
        Ok(Written {
            seq: decoded.seq,
            meta: AppliedMeta {
                log_id: decoded.meta.last_log_id,
                membership: decoded.meta.last_membership,
            },
        })
    })
    .await
    .map_err(|e| MachineError::Install {
        message: format!("the install thread failed: {e}"),
    })?
}

/// Moves `engine` aside, `incoming` into its place, syncs the parent, and
/// removes the old directory.
fn swap_dirs(layout: &Layout) -> Result<(), MachineError> {
    remove_if_present(&layout.replaced)?;
    if layout.engine.exists() {
        std::fs::rename(&layout.engine, &layout.replaced)
            .map_err(io_error("move the replaced engine aside", &layout.engine))?;
    }
    std::fs::rename(&layout.incoming, &layout.engine).map_err(io_error(
        "move the installed engine into place",
        &layout.incoming,
    ))?;
    sync::sync_dir(&layout.root).map_err(io_error("sync the replica directory", &layout.root))?;
    remove_if_present(&layout.replaced)
}

fn remove_if_present(path: &Path) -> Result<(), MachineError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", path)(e)),
    }
}

/// At open: when the log store still marks an install, the crash came
/// between steps 3 and 5; redo them from the saved snapshot file (no
/// engine is open yet) and report the log id. Checks that the saved file
/// is the snapshot the mark names.
pub(crate) async fn finish_interrupted<E: Event>(
    layout: &Layout,
    log: &LogStore,
    settings: &EngineSettings,
) -> Result<Option<LogId<u64>>, MachineError> {
    let Some(marked) = log.machine_get::<Option<LogId<u64>>>(INSTALLING_KEY)? else {
        return Ok(None);
    };
    let Some((_, decoded)) = load::<E>(layout)? else {
        return Err(SnapshotError::Corrupt {
            reason: format!(
                "an install of log id {marked:?} was interrupted, but {} is missing",
                layout.snapshot.display()
            ),
        }
        .into());
    };
    if decoded.meta.last_log_id != marked {
        return Err(SnapshotError::WrongMeta {
            inside: format!("{:?}", decoded.meta.last_log_id),
            offered: format!("{marked:?} (the interrupted install)"),
        }
        .into());
    }
    let written = write_dir::<E>(layout, settings, decoded).await?;
    swap_dirs(layout)?;
    log.machine_put(APPLIED_KEY, &written.meta)?;
    log.machine_remove(INSTALLING_KEY)?;
    log.flush_blocking().await?;
    tracing::warn!(log_id = ?marked, "finished a snapshot install that a crash interrupted");
    Ok(marked)
}
