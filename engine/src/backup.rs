//! [`Engine::backup`]: an openable copy of a running engine at one seq.
//!
//! The owner's part is one command that picks the seq and hands over the
//! snapshot at it (`owner/backup.rs`); everything that touches the disk
//! runs here, on a blocking thread, and the directory is written by
//! [`solostate_persistence::backup::write`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use solostate_commands::Event;
use solostate_persistence::backup;

use crate::error::BackupError;
use crate::handle::Engine;
use crate::message::{BackupSource, Command};

/// What [`Engine::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The seq `S` whose state the backup holds: the engine's last seq
    /// when the backup's turn came on the owner, after every command
    /// queued before it. Opened, the copy's last seq is `S`.
    pub seq: u64,
    /// The bytes of the files in the backup (the checkpoint, and the
    /// journal's files as their lengths say).
    pub bytes: u64,
    /// How long the whole backup took, from the call to the rename.
    pub duration: Duration,
    /// Where the backup is.
    pub path: PathBuf,
}

impl<E: Event> Engine<E> {
    /// Writes a consistent copy of the engine, as it is at one seq `S`, to
    /// the directory `dest`, while the engine keeps serving, and returns
    /// when the copy is durable.
    ///
    /// **Online backup.** `engine.backup(dest).await?` writes a directory
    /// that opens as an engine (same schema) whose state is the source's
    /// state at `S`, the seq in the returned [`BackupReport`]: the state
    /// after every command queued before the call. Readers and writers
    /// carry on meanwhile: the owner's part is only to take the snapshot
    /// at `S` (an O(1) clone of the persistent map, or a pin on the
    /// versioned store's versions, kept for as long as the copy takes), and
    /// the copy is written on a blocking thread. The backup holds that
    /// state as a checkpoint at `S` and an empty journal that begins after
    /// `S` (as a journal pruned behind a checkpoint does), on the source's
    /// journal backend; it does not copy the history before `S` (the
    /// events, the archive of rolled-back steps, the quarantine or the
    /// state hashes stay in the source). Because it reads only the
    /// immutable snapshot, no later event, rollback, checkpoint or journal
    /// pruning can change what it writes, and the owner never waits for
    /// it. Under every [`Durability`](crate::Durability) the backup is
    /// durable when `backup` returns: the source's journal is flushed
    /// through `S` first (so the source cannot lose a state its backup
    /// holds), every file of the copy is fdatasynced and every directory
    /// fsynced. The copy is built under a hidden temporary name beside
    /// `dest` and renamed into place last, so `dest` holds either a
    /// whole backup or nothing: a failure removes the temporary directory,
    /// and a crash leaves at most a `.{name}.backup-*.tmp` directory
    /// beside it. To restore, open `dest` (or a copy of it) with
    /// `Engine::builder().path(dest).schema(..)`: new events continue at
    /// `S + 1`.
    ///
    /// An in-memory engine has no schema or journal to copy and refuses
    /// ([`BackupError::InMemory`]); read its snapshot instead.
    ///
    /// ```
    /// use solostate::{Engine, StateEvent};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// type Ev = StateEvent<String, u64>;
    /// let dir = tempfile::tempdir()?;
    /// let engine = Engine::<Ev>::builder()
    ///     .path(dir.path().join("live"))
    ///     .schema("accounts-v1")
    ///     .open()
    ///     .await?;
    /// engine.submit(StateEvent::put("alice".into(), 100)).await?;
    /// let report = engine.backup(dir.path().join("backup")).await?;
    /// assert_eq!(report.seq, 1);
    /// engine.shutdown().await?;
    ///
    /// let restored = Engine::<Ev>::builder()
    ///     .path(dir.path().join("backup"))
    ///     .schema("accounts-v1")
    ///     .open()
    ///     .await?;
    /// let snapshot = restored.reader().snapshot();
    /// assert_eq!((snapshot.seq(), snapshot.get("alice").as_deref()), (1, Some(&100)));
    /// restored.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BackupError::InMemory`] for an in-memory engine;
    /// [`BackupError::Write`] with
    /// [`BackupWriteError::DestinationInUse`](solostate_persistence::backup::BackupWriteError::DestinationInUse)
    /// when `dest` exists and is not an empty directory, and with the
    /// failing path for a failed write; [`BackupError::Source`] when the
    /// engine's journal cannot be flushed through `S` or its schema read;
    /// [`BackupError::Stopped`] after a journal failure stopped the
    /// engine; and [`BackupError::Closed`] when the engine no longer takes
    /// commands. A failed backup leaves `dest` as it was, and the engine
    /// serving.
    pub async fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport, BackupError> {
        let started = Instant::now();
        if !self.is_durable() {
            return Err(BackupError::InMemory);
        }
        let answer = self
            .request(|reply| Command::Backup { reply })
            .await
            .ok_or(BackupError::Closed)?;
        let source = answer.await.unwrap_or(Err(BackupError::Closed))?;
        let dest = dest.as_ref().to_owned();
        let into = dest.clone();
        let written = tokio::task::spawn_blocking(move || write::<E>(source, &into)).await;
        let written = match written {
            Ok(written) => written?,
            // A panic in the copy (a key's or value's `Serialize`, say) is
            // the caller's, as it would be had it run on this task.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => return Err(BackupError::Closed), // the runtime is shutting down
        };
        let report = BackupReport {
            seq: written.seq,
            bytes: written.bytes,
            duration: started.elapsed(),
            path: dest,
        };
        tracing::info!(
            seq = report.seq,
            bytes = report.bytes,
            millis = report.duration.as_millis() as u64,
            path = %report.path.display(),
            "backup written"
        );
        Ok(report)
    }
}

/// Flushes the source's journal through the snapshot's seq, lets go of
/// it (shutdown waits for every holder of the journal), then writes the
/// copy from the snapshot alone. Blocking.
fn write<E: Event>(source: BackupSource<E>, dest: &Path) -> Result<backup::Written, BackupError> {
    let BackupSource { snapshot, journal } = source;
    let seq = snapshot.seq();
    let source_error = |error: solostate_persistence::journal::JournalError| BackupError::Source {
        seq,
        message: error.to_string(),
    };
    journal.flush().map_err(source_error)?;
    let schema = journal.schema().map_err(source_error)?;
    let backend = journal.backend();
    drop(journal);
    Ok(backup::write::<E>(
        dest,
        &schema,
        backend,
        seq,
        &snapshot.view(),
    )?)
}
