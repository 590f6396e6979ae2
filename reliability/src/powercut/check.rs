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
use super::workload::{PcModel, WRITERS, apply, diff, digest, event, writer_of_key};

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
    let state: PcModel = opened.state.into_iter().collect();
    match history(expected, recovered, &journaled, &state, &mut verdict) {
        Some(model) => {
            if state == model {
                verdict.model = Some(model);
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
    state: &PcModel,
    verdict: &mut Verdict,
) -> Option<PcModel> {
    let seed = expected.seed;
    let mut steps: Vec<(u64, Rebuilt)> = Vec::new();
    // A gap whose events of some writers only the recovered state can
    // count (see `gap_counts`): those writers and how many events they
    // share. Their events go last, which is right because they have no
    // later step, as long as no rollback follows.
    let mut deferred: Option<(Vec<u32>, u64)> = None;
    let mut next = [0u64; WRITERS as usize];
    let mut seq = expected.start + 1;
    while seq <= recovered {
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
                // Pruned before its ack was printed: fill the whole run of
                // such seqs from what the writers must have sent there.
                let end = (seq..=recovered)
                    .take_while(|s| !journaled.contains_key(s) && !expected.acked.contains_key(s))
                    .last()
                    .unwrap_or(seq);
                match gap_counts(expected, journaled, &next, seq..=end, recovered) {
                    Ok(_) if deferred.is_some() => {
                        verdict.problems.push(format!(
                            "seqs {seq}..={end}: a second gap that only the state could count"
                        ));
                        return None;
                    }
                    Ok((counts, open, rest)) => {
                        if rest > 0 {
                            deferred = Some((open, rest));
                        }
                        for (writer, count) in (0..WRITERS).zip(counts) {
                            let first = next[writer as usize];
                            for index in first..first + count {
                                steps.push((end, Rebuilt::Event { writer, index }));
                            }
                            next[writer as usize] += count;
                        }
                    }
                    Err(why) => {
                        verdict.problems.push(format!(
                            "seqs {seq}..={end} (recovered up to {recovered}) were neither acked \
                             nor found in the journal, and {why}"
                        ));
                        return None;
                    }
                }
                seq = end + 1;
                continue;
            }
        };
        if deferred.is_some() && matches!(step, Rebuilt::Rollback(_)) {
            verdict.problems.push(format!(
                "seq {seq} is a rollback after a gap that only the state could count"
            ));
            return None;
        }
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
        seq += 1;
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
    if let Some((open, rest)) = deferred {
        let Some(counts) = count_by_state(expected.seed, &model, state, &next, &open, rest) else {
            verdict.problems.push(format!(
                "no split of {rest} unseen events among writers {open:?} gives the recovered state"
            ));
            return None;
        };
        for (&writer, count) in open.iter().zip(counts) {
            let first = next[writer as usize];
            for index in first..first + count {
                apply(&mut model, &event(expected.seed, writer, index));
            }
        }
    }
    Some(model)
}

/// For a gap that the writers' later steps cannot count: how many of the
/// `rest` unseen events each writer in `open` sent, such that each one's
/// keys end as in the recovered `state`. Writers' keys are disjoint, so
/// each writer is matched alone; then any split that adds up to `rest`
/// will do (every such split gives the same state). `None` when there is
/// none: then no history the writers could have made gives this state.
fn count_by_state(
    seed: u64,
    model: &PcModel,
    state: &PcModel,
    next: &[u64; WRITERS as usize],
    open: &[u32],
    rest: u64,
) -> Option<Vec<u64>> {
    let of = |m: &PcModel, writer: u32| -> PcModel {
        m.iter()
            .filter(|(k, _)| writer_of_key(**k) == writer)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    };
    // For each writer, the counts whose state matches.
    let mut candidates: Vec<Vec<u64>> = Vec::new();
    for &writer in open {
        let target = of(state, writer);
        let mut mine = of(model, writer);
        let mut fits = Vec::new();
        for k in 0..=rest {
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

/// How many events each writer sent in `gap`, a run of seqs that were
/// neither printed as acked nor kept by the journal (a checkpoint covers
/// them and the journal before it was pruned while the acks were still
/// being printed).
///
/// Each writer's events are dense and in order, so a writer whose next
/// known step after the gap is its event `j` sent `j - next` events in
/// it (for a step known only from the journal, the index is found from
/// its digest). One writer with no known step after the gap takes the
/// rest. Which writer took which seq inside the gap is unknown, and does
/// not matter: writers' keys are disjoint, so any order gives one state.
/// When several writers have no known step after the gap, the split of
/// the rest among them is left to the recovered state (the third value,
/// the count to split, is then above 0; see `count_by_state`). A
/// rollback inside the gap makes the counts disagree: the error says so.
fn gap_counts(
    expected: &Expected<'_>,
    journaled: &BTreeMap<u64, JournalStep>,
    next: &[u64; WRITERS as usize],
    gap: std::ops::RangeInclusive<u64>,
    recovered: u64,
) -> Result<([u64; WRITERS as usize], Vec<u32>, u64), String> {
    let len = gap.end() - gap.start() + 1;
    let mut counts: [Option<u64>; WRITERS as usize] = [None; WRITERS as usize];
    for writer in 0..WRITERS {
        let w = writer as usize;
        for s in gap.end() + 1..=recovered {
            match (expected.acked.get(&s), journaled.get(&s)) {
                (Some(&AckedStep::Event { writer: a, index }), _) if a == writer => {
                    let count = index.checked_sub(next[w]).ok_or_else(|| {
                        format!("writer {writer}'s event {index} at seq {s} comes too early")
                    })?;
                    counts[w] = Some(count);
                    break;
                }
                (
                    None,
                    Some(&JournalStep::Event {
                        writer: Some(j),
                        digest: d,
                    }),
                ) if j == writer => {
                    let count = (0..=len)
                        .find(|k| digest(&event(expected.seed, writer, next[w] + k)) == d)
                        .ok_or_else(|| {
                            format!("seq {s} holds an event of writer {writer} it never sent there")
                        })?;
                    counts[w] = Some(count);
                    break;
                }
                _ => {}
            }
        }
    }
    let known: u64 = counts.iter().flatten().sum();
    let rest = len.checked_sub(known).ok_or_else(|| {
        format!("the writers' later steps account for {known} events in it, over {len}")
    })?;
    let open: Vec<u32> = (0..WRITERS)
        .filter(|&w| counts[w as usize].is_none())
        .collect();
    let fixed = counts.map(|c| c.unwrap_or(0));
    match open.as_slice() {
        [] if rest > 0 => Err(format!(
            "the writers' later steps account for {known} events in it, not {len}"
        )),
        [] => Ok((fixed, Vec::new(), 0)),
        &[w] => {
            let mut fixed = fixed;
            fixed[w as usize] = rest;
            Ok((fixed, Vec::new(), 0))
        }
        _ => Ok((fixed, open, rest)),
    }
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
