//! Hand-written histories with a known answer: each bad one is a bug a
//! replicated store could have (a stale read, a lost or doubled
//! compare-and-swap, a write seen before it was made), next to the good
//! history it is one change away from.

use solostate_cluster_test::linearizability::{
    Counterexample, HistoryError, Limits, Operation, UnknownReason, Verdict, check, check_kv,
};
use solostate_cluster_test::model::{KvInput, KvMap, KvOutput};

type Op = Operation<KvInput<&'static str, u32>, KvOutput<u32>>;

fn put(client: u64, key: &'static str, value: u32, call: u64, ret: u64) -> Op {
    Operation::returned(client, KvInput::Put { key, value }, call, ret, KvOutput::Ok)
}

fn read(client: u64, key: &'static str, seen: Option<u32>, call: u64, ret: u64) -> Op {
    Operation::returned(
        client,
        KvInput::Read { key },
        call,
        ret,
        KvOutput::Value(seen),
    )
}

fn cas(
    client: u64,
    (expected, new): (Option<u32>, Option<u32>),
    call: u64,
    ret: u64,
    output: KvOutput<u32>,
) -> Op {
    let input = KvInput::CompareAndSwap {
        key: "x",
        expected,
        new,
    };
    Operation::returned(client, input, call, ret, output)
}

fn verdict(history: &[Op]) -> Verdict {
    let per_key = check_kv(history, &Limits::default()).expect("a well-formed history");
    // The whole-map model must agree with the per-key split.
    let whole = check(&KvMap::new(), history, &Limits::default()).expect("well-formed");
    assert_eq!(
        per_key.is_linearizable(),
        whole.is_linearizable(),
        "per key: {per_key:?}\nwhole map: {whole:?}"
    );
    per_key
}

fn assert_linearizable(history: &[Op]) {
    match verdict(history) {
        Verdict::Linearizable => {}
        other => panic!("expected linearizable, got {other:?}"),
    }
}

fn counterexample(history: &[Op]) -> Box<Counterexample> {
    match verdict(history) {
        Verdict::NotLinearizable(why) => why,
        other => panic!("expected not linearizable, got {other:?}"),
    }
}

#[test]
fn a_read_after_a_completed_write_sees_it() {
    assert_linearizable(&[
        put(1, "x", 1, 0, 10),
        put(1, "x", 2, 20, 30),
        read(2, "x", Some(2), 40, 50),
    ]);
}

#[test]
fn stale_read_after_a_completed_write_is_rejected() {
    let why = counterexample(&[
        put(1, "x", 1, 0, 10),
        put(1, "x", 2, 20, 30),
        read(2, "x", Some(1), 40, 50),
    ]);
    assert_eq!(why.partition.as_deref(), Some("\"x\""));
    assert_eq!(why.linearized, vec![0, 1]);
    assert_eq!(why.state, "Some(2)");
    assert_eq!(why.stuck, 2);
    assert_eq!(why.unplaced, vec![2]);
    let text = why.to_string();
    assert!(
        text.contains("longest linearizable prefix: 2 of 3"),
        "{text}"
    );
    assert!(text.contains("#2 client 2: Read"), "{text}");
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in [Some(1), Some(2)] {
        assert_linearizable(&[
            put(1, "x", 1, 0, 10),
            put(1, "x", 2, 20, 30),
            read(2, "x", seen, 25, 50),
        ]);
    }
}

#[test]
fn lost_compare_and_swap_is_rejected() {
    // The create-if-absent was acknowledged, then a read finds nothing.
    let why = counterexample(&[
        cas(1, (None, Some(1)), 0, 10, KvOutput::Ok),
        read(2, "x", None, 20, 30),
    ]);
    assert_eq!(why.stuck, 1);
    assert_eq!(why.linearized, vec![0]);
}

#[test]
fn two_compare_and_swaps_on_the_same_expected_value_cannot_both_succeed() {
    let race = |second: KvOutput<u32>| {
        vec![
            put(1, "x", 0, 0, 5),
            cas(2, (Some(0), Some(1)), 10, 20, KvOutput::Ok),
            cas(3, (Some(0), Some(2)), 12, 22, second),
        ]
    };
    assert_linearizable(&race(KvOutput::Mismatch));
    let why = counterexample(&race(KvOutput::Ok));
    assert_eq!(why.linearized.len(), 2, "{why}");
}

#[test]
fn a_mismatch_must_be_explained_by_the_state() {
    // The register holds the expected value and nothing else runs: the
    // rejection is a lie.
    counterexample(&[
        put(1, "x", 0, 0, 5),
        cas(2, (Some(0), Some(1)), 10, 20, KvOutput::Mismatch),
    ]);
}

#[test]
fn a_timed_out_write_may_appear_later() {
    assert_linearizable(&[
        Operation::unknown(1, KvInput::Put { key: "x", value: 1 }, 0),
        read(2, "x", None, 5, 10),
        read(2, "x", Some(1), 20, 30),
    ]);
}

#[test]
fn a_timed_out_write_may_never_appear() {
    assert_linearizable(&[
        Operation::unknown(1, KvInput::Put { key: "x", value: 1 }, 0),
        read(2, "x", None, 5, 10),
        read(2, "x", None, 20, 30),
    ]);
}

#[test]
fn a_timed_out_write_cannot_appear_before_its_call() {
    let why = counterexample(&[
        read(2, "x", Some(1), 5, 10),
        Operation::unknown(1, KvInput::Put { key: "x", value: 1 }, 50),
    ]);
    assert_eq!(why.stuck, 0);
    assert!(why.linearized.is_empty());
}

#[test]
fn a_timed_out_write_cannot_appear_then_vanish() {
    counterexample(&[
        Operation::unknown(1, KvInput::Put { key: "x", value: 1 }, 0),
        read(2, "x", Some(1), 5, 10),
        read(2, "x", None, 20, 30),
    ]);
}

#[test]
fn a_timed_out_compare_and_swap_may_have_failed() {
    // Whether it ran before or after the put, it did nothing visible.
    assert_linearizable(&[
        Operation::unknown(
            1,
            KvInput::CompareAndSwap {
                key: "x",
                expected: Some(9),
                new: Some(5),
            },
            0,
        ),
        put(2, "x", 1, 5, 10),
        read(2, "x", Some(1), 20, 30),
    ]);
}

#[test]
fn overlapping_writes_linearizable_in_one_order_only() {
    // Both writes overlap; the later read of 1 forces "2 then 1".
    let writes = || vec![put(1, "x", 1, 0, 50), put(2, "x", 2, 0, 50)];
    let mut one_order = writes();
    one_order.push(read(3, "x", Some(1), 60, 70));
    one_order.push(read(4, "x", Some(1), 80, 90));
    assert_linearizable(&one_order);
    // Two concurrent reads after both writes must agree on the winner.
    let mut both = writes();
    both.push(read(3, "x", Some(1), 60, 70));
    both.push(read(4, "x", Some(2), 60, 70));
    counterexample(&both);
}

#[test]
fn overlapping_compare_and_swaps_chain_in_the_only_order_that_works() {
    // Three overlapping CAS: 0 -> 1 -> 2 -> 3 works only in that order,
    // though they were called in reverse.
    assert_linearizable(&[
        put(1, "x", 0, 0, 5),
        cas(2, (Some(2), Some(3)), 10, 40, KvOutput::Ok),
        cas(3, (Some(1), Some(2)), 11, 40, KvOutput::Ok),
        cas(4, (Some(0), Some(1)), 12, 40, KvOutput::Ok),
        read(5, "x", Some(3), 50, 60),
    ]);
}

#[test]
fn keys_are_checked_independently_and_the_bad_key_is_named() {
    let why = counterexample(&[
        put(1, "a", 1, 0, 10),
        put(1, "b", 1, 0, 10),
        read(2, "a", Some(1), 20, 30),
        read(2, "b", Some(7), 20, 30),
    ]);
    assert_eq!(why.partition.as_deref(), Some("\"b\""));
    assert_eq!(why.stuck, 3);
    assert_eq!(why.linearized, vec![1]);
}

#[test]
fn touching_intervals_count_as_concurrent() {
    // The read is called at the instant the write returns: the clocks
    // cannot order them, so either value is allowed.
    assert_linearizable(&[put(1, "x", 1, 0, 10), read(2, "x", None, 10, 20)]);
}

#[test]
fn delete_of_a_missing_key_succeeds_and_leaves_it_absent() {
    let delete = Operation::returned(1, KvInput::Delete { key: "x" }, 0, 5, KvOutput::Ok);
    assert_linearizable(&[delete, read(2, "x", None, 10, 20)]);
}

#[test]
fn a_spent_step_budget_answers_unknown() {
    // Many overlapping writes and a read of a value never written: a
    // long search, cut short.
    let mut history: Vec<Op> = (0..12).map(|i| put(i, "x", i as u32, 0, 100)).collect();
    history.push(read(99, "x", Some(1000), 200, 210));
    let limits = Limits {
        max_steps: 50,
        timeout: None,
    };
    let verdict = check_kv(&history, &limits).unwrap();
    assert_eq!(
        verdict,
        Verdict::Unknown {
            partition: Some("\"x\"".to_string()),
            reason: UnknownReason::Steps(50),
        }
    );
}

#[test]
fn a_return_before_its_call_is_a_typed_error() {
    let history = vec![put(1, "x", 1, 0, 10), put(1, "x", 2, 30, 20)];
    assert_eq!(
        check_kv(&history, &Limits::default()),
        Err(HistoryError::ReturnBeforeCall {
            index: 1,
            call: 30,
            ret: 20
        })
    );
}

#[test]
fn many_concurrent_unknown_writes_stay_tractable() {
    // 14 writes that never return stay open for the whole history, so
    // every later step has them all to choose from; the reads between
    // force the search to interleave them. It must still finish well
    // within its budget.
    let mut history: Vec<Op> = (0..14)
        .map(|i| {
            Operation::unknown(
                i,
                KvInput::Put {
                    key: "x",
                    value: i as u32 % 2,
                },
                0,
            )
        })
        .collect();
    history.push(read(20, "x", Some(0), 10, 20));
    history.push(read(20, "x", Some(1), 30, 40));
    history.push(read(20, "x", Some(0), 50, 60));
    let limits = Limits {
        max_steps: 2_000_000,
        timeout: None,
    };
    assert_eq!(check_kv(&history, &limits), Ok(Verdict::Linearizable));
}
