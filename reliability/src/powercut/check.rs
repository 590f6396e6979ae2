//! Judging one cycle: what the writer child acknowledged, against what the
//! reopen recovered.
//!
//! The history of a cycle is its steps from the seq the writer opened at
//! (`start`, whose state the parent knows) to the recovered seq. Each
//! step comes from the writer's ack lines when it was acked, and from the
//! journal (read back with `Replay`) when it was not; where both exist
//! they must agree, which is "every acked event is there at its seq".
//! Every event must be its writer's next one (per writer in order, no
//! gaps, no duplicates), and the model state after the history (a plain
//! `HashMap`, rollbacks resetting it to an earlier seq's) must equal the
//! engine's.

use std::collections::{BTreeMap, BTreeSet};

use super::child::{CheckOutcome, JournalStep};
use super::workload::{PcModel, WRITERS, apply, diff, digest, event};

/// A step the writer child acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckedStep {
    /// Writer `writer`'s `index`-th event.
    Event {
        /// The writer.
        writer: u32,
        /// Its event index.
        index: u64,
    },
    /// A rollback to this seq.
    Rollback(u64),
}

/// What the parent knows before the reopen.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The cycle's event seed.
    pub seed: u64,
    /// The seq the writer opened at.
    pub start: u64,
    /// The model state at `start`.
    pub base: &'a PcModel,
    /// Every acked step, by seq.
    pub acked: &'a BTreeMap<u64, AckedStep>,
}

/// The judgement of one cycle.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The seq the reopen resumed from (None when it did not open).
    pub recovered: Option<u64>,
    /// Acked steps missing from the recovered history, or different there.
    pub lost: u64,
    /// Steps recovered past the last acked seq: in flight at the cut, or
    /// acked but not yet printed.
    pub beyond_acked: u64,
    /// The open's error, when it failed.
    pub failed_open: Option<String>,
    /// The open's panic, when it panicked.
    pub panicked_open: Option<String>,
    /// Other broken promises: a state unlike the model's, a step that is
    /// not its writer's next, a journal `Replay` could not read.
    pub problems: Vec<String>,
    /// The model state at the recovered seq, when the history checked out
    /// (the next cycle on this directory starts from it).
    pub model: Option<PcModel>,
}

impl Verdict {
    /// Whether the cycle kept every promise.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.failed_open.is_none()
            && self.panicked_open.is_none()
            && self.problems.is_empty()
    }
}

/// Judges a cycle.
pub fn judge(expected: &Expected<'_>, outcome: CheckOutcome) -> Verdict {
    let mut verdict = Verdict::default();
    if let Some(panic) = outcome.open_panic {
        verdict.panicked_open = Some(panic);
        return verdict;
    }
    let opened = match outcome.open {
        Ok(opened) => opened,
        Err(error) => {
            verdict.failed_open = Some(error);
            return verdict;
        }
    };
    let recovered = opened.seq;
    verdict.recovered = Some(recovered);
    if let Some(error) = &opened.shutdown {
        verdict
            .problems
            .push(format!("shutdown after the reopen: {error}"));
    }
    let last_acked = expected.acked.keys().next_back().copied();
    verdict.lost = expected.acked.range(recovered + 1..).count() as u64;
    verdict.beyond_acked =
        recovered.saturating_sub(last_acked.unwrap_or(expected.start).max(expected.start));
    if recovered < expected.start {
        verdict.problems.push(format!(
            "reopened at seq {recovered}, before the writer's start {}",
            expected.start
        ));
        return verdict;
    }
    let journal = match outcome.steps {
        Ok(steps) => steps,
        Err(error) => {
            verdict
                .problems
                .push(format!("the journal cannot be read back: {error}"));
            return verdict;
        }
    };
    let mut journaled: BTreeMap<u64, JournalStep> = BTreeMap::new();
    for (seq, step) in journal {
        if journaled.insert(seq, step).is_some() {
            verdict.problems.push(format!(
                "seq {seq} is in the journal twice (live and archived)"
            ));
        }
    }
    match history(expected, recovered, &journaled, &mut verdict) {
        Some(model) => {
            let state: PcModel = opened.state.into_iter().collect();
            if state == model {
                verdict.model = Some(model);
            } else {
                verdict.problems.push(format!(
                    "the state at seq {recovered} is not the model's: {} (recovery: {})",
                    diff(&state, &model),
                    opened.recovery
                ));
            }
        }
        None => {
            if verdict.problems.is_empty() && verdict.lost == 0 {
                verdict
                    .problems
                    .push("the history could not be rebuilt".into());
            }
        }
    }
    verdict
}

/// A step of the rebuilt history.
enum Rebuilt {
    /// Writer `writer`'s `index`-th event.
    Event { writer: u32, index: u64 },
    /// A rollback to this seq.
    Rollback(u64),
}

/// Walks the steps `start + 1 ..= recovered`, checking each, and returns
/// the model state after them (None when a step is missing or wrong; the
/// reason is in the verdict).
fn history(
    expected: &Expected<'_>,
    recovered: u64,
    journaled: &BTreeMap<u64, JournalStep>,
    verdict: &mut Verdict,
) -> Option<PcModel> {
    let seed = expected.seed;
    let mut steps: Vec<(u64, Rebuilt)> = Vec::new();
    let mut next = [0u64; WRITERS as usize];
    for seq in expected.start + 1..=recovered {
        let acked = expected.acked.get(&seq);
        let step = match (journaled.get(&seq), acked) {
            (Some(step), Some(acked)) if !same(seed, step, acked) => {
                verdict.lost += 1;
                verdict.problems.push(format!(
                    "seq {seq} was acked as {acked:?} but the journal holds {}",
                    describe(step)
                ));
                return None;
            }
            (_, Some(&AckedStep::Event { writer, index })) => Rebuilt::Event { writer, index },
            (_, Some(&AckedStep::Rollback(target))) => Rebuilt::Rollback(target),
            (Some(&JournalStep::Rollback(target)), None) => Rebuilt::Rollback(target),
            (
                Some(&JournalStep::Event {
                    writer,
                    digest: found,
                }),
                None,
            ) => {
                let Some(writer) = writer.filter(|&w| w < WRITERS) else {
                    verdict
                        .problems
                        .push(format!("seq {seq} holds an event no writer sent"));
                    return None;
                };
                let index = next[writer as usize];
                if found != digest(&event(seed, writer, index)) {
                    verdict.problems.push(format!(
                        "seq {seq} holds an event of writer {writer} that is not its next (index \
                         {index}): a duplicate, a gap or a foreign event"
                    ));
                    return None;
                }
                Rebuilt::Event { writer, index }
            }
            (None, None) => {
                verdict.problems.push(format!(
                    "seq {seq} (recovered up to {recovered}) was neither acked nor found in the \
                     journal (pruned before the ack was printed?)"
                ));
                return None;
            }
        };
        if let Rebuilt::Event { writer, index } = step {
            let Some(expected_index) = next.get_mut(writer as usize) else {
                verdict.problems.push(format!(
                    "seq {seq} was acked for writer {writer}, which does not exist"
                ));
                return None;
            };
            if index != *expected_index {
                verdict.problems.push(format!(
                    "seq {seq} is writer {writer}'s event {index}, where {expected_index} was next"
                ));
                return None;
            }
            *expected_index += 1;
        }
        steps.push((seq, step));
    }
    let targets: BTreeSet<u64> = steps
        .iter()
        .filter_map(|(_, s)| match s {
            Rebuilt::Rollback(t) => Some(*t),
            Rebuilt::Event { .. } => None,
        })
        .collect();
    let mut model = expected.base.clone();
    let mut kept: BTreeMap<u64, PcModel> = BTreeMap::new();
    if targets.contains(&expected.start) {
        kept.insert(expected.start, model.clone());
    }
    for (seq, step) in steps {
        match step {
            Rebuilt::Event { writer, index } => apply(&mut model, &event(seed, writer, index)),
            Rebuilt::Rollback(target) => match kept.get(&target) {
                Some(state) => model = state.clone(),
                None => {
                    verdict.problems.push(format!(
                        "seq {seq} rolls back to {target}, outside this cycle's history"
                    ));
                    return None;
                }
            },
        }
        if targets.contains(&seq) {
            kept.insert(seq, model.clone());
        }
    }
    Some(model)
}

fn same(seed: u64, step: &JournalStep, acked: &AckedStep) -> bool {
    match (step, acked) {
        (JournalStep::Event { digest: found, .. }, AckedStep::Event { writer, index }) => {
            *found == digest(&event(seed, *writer, *index))
        }
        (JournalStep::Rollback(t), AckedStep::Rollback(a)) => t == a,
        _ => false,
    }
}

fn describe(step: &JournalStep) -> String {
    match step {
        JournalStep::Event { writer, .. } => format!("another event (of writer {writer:?})"),
        JournalStep::Rollback(t) => format!("a rollback to {t}"),
    }
}

#[cfg(test)]
mod tests {
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
}
