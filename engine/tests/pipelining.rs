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

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{Bomb, arm_bomb, quiet_intentional_panics};
use solostate::{AckError, CheckpointPolicy, Durability, Engine, Pending, StateEvent, StoreKind};

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

/// A batch whose write set cannot be settled goes back to the state
/// before it: while the batch before it is in flight, that is the sealed
/// batch's state, not the published one, or the batch in flight would be
/// acked and then missing from every later snapshot.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_settle_while_a_batch_is_in_flight_keeps_that_batch() {
    quiet_intentional_panics();
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Engine::<StateEvent<u8, Bomb>>::builder()
            .path(dir.path())
            .schema(SCHEMA)
            .durability(Durability::Always)
            .checkpoints(CheckpointPolicy::never())
            .max_batch(4)
            .open()
    };
    let engine = open().await.unwrap();
    // Queued before the owner runs (a current-thread runtime, and no
    // await): the first four are one batch, sealed and in flight while the
    // next four apply. In those, the third replaces the 13, whose drop
    // panics as its write set is settled. (Armed after the submits, which
    // drop the copy they decode to check the encoding.)
    let events = [
        StateEvent::put(10, Bomb(10)),
        StateEvent::put(11, Bomb(11)),
        StateEvent::put(12, Bomb(12)),
        StateEvent::put(14, Bomb(14)),
        StateEvent::put(1, Bomb(1)),
        StateEvent::put(2, Bomb(13)),
        StateEvent::put(2, Bomb(5)),
        StateEvent::put(3, Bomb(3)),
    ];
    let pending: Vec<_> = events
        .into_iter()
        .map(|event| engine.try_submit(event).unwrap())
        .collect();
    arm_bomb();
    let mut outcomes = Vec::new();
    for ack in pending {
        outcomes.push(ack.await.map(|ack| ack.seq));
    }
    assert_eq!(outcomes[..4], [Ok(1), Ok(2), Ok(3), Ok(4)]);
    for refused in &outcomes[4..7] {
        assert!(
            matches!(refused, Err(AckError::Panicked { message }) if message.contains("dropping 13 on purpose")),
            "{refused:?}"
        );
    }
    assert_eq!(outcomes[7], Ok(5), "the engine keeps serving, seqs dense");
    assert!(
        engine.stats().pipelined >= 1,
        "the first batch was in flight"
    );

    let keys = |engine: &Engine<StateEvent<u8, Bomb>>| {
        let snapshot = engine.reader().snapshot();
        let mut keys: Vec<u8> = snapshot.view().iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys
    };
    let expected = vec![3, 10, 11, 12, 14];
    assert_eq!(keys(&engine), expected, "the batch in flight is kept");
    engine.shutdown().await.unwrap();
    let reopened = open().await.unwrap();
    assert_eq!(keys(&reopened), expected, "and reopens");
    reopened.shutdown().await.unwrap();
}
