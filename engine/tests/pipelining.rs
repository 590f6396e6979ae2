//! Pipelining under `Durability::Always`: with more commands waiting than
//! one batch holds, a batch's flush runs while the next batch is applied.
//! These tests check that it happens (`Stats::pipelined`), that it stays
//! off when turned off, and that nothing changes for the callers: every
//! event acked once, with seqs in order, in the published state, and
//! found again after reopening, on both stores and both runtime flavours.
//!
//! What a failed flush of the batch in flight does is the fault sweep's
//! (`reliability/src/fault_sweep.rs`): its writers keep 64 events in
//! flight against batches of 8, so the failing flush is usually one in
//! flight.

use std::collections::HashMap;
use std::path::Path;

use solostate::{CheckpointPolicy, Durability, Engine, Pending, StateEvent, StoreKind};

type Ev = StateEvent<u64, u64>;

const SCHEMA: &str = "engine-tests/pipelining";
const WRITERS: u64 = 4;
/// Acks each writer keeps waiting: together far more than a batch.
const DEPTH: usize = 64;
const EVENTS_PER_WRITER: u64 = 1_500;
const MAX_BATCH: usize = 16;

fn builder(dir: &Path, store: StoreKind, pipelined: bool) -> solostate::Builder<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema(SCHEMA)
        .durability(Durability::Always)
        .checkpoints(CheckpointPolicy::never())
        .store(store)
        .max_batch(MAX_BATCH)
        .pipelined(pipelined)
}

/// Each writer puts its own keys (`writer * 1000 + i % 100`) with values
/// that grow, keeping [`DEPTH`] acks waiting. Returns every ack's seq and
/// what the state must be.
async fn write(engine: &Engine<Ev>) -> (Vec<u64>, HashMap<u64, u64>) {
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut waiting: std::collections::VecDeque<Pending<Ev>> =
                    std::collections::VecDeque::new();
                let mut seqs = Vec::new();
                let mut last = HashMap::new();
                for i in 0..EVENTS_PER_WRITER {
                    let key = writer * 1000 + i % 100;
                    last.insert(key, i);
                    if waiting.len() == DEPTH {
                        let ack = waiting.pop_front().unwrap().await.unwrap();
                        seqs.push(ack.seq);
                    }
                    waiting.push_back(engine.send(Ev::put(key, i)).await.unwrap());
                }
                for pending in waiting {
                    seqs.push(pending.await.unwrap().seq);
                }
                (seqs, last)
            })
        })
        .collect();
    let mut seqs = Vec::new();
    let mut state = HashMap::new();
    for writer in writers {
        let (acked, last) = writer.await.unwrap();
        seqs.extend(acked);
        state.extend(last);
    }
    (seqs, state)
}

fn state_of(engine: &Engine<Ev>) -> HashMap<u64, u64> {
    let snapshot = engine.reader().snapshot();
    snapshot.view().iter().map(|(k, v)| (*k, *v)).collect()
}

/// Writes under `store` with pipelining on or off, checks the acks and
/// the state, reopens, checks again, and returns `Stats::pipelined`.
async fn run(store: StoreKind, pipelined: bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path(), store, pipelined).open().await.unwrap();
    let (mut seqs, expected) = write(&engine).await;
    seqs.sort_unstable();
    let total = WRITERS * EVENTS_PER_WRITER;
    assert!(
        seqs.iter().copied().eq(1..=total),
        "every event acked once, with the seqs 1..={total}"
    );
    assert_eq!(engine.reader().seq(), total);
    assert_eq!(state_of(&engine), expected, "the published state");
    let stats = engine.stats();
    assert_eq!(stats.applied, total);
    engine.shutdown().await.unwrap();

    let reopened = builder(dir.path(), store, pipelined).open().await.unwrap();
    assert_eq!(reopened.reader().seq(), total, "every acked event reopens");
    assert_eq!(state_of(&reopened), expected, "the reopened state");
    reopened.shutdown().await.unwrap();
    stats.pipelined
}

async fn pipelines_and_keeps_every_ack(store: StoreKind) {
    let pipelined = run(store, true).await;
    assert!(
        pipelined > 0,
        "with {} events waiting against batches of {MAX_BATCH}, some flush overlapped the next batch",
        WRITERS as usize * DEPTH
    );
    assert_eq!(run(store, false).await, 0, "pipelining off: no overlap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_pipelined_and_every_ack_survives_on_the_persistent_store() {
    pipelines_and_keeps_every_ack(StoreKind::Persistent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_pipelined_and_every_ack_survives_on_the_versioned_store() {
    pipelines_and_keeps_every_ack(StoreKind::Versioned).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_backlog_is_pipelined_on_a_current_thread_runtime() {
    pipelines_and_keeps_every_ack(StoreKind::Versioned).await;
}
