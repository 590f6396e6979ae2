//! The determinism guard end to end: an engine records state hashes every
//! few events, and reopening its directory with a reducer that gives a
//! different state from the same events fails with `OpenError::Diverged`
//! naming the first checked seq that differs, while the same reducer
//! reopens cleanly, and a guard turned off records nothing.

use serde::{Deserialize, Serialize};
use solostate::persistence::hash::state_hash;
use solostate::persistence::replay::Replay;
use solostate::{
    CheckpointPolicy, Engine, Event, OpenError, State, StateEvent, StateRejection, StoreKind, Txn,
};

type Kv = StateEvent<u64, u64>;

/// A "new build" of the reducer: the same bytes as [`Kv`] (so the journal
/// decodes), but a `Put` of a value from `SKEW_FROM` on stores one more.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct Skewed(Kv);

const SKEW_FROM: u64 = 50;

impl Event for Skewed {
    type Key = u64;
    type Value = u64;
    type Rejection = StateRejection<u64>;

    fn apply(&self, tx: &mut Txn<'_, u64, u64>) -> Result<(), Self::Rejection> {
        match &self.0 {
            StateEvent::Put { key, value } if *value >= SKEW_FROM => {
                tx.insert(*key, value + 1);
                Ok(())
            }
            other => other.apply(tx),
        }
    }
}

const SCHEMA: &str = "kv-u64";
const EVENTS: u64 = 100;

/// Writes `EVENTS` puts (`Put { key: seq % 7, value: seq }`), one batch
/// each, with the guard every `every` events and no checkpoints (so the
/// whole journal is replayed on open), and returns the seqs with a state
/// hash, read back from the directory.
async fn write(dir: &std::path::Path, every: u64) -> Vec<u64> {
    let engine = Engine::<Kv>::builder()
        .path(dir)
        .schema(SCHEMA)
        .checkpoints(CheckpointPolicy::never())
        .state_hash_every(every)
        .open()
        .await
        .expect("open");
    for seq in 1..=EVENTS {
        let ack = engine.submit(Kv::put(seq % 7, seq)).await.expect("ack");
        assert_eq!(ack.seq, seq);
    }
    engine.shutdown().await.expect("shutdown");
    let replay = Replay::<Kv>::open(dir, SCHEMA).expect("replay");
    let hashes = replay.journal().state_hashes(0..=u64::MAX).expect("hashes");
    hashes.into_iter().map(|(seq, _)| seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverging_apply_fails_the_open_naming_the_first_checked_seq() {
    let dir = tempfile::tempdir().unwrap();
    let checked = write(dir.path(), 10).await;
    // One event per batch: a check at every multiple of 10, none skipped
    // (the hash follows the writes; nothing is left to fall behind).
    assert_eq!(
        checked,
        (1..=EVENTS / 10).map(|i| i * 10).collect::<Vec<_>>()
    );
    let first_diverged = *checked
        .iter()
        .find(|&&seq| seq >= SKEW_FROM)
        .expect("a check at or after the skew");

    let error = Engine::<Skewed>::builder()
        .path(dir.path())
        .schema(SCHEMA)
        .open()
        .await
        .expect_err("the skewed reducer must not open");
    let mut model = State::<Kv>::new();
    for seq in 1..=first_diverged {
        Kv::put(seq % 7, seq).apply_to(&mut model).unwrap();
    }
    match error {
        OpenError::Diverged {
            seq,
            expected,
            actual,
        } => {
            assert_eq!(seq, first_diverged);
            assert_eq!(expected, state_hash::<Kv>(&model).unwrap());
            assert_ne!(actual, expected);
        }
        other => panic!("expected Diverged, got {other}"),
    }

    // The faithful reducer still opens, and the journal is untouched.
    let engine = Engine::<Kv>::builder()
        .path(dir.path())
        .schema(SCHEMA)
        .open()
        .await
        .expect("the original reducer opens");
    assert_eq!(engine.reader().seq(), EVENTS);
    engine.shutdown().await.unwrap();
}

/// The default guard checks every batch, so even an engine far smaller
/// than the old default interval (2^18 events, under which it recorded no
/// hash at all) catches a diverging reducer, at its first skewed seq, on
/// either store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_guard_checks_every_batch_of_a_small_engine() {
    for store in [StoreKind::Persistent, StoreKind::Versioned] {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::<Kv>::builder()
            .path(dir.path())
            .schema(SCHEMA)
            .store(store)
            .checkpoints(CheckpointPolicy::never())
            .open()
            .await
            .expect("open");
        for seq in 1..=EVENTS {
            engine.submit(Kv::put(seq % 7, seq)).await.expect("ack");
        }
        engine.shutdown().await.expect("shutdown");
        let replay = Replay::<Kv>::open(dir.path(), SCHEMA).expect("replay");
        let hashes = replay.journal().state_hashes(0..=u64::MAX).expect("hashes");
        assert_eq!(hashes.len() as u64, EVENTS, "{store:?}: one hash per batch");
        let mut model = State::<Kv>::new();
        for (seq, hash) in hashes {
            Kv::put(seq % 7, seq).apply_to(&mut model).unwrap();
            assert_eq!(
                hash,
                state_hash::<Kv>(&model).unwrap(),
                "{store:?}: seq {seq}"
            );
        }
        drop(replay);

        let error = Engine::<Skewed>::builder()
            .path(dir.path())
            .schema(SCHEMA)
            .open()
            .await
            .expect_err("the skewed reducer must not open");
        assert!(
            matches!(error, OpenError::Diverged { seq: SKEW_FROM, .. }),
            "{store:?}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_turned_off_records_nothing_and_cannot_trip() {
    let dir = tempfile::tempdir().unwrap();
    assert!(write(dir.path(), 0).await.is_empty());
    let engine = Engine::<Skewed>::builder()
        .path(dir.path())
        .schema(SCHEMA)
        .open()
        .await
        .expect("nothing to check against");
    engine.shutdown().await.unwrap();
}
