//! The verdict on synthetic cycles.

use super::super::child::Opened;
use super::*;

const SEED: u64 = 42;

/// Writer 0's first `n` events, acked at seqs 1..=n, and the state
/// they make.
fn acked_run(n: u64) -> (BTreeMap<u64, AckedStep>, PcModel) {
    let mut model = PcModel::new();
    let mut acked = BTreeMap::new();
    for i in 0..n {
        apply(&mut model, &event(SEED, 0, i));
        acked.insert(
            i + 1,
            AckedStep::Event {
                writer: 0,
                index: i,
            },
        );
    }
    (acked, model)
}

fn outcome(seq: u64, state: &PcModel, steps: Vec<(u64, JournalStep)>) -> CheckOutcome {
    let mut state: Vec<(u64, Vec<u8>)> = state.iter().map(|(k, v)| (*k, v.clone())).collect();
    state.sort();
    CheckOutcome {
        open: Ok(Opened {
            seq,
            state,
            recovery: "test".into(),
            shutdown: None,
        }),
        open_panic: None,
        steps: Ok(steps),
    }
}

fn journal(from: u64, through: u64) -> Vec<(u64, JournalStep)> {
    (from..=through)
        .map(|seq| (seq, JournalStep::of(&event(SEED, 0, seq - 1))))
        .collect()
}

#[test]
fn a_complete_recovery_passes() {
    let (acked, model) = acked_run(20);
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(20, &model, journal(1, 20)));
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.beyond_acked, 0);
    assert_eq!(verdict.model, Some(model));
}

#[test]
fn unacked_journaled_steps_count_as_beyond_acked() {
    let (acked, _) = acked_run(10);
    let (_, model) = acked_run(15);
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(15, &model, journal(1, 15)));
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.beyond_acked, 5);
}

#[test]
fn a_recovery_short_of_the_acks_loses_them() {
    let (acked, _) = acked_run(20);
    let (_, model) = acked_run(12);
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(12, &model, journal(1, 12)));
    assert_eq!(verdict.lost, 8);
    assert!(!verdict.passed());
}

#[test]
fn a_different_event_at_an_acked_seq_is_lost() {
    let (acked, model) = acked_run(5);
    let mut steps = journal(1, 5);
    steps[2].1 = JournalStep::of(&event(SEED, 0, 9));
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(5, &model, steps));
    assert_eq!(verdict.lost, 1, "{verdict:?}");
}

#[test]
fn an_unacked_step_that_is_not_the_writers_next_is_a_problem() {
    let (acked, _) = acked_run(3);
    let mut steps = journal(1, 3);
    steps.push((4, JournalStep::of(&event(SEED, 0, 4)))); // skips index 3
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(4, &PcModel::new(), steps));
    assert!(verdict.problems[0].contains("not its next"), "{verdict:?}");
}

#[test]
fn acked_steps_pruned_from_the_journal_are_taken_from_the_acks() {
    let (acked, model) = acked_run(10);
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(10, &model, journal(7, 10)));
    assert!(verdict.passed(), "{verdict:?}");
}

#[test]
fn a_state_unlike_the_model_is_a_problem() {
    let (acked, mut model) = acked_run(5);
    model.insert(123, vec![1]);
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(5, &model, journal(1, 5)));
    assert!(
        verdict.problems[0].contains("not the model's"),
        "{verdict:?}"
    );
}

#[test]
fn a_rollback_resets_the_model_to_its_target() {
    let (mut acked, at_two) = acked_run(2);
    let mut steps = journal(1, 3);
    acked.insert(
        3,
        AckedStep::Event {
            writer: 0,
            index: 2,
        },
    );
    acked.insert(4, AckedStep::Rollback(2));
    steps.push((4, JournalStep::Rollback(2)));
    steps.push((5, JournalStep::of(&event(SEED, 0, 3))));
    let mut model = at_two;
    apply(&mut model, &event(SEED, 0, 3));
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(5, &model, steps));
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.beyond_acked, 1);
}

#[test]
fn failed_and_panicked_opens_are_told_apart() {
    let (acked, _) = acked_run(1);
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let failed = CheckOutcome {
        open: Err("journal is corrupt".into()),
        open_panic: None,
        steps: Err("not read".into()),
    };
    let verdict = judge(&expected, failed);
    assert_eq!(verdict.failed_open.as_deref(), Some("journal is corrupt"));
    let panicked = CheckOutcome {
        open: Err("the open panicked".into()),
        open_panic: Some("tried to serialize Uninitialized".into()),
        steps: Err("not read".into()),
    };
    let verdict = judge(&expected, panicked);
    assert!(verdict.panicked_open.is_some() && verdict.failed_open.is_none());
}

/// Writers 0 and 1 alternating: seq `s` is writer `(s - 1) % 2`'s event
/// `(s - 1) / 2`. Returns every step by seq and the state after `n`.
fn alternating(n: u64) -> (BTreeMap<u64, AckedStep>, PcModel) {
    let mut model = PcModel::new();
    let mut steps = BTreeMap::new();
    for seq in 1..=n {
        let (writer, index) = (((seq - 1) % 2) as u32, (seq - 1) / 2);
        apply(&mut model, &event(SEED, writer, index));
        steps.insert(seq, AckedStep::Event { writer, index });
    }
    (steps, model)
}

fn journal_of(
    steps: &BTreeMap<u64, AckedStep>,
    seqs: std::ops::RangeInclusive<u64>,
) -> Vec<(u64, JournalStep)> {
    seqs.map(|seq| match steps[&seq] {
        AckedStep::Event { writer, index } => (seq, JournalStep::of(&event(SEED, writer, index))),
        AckedStep::Rollback(t) => (seq, JournalStep::Rollback(t)),
    })
    .collect()
}

#[test]
fn a_pruned_run_of_unprinted_acks_is_filled_from_the_writers_later_steps() {
    let (all, model) = alternating(12);
    let acked: BTreeMap<u64, AckedStep> = all
        .iter()
        .filter(|(s, _)| **s <= 3 || **s >= 8)
        .map(|(s, a)| (*s, *a))
        .collect();
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(12, &model, journal_of(&all, 9..=12)));
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.model, Some(model));
}

#[test]
fn a_pruned_gap_up_to_the_end_is_counted_by_the_recovered_state() {
    let (all, model) = alternating(10);
    let acked: BTreeMap<u64, AckedStep> = all
        .iter()
        .filter(|(s, _)| **s <= 4)
        .map(|(s, a)| (*s, *a))
        .collect();
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(10, &model, Vec::new()));
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.beyond_acked, 6);
}

#[test]
fn a_gap_that_no_split_of_the_writers_explains_is_a_problem() {
    let (all, mut model) = alternating(10);
    model.insert(crate::powercut::workload::key(0, 1_000), vec![1]);
    let acked: BTreeMap<u64, AckedStep> = all
        .iter()
        .filter(|(s, _)| **s <= 4)
        .map(|(s, a)| (*s, *a))
        .collect();
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(10, &model, Vec::new()));
    assert!(
        verdict.problems.iter().any(|p| p.contains("no split")),
        "{verdict:?}"
    );
}

#[test]
fn a_gap_the_later_steps_overfill_is_a_problem() {
    let (all, model) = alternating(12);
    // Writer 0's event at seq 9 claims it sent 4 events before it, in a
    // gap of 4 seqs that writer 1 also sent 2 in.
    let mut acked: BTreeMap<u64, AckedStep> = all
        .iter()
        .filter(|(s, _)| **s <= 3 || **s >= 8)
        .map(|(s, a)| (*s, *a))
        .collect();
    acked.insert(
        9,
        AckedStep::Event {
            writer: 0,
            index: 6,
        },
    );
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(12, &model, Vec::new()));
    assert!(!verdict.passed(), "{verdict:?}");
}

/// What `seed 0x5eedc0de, cycle 2` of the power-cut run left (seen in its
/// dumped image): the journal pruned through a checkpoint, and writer 1's
/// unprinted acks spread over two runs of unseen seqs with writer 0's
/// printed acks between them, writer 1's next known step a journaled one
/// after both. Counting each run alone (the old check) found writer 1's
/// event 3 at seq 10 "never sent there".
#[test]
fn unprinted_acks_of_one_writer_over_several_pruned_runs_are_placed_together() {
    // (seq, writer, index): w0 printed everything, w1 and w2 nothing
    // before the journal's first retained seq, 10.
    let history = [
        (1, 0, 0),
        (2, 1, 0),
        (3, 0, 1),
        (4, 1, 1),
        (5, 2, 0),
        (6, 0, 2),
        (7, 1, 2),
        (8, 2, 1),
        (9, 0, 3),
        (10, 1, 3),
        (11, 2, 2),
        (12, 0, 4),
    ];
    let mut model = PcModel::new();
    let mut acked = BTreeMap::new();
    let mut steps = Vec::new();
    for (seq, writer, index) in history {
        apply(&mut model, &event(SEED, writer, index));
        if writer == 0 && seq < 10 {
            acked.insert(seq, AckedStep::Event { writer, index });
        }
        if seq >= 10 {
            steps.push((seq, JournalStep::of(&event(SEED, writer, index))));
        }
    }
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(12, &model, steps));
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.model, Some(model));
}

/// A rollback whose target's state depends on which writer sent an
/// unseen seq is reported, not guessed.
#[test]
fn a_rollback_after_unseen_seqs_of_two_writers_is_not_guessed() {
    // Seq 2 is writer 1's or writer 2's event 0, seq 3 writer 0's (acked),
    // seq 4 the other's, seq 5 rolls back to 3.
    let mut model = PcModel::new();
    apply(&mut model, &event(SEED, 0, 0));
    let acked = BTreeMap::from([
        (
            1,
            AckedStep::Event {
                writer: 0,
                index: 0,
            },
        ),
        (
            3,
            AckedStep::Event {
                writer: 0,
                index: 1,
            },
        ),
        (5, AckedStep::Rollback(3)),
    ]);
    let steps = vec![
        (5, JournalStep::Rollback(3)),
        (6, JournalStep::of(&event(SEED, 1, 1))),
        (7, JournalStep::of(&event(SEED, 2, 1))),
    ];
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(7, &model, steps));
    assert!(
        verdict
            .problems
            .iter()
            .any(|p| p.contains("not determined")),
        "{verdict:?}"
    );
}

/// Writer 0's first pair of indexes `a < b`, `a > 0`, whose events are
/// the same (a pure `Delete` of one key: it carries no index).
fn same_event_twice() -> (u64, u64) {
    (2..5_000)
        .find_map(|b| {
            let later = event(SEED, 0, b);
            (1..b).find(|&a| event(SEED, 0, a) == later).map(|a| (a, b))
        })
        .expect("a writer deletes its 48 keys again and again")
}

/// What `seed 0x5eedc0de, cycle 2` of the power-cut run on the segment
/// log left: writer 1's first journaled step after the pruned prefix was
/// a `Delete` of a key it had also deleted hundreds of events earlier,
/// and the check took the earlier index, then found its next journaled
/// event "not its next".
#[test]
fn a_journaled_delete_after_unseen_seqs_matches_the_index_its_successor_leaves() {
    let (a, b) = same_event_twice();
    let n = b + 5;
    let (all, model) = acked_run(n);
    // Index 0 printed; indexes 1..b unseen (pruned, unprinted); b.. in
    // the journal, the first of them the repeated event.
    let acked: BTreeMap<u64, AckedStep> = all.range(..=1).map(|(s, x)| (*s, *x)).collect();
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    assert!(a < b);
    let verdict = judge(&expected, outcome(n, &model, journal(b + 1, n)));
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.model, Some(model));
}

/// The same repeated event as the last step recovered: no step follows
/// it, so the unseen seqs before it decide which index it is.
#[test]
fn a_journaled_delete_at_the_end_matches_the_index_the_unseen_seqs_leave() {
    let (_, b) = same_event_twice();
    let n = b + 1;
    let (all, model) = acked_run(n);
    let acked: BTreeMap<u64, AckedStep> = all.range(..=1).map(|(s, x)| (*s, *x)).collect();
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let verdict = judge(&expected, outcome(n, &model, journal(n, n)));
    assert!(verdict.passed(), "{verdict:?}");
    assert_eq!(verdict.model, Some(model));
}

/// A repeated event whose successor leaves it no index it matches is
/// still a problem: here the successor is an earlier event than either.
#[test]
fn a_journaled_delete_its_successor_rules_out_is_a_problem() {
    let (a, b) = same_event_twice();
    let (all, model) = acked_run(b + 1);
    let acked: BTreeMap<u64, AckedStep> = all.range(..=1).map(|(s, x)| (*s, *x)).collect();
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    // An event between the two that no other index repeats, journaled
    // right after the repeated one: it leaves the repeated one only the
    // index just below it.
    let successor = (a + 2..b)
        .find(|&j| (0..=b).all(|i| i == j || event(SEED, 0, i) != event(SEED, 0, j)))
        .expect("most events carry their index");
    let steps = vec![
        (b + 1, JournalStep::of(&event(SEED, 0, b))),
        (b + 2, JournalStep::of(&event(SEED, 0, successor))),
    ];
    let verdict = judge(&expected, outcome(b + 2, &model, steps));
    assert!(
        verdict
            .problems
            .iter()
            .any(|p| p.contains(&format!("seq {} ", b + 1)) && p.contains("none of the indexes")),
        "{verdict:?}"
    );
}

#[test]
fn judge_at_keeps_the_model_state_at_each_asked_seq_of_the_history() {
    let (acked, model) = acked_run(20);
    let base = PcModel::new();
    let expected = Expected {
        seed: SEED,
        start: 0,
        base: &base,
        acked: &acked,
    };
    let at = BTreeSet::from([0, 7, 20, 25]);
    let verdict = judge_at(&expected, outcome(20, &model, journal(1, 20)), &at);
    assert!(verdict.passed(), "{verdict:?}");
    let (_, at_7) = acked_run(7);
    assert_eq!(verdict.states.get(&0), Some(&Some(PcModel::new())));
    assert_eq!(verdict.states.get(&7), Some(&Some(at_7)));
    assert_eq!(verdict.states.get(&20), Some(&Some(model)));
    // Past the recovered seq there is no history to know it from.
    assert_eq!(verdict.states.get(&25), None);
}
