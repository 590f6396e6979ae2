//! Catch-up subscriptions (`Engine::changes_from`): after a restart the
//! events come from the journal and then live; a rollback inside the
//! range ends the feed; an undone, future or forgotten seq is a typed
//! error; a lagging subscriber is caught up from the history on its own.
//! The no-gap, no-duplicate switch under concurrent writes is the model
//! test's (`catch_up_model.rs`).

use solostate::{CatchUp, CatchUpError, Durability, Engine, StateEvent};

type Ev = StateEvent<u64, u64>;

/// A durable engine whose as-of window holds one seq, so that catching up
/// reads the journal.
async fn open(dir: &std::path::Path) -> Engine<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema("catch-up-test-v1")
        .durability(Durability::Always)
        .journal_cache_bytes(1 << 20)
        .as_of_window(1)
        .open()
        .await
        .unwrap()
}

/// Submits `put(i, i)` for each `i`, one batch each.
async fn write(engine: &Engine<Ev>, keys: std::ops::RangeInclusive<u64>) {
    for i in keys {
        engine.submit(Ev::put(i, i)).await.unwrap();
    }
}

/// The next `n` changes as `(seq, key)`.
async fn take(feed: &mut CatchUp<Ev>, n: usize) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let change = feed.recv().await.unwrap();
        let StateEvent::Put { key, .. } = change.event() else {
            panic!("unexpected event {:?}", change.event());
        };
        got.push((change.seq(), *key));
    }
    got
}

fn puts(seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64)> {
    seqs.map(|seq| (seq, seq)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_stored_seq_resumes_from_the_journal_then_live() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    write(&engine, 1..=30).await;
    engine.shutdown().await.unwrap();

    let engine = open(dir.path()).await;
    let mut feed = engine.changes_from(10).await.unwrap();
    assert_eq!(feed.next_seq(), 11);
    assert_eq!(take(&mut feed, 20).await, puts(11..=30), "from the journal");
    write(&engine, 31..=33).await;
    assert_eq!(take(&mut feed, 3).await, puts(31..=33), "then live");

    let mut from_start = engine.changes_from(0).await.unwrap();
    assert_eq!(take(&mut from_start, 33).await, puts(1..=33));
    engine.shutdown().await.unwrap();
    assert_eq!(feed.recv().await.unwrap_err(), CatchUpError::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_caught_up_from_the_journal_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::<Ev>::builder()
        .path(dir.path())
        .schema("catch-up-test-v1")
        .change_capacity(1)
        .as_of_window(1)
        .open()
        .await
        .unwrap();
    let mut feed = engine.changes_from(0).await.unwrap();
    write(&engine, 1..=20).await; // twenty batches overflow a buffer of one
    assert_eq!(take(&mut feed, 20).await, puts(1..=20));
    write(&engine, 21..=21).await;
    assert_eq!(take(&mut feed, 1).await, puts(21..=21));
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_in_memory_subscriber_that_lags_past_the_window_gets_lagged() {
    let engine = Engine::<Ev>::builder()
        .change_capacity(1)
        .as_of_window(2)
        .open()
        .await
        .unwrap();
    let mut feed = engine.changes_from(0).await.unwrap();
    write(&engine, 1..=10).await;
    let lagged = CatchUpError::Lagged { next_seq: 1 };
    assert_eq!(feed.recv().await.unwrap_err(), lagged);
    assert_eq!(feed.recv().await.unwrap_err(), lagged, "lag is sticky");
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn beyond_the_window_an_in_memory_engine_refuses_with_forgotten() {
    let engine = Engine::<Ev>::builder()
        .as_of_window(4)
        .open()
        .await
        .unwrap();
    write(&engine, 1..=20).await;
    let Err(CatchUpError::Forgotten { seq: 2, oldest }) = engine.changes_from(2).await else {
        panic!("seq 2 is far behind a window of 4");
    };
    assert!((3..=20).contains(&oldest), "oldest kept {oldest}");
    let error = engine.changes_from(2).await.unwrap_err();
    assert!(error.to_string().contains("as_of_window"), "{error}");

    // From the oldest seq the window keeps, every event after it.
    let mut feed = engine.changes_from(oldest).await.unwrap();
    let n = (20 - oldest) as usize;
    assert_eq!(take(&mut feed, n).await, puts(oldest + 1..=20));
    engine.shutdown().await.unwrap();
    assert_eq!(feed.recv().await.unwrap_err(), CatchUpError::Closed);
}

#[tokio::test]
async fn a_seq_after_the_last_committed_one_is_not_yet() {
    let engine = Engine::<Ev>::builder().open().await.unwrap();
    write(&engine, 1..=3).await;
    assert_eq!(
        engine.changes_from(5).await.unwrap_err(),
        CatchUpError::NotYet { seq: 5, last: 3 }
    );
    let mut feed = engine.changes_from(3).await.unwrap();
    write(&engine, 4..=4).await;
    assert_eq!(
        take(&mut feed, 1).await,
        puts(4..=4),
        "the last seq is fine"
    );
    engine.shutdown().await.unwrap();
}

/// Seqs 1..=10, a rollback to 6 at seq 11, then 12..=14.
async fn with_a_rollback(engine: &Engine<Ev>) {
    write(engine, 1..=10).await;
    assert_eq!(engine.rollback_to(6).await.unwrap().seq, 11);
    write(engine, 12..=14).await;
}

/// What a subscriber sees of `with_a_rollback`'s history.
async fn check_rollback_history(engine: &Engine<Ev>) {
    // Inside the range: the events it kept, then the rollback, for good.
    let mut feed = engine.changes_from(3).await.unwrap();
    assert_eq!(take(&mut feed, 3).await, puts(4..=6));
    let rolled_back = CatchUpError::RolledBack { seq: 11, target: 6 };
    assert_eq!(feed.recv().await.unwrap_err(), rolled_back);
    assert_eq!(feed.recv().await.unwrap_err(), rolled_back, "sticky");

    // Resuming from the rollback's seq goes on after it.
    let mut feed = engine.changes_from(11).await.unwrap();
    assert_eq!(take(&mut feed, 3).await, puts(12..=14));

    // From the target itself: nothing to deliver before the rollback.
    let mut feed = engine.changes_from(6).await.unwrap();
    assert_eq!(feed.recv().await.unwrap_err(), rolled_back);

    // An undone seq cannot be caught up from.
    for undone in 7..=10 {
        assert_eq!(
            engine.changes_from(undone).await.unwrap_err(),
            CatchUpError::Undone {
                seq: undone,
                rollback: 11,
                target: 6
            },
            "seq {undone}"
        );
    }
}

#[tokio::test]
async fn a_rollback_inside_the_range_ends_the_feed_in_memory() {
    let engine = Engine::<Ev>::builder().open().await.unwrap();
    with_a_rollback(&engine).await;
    check_rollback_history(&engine).await;
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_inside_the_range_ends_the_feed_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    with_a_rollback(&engine).await;
    check_rollback_history(&engine).await; // the window holds one seq
    engine.shutdown().await.unwrap();
    let engine = open(dir.path()).await;
    check_rollback_history(&engine).await; // and after a restart
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_live_rollback_ends_the_feed_too() {
    let engine = Engine::<Ev>::builder().open().await.unwrap();
    write(&engine, 1..=5).await;
    let mut feed = engine.changes_from(2).await.unwrap();
    write(&engine, 6..=7).await;
    assert_eq!(take(&mut feed, 5).await, puts(3..=7));
    assert_eq!(engine.rollback_to(4).await.unwrap().seq, 8);
    assert_eq!(
        feed.recv().await.unwrap_err(),
        CatchUpError::RolledBack { seq: 8, target: 4 }
    );
    engine.shutdown().await.unwrap();
}
