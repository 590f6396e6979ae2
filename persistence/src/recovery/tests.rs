//! Replay tests: ranges, rolled-back gaps, refusals, and a model test of
//! random appends, rollbacks, prunes and reopens against a plain `Vec`.

use std::path::Path;

use proptest::prelude::*;
use solostate_commands::{Event, State, StateEvent};

use super::*;
use crate::journal::{Backend, Entry, Journal, JournalError, Step};

pub(super) type Ev = StateEvent<u64, u64>;

const CACHE: u64 = 8 << 20;

pub(super) fn open(dir: &Path) -> Journal {
    Journal::open(dir, "kv", CACHE).unwrap()
}

/// The event journaled at `seq`: a function of the seq, so the model only
/// needs seqs.
fn event(seq: u64) -> Ev {
    if seq.is_multiple_of(3) {
        StateEvent::Delete { key: seq % 5 }
    } else {
        StateEvent::Put {
            key: seq % 5,
            value: seq,
        }
    }
}

pub(super) fn append(journal: &Journal, first: u64, count: u64) {
    let events: Vec<Ev> = (first..first + count).map(event).collect();
    journal.append(first, &events).unwrap();
}

pub(super) fn state_of(seqs: impl IntoIterator<Item = u64>) -> State<Ev> {
    let mut state = State::<Ev>::new();
    for seq in seqs {
        event(seq).apply_to(&mut state).unwrap();
    }
    state
}

pub(super) fn replayed(
    journal: &Journal,
    from: u64,
    through: u64,
) -> Result<(u64, State<Ev>), ReplayError> {
    let mut state = state_of(1..from);
    let last = replay_range::<Ev>(journal, &mut state, from, through, |_| {})?;
    Ok((last, state))
}

/// 1..=10 in batches [1..=4] [5..=7] [8..=10], then a rollback to 5 (a
/// marker at 11), then 12..=13.
fn rolled_back(journal: &Journal) {
    append(journal, 1, 4);
    append(journal, 5, 3);
    append(journal, 8, 3);
    journal.rollback::<Ev>(5, 11).unwrap();
    append(journal, 12, 2);
}

#[test]
fn replay_skips_the_archived_events_and_markers_apply_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    rolled_back(&journal);
    let mut seen = Vec::new();
    let mut state = State::<Ev>::new();
    assert_eq!(
        replay::<Ev>(&journal, &mut state, |seq| seen.push(seq)).unwrap(),
        13
    );
    assert_eq!(seen, vec![13], "one progress call at the end");
    assert_eq!(state, state_of((1..=5).chain(12..=13)));
    assert_eq!(replayed(&journal, 1, 11).unwrap(), (11, state_of(1..=5)));
    assert_eq!(replayed(&journal, 1, 5).unwrap(), (5, state_of(1..=5)));
    assert_eq!(replayed(&journal, 1, 3).unwrap(), (3, state_of(1..=3)));
    // From a checkpoint at 5 (and from inside the gap, which starts at the
    // marker) to the end.
    let whole = state_of((1..=5).chain(12..=13));
    let mut state = state_of(1..=5);
    let last = replay_range::<Ev>(&journal, &mut state, 6, u64::MAX, |_| {}).unwrap();
    assert_eq!((last, &state), (13, &whole));
    let mut state = state_of(1..=5);
    let last = replay_range::<Ev>(&journal, &mut state, 12, u64::MAX, |_| {}).unwrap();
    assert_eq!((last, state), (13, whole));
}

#[test]
fn a_range_ending_inside_a_rolled_back_gap_is_refused_before_applying() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    rolled_back(&journal);
    for through in 6..=10 {
        let mut state = State::<Ev>::new();
        match replay_range::<Ev>(&journal, &mut state, 1, through, |_| {}) {
            Err(ReplayError::RolledBack {
                seq,
                marker,
                target,
            }) => assert_eq!((seq, marker, target), (through, 11, 5)),
            other => panic!("expected RolledBack, got {other:?}"),
        }
        assert!(state.is_empty(), "nothing applied");
    }
    let err = replayed(&journal, 1, 8).unwrap_err();
    assert_eq!(
        err.to_string(),
        "seq 8 was rolled back (to seq 5) by the marker at seq 11"
    );
}

#[test]
fn a_range_ending_after_the_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    rolled_back(&journal);
    assert!(matches!(
        replayed(&journal, 1, 14).unwrap_err(),
        ReplayError::AfterEnd { seq: 14, last: 13 }
    ));
    assert_eq!(replayed(&journal, 1, 13).unwrap().0, 13);
    let empty = tempfile::tempdir().unwrap();
    let journal = open(empty.path());
    assert!(matches!(
        replayed(&journal, 1, 1).unwrap_err(),
        ReplayError::AfterEnd { seq: 1, last: 0 }
    ));
    assert_eq!(replayed(&journal, 1, u64::MAX).unwrap().0, 0);
}

#[test]
fn a_backward_range_is_refused_and_an_empty_one_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, 5);
    assert!(matches!(
        replayed(&journal, 5, 3).unwrap_err(),
        ReplayError::BackwardRange {
            from: 5,
            through: 3
        }
    ));
    let mut state = State::<Ev>::new();
    assert_eq!(
        replay_range::<Ev>(&journal, &mut state, 4, 3, |_| {}).unwrap(),
        3
    );
    assert!(state.is_empty());
    // Past the end to the end: nothing to do, and from - 1 comes back.
    assert_eq!(replayed(&journal, 6, u64::MAX).unwrap().0, 5);
}

#[test]
fn a_replay_from_a_pruned_seq_names_the_first_retained_one() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, 3);
    append(&journal, 4, 3);
    journal.prune_through(3).unwrap();
    assert!(matches!(
        replayed(&journal, 1, u64::MAX).unwrap_err(),
        ReplayError::Journal(JournalError::Pruned {
            seq: 1,
            first: 4,
            ..
        })
    ));
    assert_eq!(replayed(&journal, 4, 6).unwrap(), (6, state_of(1..=6)));
}

#[test]
fn a_rejected_event_names_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let insert = StateEvent::Insert { key: 1, value: 1 };
    journal.append(1, &[insert.clone(), insert]).unwrap();
    assert!(matches!(
        replayed(&journal, 1, u64::MAX).unwrap_err(),
        ReplayError::Apply { seq: 2, .. }
    ));
}

#[test]
fn a_step_rejected_after_writes_leaves_the_state_of_the_steps_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    // Seq 2 writes two keys, then is rejected: its writes are undone, so
    // the state is exactly the state at seq 1.
    let half_writing: Ev = StateEvent::batch([
        StateEvent::put(2, 2),
        StateEvent::put(1, 9),
        StateEvent::insert(1, 0),
    ]);
    journal.append(1, &[Ev::put(1, 1), half_writing]).unwrap();
    let mut state = State::<Ev>::new();
    let error = replay_range::<Ev>(&journal, &mut state, 1, u64::MAX, |_| {}).unwrap_err();
    assert!(
        matches!(error, ReplayError::Apply { seq: 2, .. }),
        "{error}"
    );
    assert_eq!(state, State::<Ev>::from(vec![(1, 1)]));
}

#[test]
fn progress_is_reported_at_every_multiple_of_65536() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, 70_000);
    journal.rollback::<Ev>(65_535, 70_001).unwrap();
    let mut seen = Vec::new();
    let mut state = State::<Ev>::new();
    let last = replay::<Ev>(&journal, &mut state, |seq| seen.push(seq)).unwrap();
    // The marker jumps over 65,536: progress reports the marker's seq.
    assert_eq!((last, seen), (70_001, vec![70_001, 70_001]));
}

#[test]
fn a_long_replay_read_on_a_second_thread_matches_a_short_one_and_stops_where_asked() {
    // Long enough for the pipelined path, in batches that chunks cut across.
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let mut seq = 1;
    let mut i = 0;
    while seq <= 60_000 {
        i += 1;
        let count = 1 + (i * 37) % 700;
        append(&journal, seq, count);
        seq += count;
    }
    let last = seq - 1;
    for through in [PIPELINE_FROM + 5_000, 40_321, last] {
        let (reached, state) = replayed(&journal, 1, through).unwrap();
        assert_eq!((reached, state), (through, state_of(1..=through)));
    }
    // The same through the short path, range by range.
    let (_, mut state) = replayed(&journal, 1, 100).unwrap();
    let mut at = 100;
    while at < last {
        let next = (at + PIPELINE_FROM - 1).min(last);
        replay_range::<Ev>(&journal, &mut state, at + 1, next, |_| {}).unwrap();
        at = next;
    }
    assert_eq!(state, state_of(1..=last));

    // A rejection deep in a long replay names its seq; nothing after it
    // applies.
    let insert = StateEvent::Insert { key: 999, value: 1 };
    journal
        .append(last + 1, std::slice::from_ref(&insert))
        .unwrap();
    append(&journal, last + 2, 10);
    journal.append(last + 12, &[insert]).unwrap();
    let mut state = State::<Ev>::new();
    let error = replay_range::<Ev>(&journal, &mut state, 1, u64::MAX, |_| {}).unwrap_err();
    assert!(
        matches!(error, ReplayError::Apply { seq, .. } if seq == last + 12),
        "{error}"
    );
}

/// One operation of the model test.
#[derive(Debug, Clone)]
enum Op {
    /// Append a batch of this many events.
    Append(u64),
    /// Roll back to the valid target picked by this index.
    Rollback(usize),
    /// Prune through the seq picked by this index.
    Prune(usize),
    /// Drop and reopen the journal.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..5).prop_map(Op::Append),
        2 => any::<usize>().prop_map(Op::Rollback),
        1 => any::<usize>().prop_map(Op::Prune),
        1 => Just(Op::Reopen),
    ]
}

/// The model: every record ever written to the timeline (pruning only
/// moves the pruned-through mark), and every archived step.
#[derive(Default)]
struct Model {
    records: Vec<Vec<Entry<Ev>>>,
    archive: Vec<Entry<Ev>>,
    pruned: u64,
    last: u64,
}

impl Model {
    fn steps(&self) -> impl Iterator<Item = &Entry<Ev>> {
        self.records.iter().flatten()
    }

    /// Valid rollback targets: the seq before the retained prefix and
    /// every seq in the timeline after it.
    fn targets(&self) -> Vec<u64> {
        let mut targets = vec![self.pruned];
        targets.extend(self.steps().map(|e| e.seq).filter(|&seq| seq > self.pruned));
        targets
    }

    /// Rolls back to `target`; returns the events and records archived.
    fn rollback(&mut self, target: u64) -> (u64, u64) {
        let (mut events, mut records) = (0, 0);
        let mut kept = Vec::new();
        for record in self.records.drain(..) {
            let (keep, archive): (Vec<_>, Vec<_>) =
                record.into_iter().partition(|e| e.seq <= target);
            if !archive.is_empty() {
                records += 1;
                events += archive.iter().filter(|e| e.event().is_some()).count() as u64;
            }
            self.archive.extend(archive);
            if !keep.is_empty() {
                kept.push(keep);
            }
        }
        self.last += 1;
        kept.push(vec![Entry {
            seq: self.last,
            step: Step::Rollback { target },
        }]);
        self.records = kept;
        self.archive.sort_by_key(|e| e.seq);
        (events, records)
    }

    fn prune(&mut self, through: u64) {
        for record in &self.records {
            let end = record.last().expect("no empty records").seq;
            if end > through {
                break;
            }
            self.pruned = self.pruned.max(end);
        }
    }

    /// The state after every step in the timeline.
    fn state(&self, through: u64) -> State<Ev> {
        let mut state = State::<Ev>::new();
        for entry in self.steps().filter(|e| e.seq <= through) {
            if let Step::Event(event) = &entry.step {
                event.apply_to(&mut state).unwrap();
            }
        }
        state
    }
}

fn check(journal: &Journal, model: &Model) -> Result<(), TestCaseError> {
    let first = model.pruned + 1;
    prop_assert_eq!(journal.first_seq().unwrap(), first);
    prop_assert_eq!(journal.last_seq::<Ev>().unwrap(), model.last);
    let read: Vec<Entry<Ev>> = journal
        .read_from::<Ev>(first)
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<Entry<Ev>> = model.steps().filter(|e| e.seq >= first).cloned().collect();
    prop_assert_eq!(read, expected);
    let archived: Vec<Entry<Ev>> = journal
        .read_archive::<Ev>()
        .collect::<Result<_, _>>()
        .unwrap();
    prop_assert_eq!(&archived, &model.archive);
    // Replay from the state at the pruned-through mark (what a checkpoint
    // there would hold) to the end.
    let mut state = model.state(model.pruned);
    let last = replay_range::<Ev>(journal, &mut state, first, u64::MAX, |_| {}).unwrap();
    prop_assert_eq!(last, model.last);
    prop_assert_eq!(state, model.state(u64::MAX));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// On both backends: the journal's logic is the same on either, and
    /// this checks that each store keeps what it is given.
    #[test]
    fn random_appends_rollbacks_and_prunes_match_a_vec_model(
        ops in proptest::collection::vec(op(), 1..24),
        sled in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let backend = if sled { Backend::Sled } else { Backend::Segments };
        let mut journal = Journal::open_with(dir.path(), "kv", CACHE, backend).unwrap();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Append(count) => {
                    let first = model.last + 1;
                    append(&journal, first, count);
                    model.records.push(
                        (first..first + count)
                            .map(|seq| Entry { seq, step: Step::Event(event(seq)) })
                            .collect(),
                    );
                    model.last += count;
                }
                Op::Rollback(pick) => {
                    let targets = model.targets();
                    let target = targets[pick % targets.len()];
                    let report = journal.rollback::<Ev>(target, model.last + 1).unwrap();
                    let (events, records) = model.rollback(target);
                    prop_assert_eq!(
                        (report.events_archived, report.records_archived),
                        (events, records)
                    );
                }
                Op::Prune(pick) => {
                    let through = pick as u64 % (model.last + 1);
                    journal.prune_through(through).unwrap();
                    model.prune(through);
                }
                Op::Reopen => {
                    journal.flush().unwrap();
                    drop(journal);
                    journal = open(dir.path());
                    prop_assert_eq!(journal.backend(), backend);
                }
            }
            check(&journal, &model)?;
        }
    }
}
