//! Model-based test across restarts, checkpoints and rollbacks: random
//! programs of event bursts, restarts (clean shutdown and reopen, under a
//! random durability), and rollbacks to random earlier seqs run against a
//! journaled engine that checkpoints every few events, and against a model
//! that keeps the state after every seq. After every step the live state
//! equals the model; at the end every past seq reads back through `as_of`
//! (or is reported rolled back), and the read-only replay of the directory
//! gives the model's final state hash. The determinism guard runs every few
//! events: every open, `as_of` rebuild and the final replay check its
//! hashes, none may trip, and every hash left in the journal is the
//! model's state hash at its seq (none is left at a rolled-back seq).
//! Each open picks the store (persistent or versioned) at random too, so
//! a directory written under one store reopens under the other.
//!
//! Long form: `PROPTEST_CASES=2000 cargo test -p solostate --release --test model_durable`.

mod common;

use std::collections::HashMap;

use common::model::{Kv, durability_and_store, kv, model_kv};
use proptest::prelude::*;
use solostate::persistence::hash::state_hash;
use solostate::persistence::replay::Replay;
use solostate::{AckError, AsOfError, CheckpointPolicy, Durability, Engine, Retention, StoreKind};

#[derive(Debug, Clone)]
enum Step {
    /// Submit these events, pipelined.
    Events(Vec<Kv>),
    /// Shut down and reopen.
    Restart,
    /// Roll back to the live seq found `back` positions from the end
    /// (modulo how many there are).
    Rollback { back: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::collection::vec(kv(), 1..20).prop_map(Step::Events),
        1 => Just(Step::Restart),
        2 => (0usize..40).prop_map(|back| Step::Rollback { back }),
    ]
}

type Map = HashMap<u8, u8>;

/// The model: the state after every seq, `None` for seqs a rollback undid.
struct Model {
    states: Vec<Option<Map>>,
}

impl Model {
    fn last(&self) -> u64 {
        self.states.len() as u64 - 1
    }

    fn current(&self) -> &Map {
        self.states.last().unwrap().as_ref().unwrap()
    }

    /// Applies `event`, returning its seq or `None` if it is rejected.
    fn apply(&mut self, event: &Kv) -> Option<u64> {
        let mut next = self.current().clone();
        model_kv(event, &mut next).ok()?;
        self.states.push(Some(next));
        Some(self.last())
    }

    fn rollback(&mut self, target: u64) -> u64 {
        let restored = self.states[target as usize].clone();
        for undone in &mut self.states[target as usize + 1..] {
            *undone = None;
        }
        self.states.push(restored);
        self.last()
    }

    /// Seqs that still have a state, newest first.
    fn live_seqs(&self) -> Vec<u64> {
        (0..=self.last())
            .rev()
            .filter(|&seq| self.states[seq as usize].is_some())
            .collect()
    }
}

fn live(engine: &Engine<Kv>) -> Map {
    engine
        .reader()
        .snapshot()
        .view()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect()
}

async fn open(
    dir: &std::path::Path,
    every: u64,
    (durability, store): (Durability, StoreKind),
) -> Engine<Kv> {
    Engine::<Kv>::builder()
        .store(store)
        .path(dir)
        .schema("model-durable-test-v1")
        .state_hash_every(every / 3 + 1)
        .durability(durability)
        .journal_cache_bytes(2 << 20)
        .checkpoints(CheckpointPolicy::default().every_events(every).keep(2))
        .retention(Retention::FullHistory)
        .as_of_window(8)
        .open()
        .await
        .expect("open")
}

fn run(steps: Vec<Step>, every: u64, durabilities: Vec<u8>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        // Each open's durability and store.
        let durability = |i: usize| durability_and_store(durabilities[i % durabilities.len()]);
        let mut restarts = 0;
        let mut engine = open(dir.path(), every, durability(restarts)).await;
        let mut model = Model {
            states: vec![Some(Map::new())],
        };
        for step in steps {
            match step {
                Step::Events(events) => {
                    let mut pending = Vec::new();
                    for event in &events {
                        pending.push(engine.send(event.clone()).await.expect("accepts"));
                    }
                    for (event, ack) in events.iter().zip(pending) {
                        let expected = model.apply(event);
                        match ack.await {
                            Ok(ack) => prop_assert_eq!(Some(ack.seq), expected),
                            Err(AckError::Rejected(_)) => prop_assert_eq!(None, expected),
                            Err(other) => panic!("unexpected ack error: {other}"),
                        }
                    }
                }
                Step::Restart => {
                    engine.shutdown().await.expect("clean shutdown");
                    restarts += 1;
                    engine = open(dir.path(), every, durability(restarts)).await;
                    prop_assert_eq!(engine.reader().seq(), model.last());
                }
                Step::Rollback { back } => {
                    let seqs = model.live_seqs();
                    let target = seqs[back % seqs.len()];
                    let ack = engine.rollback_to(target).await.expect("rollback");
                    prop_assert_eq!(ack.seq, model.rollback(target));
                }
            }
            prop_assert_eq!(&live(&engine), model.current());
        }

        for seq in 0..=model.last() {
            match (&model.states[seq as usize], engine.as_of(seq).await) {
                (Some(expected), Ok(snapshot)) => {
                    let found: Map = snapshot.view().iter().map(|(k, v)| (*k, *v)).collect();
                    prop_assert_eq!(&found, expected, "as_of({})", seq);
                }
                (None, Err(AsOfError::RolledBack { .. })) => {}
                (expected, found) => {
                    prop_assert!(false, "as_of({seq}): model {expected:?}, engine {found:?}")
                }
            }
        }
        let live_hash = state_hash::<Kv>(&engine.reader().snapshot().to_map()).unwrap();
        engine.shutdown().await.expect("clean shutdown");

        let replay = Replay::<Kv>::open(dir.path(), "model-durable-test-v1").expect("replay opens");
        let replayed = replay.state_at(model.last()).expect("replay");
        let model_map: solostate::State<Kv> = model.current().clone().into_iter().collect();
        prop_assert_eq!(state_hash::<Kv>(&replayed).unwrap(), live_hash);
        prop_assert_eq!(state_hash::<Kv>(&model_map).unwrap(), live_hash);
        for (seq, hash) in replay.journal().state_hashes(0..=u64::MAX).unwrap() {
            let Some(state) = &model.states[seq as usize] else {
                panic!("a state hash is left at seq {seq}, which was rolled back");
            };
            let state: solostate::State<Kv> = state.clone().into_iter().collect();
            prop_assert_eq!(
                state_hash::<Kv>(&state).unwrap(),
                hash,
                "state hash at seq {}",
                seq
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24)
    ))]

    #[test]
    fn durable_engine_matches_model_across_restarts_checkpoints_and_rollbacks(
        steps in proptest::collection::vec(step(), 1..14),
        every in 3u64..40,
        durabilities in proptest::collection::vec(0u8..6, 1..4),
    ) {
        run(steps, every, durabilities)?;
    }
}
