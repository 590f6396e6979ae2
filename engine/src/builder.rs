//! [`Builder`]: the named knobs of an engine.

use std::sync::Arc;

use solostate_commands::{Event, State};
use solostate_queries::Publisher;

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
}

impl<E: Event> std::fmt::Debug for Builder<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("channel_capacity", &self.channel_capacity)
            .field("max_batch", &self.max_batch)
            .field("change_capacity", &self.change_capacity)
            .field("initial_len", &self.initial.len())
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
        }
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
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| OpenError::NoRuntime)?;
        let (tx, rx) = flume::bounded(self.channel_capacity);
        let (publisher, reader) = Publisher::new(self.initial.clone(), self.change_capacity);
        let shared = Arc::new(Shared::default());
        let config = OwnerConfig {
            max_batch: self.max_batch,
        };
        let intake = owner::Intake {
            rx,
            shared: Arc::clone(&shared),
        };
        runtime.spawn(owner::run(intake, self.initial, publisher, config));
        Ok(Engine::from_parts(tx, shared, reader))
    }
}
