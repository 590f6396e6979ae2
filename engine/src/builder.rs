//! [`Builder`]: the named knobs of an engine.

use std::path::PathBuf;
use std::sync::Arc;

use solostate_commands::{Event, State};
use solostate_persistence::journal::Journal;
use solostate_persistence::recovery;
use solostate_queries::{Publisher, Snapshot};

use crate::durability::Durability;

use crate::error::OpenError;
use crate::handle::{Engine, Shared};
use crate::owner::{self, OwnerConfig};

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
    journal_cache_bytes: u64,
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
            .field("schema", &self.schema)
            .finish()
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
            journal_cache_bytes: Self::DEFAULT_JOURNAL_CACHE_BYTES,
        }
    }

    /// Journals every committed batch in the sled database at `dir`
    /// (created if missing). On open, the state is rebuilt by replaying the
    /// journal. Without a path the engine is in memory only.
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

    /// The schema name stored in the journal's header; opening a journal
    /// written under another name fails. Defaults to the event type's Rust
    /// name. Set it to a stable string (and change it when the event
    /// encoding changes) to survive renames of the type.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// sled's page cache size in bytes, set explicitly because sled's own
    /// default (1 GiB) is rarely right for an embedded journal.
    pub fn journal_cache_bytes(mut self, bytes: u64) -> Self {
        self.journal_cache_bytes = bytes;
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

    /// The state to start from, at seq 0 (instead of an empty map).
    pub fn initial_state(mut self, state: State<E>) -> Self {
        self.initial = state;
        self
    }

    /// Starts the owner task on the current tokio runtime and returns the
    /// first handle.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidConfig`] for a zero capacity or batch size, and
    /// [`OpenError::NoRuntime`] outside a tokio runtime.
    pub async fn open(self) -> Result<Engine<E>, OpenError> {
        for (setting, value) in [
            ("channel_capacity", self.channel_capacity),
            ("max_batch", self.max_batch),
            ("change_capacity", self.change_capacity),
        ] {
            if value == 0 {
                return Err(OpenError::InvalidConfig {
                    setting,
                    reason: "must be at least 1",
                });
            }
        }
        if let Durability::Every(interval) = self.durability
            && interval.is_zero()
        {
            return Err(OpenError::InvalidConfig {
                setting: "durability",
                reason: "the flush interval must be longer than zero",
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| OpenError::NoRuntime)?;
        let (journal, map, last_seq) = match self.path.clone() {
            None => (None, self.initial, 0),
            Some(path) => {
                if !self.initial.is_empty() {
                    return Err(OpenError::InvalidConfig {
                        setting: "initial_state",
                        reason: "an initial state is not journaled; with a path, submit it as events",
                    });
                }
                let schema = self
                    .schema
                    .clone()
                    .unwrap_or_else(|| std::any::type_name::<E>().to_owned());
                let cache = self.journal_cache_bytes;
                let (journal, map, last_seq) =
                    tokio::task::spawn_blocking(move || recover::<E>(path, &schema, cache))
                        .await
                        .map_err(|error| OpenError::Journal {
                            message: format!("recovery task failed: {error}"),
                        })??;
                (Some(Arc::new(journal)), map, last_seq)
            }
        };
        let (tx, rx) = flume::bounded(self.channel_capacity);
        let (publisher, reader) =
            Publisher::starting_at(Snapshot::new(last_seq, map.clone()), self.change_capacity);
        let shared = Arc::new(Shared::starting_at(last_seq));
        let config = OwnerConfig {
            max_batch: self.max_batch,
            durability: self.durability,
        };
        if let (Some(journal), Durability::Every(interval)) = (&journal, self.durability) {
            runtime.spawn(owner::flush_every(
                Arc::downgrade(journal),
                interval,
                Arc::clone(&shared),
            ));
        }
        let intake = owner::Intake {
            rx,
            shared: Arc::clone(&shared),
        };
        runtime.spawn(owner::run(intake, map, journal, publisher, config));
        Ok(Engine::from_parts(tx, shared, reader))
    }
}

/// Opens the journal, removes a torn last record (with a warning naming its
/// seq), and replays the rest. Runs on a blocking thread.
fn recover<E: Event>(
    path: PathBuf,
    schema: &str,
    cache_bytes: u64,
) -> Result<(Journal, State<E>, u64), OpenError> {
    let journal_error = |error: solostate_persistence::journal::JournalError| OpenError::Journal {
        message: error.to_string(),
    };
    let journal = Journal::open(&path, schema, cache_bytes).map_err(journal_error)?;
    if let Some(torn) = journal.repair_tail().map_err(journal_error)? {
        tracing::warn!(
            seq = torn.seq,
            path = %path.display(),
            reason = %torn.reason,
            "removed a torn last journal record (a write cut short by a crash; never acknowledged under Durability::Always)"
        );
    }
    let mut map = State::<E>::new();
    let last_seq = recovery::replay::<E>(&journal, &mut map, |seq| {
        tracing::info!(seq, path = %path.display(), "replaying journal");
    })
    .map_err(|error| match error {
        recovery::ReplayError::Apply { seq, message } => OpenError::Replay { seq, message },
        other => OpenError::Journal {
            message: other.to_string(),
        },
    })?;
    Ok((journal, map, last_seq))
}
