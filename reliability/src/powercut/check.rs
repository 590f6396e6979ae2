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
use super::workload::{PcModel, WRITERS, apply, diff, event, writer_of};

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

/// Walks the steps `start + 1 ..= recovered`, checking each, and returns
/// the model state after them (None when a step is missing or wrong; the
/// reason is in the verdict).
fn history(
    expected: &Expected<'_>,
    recovered: u64,
    journaled: &BTreeMap<u64, JournalStep>,
    verdict: &mut Verdict,
) -> Option<PcModel> {
    let mut steps: Vec<(u64, JournalStep)> = Vec::new();
    let mut next = [0u64; WRITERS as usize];
    for seq in expected.start + 1..=recovered {
        let acked = expected.acked.get(&seq);
        let step = match (journaled.get(&seq), acked) {
            (Some(step), Some(acked)) => {
                if !same(expected.seed, step, acked) {
                    verdict.lost += 1;
                    verdict.problems.push(format!(
                        "seq {seq} was acked as {acked:?} but the journal holds {}",
                        describe(step)
                    ));
                    return None;
                }
                step.clone()
            }
            (Some(step), None) => step.clone(),
            (None, Some(AckedStep::Event { writer, index })) => {
                JournalStep::Event(event(expected.seed, *writer, *index))
            }
            (None, Some(AckedStep::Rollback(target))) => JournalStep::Rollback(*target),
            (None, None) => {
                verdict.problems.push(format!(
                    "seq {seq} (recovered up to {recovered}) was neither acked nor found in the \
                     journal (pruned before the ack was printed?)"
                ));
                return None;
            }
        };
        if let JournalStep::Event(ev) = &step {
            let Some(writer) = writer_of(ev).filter(|&w| w < WRITERS) else {
                verdict
                    .problems
                    .push(format!("seq {seq} holds an event no writer sent: {ev:?}"));
                return None;
            };
            let index = next[writer as usize];
            if *ev != event(expected.seed, writer, index) {
                verdict.problems.push(format!(
                    "seq {seq} holds an event of writer {writer} that is not its next (index \
                     {index}): a duplicate, a gap or a foreign event"
                ));
                return None;
            }
            next[writer as usize] += 1;
        }
        steps.push((seq, step));
    }
    let targets: BTreeSet<u64> = steps
        .iter()
        .filter_map(|(_, s)| match s {
            JournalStep::Rollback(t) => Some(*t),
            JournalStep::Event(_) => None,
        })
        .collect();
    let mut model = expected.base.clone();
    let mut kept: BTreeMap<u64, PcModel> = BTreeMap::new();
    if targets.contains(&expected.start) {
        kept.insert(expected.start, model.clone());
    }
    for (seq, step) in steps {
        match step {
            JournalStep::Event(ev) => apply(&mut model, &ev),
            JournalStep::Rollback(target) => match kept.get(&target) {
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
        (JournalStep::Event(ev), AckedStep::Event { writer, index }) => {
            *ev == event(seed, *writer, *index)
        }
        (JournalStep::Rollback(t), AckedStep::Rollback(a)) => t == a,
        _ => false,
    }
}

fn describe(step: &JournalStep) -> String {
    match step {
        JournalStep::Event(ev) => format!("an event of writer {:?}", writer_of(ev)),
        JournalStep::Rollback(t) => format!("a rollback to {t}"),
    }
}
