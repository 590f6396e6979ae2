//! The determinism guard in replay: recorded state hashes are checked, a
//! diverging `apply` is named at the first checked seq that differs, and
//! rollback, pruning and quarantine take their seqs' checks with them.

use serde::{Deserialize, Serialize};
use solostate_commands::{Event, State, StateEvent, StateRejection, Txn};

use super::tests::{Ev, append, open, replayed, state_of};
use super::*;
use crate::hash::state_hash;

/// The same bytes as [`Ev`], but a "new build" whose `Put` stores one
/// more than it is told from value 6 on: it agrees with `Ev` up to seq 5.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct Skewed(Ev);

impl Event for Skewed {
    type Key = u64;
    type Value = u64;
    type Rejection = StateRejection<u64>;

    fn apply(&self, tx: &mut Txn<'_, u64, u64>) -> Result<(), Self::Rejection> {
        match &self.0 {
            StateEvent::Put { key, value } if *value >= 6 => {
                tx.insert(*key, value + 1);
                Ok(())
            }
            other => other.apply(tx),
        }
    }
}

/// Records the true state hash at each of `seqs` (events from 1 on).
fn record_hashes(journal: &Journal, seqs: &[u64]) {
    for &seq in seqs {
        let hash = state_hash::<Ev>(&state_of(1..=seq)).unwrap();
        journal.record_state_hash(seq, hash).unwrap();
    }
}

/// A journal of events 1..=10 in three batches (1-4, 5-7, 8-10) with the
/// true state hash recorded at the end of each.
fn ten_events_checked_at_4_7_10(dir: &std::path::Path) -> Journal {
    let journal = open(dir);
    append(&journal, 1, 4);
    append(&journal, 5, 3);
    append(&journal, 8, 3);
    record_hashes(&journal, &[4, 7, 10]);
    journal
}

#[test]
fn a_faithful_replay_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let journal = ten_events_checked_at_4_7_10(dir.path());
    assert_eq!(
        replayed(&journal, 1, u64::MAX).unwrap(),
        (10, state_of(1..=10))
    );
    assert_eq!(replayed(&journal, 6, 9).unwrap(), (9, state_of(1..=9)));
}

#[test]
fn a_diverging_apply_is_named_at_the_first_checked_seq_that_differs() {
    let dir = tempfile::tempdir().unwrap();
    let journal = ten_events_checked_at_4_7_10(dir.path());
    let mut state = State::<Skewed>::new();
    let error = replay_range::<Skewed>(&journal, &mut state, 1, u64::MAX, |_| {}).unwrap_err();
    let expected = state_hash::<Ev>(&state_of(1..=7)).unwrap();
    match error {
        ReplayError::Diverged {
            seq: 7,
            expected: recorded,
            actual,
        } => {
            assert_eq!(recorded, expected);
            assert_eq!(actual, state_hash::<Skewed>(&state).unwrap());
            assert_ne!(actual, expected);
        }
        other => panic!("expected Diverged at seq 7, got {other}"),
    }
    // Seq 4 was checked and agreed: a replay that stops before 7 passes.
    let mut state = State::<Skewed>::new();
    assert_eq!(
        replay_range::<Skewed>(&journal, &mut state, 1, 6, |_| {}).unwrap(),
        6
    );
}

#[test]
fn rollback_takes_the_undone_checks_and_the_new_timeline_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let journal = ten_events_checked_at_4_7_10(dir.path());
    journal.rollback::<Ev>(5, 11).unwrap();
    assert_eq!(journal.state_hashes(1..=u64::MAX).unwrap().len(), 1);
    append(&journal, 12, 2);
    let after = state_of((1..=5).chain(12..=13));
    journal
        .record_state_hash(13, state_hash::<Ev>(&after).unwrap())
        .unwrap();
    assert_eq!(replayed(&journal, 1, u64::MAX).unwrap(), (13, after));
    // A check at 13 of the wrong state trips.
    journal.record_state_hash(13, 1).unwrap();
    assert!(matches!(
        replayed(&journal, 1, u64::MAX).unwrap_err(),
        ReplayError::Diverged {
            seq: 13,
            expected: 1,
            ..
        }
    ));
}

#[test]
fn pruning_and_quarantine_take_their_seqs_checks() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, 4);
    append(&journal, 5, 3);
    append(&journal, 8, 3);
    record_hashes(&journal, &[2, 4, 7, 10]);
    journal.prune_through(5).unwrap(); // removes 1..=4 only
    let seqs = |journal: &Journal| -> Vec<u64> {
        let hashes = journal.state_hashes(0..=u64::MAX).unwrap();
        hashes.into_iter().map(|(seq, _)| seq).collect()
    };
    assert_eq!(seqs(&journal), [7, 10]);
    journal.quarantine_from(8).unwrap();
    assert_eq!(seqs(&journal), [7]);
    assert_eq!(journal.remove_state_hashes_after(6).unwrap(), 1);
    assert!(seqs(&journal).is_empty());
}

#[test]
fn a_corrupt_check_is_named_by_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let sled = crate::journal::Backend::Sled;
    append(
        &Journal::open_with(dir.path(), "kv", 8 << 20, sled).unwrap(),
        1,
        4,
    );
    // Through sled itself, as damage on disk would be.
    let db = sled::open(dir.path()).unwrap();
    let tree = db.open_tree("state_hashes").unwrap();
    tree.insert(3u64.to_be_bytes(), &[2u8; 5][..]).unwrap();
    db.flush().unwrap();
    drop((tree, db));
    let journal = open(dir.path());
    match replayed(&journal, 1, u64::MAX).unwrap_err() {
        ReplayError::Journal(JournalError::Corrupt { seq: 3, .. }) => {}
        other => panic!("expected Corrupt at seq 3, got {other}"),
    }
}
