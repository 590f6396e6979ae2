//! Judging one cycle: what the writer child acknowledged, against what the
//! reopen recovered.
//!
//! The history of a cycle is its steps from the seq the writer opened at
//! (`start`, whose state the parent knows) to the recovered seq. Each
//! step comes from the writer's ack lines when it was acked, and from the
//! journal (read back with `Replay`) when it was not; where both exist
//! they must agree, which is "every acked event is there at its seq".
//! A seq that is neither (pruned from the journal before its ack was
//! printed) is filled from what the writers must have sent there
//! (see the private `unseen` module).
//! Every event must be its writer's next one (per writer in order, no
//! gaps, no duplicates), and the model state after the history (a plain
//! `HashMap`, rollbacks resetting it to an earlier seq's) must equal the
//! engine's.

mod order;
mod unseen;

use std::collections::{BTreeMap, BTreeSet};

use super::child::{CheckOutcome, JournalStep};
use super::workload::{PcModel, WRITERS, apply, diff, digest, event, writer_of_key};
use order::Writers;
use unseen::Deferred;

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
    /// The model state at each seq [`judge_at`] was asked for, when the
    /// history checked out and the seq is in `start..=recovered`: `None`
    /// where the history does not determine it (unseen seqs before it that
    /// more than one writer could hold). A backup's state is compared
    /// with these.
    pub states: BTreeMap<u64, Option<PcModel>>,
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
    judge_at(expected, outcome, &BTreeSet::new())
}

/// Judges a cycle, and keeps the model state at each seq of `at` (see
/// [`Verdict::states`]): the seqs the cycle's backups hold.
pub fn judge_at(expected: &Expected<'_>, outcome: CheckOutcome, at: &BTreeSet<u64>) -> Verdict {
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
    let state: PcModel = opened.state.into_iter().collect();
    match history(expected, recovered, &journaled, &state, &mut verdict, at) {
        Some((model, states)) => {
            if state == model {
                verdict.model = Some(model);
                verdict.states = states;
            } else {
                let rollbacks: Vec<String> = journaled
                    .iter()
                    .filter_map(|(seq, step)| match step {
                        JournalStep::Rollback(t) => Some(format!("{seq} -> {t}")),
                        JournalStep::Event { .. } => None,
                    })
                    .collect();
                verdict.problems.push(format!(
                    "the state at seq {recovered} is not the model's: {} (recovery: {}; the \
                     journal's rollbacks this cycle: {rollbacks:?})",
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rebuilt {
    /// Writer `writer`'s `index`-th event.
    Event { writer: u32, index: u64 },
    /// A rollback to this seq.
    Rollback(u64),
}

/// The model state at each asked-for seq (see [`Verdict::states`]).
type States = BTreeMap<u64, Option<PcModel>>;

/// Walks the steps `start + 1 ..= recovered`, checking each, and returns
/// the model state after them and at each seq of `at` (None when a step
/// is missing or wrong; the reason is in the verdict).
///
/// A seq that is neither acked nor journaled is *unseen*: the journal's
/// pruned prefix (a checkpoint covers it) holds acks the writer had not
/// printed yet when it was pruned. Writers print their acks in order, a
/// pipeline's depth behind, so one writer's unprinted events can be
/// spread over several such runs with other writers' printed acks in
/// between. Which events they were follows from each writer's known steps
/// (see [`unseen::place`]), and which index a journaled step is, when its
/// digest matches several, from the writer's neighbouring steps (see
/// [`order::Writers`]).
fn history(
    expected: &Expected<'_>,
    recovered: u64,
    journaled: &BTreeMap<u64, JournalStep>,
    state: &PcModel,
    verdict: &mut Verdict,
    at: &BTreeSet<u64>,
) -> Option<(PcModel, States)> {
    let seed = expected.seed;
    let mut rollbacks: Vec<(u64, Rebuilt)> = Vec::new();
    let mut unseen: Vec<u64> = Vec::new();
    let mut writers = Writers::new(seed, expected.start);
    for seq in expected.start + 1..=recovered {
        let acked = expected.acked.get(&seq);
        let settled = match (journaled.get(&seq), acked) {
            (Some(step), Some(acked)) if !same(seed, step, acked) => {
                verdict.lost += 1;
                verdict.problems.push(format!(
                    "seq {seq} was acked as {acked:?} but the journal holds {}",
                    describe(step)
                ));
                return None;
            }
            (_, Some(&AckedStep::Event { writer, index })) => {
                if writer >= WRITERS {
                    verdict.problems.push(format!(
                        "seq {seq} was acked for writer {writer}, which does not exist"
                    ));
                    return None;
                }
                writers.determined(writer, seq, index, unseen.len())
            }
            (_, Some(&AckedStep::Rollback(target)))
            | (Some(&JournalStep::Rollback(target)), None) => {
                rollbacks.push((seq, Rebuilt::Rollback(target)));
                continue;
            }
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
                writers.journaled(writer, seq, found, unseen.len())
            }
            (None, None) => {
                unseen.push(seq);
                continue;
            }
        };
        if let Err(problem) = settled {
            verdict.problems.push(problem);
            return None;
        }
    }
    let alternatives = match writers.settle_tails(TAIL_ALTERNATIVES) {
        Ok(alternatives) => alternatives,
        Err(problem) => {
            verdict.problems.push(problem);
            return None;
        }
    };
    // The first alternative that explains the recovered state; failing
    // that, what the first one found.
    let mut first = None;
    for writers in alternatives {
        let rebuilt = rebuild(expected, recovered, writers, &rollbacks, &unseen, state, at);
        if rebuilt.as_ref().is_ok_and(|(model, _)| model == state) {
            return rebuilt.ok();
        }
        first.get_or_insert(rebuilt);
    }
    match first.expect("settle_tails returns at least one alternative") {
        Ok(rebuilt) => Some(rebuilt),
        Err(problem) => {
            verdict.problems.push(problem);
            None
        }
    }
}

/// How many ways to settle writers' ambiguous last steps are tried
/// against the recovered state: a writer's repeated `Delete` rarely has
/// more than a few candidate indexes, and rarely more than one writer
/// ends on one.
const TAIL_ALTERNATIVES: usize = 256;

/// The rest of [`history`] for one way of settling the writers' steps:
/// places the unseen seqs, checks that no rollback depends on the
/// placement, and replays the steps (`rollbacks` and the writers' known
/// events, then the placed ones) into the model state, keeping it at each
/// seq of `at` whose state the placement settles.
fn rebuild(
    expected: &Expected<'_>,
    recovered: u64,
    writers: Writers,
    rollbacks: &[(u64, Rebuilt)],
    unseen: &[u64],
    state: &PcModel,
    at: &BTreeSet<u64>,
) -> Result<(PcModel, States), String> {
    let seed = expected.seed;
    let mut known = rollbacks.to_vec();
    known.extend(
        writers
            .events
            .iter()
            .map(|&(seq, writer, index)| (seq, Rebuilt::Event { writer, index })),
    );
    let Writers {
        mut next,
        last,
        windows,
        ..
    } = writers;
    let placed = match unseen::place(unseen, &windows, &last, &mut next) {
        Ok(placed) => placed,
        Err(why) => {
            return Err(format!(
                "{} seqs from {} (recovered up to {recovered}) were neither acked nor found in \
                 the journal, and {why}",
                unseen.len(),
                unseen.first().copied().unwrap_or_default()
            ));
        }
    };
    // The state at a rollback's target, and the split of events before
    // and after the rollback, must not depend on the placement.
    for &(seq, step) in &known {
        if let Rebuilt::Rollback(target) = step {
            for at in [target, seq] {
                if let Err(writers) = unseen::settled(at, unseen, &windows, &last) {
                    return Err(format!(
                        "seq {seq} rolls back to {target}, and the unseen seqs before {at} could \
                         be the events of any of writers {writers:?}: the state there is not \
                         determined"
                    ));
                }
            }
        }
    }
    let mut steps = known;
    steps.extend(
        placed
            .events
            .iter()
            .map(|&(seq, writer, index)| (seq, Rebuilt::Event { writer, index })),
    );
    steps.sort_by_key(|(seq, _)| *seq);
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
    // The asked-for seqs, each kept as the model stands just before the
    // first step past it. A seq whose state the placement does not settle
    // (deferred unseen seqs at or before it among them) is `None`.
    let mut states: States = BTreeMap::new();
    let mut asked = at.range(expected.start..=recovered).copied().peekable();
    for (seq, step) in steps {
        while let Some(wanted) = asked.next_if(|&w| w < seq) {
            let settled = unseen::settled(wanted, unseen, &windows, &last).is_ok();
            states.insert(wanted, settled.then(|| model.clone()));
        }
        match step {
            Rebuilt::Event { writer, index } => apply(&mut model, &event(seed, writer, index)),
            Rebuilt::Rollback(target) => match kept.get(&target) {
                Some(state) => model = state.clone(),
                None => {
                    return Err(format!(
                        "seq {seq} rolls back to {target}, outside this cycle's history"
                    ));
                }
            },
        }
        if targets.contains(&seq) {
            kept.insert(seq, model.clone());
        }
    }
    for wanted in asked {
        let settled =
            unseen::settled(wanted, unseen, &windows, &last).is_ok() && placed.deferred.is_none();
        states.insert(wanted, settled.then(|| model.clone()));
    }
    if let Some(deferred) = placed.deferred {
        let Some(counts) = count_by_state(seed, &model, state, &next, &deferred) else {
            return Err(format!(
                "no split of {} unseen events among writers {:?} gives the recovered state",
                deferred.rest,
                deferred.writers.iter().map(|(w, _)| *w).collect::<Vec<_>>()
            ));
        };
        for (&(writer, _), count) in deferred.writers.iter().zip(counts) {
            let first = next[writer as usize];
            for index in first..first + count {
                apply(&mut model, &event(seed, writer, index));
            }
        }
    }
    Ok((model, states))
}

/// For unseen seqs that only the recovered state can split among several
/// writers (each past its last known step): how many each writer in
/// `deferred` sent, such that each one's keys end as in the recovered
/// `state`. Writers' keys are disjoint, so each writer is matched alone;
/// then any split that adds up to the count will do (every such split
/// gives the same state). `None` when there is none: then no history the
/// writers could have made gives this state.
fn count_by_state(
    seed: u64,
    model: &PcModel,
    state: &PcModel,
    next: &[u64; WRITERS as usize],
    deferred: &Deferred,
) -> Option<Vec<u64>> {
    let of = |m: &PcModel, writer: u32| -> PcModel {
        m.iter()
            .filter(|(k, _)| writer_of_key(**k) == writer)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    };
    let rest = deferred.rest;
    // For each writer, the counts whose state matches.
    let mut candidates: Vec<Vec<u64>> = Vec::new();
    for &(writer, most) in &deferred.writers {
        let target = of(state, writer);
        let mut mine = of(model, writer);
        let mut fits = Vec::new();
        for k in 0..=rest.min(most) {
            if k > 0 {
                apply(
                    &mut mine,
                    &event(seed, writer, next[writer as usize] + k - 1),
                );
            }
            if mine == target {
                fits.push(k);
            }
        }
        candidates.push(fits);
    }
    // A split adding up to `rest`: a search over the writers' candidates
    // (a few writers, few candidates each).
    fn split(candidates: &[Vec<u64>], rest: u64) -> Option<Vec<u64>> {
        let Some((first, others)) = candidates.split_first() else {
            return (rest == 0).then(Vec::new);
        };
        first.iter().filter(|&&k| k <= rest).find_map(|&k| {
            split(others, rest - k).map(|mut tail| {
                tail.insert(0, k);
                tail
            })
        })
    }
    split(&candidates, rest)
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
mod tests;
