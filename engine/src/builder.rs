//! [`Builder`]: the named knobs of an engine.

use std::path::PathBuf;

use solostate_commands::{Event, State};
use solostate_persistence::journal::Backend as JournalBackend;
use solostate_persistence::upcast::Upcasters;
use solostate_store::StoreKind;

use crate::durability::Durability;
#[cfg(doc)]
use crate::error::OpenError;
use crate::handle::Engine;
use crate::metrics;
use crate::policy::{CheckpointPolicy, Retention};
#[cfg(doc)]
use crate::recovery::Recovery;
use crate::recovery::{DamagedJournal, Progress, ReplayProgress};

mod check;
mod open;

/// Configures and starts an [`Engine`]. Get one from [`Engine::builder`].
///
/// ```
/// # use solostate::{Engine, StateEvent};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::<StateEvent<String, u64>>::builder()
///     .channel_capacity(4096)
///     .max_batch(512)
///     .open()
///     .await?;
/// # engine.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct Builder<E: Event> {
    channel_capacity: usize,
    max_batch: usize,
    change_capacity: usize,
    initial: State<E>,
    path: Option<PathBuf>,
    durability: Durability,
    schema: Option<String>,
    /// [`Builder::upcast_from`]'s conversions, shared with the journal.
    upcasters: Upcasters<E>,
    /// Whether an older schema was given to [`Builder::upcast_from`]
    /// twice, refused at open.
    upcast_twice: bool,
    journal_cache_bytes: u64,
    journal_backend: JournalBackend,
    store: StoreKind,
    checkpoints: CheckpointPolicy,
    retention: Retention,
    as_of_window: u64,
    recover_to_prefix: bool,
    on_damaged_journal: DamagedJournal,
    state_hash_every: u64,
    key_changes: bool,
    pipelined: bool,
    progress: Option<Progress>,
    metrics: metrics::Settings,
    #[cfg(feature = "fault-injection")]
    faults: Option<crate::FaultPlan>,
}

impl<E: Event> std::fmt::Debug for Builder<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("channel_capacity", &self.channel_capacity)
            .field("max_batch", &self.max_batch)
            .field("change_capacity", &self.change_capacity)
            .field("initial_len", &self.initial.len())
            .field("path", &self.path)
            .field("durability", &self.durability)
            .field("store", &self.store)
            .field("schema", &self.schema)
            .field("upcasters", &self.upcasters)
            .field("checkpoints", &self.checkpoints)
            .field("retention", &self.retention)
            .field("as_of_window", &self.as_of_window)
            .field("recover_to_prefix", &self.recover_to_prefix)
            .field("on_damaged_journal", &self.on_damaged_journal)
            .field("state_hash_every", &self.state_hash_every)
            .field("key_changes", &self.key_changes)
            .field("pipelined", &self.pipelined)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<E: Event> Default for Builder<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Event> Builder<E> {
    /// The default command-queue capacity.
    pub const DEFAULT_CHANNEL_CAPACITY: usize = 8192;
    /// The default largest batch.
    pub const DEFAULT_MAX_BATCH: usize = 4096;
    /// The default journal page cache: 64 MiB.
    pub const DEFAULT_JOURNAL_CACHE_BYTES: u64 = 64 << 20;
    /// The default change-feed buffer, in batches.
    pub const DEFAULT_CHANGE_CAPACITY: usize = 1024;
    /// The default as-of window, in seqs.
    pub const DEFAULT_AS_OF_WINDOW: u64 = 4096;
    /// The default interval of the determinism guard, in events: 1, a
    /// state hash after every batch. The hash follows each event's write
    /// set, so a check costs O(1) live and at replay.
    pub const DEFAULT_STATE_HASH_EVERY: u64 = 1;

    /// A builder with the defaults: an empty in-memory map, a queue of
    /// [`DEFAULT_CHANNEL_CAPACITY`](Self::DEFAULT_CHANNEL_CAPACITY)
    /// commands and batches of at most
    /// [`DEFAULT_MAX_BATCH`](Self::DEFAULT_MAX_BATCH) events.
    pub fn new() -> Self {
        Builder {
            channel_capacity: Self::DEFAULT_CHANNEL_CAPACITY,
            max_batch: Self::DEFAULT_MAX_BATCH,
            change_capacity: Self::DEFAULT_CHANGE_CAPACITY,
            initial: State::<E>::new(),
            path: None,
            durability: Durability::default(),
            schema: None,
            upcasters: Upcasters::new(),
            upcast_twice: false,
            journal_cache_bytes: Self::DEFAULT_JOURNAL_CACHE_BYTES,
            journal_backend: JournalBackend::default(),
            store: StoreKind::default(),
            checkpoints: CheckpointPolicy::default(),
            retention: Retention::default(),
            as_of_window: Self::DEFAULT_AS_OF_WINDOW,
            recover_to_prefix: false,
            on_damaged_journal: DamagedJournal::default(),
            state_hash_every: Self::DEFAULT_STATE_HASH_EVERY,
            key_changes: false,
            pipelined: true,
            progress: None,
            metrics: metrics::Settings::new(),
            #[cfg(feature = "fault-injection")]
            faults: None,
        }
    }

    /// Keeps the engine's state in the directory `dir` (created if
    /// missing): a journal of every committed batch in `dir/journal` (see
    /// [`Builder::journal_backend`])
    /// and checkpoints in `dir/checkpoints`. On open, the state is rebuilt
    /// from the newest checkpoint that verifies plus the journal after it.
    /// Without a path the engine is in memory only. An empty path is
    /// refused at `open` (it would mean the current directory by
    /// accident); pass `"."` to mean that.
    pub fn path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.path = Some(dir.into());
        self
    }

    /// When journaled batches reach the disk; see [`Durability`]. The
    /// default is [`Durability::Always`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether, under [`Durability::Always`], a batch's flush may run
    /// while the owner applies the next batch. The default is `true`.
    ///
    /// It takes effect only when more commands are already waiting as a
    /// batch is sealed, that is, when writers keep more in flight than
    /// one batch holds, or arrive faster than one batch is applied and
    /// flushed: then the engine's throughput is bounded by the slower of
    /// applying and flushing rather than by their sum. Acks, the published
    /// snapshot and change feeds still follow only durable batches, and
    /// at most one batch is in flight. With nothing waiting, the flush
    /// runs at once, as without pipelining. Turn it off to compare.
    pub fn pipelined(mut self, pipelined: bool) -> Self {
        self.pipelined = pipelined;
        self
    }

    /// The name of the event encoding, stored in the journal's header and
    /// in every checkpoint; opening a directory written under another name
    /// fails as incompatible. **Required with a [`path`](Self::path)**, and
    /// not empty: pick a name that says what the events are and which
    /// version of their encoding (`"accounts-v1"`), and change it when the
    /// encoding changes. There is no default because the only one
    /// available, the event type's Rust name, is not stable: it changes
    /// when the type is renamed or moved, and std says its text may change
    /// between compiler versions, either of which would lock you out of
    /// your data. In-memory engines ignore it.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Reads a directory written under the older schema `schema`, whose
    /// events were of type `Old`, converting each to `E` with `upcast`:
    /// schema evolution without rewriting history. Recovery, as-of reads,
    /// rollback, [`Engine::changes_from`](crate::Engine::changes_from) and
    /// `solostate_persistence::replay::Replay::open_upcasting` all read
    /// the old records through it, and checkpoints written under `schema`
    /// load as this engine's state.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use solostate::{Engine, StateEvent};
    /// #[derive(Serialize, Deserialize)]
    /// enum AccountsV1 { Put(String, u64) }
    ///
    /// let builder = Engine::<StateEvent<String, u64>>::builder()
    ///     .path("data/accounts")
    ///     .schema("accounts-v2")
    ///     .upcast_from("accounts-v1", |old: AccountsV1| match old {
    ///         AccountsV1::Put(key, value) => StateEvent::put(key, value),
    ///     });
    /// ```
    ///
    /// Nothing on disk changes until the first new event: its write also
    /// records that the seqs before it are `schema`'s (so opening the
    /// directory under the old schema again works until then, and not
    /// after). [`Recovery::upcast`](crate::Recovery::upcast) lists the
    /// older schemas read. Register one upcaster per older schema, each
    /// converting straight to `E`; opening fails with an incompatible
    /// [`OpenError::Journal`] naming a schema whose records are still in
    /// the journal and that has none.
    ///
    /// **What an upcaster must keep.** One old event becomes exactly one
    /// new one (seqs are never renumbered); the state's key and value
    /// types and their encoding do not change; and `E::apply` of an
    /// upcast event changes the state exactly as the old type's `apply`
    /// did, or replay would rebuild a state that was never acknowledged
    /// (the determinism guard's recorded state hashes catch that at
    /// replay). Giving the current schema, an empty one, or the same one
    /// twice fails the open with [`OpenError::InvalidConfig`].
    pub fn upcast_from<Old>(
        mut self,
        schema: impl Into<String>,
        upcast: impl Fn(Old) -> E + Send + Sync + 'static,
    ) -> Self
    where
        Old: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        let schema = schema.into();
        self.upcast_twice |= self.upcasters.reads(&schema);
        self.upcasters.add(schema, upcast);
        self
    }

    /// [`Builder::upcast_from`] for every upcaster in `upcasters`: for a
    /// set built once and shared, with
    /// `solostate_persistence::replay::Replay::open_upcasting` or the
    /// `solostate` tool.
    pub fn upcasters(mut self, upcasters: Upcasters<E>) -> Self {
        self.upcast_twice |= upcasters.schemas().any(|old| self.upcasters.reads(old));
        self.upcasters.extend(upcasters);
        self
    }

    /// sled's page cache size in bytes, for a journal on
    /// [`JournalBackend::Sled`] (the segment log keeps only an index in
    /// memory), set explicitly because sled's own default (1 GiB) is
    /// rarely right for an embedded journal. At least
    /// 256 bytes (sled's floor; it panics below it), or `open` fails with
    /// [`OpenError::InvalidConfig`].
    pub fn journal_cache_bytes(mut self, bytes: u64) -> Self {
        self.journal_cache_bytes = bytes;
        self
    }

    /// What a new journal is stored on; see [`JournalBackend`]. The
    /// default is the segment log, solostate's own. An existing journal is
    /// always opened on the backend its files are for, whatever this says,
    /// so an engine keeps reading the journals it wrote before. Only
    /// matters with a path.
    pub fn journal_backend(mut self, backend: JournalBackend) -> Self {
        self.journal_backend = backend;
        self
    }

    /// When checkpoints are written; see [`CheckpointPolicy`]. Only
    /// matters with a path.
    pub fn checkpoints(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoints = policy;
        self
    }

    /// How much journal to keep; see [`Retention`]. The default keeps the
    /// full history.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How many recent seqs [`Engine::as_of`] answers from memory. Older
    /// ones are rebuilt from disk (or, without a path, are gone). The
    /// window holds published snapshots, so its cost is the map nodes that
    /// writes since then copied, not a copy of the map.
    ///
    /// It also costs write throughput on maps much larger than the CPU
    /// cache: a node replaced by a write is freed only when the last
    /// version holding it leaves the window, by which time it is out of
    /// cache. With 2 writers putting 64-byte values at random into a
    /// million keys (the `threads_profile` bench), the default window
    /// gave about 250k events/s and a window of 0 about 330k.
    ///
    /// 0 keeps only the current state: with a path every past seq is
    /// rebuilt from disk, and without one no past seq can be read or
    /// rolled back to.
    pub fn as_of_window(mut self, seqs: u64) -> Self {
        self.as_of_window = seqs;
        self
    }

    /// If the journal has a damaged record in the middle (one whose bytes
    /// changed; an incompatible one, of another format or event encoding,
    /// still fails the open), recover to the prefix before it instead of
    /// failing the open: that record and every one after it move to a
    /// quarantine tree (not deleted), checkpoints after it are set aside
    /// (renamed, kept), the engine resumes from the seq before it, and
    /// this is logged as an error and reported in [`Engine::recovery`]
    /// ([`Recovery::quarantined_from`],
    /// [`Recovery::checkpoints_set_aside`]). Events after the bad record are
    /// lost from the state, even acknowledged ones, which is why the
    /// default is to fail the open with the seq and the path instead.
    pub fn recover_to_prefix(mut self, recover: bool) -> Self {
        self.recover_to_prefix = recover;
        self
    }

    /// What to do when the journal cannot be used but a checkpoint
    /// verifies: sled fails or panics opening it, its header or last
    /// record is damaged, or it ends before the newest checkpoint
    /// ([`OpenError::JournalBehind`]). The default,
    /// [`DamagedJournal::Fail`], fails the open with an error that names
    /// the path and this option, and changes nothing.
    /// [`DamagedJournal::MoveAside`] moves the journal aside (kept, never
    /// deleted), opens from the newest checkpoint that verifies with a
    /// fresh journal continuing after it, and reports it in
    /// [`Recovery::journal_moved_aside`]. Events after that checkpoint are
    /// then not in the state, even acknowledged ones, which is why it is
    /// not the default. See [`DamagedJournal`] for what counts as
    /// unusable.
    pub fn on_damaged_journal(mut self, choice: DamagedJournal) -> Self {
        self.on_damaged_journal = choice;
        self
    }

    /// The determinism guard: whenever a journaled batch crosses a
    /// multiple of `events` seqs, the state at its last seq is hashed (on a
    /// blocking thread, from an O(1) clone of the map) and the hash is
    /// recorded in the journal. Recovery, [`Engine::as_of`] and
    /// `persistence::replay` check every recorded hash they replay past,
    /// so an `apply` that no longer gives the same state (a new build of
    /// the reducer, a hidden input) fails the open with
    /// [`OpenError::Diverged`] naming the first checked seq that differs,
    /// instead of quietly producing a different state.
    ///
    /// The hash is not recomputed per check: the owner keeps it up to date
    /// from each accepted event's write set (two entry encodings per
    /// write), and replay does the same, so a check costs one small
    /// journal record live and O(1) at recovery. A hash is recorded after
    /// each batch that crosses a multiple of `events`. 0 turns the guard
    /// off; the default is
    /// [`DEFAULT_STATE_HASH_EVERY`](Self::DEFAULT_STATE_HASH_EVERY), every
    /// batch.
    /// In-memory engines have nothing to check against and ignore it.
    ///
    /// [`Engine::as_of`]: crate::Engine::as_of
    pub fn state_hash_every(mut self, events: u64) -> Self {
        self.state_hash_every = events;
        self
    }

    /// Calls `progress` while opening replays the journal, every 65,536
    /// events and once at the end, so a CLI can draw a progress bar. (The
    /// same progress is logged through `tracing` at info level.)
    pub fn on_replay_progress(
        mut self,
        progress: impl FnMut(ReplayProgress) + Send + 'static,
    ) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Sends the journal's writes and flushes, and the checkpoint files,
    /// through `plan` once the engine has opened (recovery itself runs
    /// without faults), so that a test can fail the Nth write or flush,
    /// fill the disk, or slow every flush down, and watch what the engine
    /// does: the failed batch is answered with [`AckError::Journal`], the
    /// published state stays at the last durable batch, and the engine
    /// stops. Keep a clone of the plan to read what it injected. Only
    /// matters with a path.
    ///
    /// A testing tool (feature `fault-injection`), not a production knob.
    ///
    /// [`AckError::Journal`]: crate::AckError::Journal
    #[cfg(feature = "fault-injection")]
    pub fn faults(mut self, plan: crate::FaultPlan) -> Self {
        self.faults = Some(plan);
        self
    }

    /// Labels every metric of this engine `engine="<name>"` (feature
    /// `metrics`), so that several engines in one process report apart.
    /// Without it the metrics carry no label. The engine registers its
    /// metrics when it opens: install the recorder before that.
    #[cfg(feature = "metrics")]
    pub fn metrics_label(mut self, name: impl Into<String>) -> Self {
        self.metrics.label = Some(name.into());
        self
    }

    /// How many commands may wait in the queue. When it is full, `send`
    /// and `submit` wait and `try_submit` fails with `Full`: backpressure
    /// instead of unbounded memory. Larger absorbs bursts; smaller bounds
    /// queueing latency.
    pub fn channel_capacity(mut self, capacity: usize) -> Self {
        self.channel_capacity = capacity;
        self
    }

    /// The most events applied before one snapshot is published and their
    /// acks are sent. Larger batches amortise publishing (and, with
    /// persistence, the journal flush); smaller ones ack sooner.
    ///
    /// On a large map this matters more than anything else: the first
    /// write to a map node after a publish copies that node (the snapshot
    /// still shares it), so with random keys nearly every event in a small
    /// batch pays a path copy, while a big batch pays it once per node.
    /// A batch can only be as big as what writers keep in flight, so deep
    /// pipelines (many `Pending`s per writer) raise throughput.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// How many committed batches a change-feed subscriber may fall behind
    /// before it gets `ChangeError::Lagged`.
    pub fn change_capacity(mut self, batches: usize) -> Self {
        self.change_capacity = batches;
        self
    }

    /// Keeps each committed event's key-level changes (every key it wrote,
    /// with its value after the event or its removal) in the as-of window,
    /// so that a change-feed subscriber that fell behind can catch up from
    /// the changes since its seq, one entry per key, instead of from a
    /// whole snapshot: see [`Engine::changes_between`]. Off by default:
    /// it costs a clone of each written key and value, and the window's
    /// memory for them.
    ///
    /// [`Engine::changes_between`]: crate::Engine::changes_between
    pub fn key_changes(mut self, keep: bool) -> Self {
        self.key_changes = keep;
        self
    }

    /// Which store holds the state (default: [`StoreKind::Persistent`]).
    ///
    /// The persistent store publishes each snapshot as an O(1) clone of an
    /// `imbl::HashMap` ([`Snapshot::map`](crate::Snapshot::map) hands it
    /// out); its writes copy the path to their entry, several microseconds
    /// each at a million keys. The versioned store is MVCC over papaya's
    /// lock-free hash map: writes cost a hash-map insert, reads take no
    /// lock, and a held snapshot keeps the versions written after it until
    /// it is dropped. Events, the journal, checkpoints and every read API
    /// are the same on both, so a directory written under one opens under
    /// the other.
    pub fn store(mut self, kind: StoreKind) -> Self {
        self.store = kind;
        self
    }

    /// The state to start from, at seq 0 (instead of an empty map).
    pub fn initial_state(mut self, state: State<E>) -> Self {
        self.initial = state;
        self
    }
}

impl<E: Event> Engine<E> {
    /// Starts configuring an engine. See [`Builder`].
    pub fn builder() -> Builder<E> {
        Builder::new()
    }
}
