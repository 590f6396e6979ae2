//! Rollback: `rollback_to` restores an earlier state as one new step,
//! durably, archives what it undid, and is what a restart opens.

use std::collections::BTreeMap;

use solostate::persistence::replay::Replay;
use solostate::{AsOfError, ChangeError, Durability, Engine, RollbackError, StateEvent};

type Ev = StateEvent<u64, u64>;

async fn open(dir: &std::path::Path) -> Engine<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema("rollback-test-v1")
        .durability(Durability::Always)
        .journal_cache_bytes(4 << 20)
        .open()
        .await
        .unwrap()
}

fn contents(engine: &Engine<Ev>) -> BTreeMap<u64, u64> {
    engine
        .reader()
        .snapshot()
        .view()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect()
}

/// Puts `i -> i * 10` for each `i` in `keys`, returning the last seq.
async fn put_all(engine: &Engine<Ev>, keys: std::ops::RangeInclusive<u64>) -> u64 {
    let mut last = 0;
    for i in keys {
        last = engine.submit(Ev::put(i, i * 10)).await.unwrap().seq;
    }
    last
}

#[tokio::test]
async fn rollback_restores_the_state_and_a_restart_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    assert_eq!(put_all(&engine, 1..=5).await, 5);
    let at_five = contents(&engine);
    assert_eq!(put_all(&engine, 6..=10).await, 10);

    let ack = engine.rollback_to(5).await.unwrap();
    assert_eq!(
        ack.seq, 11,
        "a rollback is one new step; seqs are never reused"
    );
    assert_eq!(engine.reader().seq(), 11);
    assert_eq!(contents(&engine), at_five);

    let next = engine.submit(Ev::put(100, 1)).await.unwrap();
    assert_eq!(next.seq, 12, "new events continue after the rollback step");
    let mut expected = at_five.clone();
    expected.insert(100, 1);
    assert_eq!(contents(&engine), expected);
    assert_eq!(engine.stats().rollbacks, 1);
    engine.shutdown().await.unwrap();

    // The undone events are archived, not deleted, with their seqs.
    let replay = Replay::<Ev>::open(dir.path(), "rollback-test-v1").unwrap();
    let archived: Vec<u64> = replay.archived().map(|e| e.unwrap().seq).collect();
    assert_eq!(archived, (6..=10).collect::<Vec<_>>());
    let steps: Vec<u64> = replay.steps(..).map(|e| e.unwrap().seq).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 11, 12]);
    drop(replay);

    let engine = open(dir.path()).await;
    assert_eq!(engine.reader().seq(), 12);
    assert_eq!(contents(&engine), expected);
    assert_eq!(engine.submit(Ev::put(101, 1)).await.unwrap().seq, 13);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn as_of_an_undone_seq_fails_and_as_of_the_rollback_step_is_the_target_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    put_all(&engine, 1..=8).await;
    let at_three = engine.as_of(3).await.unwrap();
    engine.rollback_to(3).await.unwrap(); // seq 9

    for undone in 4..=8 {
        assert!(
            matches!(engine.as_of(undone).await, Err(AsOfError::RolledBack { seq }) if seq == undone),
            "seq {undone}"
        );
    }
    let at_nine = engine.as_of(9).await.unwrap();
    assert_eq!(at_nine.to_map(), at_three.to_map());
    assert_eq!(engine.as_of(2).await.unwrap().len(), 2);
    engine.shutdown().await.unwrap();

    // The same from the disk, after a restart empties the window.
    let engine = open(dir.path()).await;
    assert!(matches!(
        engine.as_of(5).await,
        Err(AsOfError::RolledBack { seq: 5 })
    ));
    assert_eq!(engine.as_of(9).await.unwrap().to_map(), at_three.to_map());
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_change_feed_ends_with_rolled_back_and_wait_for_sees_the_rollback_step() {
    let engine = Engine::<Ev>::builder().open().await.unwrap();
    let reader = engine.reader();
    let mut feed = reader.changes();
    put_all(&engine, 1..=4).await;
    let ack = engine.rollback_to(2).await.unwrap();
    assert_eq!(ack.seq, 5);
    let snapshot = reader.wait_for(5).await.unwrap();
    assert_eq!(snapshot.len(), 2, "wait_for(R) gives the rolled-back state");

    let mut seen = Vec::new();
    let error = loop {
        match feed.recv().await {
            Ok(change) => seen.push(change.seq()),
            Err(error) => break error,
        }
    };
    assert_eq!(seen, [1, 2, 3, 4]);
    assert!(
        matches!(error, ChangeError::RolledBack { seq: 5, target: 2 }),
        "{error:?}"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_in_memory_engine_rolls_back_within_its_window_only() {
    let engine = Engine::<Ev>::builder()
        .as_of_window(4)
        .open()
        .await
        .unwrap();
    put_all(&engine, 1..=10).await;
    assert!(matches!(
        engine.rollback_to(2).await,
        Err(RollbackError::Unavailable(AsOfError::Forgotten {
            seq: 2,
            ..
        }))
    ));
    assert!(matches!(
        engine.rollback_to(11).await,
        Err(RollbackError::Unavailable(AsOfError::NotYet {
            seq: 11,
            last: 10
        }))
    ));
    assert_eq!(
        engine.reader().seq(),
        10,
        "a refused rollback changes nothing"
    );
    let ack = engine.rollback_to(9).await.unwrap();
    assert_eq!(ack.seq, 11);
    assert_eq!(engine.reader().snapshot().len(), 9);
    assert!(matches!(
        engine.as_of(10).await,
        Err(AsOfError::RolledBack { seq: 10 })
    ));
    assert_eq!(engine.as_of(11).await.unwrap().len(), 9);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn rolling_back_twice_and_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    put_all(&engine, 1..=6).await;
    engine.rollback_to(4).await.unwrap(); // seq 7
    put_all(&engine, 20..=21).await; // seqs 8, 9
    engine.rollback_to(7).await.unwrap(); // seq 10, the state of 4
    assert_eq!(contents(&engine), (1..=4).map(|i| (i, i * 10)).collect());
    engine.rollback_to(0).await.unwrap(); // seq 11
    assert!(contents(&engine).is_empty());
    engine.shutdown().await.unwrap();

    let engine = open(dir.path()).await;
    assert_eq!(engine.reader().seq(), 11);
    assert!(contents(&engine).is_empty());
    // The rollback to 0 undid every step after 0, earlier rollbacks too.
    for undone in [1, 4, 7, 10] {
        assert!(
            matches!(engine.as_of(undone).await, Err(AsOfError::RolledBack { seq }) if seq == undone),
            "seq {undone}"
        );
    }
    assert!(engine.as_of(0).await.unwrap().is_empty());
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_in_memory_rollback_keeps_the_states_before_its_target() {
    let engine = Engine::<Ev>::builder()
        .as_of_window(100)
        .open()
        .await
        .unwrap();
    // Single-event batches, and one batch of three so that the target
    // (seq 5) falls inside a batch: 1, 2, 3, then 4..=6 together, then 7..
    put_all(&engine, 1..=3).await;
    let pending: Vec<_> = {
        let mut pending = Vec::new();
        for i in 4..=6 {
            pending.push(engine.send(Ev::put(i, i * 10)).await.unwrap());
        }
        pending
    };
    for ack in pending {
        ack.await.unwrap();
    }
    put_all(&engine, 7..=10).await;
    let ack = engine.rollback_to(5).await.unwrap();
    assert_eq!(ack.seq, 11);
    for seq in [0, 1, 3, 4, 5] {
        let state = engine
            .as_of(seq)
            .await
            .unwrap_or_else(|error| panic!("as_of({seq}) after the rollback: {error}"));
        let expected: BTreeMap<u64, u64> = (1..=seq).map(|i| (i, i * 10)).collect();
        let found: BTreeMap<u64, u64> = state.view().iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(found, expected, "the state at seq {seq}");
    }
    for seq in 6..=10 {
        assert!(
            matches!(engine.as_of(seq).await, Err(AsOfError::RolledBack { seq: s }) if s == seq),
            "seq {seq} was undone"
        );
    }
    // The restored state at the marker, and a second rollback to a state
    // before the first one's target, from the kept window.
    assert_eq!(engine.as_of(11).await.unwrap().len(), 5);
    assert_eq!(engine.rollback_to(2).await.unwrap().seq, 12);
    assert_eq!(contents(&engine), BTreeMap::from([(1, 10), (2, 20)]));
    engine.shutdown().await.unwrap();
}
