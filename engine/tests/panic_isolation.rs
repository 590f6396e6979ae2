//! A panicking or half-writing `apply` rejects only its own command: the
//! state is as it was before it, sequence numbers stay dense, and the
//! engine keeps serving.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{Bomb, TestEvent, TestRejection, arm_bomb, quiet_intentional_panics};
use serde::{Deserialize, Serialize};
use solostate::{AckError, Engine, Event, StateEvent, SubmitError, Txn};

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
    let mut entries: Vec<_> = snapshot.view().iter().map(|(k, v)| (*k, *v)).collect();
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

    fn apply(&self, tx: &mut Txn<'_, u8, u8>) -> Result<(), FlakyError> {
        match self {
            Flaky::Put(key) => {
                tx.insert(*key, 0);
                Ok(())
            }
            Flaky::SucceedsOnce if !FLAKY_RAN.swap(true, Ordering::SeqCst) => {
                tx.insert(100, 1);
                Ok(())
            }
            Flaky::SucceedsOnce | Flaky::Reject => Err(FlakyError),
        }
    }
}

#[tokio::test]
async fn a_failure_does_not_re_apply_the_events_accepted_before_it() {
    let engine = Engine::<Flaky>::builder()
        .max_batch(64)
        .open()
        .await
        .unwrap();
    let reader = engine.reader();
    // One batch: the flaky event is accepted, then a rejection follows. It
    // is undone from its own write set; the flaky event before it is not
    // run a second time (it would fail if it were).
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
    assert_eq!(outcomes[1].as_ref().unwrap().seq, 2, "{:?}", outcomes[1]);
    assert!(matches!(outcomes[2], Err(AckError::Rejected(FlakyError))));
    assert_eq!(outcomes[3].as_ref().unwrap().seq, 3, "seqs stay dense");

    let snapshot = reader.wait_for(3).await.unwrap();
    assert_eq!(
        snapshot.get(&100).as_deref(),
        Some(&1),
        "the accepted event stayed"
    );
    assert_eq!(snapshot.len(), 3);
    let stats = engine.stats();
    assert_eq!((stats.applied, stats.rejected, stats.diverged), (3, 1, 0));
    assert_eq!(stats.batches, 1, "all four were one batch");
    engine.shutdown().await.unwrap();
}

/// Events that make several writes of every kind (overwrite, insert,
/// remove, the same key twice, read-modify-write) before they fail.
#[derive(Debug, Serialize, Deserialize)]
enum Many {
    Put(u8, u8),
    WriteManyThenPanic,
    WriteManyThenReject,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("rejected on purpose after several writes")]
struct ManyError;

fn write_many(tx: &mut Txn<'_, u8, u8>) {
    tx.insert(1, 100);
    tx.insert(9, 9);
    assert!(tx.remove(&2));
    tx.update(3, |old| old.map(|v| v + 50));
    tx.insert(1, 101);
    tx.insert(10, 10);
    assert!(tx.remove(&10));
    assert_eq!(tx.get(&1), Some(&101), "the event sees its own writes");
}

impl Event for Many {
    type Key = u8;
    type Value = u8;
    type Rejection = ManyError;

    fn apply(&self, tx: &mut Txn<'_, u8, u8>) -> Result<(), ManyError> {
        match *self {
            Many::Put(key, value) => tx.insert(key, value),
            Many::WriteManyThenPanic => {
                write_many(tx);
                panic!("panicking on purpose after several writes");
            }
            Many::WriteManyThenReject => {
                write_many(tx);
                return Err(ManyError);
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_panic_after_several_writes_mid_batch_is_undone_and_later_events_apply() {
    quiet_intentional_panics();
    let engine = Engine::<Many>::builder()
        .max_batch(64)
        .open()
        .await
        .unwrap();
    let reader = engine.reader();
    let events = [
        Many::Put(1, 1),
        Many::Put(2, 2),
        Many::Put(3, 3),
        Many::WriteManyThenPanic,
        Many::Put(4, 4),
        Many::WriteManyThenReject,
        Many::Put(3, 33),
        Many::WriteManyThenPanic,
    ];
    let pending: Vec<_> = events
        .into_iter()
        .map(|event| engine.try_submit(event).unwrap())
        .collect();
    let mut outcomes = Vec::new();
    for ack in pending {
        outcomes.push(ack.await.map(|ack| ack.seq));
    }
    assert_eq!(&outcomes[..3], &[Ok(1), Ok(2), Ok(3)]);
    assert!(
        matches!(&outcomes[3], Err(AckError::Panicked { message }) if message.contains("on purpose")),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(outcomes[4], Ok(4));
    assert_eq!(outcomes[5], Err(AckError::Rejected(ManyError)));
    assert_eq!(outcomes[6], Ok(5), "seqs stay dense after failures");
    assert!(matches!(outcomes[7], Err(AckError::Panicked { .. })));
    let stats = engine.stats();
    assert_eq!(stats.batches, 1, "all eight were one batch");
    assert_eq!((stats.applied, stats.panicked, stats.rejected), (5, 2, 1));

    let snapshot = reader.wait_for(5).await.unwrap();
    let mut entries: Vec<_> = snapshot.view().iter().map(|(k, v)| (*k, *v)).collect();
    entries.sort();
    assert_eq!(entries, vec![(1, 1), (2, 2), (3, 33), (4, 4)]);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panic_while_settling_a_write_set_refuses_the_batch_so_far_and_keeps_serving() {
    quiet_intentional_panics();
    arm_bomb();
    let engine = Engine::<StateEvent<u8, Bomb>>::builder()
        .max_batch(64)
        .open()
        .await
        .unwrap();
    let reader = engine.reader();
    // One batch. The third event replaces the 13, which lands in its write
    // set; clearing that after the event applied drops it, and the drop
    // panics. The working map can then not be trusted, so it goes back to
    // the published (empty) one and the batch so far is refused.
    let events = [
        StateEvent::put(1, Bomb(1)),
        StateEvent::put(2, Bomb(13)),
        StateEvent::put(2, Bomb(5)),
        StateEvent::put(3, Bomb(3)),
    ];
    let pending: Vec<_> = events
        .into_iter()
        .map(|event| engine.try_submit(event).unwrap())
        .collect();
    let mut outcomes = Vec::new();
    for ack in pending {
        outcomes.push(ack.await.map(|ack| ack.seq));
    }
    for refused in &outcomes[..2] {
        assert!(
            matches!(refused, Err(AckError::Panicked { message }) if message.contains("not applied") && message.contains("dropping 13 on purpose")),
            "{refused:?}"
        );
    }
    assert!(
        matches!(&outcomes[2], Err(AckError::Panicked { message }) if message.contains("dropping 13 on purpose")),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(outcomes[3], Ok(1), "the engine keeps serving, seqs dense");
    assert_eq!(engine.stats().batches, 1, "all four were one batch");

    let snapshot = reader.wait_for(1).await.unwrap();
    let entries: Vec<_> = snapshot.view().iter().map(|(k, v)| (*k, v.0)).collect();
    assert_eq!(entries, vec![(3, 3)], "nothing of the refused events");
    engine.shutdown().await.unwrap();
}
