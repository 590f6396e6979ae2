//! Model test of catch-up subscriptions: concurrent writers, and catch-up
//! subscribers that start from random seqs at random times (some slow
//! enough to lag the live feed and be caught up again from the history).
//! Each must see exactly the committed events after its seq, in order, no
//! gap and no duplicate, until shutdown. Durable engines get a tiny as-of
//! window, so their history comes from the journal; in-memory ones a
//! window that holds everything. A durable engine's subscriber still
//! catching up from the journal when the engine stops gets `Stopped`, and
//! resumes from its last seq against the reopened engine.
//!
//! It catches a wrong switch point: with the history ending one seq early
//! (`switch: switch.saturating_sub(1)` in `CatchUp::start`), or taking its
//! end from a later load than the live feed's (`reader.seq()` after a few
//! yields), and with `recv`'s guards (skip a live seq below `next`, resume
//! from the history above it) made to accept any live change, it fails
//! every run: a missing event, or one seen twice. With the guards in place
//! an early switch heals itself once a later event arrives live.

use proptest::prelude::*;
use solostate::{CatchUpError, Durability, Engine, StateEvent};

type Ev = StateEvent<u64, u64>;

/// One subscriber: it starts once `at` percent of the events are
/// committed (so most start while the writers write), from `back` seqs
/// before the newest, and yields `slow` times after every event.
#[derive(Debug, Clone)]
struct Subscriber {
    at: u64,
    back: u64,
    slow: u32,
}

fn subscriber() -> impl Strategy<Value = Subscriber> {
    (0u64..100, 0u64..120, prop_oneof![Just(0u32), 0u32..40])
        .prop_map(|(at, back, slow)| Subscriber { at, back, slow })
}

/// What a subscriber received: its start seq and the `(seq, event)`s.
type Received = (u64, Vec<(u64, Ev)>);

/// A durable engine with a tiny as-of window, so that catching up reads
/// the journal.
async fn open(dir: &std::path::Path, change_capacity: usize, window: u64) -> Engine<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema("catch-up-model-v1")
        .durability(Durability::Never)
        .journal_cache_bytes(1 << 20)
        .change_capacity(change_capacity)
        .as_of_window(window)
        .open()
        .await
        .unwrap()
}

/// Catches up from `last` to `total` on a reopened engine.
async fn resume(
    engine: &Engine<Ev>,
    last: u64,
    total: u64,
    got: &mut Vec<(u64, Ev)>,
) -> Result<(), String> {
    if last == total {
        return Ok(());
    }
    let mut feed = engine
        .changes_from(last)
        .await
        .map_err(|e| format!("changes_from({last}) after reopening: {e}"))?;
    loop {
        let change = feed
            .recv()
            .await
            .map_err(|e| format!("resumed from {last}: {e}"))?;
        got.push((change.seq(), change.event().clone()));
        if change.seq() >= total {
            return Ok(());
        }
    }
}

fn run(
    writers: Vec<u64>,
    subscribers: Vec<Subscriber>,
    durable: bool,
    change_capacity: usize,
    window: u64,
) -> (Vec<Ev>, Vec<Result<Received, String>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A bug at the switch can leave a subscriber waiting for an event that
    // is never written: a case that hangs fails instead of stalling CI.
    let case = async move {
        let dir = tempfile::tempdir().unwrap();
        let engine = if durable {
            open(dir.path(), change_capacity, window).await
        } else {
            Engine::<Ev>::builder()
                .change_capacity(change_capacity)
                .as_of_window(1 << 20)
                .open()
                .await
                .unwrap()
        };
        let total: u64 = writers.iter().sum();

        let mut subscribed = Vec::new();
        let mut started = Vec::new();
        for Subscriber { at, back, slow } in subscribers {
            let engine = engine.clone();
            let (up, up_rx) = tokio::sync::oneshot::channel::<()>();
            started.push(up_rx);
            subscribed.push(tokio::spawn(async move {
                let reader = engine.reader();
                let _ = reader.wait_for(total * at / 100).await;
                let from = reader.seq().saturating_sub(back);
                let mut feed = engine
                    .changes_from(from)
                    .await
                    .map_err(|e| format!("changes_from({from}): {e}"))?;
                let _ = up.send(()); // the engine may stop now
                let mut got = Vec::new();
                loop {
                    match feed.recv().await {
                        Ok(change) => got.push((change.seq(), change.event().clone())),
                        Err(CatchUpError::Closed) => return Ok((from, got, None)),
                        // A durable engine's slow subscriber can still be
                        // catching up from the journal when it closes.
                        Err(CatchUpError::Stopped { next_seq }) => {
                            return Ok((from, got, Some(next_seq - 1)));
                        }
                        Err(error) => return Err(format!("from {from}: {error}")),
                    }
                    for _ in 0..slow {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }

        let mut written = Vec::new();
        for (writer, count) in writers.into_iter().enumerate() {
            let engine = engine.clone();
            written.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..count {
                    let event = Ev::put(writer as u64 * 1000 + i, i);
                    let ack = engine.submit(event.clone()).await.unwrap();
                    acked.push((ack.seq, event));
                }
                acked
            }));
        }
        let mut committed = vec![None; total as usize + 1];
        for writer in written {
            for (seq, event) in writer.await.unwrap() {
                assert!(committed[seq as usize].is_none(), "seq {seq} acked twice");
                committed[seq as usize] = Some(event);
            }
        }
        // Every subscriber starts (each waits for at most `total`) before
        // the engine stops, so each sees the whole tail.
        for up in started {
            let _ = up.await;
        }
        engine.shutdown().await.unwrap();
        let mut received = Vec::new();
        let mut reopened = None;
        for task in subscribed {
            let outcome = match task.await.unwrap() {
                Ok((from, mut got, Some(last))) => {
                    // Resume where it stopped, against the reopened engine.
                    if reopened.is_none() {
                        reopened = Some(open(dir.path(), change_capacity, window).await);
                    }
                    let engine = reopened.as_ref().unwrap();
                    resume(engine, last, total, &mut got)
                        .await
                        .map(|()| (from, got))
                }
                Ok((from, got, None)) => Ok((from, got)),
                Err(error) => Err(error),
            };
            received.push(outcome);
        }
        if let Some(engine) = reopened {
            engine.shutdown().await.unwrap();
        }
        let committed = committed
            .into_iter()
            .skip(1)
            .map(|event| event.expect("dense seqs"))
            .collect();
        (committed, received)
    };
    runtime
        .block_on(async { tokio::time::timeout(HANG, case).await })
        .unwrap_or_else(|_| panic!("a case took over {HANG:?}: something waits forever"))
}

/// How long one case may take (they take well under a second).
const HANG: std::time::Duration = std::time::Duration::from_secs(120);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(12)
    ))]

    #[test]
    fn catch_up_sees_every_committed_event_after_its_seq_once_in_order(
        writers in proptest::collection::vec(1u64..60, 1..4),
        subscribers in proptest::collection::vec(subscriber(), 1..6),
        durable in any::<bool>(),
        change_capacity in 1usize..6,
        window in 1u64..16,
    ) {
        let (committed, received) = run(writers, subscribers, durable, change_capacity, window);
        for outcome in received {
            let (from, got) = outcome.map_err(TestCaseError::fail)?;
            let expected: Vec<(u64, Ev)> = committed
                .iter()
                .enumerate()
                .map(|(index, event)| (index as u64 + 1, event.clone()))
                .filter(|(seq, _)| *seq > from)
                .collect();
            prop_assert_eq!(got.len(), expected.len(), "subscriber from seq {}", from);
            prop_assert_eq!(got, expected, "subscriber from seq {}", from);
        }
    }
}
