//! As-of reads: the exact state at any past seq, from the in-memory window
//! for recent seqs and rebuilt from checkpoints plus the journal for older
//! ones.

use std::collections::BTreeMap;

use solostate::{AsOfError, CheckpointPolicy, Durability, Engine, StateEvent};

type Ev = StateEvent<u64, u64>;

/// The event with seq `seq` in these tests (every one applies).
fn event(seq: u64) -> Ev {
    if seq.is_multiple_of(5) {
        Ev::delete(seq % 7)
    } else {
        Ev::put(seq % 7, seq)
    }
}

/// The expected state after each seq, index 0 being the empty state.
fn model(last: u64) -> Vec<BTreeMap<u64, u64>> {
    let mut states = vec![BTreeMap::new()];
    for seq in 1..=last {
        let mut next = states.last().unwrap().clone();
        if seq % 5 == 0 {
            next.remove(&(seq % 7));
        } else {
            next.insert(seq % 7, seq);
        }
        states.push(next);
    }
    states
}

async fn write(engine: &Engine<Ev>, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        let ack = engine.submit(event(seq)).await;
        assert_eq!(ack.map(|a| a.seq).ok(), Some(seq), "seq {seq}");
    }
}

/// Checks `as_of` for every seq from `from` on against the model.
async fn check_every_seq(engine: &Engine<Ev>, states: &[BTreeMap<u64, u64>], from: u64) {
    for (seq, expected) in states.iter().enumerate().skip(from as usize) {
        let seq = seq as u64;
        let snapshot = engine.as_of(seq).await.unwrap();
        assert_eq!(snapshot.seq(), seq);
        let found: BTreeMap<u64, u64> = snapshot.view().iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(&found, expected, "as_of({seq})");
    }
}

#[tokio::test]
async fn an_in_memory_engine_answers_from_its_window() {
    let engine = Engine::<Ev>::builder()
        .as_of_window(16)
        .open()
        .await
        .unwrap();
    let states = model(60);
    write(&engine, 1..=60).await;
    check_every_seq(&engine, &states, 44).await;
    assert!(matches!(
        engine.as_of(10).await,
        Err(AsOfError::Forgotten { seq: 10, .. })
    ));
    assert!(matches!(
        engine.as_of(61).await,
        Err(AsOfError::NotYet { seq: 61, last: 60 })
    ));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_persistent_engine_rebuilds_older_seqs_from_checkpoints_and_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Engine::<Ev>::builder()
            .path(dir.path())
            .schema("as-of-test-v1")
            .durability(Durability::Never)
            .checkpoints(CheckpointPolicy::default().every_events(25).keep(3))
            .as_of_window(4)
            .journal_cache_bytes(4 << 20)
            .open()
    };
    let engine = open().await.unwrap();
    let states = model(120);
    write(&engine, 1..=120).await;
    // Most of these are outside the window of 4.
    check_every_seq(&engine, &states, 0).await;
    engine.shutdown().await.unwrap();

    // After a restart the window is empty: everything comes from disk.
    let engine = open().await.unwrap();
    assert!(engine.recovery().checkpoint.is_some());
    check_every_seq(&engine, &states, 0).await;
    engine.shutdown().await.unwrap();
}
