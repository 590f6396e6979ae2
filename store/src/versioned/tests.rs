//! The versioned store against a model: a `BTreeMap` per published seq.

use std::collections::BTreeMap;

use proptest::prelude::*;
use solostate_commands::{Txn, Write};

use super::*;

type Model = BTreeMap<u8, u32>;

/// What a test step does.
#[derive(Debug, Clone)]
enum Step {
    /// One event: its writes, applied through a `Txn`, then kept or undone.
    Event {
        writes: Vec<(u8, Option<u32>)>,
        undo: bool,
    },
    /// Publish the batch so far, keeping the view (or not).
    Publish { keep: bool },
    /// Drop the held view at this index (modulo), then reclaim.
    Release(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (proptest::collection::vec((0u8..16, proptest::option::of(0u32..100)), 0..4), any::<bool>())
            .prop_map(|(writes, undo)| Step::Event { writes, undo }),
        2 => any::<bool>().prop_map(|keep| Step::Publish { keep }),
        1 => any::<usize>().prop_map(Step::Release),
    ]
}

fn entries(view: &PinnedView<'_, u8, u32>) -> Model {
    view.iter().map(|(key, value)| (*key, *value)).collect()
}

/// Every held view matches the model of its seq in get, contains_key, len
/// and iteration.
fn check(held: &[(Pinned<u8, u32>, Model)]) {
    for (pinned, model) in held {
        let view = pinned.view();
        assert_eq!(entries(&view), *model, "iter at seq {}", pinned.seq());
        assert_eq!(pinned.len(), model.len(), "len at seq {}", pinned.seq());
        for key in 0..16u8 {
            let expected = model.get(&key);
            assert_eq!(view.get(&key).as_deref(), expected, "view get {key}");
            assert_eq!(pinned.get(&key).as_deref(), expected, "get {key}");
            assert_eq!(pinned.contains_key(&key), expected.is_some());
        }
    }
}

fn run(steps: Vec<Step>) {
    let mut store: Versioned<u8, u32> = Versioned::from_entries(0, [(1, 10), (2, 20)]);
    let mut model: Model = [(1, 10), (2, 20)].into();
    let mut held = vec![(store.publish(0), model.clone())];
    let mut seq = 0;
    let mut buffer: Vec<Write<u8, u32>> = Vec::new();
    for step in steps {
        match step {
            Step::Event { writes, undo } => {
                store.write(|state| {
                    let mut tx = Txn::new(state, &mut buffer);
                    for (key, value) in &writes {
                        match value {
                            Some(value) => tx.insert(*key, *value),
                            None => {
                                tx.remove(key);
                            }
                        }
                    }
                    if undo {
                        tx.undo();
                    }
                });
                buffer.clear();
                if !undo {
                    for (key, value) in writes {
                        match value {
                            Some(value) => model.insert(key, value),
                            None => model.remove(&key),
                        };
                    }
                    seq += 1;
                }
                assert_eq!(store.len(), model.len());
            }
            Step::Publish { keep } => {
                let pinned = store.publish(seq);
                if keep {
                    held.push((pinned, model.clone()));
                }
                store.reclaim();
                check(&held);
            }
            Step::Release(at) => {
                if held.len() > 1 {
                    held.remove(at % held.len());
                }
                store.reclaim();
                check(&held);
            }
        }
    }
    // Once only the newest view is held, every older version goes. (An
    // event after the last one first: a rejected last event's undo wrote
    // at the seq after the published one, which only a later publish
    // covers, as in the engine.)
    seq += 1;
    store.write(|_| ());
    let newest = store.publish(seq);
    drop(held);
    store.reclaim();
    check(&[(newest, model)]);
    assert_eq!(store.retained(), 0);
    assert_eq!(store.older_versions(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn held_views_match_the_model_and_versions_are_reclaimed(steps in proptest::collection::vec(step(), 1..60)) {
        run(steps);
    }
}

#[test]
fn a_held_view_costs_the_writes_made_while_it_is_held() {
    let mut store: Versioned<u32, u32> = Versioned::from_entries(0, (0..1000).map(|k| (k, k)));
    let old = store.publish(0);
    let mut writes = Vec::new();
    for round in 1..=10u32 {
        store.write(|state| {
            let mut tx = Txn::new(state, &mut writes);
            for key in 0..100 {
                tx.insert(key, round);
            }
        });
        writes.clear();
        drop(store.publish(u64::from(round)));
        store.reclaim();
    }
    // 100 keys written 10 times while `old` is held: 10 older versions
    // each (the 10th write's older one is the 9th, down to the original).
    assert_eq!(store.older_versions(), 1000);
    assert_eq!(old.get(&5).as_deref(), Some(&5));
    drop(old);
    drop(store.publish(10));
    store.reclaim();
    assert_eq!(store.older_versions(), 0);
    assert_eq!(store.retained(), 0);
}

#[test]
fn a_removed_key_leaves_the_map_once_no_view_can_see_it() {
    let mut store: Versioned<u32, u32> = Versioned::from_entries(0, [(1, 1)]);
    let old = store.publish(0);
    let mut writes = Vec::new();
    store.write(|state| Txn::new(state, &mut writes).remove(&1));
    let new = store.publish(1);
    store.reclaim();
    assert_eq!(old.get(&1).as_deref(), Some(&1));
    assert!(!new.contains_key(&1));
    assert_eq!(store.map.len(), 1, "the removal is kept for the old view");
    drop(old);
    store.reclaim();
    assert_eq!(store.map.len(), 0);
    assert!(new.is_empty());
}

#[test]
fn a_view_held_for_long_does_not_keep_a_pin_per_batch() {
    let mut store: Versioned<u32, u32> = Versioned::from_entries(0, [(1, 1)]);
    let held = store.publish(0);
    let mut writes = Vec::new();
    for seq in 1..=10_000u64 {
        store.write(|state| Txn::new(state, &mut writes).insert(1, seq as u32));
        writes.clear();
        drop(store.publish(seq));
        store.reclaim();
    }
    // The held view and the newest are live; the dead ones between are
    // swept once the deque reaches twice the live count (at least 1024).
    assert!(store.pins() <= 1024, "{} pins tracked", store.pins());
    assert_eq!(held.get(&1).as_deref(), Some(&1));
}
