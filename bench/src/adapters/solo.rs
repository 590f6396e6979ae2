//! solostate itself, on each of its stores (persistent, the default, and
//! versioned): in memory, and journaling under `Durability::Always` and
//! `Durability::Every(1s)`.
//!
//! Writes are `StateEvent::put`s sent through the engine from plain
//! threads (`send_blocking`), pipelined: each session keeps up to
//! [`WINDOW`] acks outstanding and awaits the oldest when full, the way
//! the Redis sessions pipeline their commands. `sync` awaits every ack, so
//! a durable write counts only once it is flushed. Reads load the current
//! snapshot from a `Reader` (a lock-free loan, no reference count) and
//! `get` the key through a view (for the versioned store: under papaya's
//! guard, with no reference count on the version either).

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use solostate::{CheckpointPolicy, Durability, Engine, Pending, Reader, StateEvent, StoreKind};
use tokio::runtime::Runtime;

use super::{AdapterError, Contender, Session};
use crate::workload::{Value64, value};

/// The engine with no journal.
pub const IN_MEMORY: &str = "solostate";
/// Journaled, flushed before each batch is acked.
pub const ALWAYS: &str = "solostate Always";
/// Journaled, flushed every second in the background.
pub const EVERY_1S: &str = "solostate Every(1s)";
/// The versioned store, with no journal.
pub const VERSIONED: &str = "solostate versioned";
/// The versioned store, journaled, flushed before each batch is acked.
pub const VERSIONED_ALWAYS: &str = "solostate versioned Always";
/// The versioned store, journaled, flushed every second.
pub const VERSIONED_EVERY_1S: &str = "solostate versioned Every(1s)";

/// The engine's event type in these benches.
pub type Ev = StateEvent<u64, Value64>;

/// Unacknowledged writes a session keeps in flight (the Redis sessions'
/// pipeline depth is the same).
pub const WINDOW: usize = 256;

/// Every how many reads a session samples snapshot staleness.
const STALENESS_EVERY: u64 = 64;

/// A running engine with its runtime (two workers: one per core of the
/// reference machine) and, when durable, its directory.
pub struct Solo {
    name: &'static str,
    runtime: Runtime,
    engine: Engine<Ev>,
    reader: Reader<Ev>,
    /// Writes sent so far: with only puts (which always apply), the seq
    /// the writers have reached is `base + sent`.
    sent: AtomicU64,
    base: u64,
    staleness: Mutex<Histogram<u64>>,
    _dir: Option<tempfile::TempDir>,
}

/// A two-worker runtime for an engine.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build the tokio runtime")
}

/// Opens an engine on `store` under `durability` in `dir` (in memory when
/// `None`). The durable contenders keep the default checkpoint policy, as
/// a user would; the in-memory one starts from the filled map.
pub fn open(
    runtime: &Runtime,
    store: StoreKind,
    dir: Option<&std::path::Path>,
    durability: Durability,
    checkpoints: CheckpointPolicy,
    initial: imbl::HashMap<u64, Value64>,
) -> Result<Engine<Ev>, solostate::OpenError> {
    let builder = Engine::<Ev>::builder()
        .store(store)
        .durability(durability)
        .checkpoints(checkpoints)
        .schema("solostate-bench/StateEvent<u64,Value64>");
    let builder = match dir {
        Some(dir) => builder.path(dir),
        None => builder.initial_state(initial),
    };
    runtime.block_on(builder.open())
}

/// Puts `value(k)` for every key in `keys` through `engine`, pipelined,
/// and waits for every ack. From a plain thread, not the runtime.
pub fn put_all(engine: &Engine<Ev>, keys: impl Iterator<Item = u64>) {
    let mut pending = VecDeque::with_capacity(4096);
    for key in keys {
        pending.push_back(engine.send_blocking(StateEvent::put(key, value(key))));
        if pending.len() == 4096 {
            await_ack(pending.pop_front().expect("queue is full"));
        }
    }
    pending.into_iter().for_each(await_ack);
}

fn await_ack(sent: Result<Pending<Ev>, solostate::SendError<Ev>>) {
    let pending = sent.unwrap_or_else(|_| panic!("the engine stopped taking events"));
    if let Err(error) = pending.wait_blocking() {
        panic!("a put was not applied: {error}");
    }
}

/// The solostate contender called `name`, holding `0..keys`.
pub fn build(name: &str, keys: u64) -> Option<Result<Box<dyn Contender>, AdapterError>> {
    let every_1s = Durability::Every(Duration::from_secs(1));
    let (name, store, durability) = match name {
        IN_MEMORY => (IN_MEMORY, StoreKind::Persistent, None),
        ALWAYS => (ALWAYS, StoreKind::Persistent, Some(Durability::Always)),
        EVERY_1S => (EVERY_1S, StoreKind::Persistent, Some(every_1s)),
        VERSIONED => (VERSIONED, StoreKind::Versioned, None),
        VERSIONED_ALWAYS => (
            VERSIONED_ALWAYS,
            StoreKind::Versioned,
            Some(Durability::Always),
        ),
        VERSIONED_EVERY_1S => (VERSIONED_EVERY_1S, StoreKind::Versioned, Some(every_1s)),
        _ => return None,
    };
    let failed = |reason: String| AdapterError::Store {
        contender: name,
        reason,
    };
    let runtime = runtime();
    let opened = match durability {
        // The persistent store starts from the filled map (an O(1) move).
        // The versioned one is filled by events instead: built from an
        // imbl map, it would copy it, and the freed map's pages would stay
        // resident and count in its memory figure.
        None if store == StoreKind::Versioned => open(
            &runtime,
            store,
            None,
            Durability::Never,
            CheckpointPolicy::never(),
            Default::default(),
        )
        .map(|engine| {
            put_all(&engine, 0..keys);
            (engine, None)
        }),
        None => {
            let initial = (0..keys).map(|k| (k, value(k))).collect();
            open(
                &runtime,
                store,
                None,
                Durability::Never,
                CheckpointPolicy::never(),
                initial,
            )
            .map(|engine| (engine, None))
        }
        Some(durability) => {
            let dir = match tempfile::tempdir() {
                Ok(dir) => dir,
                Err(e) => return Some(Err(failed(format!("temp dir: {e}")))),
            };
            let default = CheckpointPolicy::default();
            open(
                &runtime,
                store,
                Some(dir.path()),
                durability,
                default,
                Default::default(),
            )
            .map(|engine| {
                put_all(&engine, 0..keys);
                (engine, Some(dir))
            })
        }
    };
    let (engine, dir) = match opened {
        Ok(opened) => opened,
        Err(e) => return Some(Err(failed(format!("open: {e}")))),
    };
    let reader = engine.reader();
    let base = reader.seq();
    Some(Ok(Box::new(Solo {
        name,
        runtime,
        engine,
        reader,
        sent: AtomicU64::new(0),
        base,
        staleness: Mutex::new(Histogram::new(3).expect("histogram")),
        _dir: dir,
    })))
}

impl Drop for Solo {
    fn drop(&mut self) {
        // Batch sizes say how much group commit a run got: the first thing
        // to look at when a durable contender is slow.
        let stats = self.engine.stats();
        eprintln!(
            "{}: applied {} events since open (the fill included) in {} batches (mean {:.0}, largest {})",
            self.name,
            stats.applied,
            stats.batches,
            stats.applied as f64 / stats.batches.max(1) as f64,
            stats.largest_batch
        );
        if let Err(e) = self.runtime.block_on(self.engine.shutdown()) {
            eprintln!("{}: shutdown failed: {e}", self.name);
        }
    }
}

impl Contender for Solo {
    fn name(&self) -> &'static str {
        self.name
    }

    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(SoloSession {
            solo: self,
            engine: self.engine.clone(),
            reader: self.reader.clone(),
            in_flight: VecDeque::with_capacity(WINDOW),
            found: 0,
            reads: 0,
            staleness: Histogram::new(3).expect("histogram"),
        })
    }

    fn take_staleness(&self) -> Option<Histogram<u64>> {
        let mut shared = self.staleness.lock().expect("no panics while locked");
        let taken = shared.clone();
        shared.reset();
        Some(taken)
    }
}

struct SoloSession<'a> {
    solo: &'a Solo,
    engine: Engine<Ev>,
    reader: Reader<Ev>,
    in_flight: VecDeque<Pending<Ev>>,
    found: u64,
    reads: u64,
    staleness: Histogram<u64>,
}

impl Session for SoloSession<'_> {
    fn read(&mut self, key: u64) {
        self.reads += 1;
        if self.reads.is_multiple_of(STALENESS_EVERY) {
            // Writers' progress first, then the snapshot: the gap is how
            // many sent events the snapshot does not show yet.
            let reached = self.solo.base + self.solo.sent.load(Ordering::Relaxed);
            let (found, seq) = self
                .reader
                .read(|snap| (snap.view().contains_key(&key), snap.seq()));
            self.found += u64::from(found);
            self.staleness
                .saturating_record(reached.saturating_sub(seq));
            return;
        }
        // Each store read as its docs advise: the persistent snapshot's
        // `get` borrows from the map directly (measured faster there than
        // going through a view); the versioned one's goes through a view,
        // which borrows under papaya's guard instead of counting a
        // reference to the version.
        let found = self.reader.read(|snap| match snap.kind() {
            StoreKind::Persistent => black_box(snap.get(&key)).is_some(),
            _ => black_box(snap.view().get(&key)).is_some(),
        });
        self.found += u64::from(found);
    }

    fn write(&mut self, key: u64, value: &Value64) {
        if self.in_flight.len() == WINDOW {
            await_ack(Ok(self.in_flight.pop_front().expect("window is full")));
        }
        self.solo.sent.fetch_add(1, Ordering::Relaxed);
        let sent = self.engine.send_blocking(StateEvent::put(key, *value));
        self.in_flight
            .push_back(sent.unwrap_or_else(|_| panic!("the engine stopped taking events")));
    }

    fn sync(&mut self) -> u64 {
        self.in_flight.drain(..).for_each(|p| await_ack(Ok(p)));
        std::mem::take(&mut self.found)
    }
}

impl Drop for SoloSession<'_> {
    fn drop(&mut self) {
        self.sync();
        let mut shared = self.solo.staleness.lock().expect("no panics while locked");
        shared.add(&self.staleness).expect("same histogram bounds");
    }
}
