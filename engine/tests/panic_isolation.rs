//! A panicking or half-writing `apply` rejects only its own command: the
//! state is as it was before it, sequence numbers stay dense, and the
//! engine keeps serving.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{TestEvent, TestRejection, quiet_intentional_panics};
use serde::{Deserialize, Serialize};
use solostate::{AckError, Engine, Event, StateEvent, SubmitError};

#[tokio::test]
async fn panicking_apply_rejects_only_that_command() {
    quiet_intentional_panics();
    let engine = Engine::<TestEvent>::builder().open().await.unwrap();
    let reader = engine.reader();
    let ack = engine
        .submit(TestEvent::Kv(StateEvent::put(1, 10)))
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);

    let err = engine
        .submit(TestEvent::WriteThenPanic { key: 1, value: 99 })
        .await
        .unwrap_err();
    match err {
        SubmitError::Panicked { message } => {
            assert!(
                message.contains("panicking on purpose after writing key 1"),
                "{message}"
            )
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(
        reader.get(&1),
        Some(10),
        "the panicking write did not survive"
    );

    let ack = engine
        .submit(TestEvent::Kv(StateEvent::put(2, 20)))
        .await
        .unwrap();
    assert_eq!(ack.seq, 2, "seqs stay dense after a panic");
    assert_eq!(reader.wait_for(2).await.unwrap().len(), 2);
    let stats = engine.stats();
    assert_eq!((stats.applied, stats.panicked, stats.rejected), (2, 1, 0));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn failures_inside_one_batch_keep_the_accepted_events_around_them() {
    quiet_intentional_panics();
    let engine = Engine::<TestEvent>::builder()
        .max_batch(64)
        .open()
        .await
        .unwrap();
    let reader = engine.reader();
    // Queue everything before the owner runs, so it lands in one batch.
    let events = [
        TestEvent::Kv(StateEvent::put(1, 1)),
        TestEvent::WriteThenPanic { key: 1, value: 50 },
        TestEvent::Kv(StateEvent::put(2, 2)),
        TestEvent::WriteThenReject { key: 2, value: 60 },
        TestEvent::Kv(StateEvent::put(3, 3)),
    ];
    let pending: Vec<_> = events
        .into_iter()
        .map(|event| engine.try_submit(event).unwrap())
        .collect();
    let mut outcomes = Vec::new();
    for ack in pending {
        outcomes.push(ack.await.map(|ack| ack.seq));
    }
    assert_eq!(outcomes[0], Ok(1));
    assert!(matches!(outcomes[1], Err(AckError::Panicked { .. })));
    assert_eq!(outcomes[2], Ok(2));
    assert_eq!(
        outcomes[3],
        Err(AckError::Rejected(TestRejection::OnPurpose(2)))
    );
    assert_eq!(outcomes[4], Ok(3));
    assert_eq!(engine.stats().batches, 1, "all five were one batch");

    let snapshot = reader.wait_for(3).await.unwrap();
    let mut entries: Vec<_> = snapshot.iter().map(|(k, v)| (*k, *v)).collect();
    entries.sort();
    assert_eq!(entries, vec![(1, 1), (2, 2), (3, 3)]);
    engine.shutdown().await.unwrap();
}

/// An event whose first `apply` succeeds and whose second fails: what a
/// non-deterministic reducer looks like to the engine.
#[derive(Debug, Serialize, Deserialize)]
enum Flaky {
    Put(u8),
    SucceedsOnce,
    Reject,
}

static FLAKY_RAN: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
#[error("flaky rejection")]
struct FlakyError;

impl Event for Flaky {
    type Key = u8;
    type Value = u8;
    type Rejection = FlakyError;

    fn apply(&self, map: &mut imbl::HashMap<u8, u8>) -> Result<(), FlakyError> {
        match self {
            Flaky::Put(key) => {
                map.insert(*key, 0);
                Ok(())
            }
            Flaky::SucceedsOnce if !FLAKY_RAN.swap(true, Ordering::SeqCst) => {
                map.insert(100, 1);
                Ok(())
            }
            Flaky::SucceedsOnce | Flaky::Reject => Err(FlakyError),
        }
    }
}

#[tokio::test]
async fn non_deterministic_apply_is_reported_as_diverged_not_applied() {
    let engine = Engine::<Flaky>::builder()
        .max_batch(64)
        .open()
        .await
        .unwrap();
    let reader = engine.reader();
    // One batch: the flaky event is accepted, then the rejection that
    // follows forces a rebuild that re-applies it, and it fails.
    let pending: Vec<_> = [
        Flaky::Put(1),
        Flaky::SucceedsOnce,
        Flaky::Reject,
        Flaky::Put(2),
    ]
    .into_iter()
    .map(|event| engine.try_submit(event).unwrap())
    .collect();
    let mut outcomes = Vec::new();
    for ack in pending {
        outcomes.push(ack.await);
    }
    assert_eq!(outcomes[0].as_ref().unwrap().seq, 1);
    assert!(
        matches!(&outcomes[1], Err(AckError::Diverged { message }) if message.contains("flaky")),
        "{:?}",
        outcomes[1]
    );
    assert!(matches!(outcomes[2], Err(AckError::Rejected(FlakyError))));
    assert_eq!(outcomes[3].as_ref().unwrap().seq, 2, "seqs stay dense");

    let snapshot = reader.wait_for(2).await.unwrap();
    assert!(
        !snapshot.contains_key(&100),
        "the diverged event is not in the state"
    );
    assert_eq!(snapshot.len(), 2);
    assert_eq!(engine.stats().diverged, 1);
    engine.shutdown().await.unwrap();
}
