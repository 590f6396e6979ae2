//! The change feed: committed events in order, never a silent gap.

use solostate::{ChangeError, Engine, StateEvent};

type Ev = StateEvent<u64, u64>;

#[tokio::test]
async fn feed_delivers_committed_events_in_order_and_skips_rejected() {
    let engine = Engine::<Ev>::builder().open().await.unwrap();
    let reader = engine.reader();
    let mut feed = reader.changes();
    engine.submit(Ev::put(1, 10)).await.unwrap();
    assert!(engine.submit(Ev::insert(1, 11)).await.is_err());
    engine.submit(Ev::delete(1)).await.unwrap();

    let first = feed.recv().await.unwrap();
    assert_eq!((first.seq(), first.event()), (1, &Ev::put(1, 10)));
    let second = feed.recv().await.unwrap();
    assert_eq!((second.seq(), second.event()), (2, &Ev::delete(1)));
    assert_eq!(feed.try_recv().unwrap().map(|c| c.seq()), None);

    engine.shutdown().await.unwrap();
    assert_eq!(feed.recv().await.unwrap_err(), ChangeError::Closed);
    assert_eq!(
        reader.changes().recv().await.unwrap_err(),
        ChangeError::Closed,
        "subscribing after the engine stopped gives a closed feed"
    );
}

#[tokio::test]
async fn lagging_subscriber_gets_lagged_and_resyncs_with_subscribe() {
    let engine = Engine::<Ev>::builder()
        .change_capacity(2)
        .open()
        .await
        .unwrap();
    let reader = engine.reader();
    let mut slow = reader.changes();
    // Each submit is its own batch, so ten batches overflow a buffer of two.
    for i in 1..=10 {
        engine.submit(Ev::put(i, i)).await.unwrap();
    }
    let lagged = ChangeError::Lagged { next_seq: 1 };
    assert_eq!(slow.recv().await.unwrap_err(), lagged);
    assert_eq!(
        slow.recv().await.unwrap_err(),
        lagged,
        "lag is sticky, never silent"
    );
    assert!(lagged.to_string().contains("resync with Reader::subscribe"));

    // Resync: a snapshot plus a feed that continues exactly after it.
    let (snapshot, mut feed) = reader.subscribe();
    assert_eq!((snapshot.seq(), snapshot.len()), (10, 10));
    engine.submit(Ev::put(11, 11)).await.unwrap();
    let next = feed.recv().await.unwrap();
    assert_eq!((next.seq(), next.event()), (11, &Ev::put(11, 11)));
    engine.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_plus_feed_equals_the_final_state_under_concurrent_writes() {
    let engine = Engine::<Ev>::builder()
        .change_capacity(100_000)
        .max_batch(8)
        .open()
        .await
        .unwrap();
    let reader = engine.reader();
    let writer = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for i in 0..5_000u64 {
                engine.submit(Ev::put(i % 97, i)).await.unwrap();
            }
        })
    };
    tokio::task::yield_now().await;
    // Subscribe mid-stream: the snapshot and the feed must join exactly.
    let (snapshot, mut feed) = reader.subscribe();
    writer.await.unwrap();
    engine.shutdown().await.unwrap();

    let mut state = snapshot.to_map();
    let mut expected_seq = snapshot.seq() + 1;
    while let Ok(change) = feed.recv().await {
        assert_eq!(change.seq(), expected_seq, "no gap and no overlap");
        expected_seq += 1;
        solostate::Event::apply_to(change.event(), &mut state).unwrap();
    }
    let last = reader.snapshot();
    assert_eq!(expected_seq - 1, last.seq());
    assert_eq!(state, last.to_map());
}
