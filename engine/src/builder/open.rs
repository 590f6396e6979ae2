//! [`Builder::open`]: recovery (with a path), then the owner task, its
//! flusher and checkpointer, and the first handle.

use std::sync::Arc;

use solostate_commands::Event;
use solostate_queries::Publisher;
use solostate_store::Working;

use super::Builder;
use crate::checkpointer::Checkpointer;
use crate::durability::Durability;
use crate::error::{OpenCause, OpenError};
use crate::flusher;
use crate::guard::Digest;
use crate::handle::Engine;
use crate::history::{Disk, History};
use crate::metrics::{Metrics, Stamp};
use crate::owner::{self, OwnerConfig};
use crate::recovery::{self, Recovery};
use crate::shared::Shared;

impl<E: Event> Builder<E> {
    /// Starts the owner task on the current tokio runtime and returns the
    /// first handle.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidConfig`], naming the setting, for a zero
    /// capacity, batch size, flush interval, checkpoint count or checkpoint
    /// interval (`every_events(0)`, `every_bytes(0)`), a journal cache
    /// under 256 bytes, an empty path, a path without a schema or an empty
    /// schema, or an initial state with a path;
    /// [`OpenError::NoRuntime`] outside a tokio runtime; and, with a path:
    /// [`OpenError::Journal`] (already open, incompatible, damaged, an I/O
    /// error: [`OpenError::cause`] says which, and the message names the
    /// path and, for a bad record, the seq); [`OpenError::JournalBehind`]
    /// (the journal ends before the newest checkpoint);
    /// [`OpenError::Checkpoint`] (the checkpoint directory cannot be read,
    /// or holds another schema's checkpoints); [`OpenError::Replay`] (a
    /// journaled event that no longer applies); and
    /// [`OpenError::Diverged`] (a replayed state that differs from the
    /// state the journal recorded a hash of). Opening never panics on
    /// what it finds on disk, sled's own panics included.
    ///
    /// # Recovery
    ///
    /// With a path, the state is the newest checkpoint that verifies plus
    /// the journal after it. A torn last record is cut; checkpoints that
    /// do not verify are passed over for older ones; a checkpoint is never
    /// deleted because the journal disagrees with it. Everything opening
    /// decides on its own is in [`Engine::recovery`]; see [`Recovery`],
    /// [`Builder::recover_to_prefix`] and [`Builder::on_damaged_journal`]
    /// for the two choices that are the caller's.
    pub async fn open(self) -> Result<Engine<E>, OpenError> {
        self.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| OpenError::NoRuntime)?;
        let (opened, map) = match self.path.clone() {
            None => (None, self.initial),
            Some(path) => {
                // `check` refused a path without a schema.
                let schema = self.schema.clone().unwrap_or_default();
                let upcasters = Arc::new(self.upcasters);
                let options = recovery::Options {
                    cache_bytes: self.journal_cache_bytes,
                    backend: self.journal_backend,
                    recover_to_prefix: self.recover_to_prefix,
                    on_damaged_journal: self.on_damaged_journal,
                    hash: self.state_hash_every > 0,
                };
                let progress = self.progress;
                let recovering = Stamp::now();
                let mut opened = tokio::task::spawn_blocking(move || {
                    let opened =
                        recovery::open::<E>(&path, &schema, &upcasters, &options, progress);
                    opened.map(|opened| (opened, recovering.elapsed()))
                })
                .await
                .map_err(|error| OpenError::Journal {
                    message: format!("recovery task failed: {error}"),
                    cause: OpenCause::Aborted,
                })??;
                let map = std::mem::take(&mut opened.0.map);
                #[cfg(feature = "fault-injection")]
                if let Some(plan) = self.faults.clone() {
                    opened.0.journal.inject_faults(plan.clone());
                    opened.0.checkpoints.inject_faults(plan);
                }
                (Some(opened), map)
            }
        };
        let (mut opened, recovered_in) = opened.unzip();
        let report = opened
            .as_ref()
            .map_or_else(Recovery::default, |opened| opened.report.clone());
        let last_seq = report.last_seq;
        let (tx, rx) = flume::bounded(self.channel_capacity);
        // The determinism guard's starting hash: the recovered state's,
        // followed through recovery's replay from the checkpoint's, or else
        // in full, once, off the runtime.
        let followed = opened.as_mut().and_then(|opened| opened.hasher.take());
        let digest = match (&opened, self.state_hash_every) {
            (Some(_), every) if every > 0 && followed.is_some() => followed.map(Digest::new),
            (Some(_), every) if every > 0 => {
                let recovered = map.clone();
                let hashed = tokio::task::spawn_blocking(move || {
                    solostate_persistence::hash::hasher_of::<E>(&recovered)
                })
                .await;
                match hashed {
                    Ok(Ok(hasher)) => Some(Digest::new(hasher)),
                    Ok(Err(error)) => {
                        tracing::error!(%error, "the recovered state cannot be hashed: the determinism guard is off");
                        None
                    }
                    Err(error) => {
                        tracing::error!(%error, "hashing the recovered state failed: the determinism guard is off");
                        None
                    }
                }
            }
            _ => None,
        };
        let mut state = Working::new(self.store, last_seq, map);
        let (publisher, reader) =
            Publisher::starting_at(state.publish(last_seq), self.change_capacity);
        let metrics = Metrics::new(&self.metrics);
        if let Some(elapsed) = recovered_in {
            metrics.recovered(elapsed);
        }
        let shared = Arc::new(Shared::starting_at(last_seq, report, metrics));
        let config = OwnerConfig {
            max_batch: self.max_batch,
            durability: self.durability,
            // `block_in_place` panics on a current-thread runtime.
            flush_in_place: runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread,
            state_hash_every: self.state_hash_every,
            key_changes: self.key_changes,
            pipelined: self.pipelined,
        };
        let (journal, checkpointer, disk) = match opened {
            None => (None, None, None),
            Some(opened) => {
                let journal = Arc::new(opened.journal);
                let store = Arc::new(opened.checkpoints);
                let covered = opened.report.checkpoint.unwrap_or(0);
                let disk = Disk {
                    journal: Arc::downgrade(&journal),
                    checkpoints: Arc::clone(&store),
                };
                let checkpointer = Checkpointer::new(
                    store,
                    self.checkpoints,
                    self.retention,
                    covered,
                    opened.report.replayed,
                );
                (Some(journal), Some(checkpointer), Some(disk))
            }
        };
        let history = Arc::new(History::new(publisher.snapshot(), self.as_of_window, disk));
        let flusher = match (&journal, self.durability) {
            (Some(journal), Durability::Every(interval)) => Some(
                flusher::spawn(Arc::downgrade(journal), interval, Arc::clone(&shared)).map_err(
                    |error| OpenError::Journal {
                        message: format!("cannot start the periodic flush thread: {error}"),
                        cause: OpenCause::Io(error.kind()),
                    },
                )?,
            ),
            _ => None,
        };
        let intake = owner::Intake {
            rx,
            shared: Arc::clone(&shared),
            _flusher: flusher,
        };
        runtime.spawn(owner::run(
            intake,
            state,
            journal.zip(checkpointer),
            publisher,
            Arc::clone(&history),
            digest,
            config,
        ));
        Ok(Engine::from_parts(tx, shared, reader, history))
    }
}
