//! Shutdown, dropped handles, backpressure and blocking callers: no caller
//! ever waits forever, and nothing accepted goes unanswered.

use std::time::Duration;

use solostate::{
    AckError, Engine, OpenError, SendError, StateEvent, SubmitError, TrySubmitError, WaitError,
};

type Ev = StateEvent<u64, u64>;

async fn open(capacity: usize) -> Engine<Ev> {
    Engine::<Ev>::builder()
        .channel_capacity(capacity)
        .max_batch(16)
        .open()
        .await
        .unwrap()
}

/// Guards against hangs: every wait in these tests must finish.
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("operation hung")
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_drains_and_acks_everything_already_queued() {
    let engine = open(1024).await;
    let reader = engine.reader();
    // Queue 500 events without letting the owner run.
    let pending: Vec<_> = (0..500)
        .map(|i| engine.try_submit(Ev::put(i, i)).unwrap())
        .collect();
    assert_eq!(engine.stats().queue_depth, 500);

    within(engine.shutdown()).await.unwrap();
    for (i, ack) in pending.into_iter().enumerate() {
        assert_eq!(ack.await.unwrap().seq, i as u64 + 1);
    }
    let snapshot = reader.snapshot();
    assert_eq!((snapshot.seq(), snapshot.len()), (500, 500));
    assert!(reader.is_stopped());
    let stats = engine.stats();
    assert_eq!(
        (stats.applied, stats.last_seq, stats.queue_depth),
        (500, 500, 0)
    );
    assert!(stats.largest_batch <= 16);
}

#[tokio::test]
async fn submit_after_shutdown_fails_closed_and_returns_the_event() {
    let engine = open(16).await;
    let other = engine.clone();
    engine.submit(Ev::put(1, 1)).await.unwrap();
    within(engine.shutdown()).await.unwrap();
    assert!(other.is_closed());

    match other.submit(Ev::put(2, 2)).await {
        Err(SubmitError::Closed(event)) => assert_eq!(event, Ev::put(2, 2)),
        other => panic!("expected Closed, got {other:?}"),
    }
    match other.send(Ev::put(3, 3)).await {
        Err(SendError::Closed(event)) => assert_eq!(event, Ev::put(3, 3)),
        other => panic!("expected Closed, got {other:?}"),
    }
    match other.try_submit(Ev::put(4, 4)) {
        Err(TrySubmitError::Closed(event)) => assert_eq!(event, Ev::put(4, 4)),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(engine.reader().seq(), 1, "nothing after shutdown applied");
}

#[tokio::test]
async fn shutdown_twice_and_from_several_handles_returns_every_time() {
    let engine = open(16).await;
    let (a, b) = (engine.clone(), engine.clone());
    let (ra, rb) = within(async { tokio::join!(a.shutdown(), b.shutdown()) }).await;
    ra.unwrap();
    rb.unwrap();
    within(engine.shutdown()).await.unwrap();
}

#[tokio::test]
async fn shutdown_racing_with_writers_answers_every_send() {
    let engine = open(8).await;
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let engine = engine.clone();
        writers.push(tokio::spawn(async move {
            let (mut applied, mut closed) = (0u64, 0u64);
            for i in 0..2_000u64 {
                match engine.submit(Ev::put(w * 10_000 + i, i)).await {
                    Ok(_) => applied += 1,
                    Err(SubmitError::Closed(_)) => closed += 1,
                    Err(other) => panic!("unexpected: {other}"),
                }
            }
            (applied, closed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    within(engine.shutdown()).await.unwrap();
    let mut applied = 0;
    for writer in writers {
        let (a, c) = within(writer).await.unwrap();
        assert_eq!(a + c, 2_000, "every submit got an answer");
        applied += a;
    }
    assert_eq!(
        engine.reader().seq(),
        applied,
        "every Ok ack is in the state"
    );
}

#[tokio::test]
async fn dropping_every_handle_stops_the_owner_after_answering() {
    let engine = open(64).await;
    let reader = engine.reader();
    let pending: Vec<_> = (0..50)
        .map(|i| engine.try_submit(Ev::put(i, i)).unwrap())
        .collect();
    drop(engine);
    for (i, ack) in pending.into_iter().enumerate() {
        assert_eq!(within(ack).await.unwrap().seq, i as u64 + 1);
    }
    within(reader.stopped()).await;
    assert!(reader.is_stopped());
    assert_eq!(
        reader.snapshot().len(),
        50,
        "the last snapshot stays readable"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn try_submit_on_a_full_queue_hands_the_event_back() {
    let engine = open(4).await;
    // On a current-thread runtime the owner cannot run until we yield, so
    // the queue fills deterministically.
    let pending: Vec<_> = (0..4)
        .map(|i| engine.try_submit(Ev::put(i, i)).unwrap())
        .collect();
    match engine.try_submit(Ev::put(9, 9)) {
        Err(TrySubmitError::Full(event)) => assert_eq!(event, Ev::put(9, 9)),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(engine.stats().queue_depth, 4);
    for ack in pending {
        within(ack).await.unwrap();
    }
    // Room again once the owner has drained the queue.
    within(engine.try_submit(Ev::put(9, 9)).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn send_waits_for_room_instead_of_failing() {
    let engine = open(2).await;
    let mut pending = Vec::new();
    for i in 0..200 {
        pending.push(within(engine.send(Ev::put(i, i))).await.unwrap());
    }
    for (i, ack) in pending.into_iter().enumerate() {
        assert_eq!(within(ack).await.unwrap().seq, i as u64 + 1);
    }
}

#[tokio::test]
async fn wait_for_after_shutdown_returns_reached_seqs_and_errors_beyond() {
    let engine = open(16).await;
    let reader = engine.reader();
    let ack = engine.submit(Ev::put(1, 1)).await.unwrap();
    let waiter = {
        let reader = reader.clone();
        tokio::spawn(async move { reader.wait_for(5).await })
    };
    within(engine.shutdown()).await.unwrap();

    assert_eq!(within(reader.wait_for(ack.seq)).await.unwrap().seq(), 1);
    assert_eq!(
        within(reader.wait_for(2)).await.unwrap_err(),
        WaitError::Stopped {
            requested: 2,
            last: 1
        }
    );
    assert_eq!(
        within(waiter).await.unwrap().unwrap_err(),
        WaitError::Stopped {
            requested: 5,
            last: 1
        },
        "a waiter blocked before shutdown is woken with an error"
    );
}

#[tokio::test]
async fn wait_for_returns_once_the_seq_is_published() {
    let engine = open(16).await;
    let reader = engine.reader();
    let waiter = tokio::spawn(async move { reader.wait_for(3).await });
    for i in 0..3 {
        engine.submit(Ev::put(i, i)).await.unwrap();
    }
    let snapshot = within(waiter).await.unwrap().unwrap();
    assert!(snapshot.seq() >= 3);
    assert_eq!(snapshot.len(), 3);
}

#[test]
fn blocking_callers_on_plain_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let engine = runtime.block_on(open(64)).clone();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..100 {
                    seqs.push(
                        engine
                            .submit_blocking(Ev::put(t * 1000 + i, i))
                            .unwrap()
                            .seq,
                    );
                }
                let pending = engine.send_blocking(Ev::put(t * 1000 + 999, 0)).unwrap();
                seqs.push(pending.wait_blocking().unwrap().seq);
                seqs
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=404).collect::<Vec<_>>(), "dense, unique seqs");
    runtime.block_on(engine.shutdown()).unwrap();
    match engine.submit_blocking(Ev::put(0, 0)) {
        Err(SubmitError::Closed(_)) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_settings_are_named() {
    let err = Engine::<Ev>::builder()
        .max_batch(0)
        .open()
        .await
        .unwrap_err();
    assert_eq!(
        err,
        OpenError::InvalidConfig {
            setting: "max_batch",
            reason: "must be at least 1"
        }
    );
    assert_eq!(
        err.to_string(),
        "invalid setting max_batch: must be at least 1"
    );
}

#[test]
fn open_outside_a_runtime_is_an_error() {
    let open = Engine::<Ev>::builder().open();
    // Poll the future by hand, outside any runtime.
    let result = futures_lite_block_on(open);
    assert_eq!(result.unwrap_err(), OpenError::NoRuntime);
}

#[test]
fn pending_of_a_torn_down_owner_resolves_to_aborted() {
    // An owner dropped with its runtime cannot answer; the ack says so
    // instead of waiting for the last handle to go away.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = runtime.block_on(open(16));
    let pending = engine.try_submit(Ev::put(1, 1)).unwrap();
    drop(runtime); // the owner task is dropped before it ever ran
    assert_eq!(pending.wait_blocking().unwrap_err(), AckError::Aborted);
    assert!(engine.is_closed());
    assert!(matches!(
        engine.try_submit(Ev::put(2, 2)),
        Err(TrySubmitError::Closed(_))
    ));
}

/// A minimal executor for one future, so the no-runtime test does not
/// depend on tokio being absent by accident.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[tokio::test]
async fn stats_count_an_event_by_the_time_it_is_acked() {
    let engine = open(16).await;
    for i in 1..=20u64 {
        let ack = engine.submit(Ev::put(i, i)).await.unwrap();
        let stats = engine.stats();
        assert!(stats.applied >= i && stats.last_seq >= ack.seq, "{stats:?}");
    }
    let cas = Ev::compare_and_swap(1, Some(0), None);
    assert!(matches!(
        engine.submit(cas).await,
        Err(SubmitError::Rejected(_))
    ));
    assert_eq!(engine.stats().rejected, 1);
    assert!(engine.stats().batches >= 1);
}
