//! [`Machine`]: openraft's state machine over a local solostate engine.
//!
//! Each committed entry's event goes to the replica's own [`Engine`] as a
//! [`Logged`] event, in log order; the engine applies it, journals the
//! batch (with the log ids) in one fsynced write, publishes the snapshot
//! and acks. `apply` returns once every event of the call is acked, so
//! openraft's "applied" means durable and visible on this node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorVerb, LogId, OptionalSend, Snapshot, SnapshotMeta,
    StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use solostate::persistence::seglog::TailCut;
use solostate::{
    AckError, CatchUpError, Durability, Engine, Event, JournalBackend, Pending, SendError,
    StoreKind,
};
use tokio::sync::watch;

use crate::error::MachineError;
use crate::install::{self, Builder};
use crate::logged::Logged;
use crate::store::LogStore;
use crate::types::{Request, Response, TypeConfig};

/// The meta-tree key of the machine's [`AppliedMeta`].
pub(crate) const APPLIED_KEY: &str = "machine_applied";

/// Where a replica keeps its parts, under one directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The replica's directory.
    pub(crate) root: PathBuf,
    /// The local engine's directory.
    pub(crate) engine: PathBuf,
    /// Where an installed snapshot's engine directory is written before it
    /// replaces `engine`.
    pub(crate) incoming: PathBuf,
    /// Where the replaced engine directory goes until it is removed.
    pub(crate) replaced: PathBuf,
    /// The current snapshot file (built or installed).
    pub(crate) snapshot: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_owned(),
            engine: root.join("engine"),
            incoming: root.join("engine.incoming"),
            replaced: root.join("engine.replaced"),
            snapshot: root.join("snapshot.current"),
        }
    }
}

/// How a replica opens its local engine (again, after a snapshot install).
///
/// Retention stays the default, `FullHistory`, on purpose: at open the
/// machine reads the log id of the journal's last event, so that event
/// must never be pruned behind a checkpoint (only an installed snapshot's
/// empty journal lacks it, and the install synced the applied point).
#[derive(Debug, Clone)]
pub(crate) struct EngineSettings {
    pub(crate) schema: String,
    pub(crate) store: StoreKind,
    pub(crate) backend: JournalBackend,
    pub(crate) durability: Durability,
}

impl EngineSettings {
    pub(crate) async fn open<E: Event>(
        &self,
        path: &Path,
    ) -> Result<Engine<Logged<E>>, MachineError> {
        Engine::<Logged<E>>::builder()
            .path(path)
            .schema(self.schema.clone())
            .store(self.store)
            .journal_backend(self.backend)
            .durability(self.durability)
            .open()
            .await
            .map_err(|e| MachineError::Open {
                path: path.to_owned(),
                message: e.to_string(),
            })
    }
}

/// The last applied log entry and the engine seq after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The last applied log entry (`None` before the first).
    pub log_id: Option<LogId<u64>>,
    /// The engine's seq after it.
    pub seq: u64,
}

/// What the machine keeps in the log store's meta tree: the applied point
/// and membership. It may lag the journal after a power cut (it is made
/// durable by the next log write); the journal's last [`Logged`] event is
/// the authority for the log id of the last event. A membership entry is
/// synced at once, so the membership stored here is never older than the
/// journal's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AppliedMeta {
    pub(crate) log_id: Option<LogId<u64>>,
    pub(crate) membership: StoredMembership<u64, BasicNode>,
}

/// What the replica's handle and its state machine share.
pub(crate) struct Shared<E: Event> {
    /// The local engine. Replaced, once, by each snapshot install.
    pub(crate) engine: ArcSwap<Engine<Logged<E>>>,
    /// The applied point, for reads that wait for a log index.
    pub(crate) applied: watch::Sender<Applied>,
}

impl<E: Event> Shared<E> {
    pub(crate) fn engine(&self) -> Arc<Engine<Logged<E>>> {
        self.engine.load_full()
    }
}

/// What a replica decided on its own when it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MachineRecovery {
    /// The local engine's own recovery report.
    pub engine: solostate::Recovery,
    /// Where applying resumes: the later of the journal's last event and
    /// the stored applied point.
    pub applied: Applied,
    /// A snapshot install a crash interrupted, finished again from the
    /// saved snapshot file: its log id.
    pub finished_install: Option<LogId<u64>>,
    /// What the Raft log's open cut off its last segment: normally bytes
    /// a power cut tore before their sync returned, which this node never
    /// reported stored. A synced frame there that has since rotted on disk
    /// is cut the same way (with everything after it): the segment log
    /// cannot tell the two apart, so a cut here is worth a look.
    pub log_tail_cut: Option<TailCut>,
}

/// openraft's state machine for one replica: a local engine of
/// [`Logged`] events, the applied point in the log store, and the current
/// snapshot file.
pub struct Machine<E: Event> {
    pub(crate) shared: Arc<Shared<E>>,
    pub(crate) log: LogStore,
    pub(crate) layout: Layout,
    pub(crate) settings: EngineSettings,
    pub(crate) meta: AppliedMeta,
    pub(crate) seq: u64,
}

impl<E: Event> Machine<E> {
    /// Opens the replica's machine in `layout.root`: finishes an
    /// interrupted snapshot install, opens the engine and finds where
    /// applying resumes.
    pub(crate) async fn open(
        layout: Layout,
        log: LogStore,
        settings: EngineSettings,
    ) -> Result<(Machine<E>, MachineRecovery), MachineError> {
        let finished_install = install::finish_interrupted::<E>(&layout, &log, &settings).await?;
        let engine = settings.open::<E>(&layout.engine).await?;
        let stored: AppliedMeta = log.machine_get(APPLIED_KEY)?.unwrap_or_default();
        let seq = engine.reader().seq();
        let journal = last_logged(&engine, seq).await?;
        let log_id = match (stored.log_id, journal) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let meta = AppliedMeta {
            log_id,
            membership: stored.membership,
        };
        let applied = Applied { log_id, seq };
        let recovery = MachineRecovery {
            engine: engine.recovery().clone(),
            applied,
            finished_install,
            log_tail_cut: log.tail_cut().cloned(),
        };
        let shared = Arc::new(Shared {
            engine: ArcSwap::from_pointee(engine),
            applied: watch::channel(applied).0,
        });
        let machine = Machine {
            shared,
            log,
            layout,
            settings,
            meta,
            seq,
        };
        Ok((machine, recovery))
    }

    /// Records the applied point in memory, in the meta tree (durable
    /// with the next log write, or now when `sync`) and on the watch.
    pub(crate) async fn record(&mut self, sync: bool) -> Result<(), MachineError> {
        self.log.machine_put(APPLIED_KEY, &self.meta)?;
        if sync {
            self.log.flush_blocking().await?;
        }
        let applied = Applied {
            log_id: self.meta.log_id,
            seq: self.seq,
        };
        self.shared.applied.send_replace(applied);
        Ok(())
    }

    async fn apply_entries(
        &mut self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<Vec<Response>, MachineError> {
        let engine = self.shared.engine();
        let mut outcomes = Vec::new();
        let mut membership_changed = false;
        for entry in entries {
            let log_id = entry.log_id;
            let outcome = match entry.payload {
                EntryPayload::Blank => Outcome::Ready(Response::Internal),
                EntryPayload::Membership(membership) => {
                    self.meta.membership = StoredMembership::new(Some(log_id), membership);
                    membership_changed = true;
                    Outcome::Ready(Response::Internal)
                }
                EntryPayload::Normal(request) => submit::<E>(&engine, log_id, &request).await?,
            };
            self.meta.log_id = Some(log_id);
            outcomes.push(outcome);
        }
        let mut responses = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            responses.push(match outcome {
                Outcome::Ready(response) => response,
                Outcome::Waiting(index, pending) => match pending.await {
                    Ok(ack) => {
                        self.seq = ack.seq;
                        Response::Applied { seq: ack.seq }
                    }
                    Err(error) => rejection(index, error)?,
                },
            });
        }
        self.record(membership_changed).await?;
        Ok(responses)
    }
}

/// An entry's answer: known at once, or an engine ack to wait for.
enum Outcome<E: Event> {
    Ready(Response),
    Waiting(u64, Pending<Logged<E>>),
}

/// Sends one entry's event to the engine. A request that does not decode,
/// or that the engine refuses before queueing (too large, cannot encode),
/// is rejected alike on every node; only a closed engine is an error.
async fn submit<E: Event>(
    engine: &Engine<Logged<E>>,
    log_id: LogId<u64>,
    request: &Request,
) -> Result<Outcome<E>, MachineError> {
    let event = match request.decode::<E>() {
        Ok(event) => event,
        Err(reason) => return Ok(Outcome::Ready(Response::Rejected { reason })),
    };
    match engine.send(Logged { log_id, event }).await {
        Ok(pending) => Ok(Outcome::Waiting(log_id.index, pending)),
        Err(SendError::Closed(_)) => Err(MachineError::Engine {
            index: log_id.index,
            message: "the engine is closed".to_owned(),
        }),
        Err(refused) => Ok(Outcome::Ready(Response::Rejected {
            reason: refused.to_string(),
        })),
    }
}

/// An event's failed ack: a rejection or a panicking `apply` answers the
/// client (nothing changed, on any node); a journal failure or an engine
/// that stopped is the machine's error, which stops this node.
fn rejection<R: std::error::Error>(
    index: u64,
    error: AckError<R>,
) -> Result<Response, MachineError> {
    match error {
        AckError::Journal { .. } | AckError::Aborted => Err(MachineError::Engine {
            index,
            message: error.to_string(),
        }),
        other => Ok(Response::Rejected {
            reason: other.to_string(),
        }),
    }
}

/// The log id of the journal's last event (the one at `seq`): `None` for
/// an empty engine, and for one opened from an installed snapshot that has
/// had no event since (its journal begins after `seq`; the stored applied
/// point, synced by the install, covers it).
async fn last_logged<E: Event>(
    engine: &Engine<Logged<E>>,
    seq: u64,
) -> Result<Option<LogId<u64>>, MachineError> {
    if seq == 0 {
        return Ok(None);
    }
    let failed = |message: String| MachineError::Resume { seq, message };
    match engine.changes_from(seq - 1).await {
        Ok(mut feed) => {
            let change = feed.recv().await.map_err(|e| failed(e.to_string()))?;
            Ok(Some(change.event().log_id))
        }
        Err(CatchUpError::Pruned { .. }) => Ok(None),
        Err(e) => Err(failed(e.to_string())),
    }
}

impl<E: Event> RaftStateMachine<TypeConfig> for Machine<E> {
    type SnapshotBuilder = Builder<E>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.meta.log_id, self.meta.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.apply_entries(entries)
            .await
            .map_err(|e| e.into_storage(ErrorVerb::Write))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Builder::new(self)
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<std::io::Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(std::io::Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        install::install(self, meta, snapshot.into_inner())
            .await
            .map_err(|e| e.into_storage(ErrorVerb::Write))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        install::current(&self.layout)
            .await
            .map_err(|e| e.into_storage(ErrorVerb::Read))
    }
}
