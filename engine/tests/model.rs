//! Model-based test: random event sequences go through the engine and
//! through a plain `std::collections::HashMap` model written independently
//! of `StateEvent::apply`. After every sequence the final state, every ack
//! seq and every rejection must agree, and replaying the change feed must
//! rebuild the live state (live == replayed == model).
//!
//! The sequences mix in events that write and then reject or panic, with
//! small random batch sizes, so the engine's undo path runs inside batches.
//!
//! Every case runs on either store (persistent or versioned). A reader
//! task holds on to every snapshot it sees while the events go in; at the
//! end each held snapshot must still equal the model's state at its seq
//! (a snapshot never changes, whatever was written and reclaimed since).
//!
//! Long form: `PROPTEST_CASES=5000 cargo test -p solostate --test model`.

mod common;

use std::collections::HashMap;

use common::model::{kv, model_kv};
use common::{TestEvent, TestRejection, quiet_intentional_panics};
use proptest::prelude::*;
use solostate::{AckError, Engine, SnapshotOf, StoreKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn event() -> impl Strategy<Value = TestEvent> {
    prop_oneof![
        12 => kv().prop_map(TestEvent::Kv),
        1 => (0u8..6, 0u8..3).prop_map(|(key, value)| TestEvent::WriteThenReject { key, value }),
        1 => (0u8..6, 0u8..3).prop_map(|(key, value)| TestEvent::WriteThenPanic { key, value }),
    ]
}

/// What the model expects for one event.
#[derive(Debug, PartialEq)]
enum Outcome {
    Applied(u64),
    Rejected(TestRejection),
    Panicked,
}

/// The model's final state, each event's outcome, and the state after
/// every seq (`states[0]` is the empty start).
type Expected = (HashMap<u8, u8>, Vec<Outcome>, Vec<HashMap<u8, u8>>);

fn model(events: &[TestEvent]) -> Expected {
    let mut map = HashMap::new();
    let mut seq = 0;
    let mut states = vec![HashMap::new()];
    let outcomes = events
        .iter()
        .map(|event| match event {
            TestEvent::Kv(kv) => match model_kv(kv, &mut map) {
                Ok(()) => {
                    seq += 1;
                    states.push(map.clone());
                    Outcome::Applied(seq)
                }
                Err(reason) => Outcome::Rejected(TestRejection::Kv(reason)),
            },
            TestEvent::WriteThenReject { key, .. } => {
                Outcome::Rejected(TestRejection::OnPurpose(*key))
            }
            TestEvent::WriteThenPanic { .. } => Outcome::Panicked,
        })
        .collect();
    (map, outcomes, states)
}

/// What the engine gave: its final state, the change feed replayed, each
/// event's outcome, the stats, and the snapshots a reader held.
type Run = (
    HashMap<u8, u8>,
    HashMap<u8, u8>,
    Vec<Outcome>,
    solostate::Stats,
    Vec<Arc<SnapshotOf<TestEvent>>>,
);

fn run_engine(
    events: Vec<TestEvent>,
    max_batch: usize,
    multi_thread: bool,
    store: StoreKind,
) -> Run {
    let runtime = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().build()
    }
    .expect("runtime");
    runtime.block_on(async move {
        let engine = Engine::<TestEvent>::builder()
            .channel_capacity(32)
            .max_batch(max_batch)
            .change_capacity(events.len() + 1)
            .store(store)
            .open()
            .await
            .expect("open");
        let reader = engine.reader();
        let mut feed = reader.changes();
        // Holds every snapshot it sees until the end.
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn({
            let (reader, stop) = (engine.reader(), Arc::clone(&stop));
            async move {
                let mut held: Vec<Arc<SnapshotOf<TestEvent>>> = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let snapshot = reader.snapshot();
                    if held.last().is_none_or(|last| last.seq() != snapshot.seq()) {
                        held.push(snapshot);
                    }
                    tokio::task::yield_now().await;
                }
                held
            }
        });

        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            pending.push(engine.send(event).await.expect("engine accepts"));
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for ack in pending {
            outcomes.push(match ack.await {
                Ok(ack) => Outcome::Applied(ack.seq),
                Err(AckError::Rejected(reason)) => Outcome::Rejected(reason),
                Err(AckError::Panicked { message }) => {
                    assert!(message.contains("on purpose"), "panic message: {message}");
                    Outcome::Panicked
                }
                Err(other) => panic!("unexpected ack error: {other}"),
            });
        }
        stop.store(true, Ordering::Release);
        let held = sampler.await.expect("the sampler does not panic");
        let stats = engine.stats();
        engine.shutdown().await.expect("clean shutdown");

        let live: HashMap<u8, u8> = reader
            .snapshot()
            .view()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        // Replay the committed events from the change feed onto an empty map.
        let mut replayed = solostate::imbl::HashMap::new();
        let mut next = 1;
        while let Ok(change) = feed.recv().await {
            assert_eq!(change.seq(), next, "change feed seqs are dense");
            next += 1;
            solostate::Event::apply_to(change.event(), &mut replayed)
                .expect("committed events re-apply");
        }
        assert_eq!(
            next - 1,
            reader.seq(),
            "feed delivered every committed event"
        );
        let replayed = replayed.into_iter().collect();
        (live, replayed, outcomes, stats, held)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(128)
    ))]

    #[test]
    fn engine_matches_model(
        events in proptest::collection::vec(event(), 0..120),
        max_batch in 1usize..12,
        multi_thread in any::<bool>(),
        versioned in any::<bool>(),
    ) {
        quiet_intentional_panics();
        let store = if versioned { StoreKind::Versioned } else { StoreKind::Persistent };
        let (model_map, model_outcomes, states) = model(&events);
        let (live, replayed, outcomes, stats, held) =
            run_engine(events, max_batch, multi_thread, store);
        for snapshot in &held {
            let expected = &states[snapshot.seq() as usize];
            prop_assert_eq!(snapshot.kind(), store);
            let view = snapshot.view();
            let found: HashMap<u8, u8> = view.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(&found, expected, "held snapshot at seq {}", snapshot.seq());
            prop_assert_eq!(snapshot.len(), expected.len());
            for key in 0..=u8::MAX {
                let got = snapshot.get(&key);
                prop_assert_eq!(got.as_deref(), expected.get(&key));
            }
        }

        prop_assert_eq!(&outcomes, &model_outcomes);
        prop_assert_eq!(&live, &model_map);
        prop_assert_eq!(&replayed, &model_map);

        let applied = model_outcomes.iter().filter(|o| matches!(o, Outcome::Applied(_))).count();
        let rejected = model_outcomes.iter().filter(|o| matches!(o, Outcome::Rejected(_))).count();
        let panicked = model_outcomes.iter().filter(|o| matches!(o, Outcome::Panicked)).count();
        prop_assert_eq!(stats.applied, applied as u64);
        prop_assert_eq!(stats.last_seq, applied as u64);
        prop_assert_eq!(stats.rejected, rejected as u64);
        prop_assert_eq!(stats.panicked, panicked as u64);
        prop_assert_eq!(stats.diverged, 0);
        prop_assert!(stats.largest_batch <= max_batch as u64);
    }
}
