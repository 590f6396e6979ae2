//! Random histories with a known answer.
//!
//! Each history comes from a real sequential execution against a
//! `BTreeMap`: operation `i` takes effect at instant `10 * i + 5`, and its
//! call and return are stretched randomly around that instant, so that
//! operations overlap but the execution's order always fits inside the
//! intervals. Such a history is linearizable by construction, whatever the
//! overlaps, and some operations are marked timed out. Changing one read's
//! answer to a value that was never written makes it not linearizable,
//! however the intervals fall.

use std::collections::BTreeMap;

use proptest::prelude::*;
use solostate_cluster_test::linearizability::{
    Completion, Limits, Operation, Verdict, check, check_kv,
};
use solostate_cluster_test::model::{KvInput, KvMap, KvOutput};

type Input = KvInput<u8, u8>;
type Op = Operation<Input, KvOutput<u8>>;

/// A value no generated operation writes.
const NEVER_WRITTEN: u8 = 200;

fn input() -> impl Strategy<Value = Input> {
    let key = 0u8..3;
    let value = || proptest::option::of(0u8..4);
    prop_oneof![
        3 => key.clone().prop_map(|key| KvInput::Read { key }),
        2 => (key.clone(), 0u8..4).prop_map(|(key, value)| KvInput::Put { key, value }),
        1 => key.clone().prop_map(|key| KvInput::Delete { key }),
        3 => (key, value(), value())
            .prop_map(|(key, expected, new)| KvInput::CompareAndSwap { key, expected, new }),
    ]
}

/// One generated operation: its input, how far its call and return reach
/// from its instant, and whether its client timed out.
fn step() -> impl Strategy<Value = (Input, u64, u64, bool)> {
    (input(), 0u64..35, 0u64..35, proptest::bool::weighted(0.1))
}

/// Runs `steps` in order against a map and writes the history. Also
/// returns the index of every read that returned.
fn execute(steps: &[(Input, u64, u64, bool)]) -> (Vec<Op>, Vec<usize>) {
    let mut map: BTreeMap<u8, u8> = BTreeMap::new();
    let mut history = Vec::new();
    let mut reads = Vec::new();
    for (i, (input, before, after, timed_out)) in steps.iter().enumerate() {
        let output = match input {
            KvInput::Read { key } => KvOutput::Value(map.get(key).copied()),
            KvInput::Put { key, value } => {
                map.insert(*key, *value);
                KvOutput::Ok
            }
            KvInput::Delete { key } => {
                map.remove(key);
                KvOutput::Ok
            }
            KvInput::CompareAndSwap { key, expected, new } => {
                if map.get(key) == expected.as_ref() {
                    match new {
                        Some(value) => map.insert(*key, *value),
                        None => map.remove(key),
                    };
                    KvOutput::Ok
                } else {
                    KvOutput::Mismatch
                }
            }
        };
        let instant = 10 * i as u64 + 5;
        let call = instant.saturating_sub(*before);
        let client = i as u64;
        if *timed_out {
            history.push(Operation::unknown(client, input.clone(), call));
        } else {
            if matches!(input, KvInput::Read { .. }) {
                reads.push(history.len());
            }
            history.push(Operation::returned(
                client,
                input.clone(),
                call,
                instant + after,
                output,
            ));
        }
    }
    (history, reads)
}

fn budget() -> Limits {
    Limits {
        max_steps: 5_000_000,
        timeout: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn histories_of_real_executions_are_linearizable(
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let (history, _) = execute(&steps);
        let verdict = check_kv(&history, &budget()).unwrap();
        prop_assert_eq!(verdict, Verdict::Linearizable);
    }

    #[test]
    fn per_key_and_whole_map_agree_on_real_executions(
        steps in proptest::collection::vec(step(), 1..14),
    ) {
        let (history, _) = execute(&steps);
        let whole = check(&KvMap::new(), &history, &budget()).unwrap();
        prop_assert_eq!(whole, Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_rejected(
        steps in proptest::collection::vec(step(), 1..120),
        pick in any::<proptest::sample::Index>(),
    ) {
        let (mut history, reads) = execute(&steps);
        prop_assume!(!reads.is_empty());
        let victim = reads[pick.index(reads.len())];
        let Completion::Returned { output, .. } = &mut history[victim].completion else {
            unreachable!("reads holds only returned reads")
        };
        *output = KvOutput::Value(Some(NEVER_WRITTEN));
        match check_kv(&history, &budget()).unwrap() {
            Verdict::NotLinearizable(why) => {
                let key = history[victim].input.key();
                prop_assert_eq!(why.partition, Some(format!("{key:?}")));
            }
            other => prop_assert!(false, "mutated read {} accepted: {:?}", victim, other),
        }
    }
}

/// A history the size the cluster tests will produce: 4000 operations
/// over 8 keys, each overlapping a dozen others, some timed out. Checking
/// per key keeps it within the default budget.
#[test]
fn a_history_of_thousands_of_operations_is_checked_within_the_budget() {
    // xorshift64: reproducible without a proptest runner.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let steps: Vec<(Input, u64, u64, bool)> = (0..4000)
        .map(|_| {
            let key = next(8) as u8;
            let value = |n: u64| (n < 4).then_some(n as u8);
            let input = match next(4) {
                0 => KvInput::Read { key },
                1 => KvInput::Put {
                    key,
                    value: next(4) as u8,
                },
                2 => KvInput::Delete { key },
                _ => KvInput::CompareAndSwap {
                    key,
                    expected: value(next(5)),
                    new: value(next(5)),
                },
            };
            (input, next(60), next(60), next(50) == 0)
        })
        .collect();
    let (history, _) = execute(&steps);
    assert_eq!(
        check_kv(&history, &Limits::default()),
        Ok(Verdict::Linearizable)
    );
}
