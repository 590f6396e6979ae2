//! Maintenance tests: pruning behind a checkpoint, quarantining a corrupt
//! suffix, and opening only an existing journal.

use super::*;

const CACHE: u64 = 8 << 20;

fn open(dir: &Path) -> Journal {
    Journal::open(dir, "strings", CACHE).unwrap()
}

fn append(journal: &Journal, first: u64, events: &[&str]) {
    let events: Vec<String> = events.iter().map(|s| s.to_string()).collect();
    journal.append(first, &events).unwrap();
}

fn seqs(journal: &Journal, from: u64) -> Result<Vec<u64>, JournalError> {
    journal
        .read_from::<String>(from)
        .map(|entry| entry.map(|e| e.seq))
        .collect()
}

#[test]
fn pruning_keeps_a_straddling_record_and_reads_below_it_are_pruned_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open(dir.path());
        append(&journal, 1, &["a", "b"]);
        append(&journal, 3, &["c", "d", "e"]);
        append(&journal, 6, &["f"]);
        assert_eq!(journal.first_seq().unwrap(), 1);
        assert_eq!(journal.prune_through(4).unwrap(), 1, "3..=5 straddles 4");
        assert_eq!(journal.first_seq().unwrap(), 3);
        assert_eq!(journal.prune_through(4).unwrap(), 0, "idempotent");
        match seqs(&journal, 1).unwrap_err() {
            JournalError::Pruned { path, seq, first } => {
                assert_eq!((path.as_path(), seq, first), (dir.path(), 1, 3))
            }
            other => panic!("expected Pruned, got {other}"),
        }
        assert!(matches!(
            seqs(&journal, 2).unwrap_err(),
            JournalError::Pruned {
                seq: 2,
                first: 3,
                ..
            }
        ));
        assert_eq!(seqs(&journal, 3).unwrap(), vec![3, 4, 5, 6]);
        journal.flush().unwrap();
    }
    let journal = open(dir.path());
    assert_eq!(journal.first_seq().unwrap(), 3);
    assert!(matches!(
        seqs(&journal, 1).unwrap_err(),
        JournalError::Pruned { first: 3, .. }
    ));
    assert_eq!(seqs(&journal, 4).unwrap(), vec![4, 5, 6]);
}

#[test]
fn pruning_everything_keeps_first_and_last_seq_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open(dir.path());
        append(&journal, 1, &["a", "b"]);
        append(&journal, 3, &["c"]);
        assert_eq!(journal.prune_through(3).unwrap(), 2);
        journal.flush().unwrap();
    }
    let journal = open(dir.path());
    assert_eq!(journal.first_seq().unwrap(), 4);
    assert_eq!(
        journal.last_seq::<String>().unwrap(),
        3,
        "an emptied journal is not newer than its checkpoint"
    );
    assert!(seqs(&journal, 4).unwrap().is_empty());
    append(&journal, 4, &["d"]);
    assert_eq!(seqs(&journal, 4).unwrap(), vec![4]);
}

#[test]
fn pruning_past_a_marker_and_reading_its_gap() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, &["a", "b", "c"]);
    append(&journal, 4, &["d"]);
    journal.rollback::<String>(3, 5).unwrap();
    append(&journal, 6, &["f"]);
    assert_eq!(journal.prune_through(4).unwrap(), 1, "only 1..=3 goes");
    assert_eq!(journal.first_seq().unwrap(), 4);
    // 4 lies in the rolled-back gap: the read starts at the marker.
    assert_eq!(seqs(&journal, 4).unwrap(), vec![5, 6]);
    assert_eq!(journal.prune_through(5).unwrap(), 1, "the marker goes too");
    assert_eq!(seqs(&journal, 6).unwrap(), vec![6]);
}

#[test]
fn a_pruned_prefix_with_a_corrupt_record_is_not_pruned_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, &["a"]);
    append(&journal, 2, &["b"]);
    journal
        .raw(Tree::Records)
        .insert(2u64.to_be_bytes(), &b"junk"[..])
        .unwrap();
    assert!(matches!(
        journal.prune_through(2).unwrap_err(),
        JournalError::Corrupt { seq: 2, .. }
    ));
    assert_eq!(journal.first_seq().unwrap(), 1, "nothing was removed");
}

#[test]
fn quarantine_leaves_a_clean_prefix_and_keeps_the_suffix_raw() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, &["a"]);
    append(&journal, 2, &["b", "c"]);
    append(&journal, 4, &["d"]);
    append(&journal, 5, &["e"]);
    let mut corrupt = journal
        .raw(Tree::Records)
        .get(4u64.to_be_bytes())
        .unwrap()
        .unwrap()
        .to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    journal
        .raw(Tree::Records)
        .insert(4u64.to_be_bytes(), corrupt.clone())
        .unwrap();
    assert!(matches!(
        seqs(&journal, 1).unwrap_err(),
        JournalError::Corrupt { seq: 4, .. }
    ));

    assert_eq!(journal.quarantine_from(4).unwrap(), 2);
    assert_eq!(seqs(&journal, 1).unwrap(), vec![1, 2, 3]);
    assert_eq!(journal.last_seq::<String>().unwrap(), 3);
    let quarantined = journal.quarantined().unwrap();
    let keys: Vec<u64> = quarantined.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(keys, vec![4, 5]);
    assert_eq!(quarantined[0].2, corrupt, "moved raw, damage and all");

    // The engine then reuses seqs 4..: a second quarantine of the same
    // keys keeps both generations.
    append(&journal, 4, &["d2"]);
    assert_eq!(journal.quarantine_from(4).unwrap(), 1);
    let quarantined = journal.quarantined().unwrap();
    assert_eq!(quarantined.len(), 3);
    assert!(quarantined[0].0 < quarantined[2].0);
    assert_eq!(quarantined[2].1, 4);
    assert_eq!(journal.quarantine_from(99).unwrap(), 0);
}

#[test]
fn open_existing_refuses_a_directory_without_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let err = Journal::open_existing(&missing, "strings", CACHE).unwrap_err();
    assert!(
        matches!(&err, JournalError::NotFound { path } if *path == missing),
        "{err}"
    );
    assert!(!missing.exists(), "open_existing created nothing");
    assert!(matches!(
        Journal::open_existing(dir.path(), "strings", CACHE).unwrap_err(),
        JournalError::NotFound { .. }
    ));

    let path = dir.path().join("journal");
    {
        let journal = open(&path);
        append(&journal, 1, &["a"]);
        journal.flush().unwrap();
    }
    let journal = Journal::open_existing(&path, "strings", CACHE).unwrap();
    assert_eq!(seqs(&journal, 1).unwrap(), vec![1]);
    drop(journal);
    assert!(matches!(
        Journal::open_existing(&path, "other", CACHE).unwrap_err(),
        JournalError::SchemaMismatch { .. }
    ));
}

/// Seqs 1..=5 in four records, with 4..=5 quarantined although they
/// verify (as after a quarantine whose damage was repaired in place).
fn quarantined_tail(dir: &Path, backend: Backend) -> (Journal, u64) {
    let journal = Journal::open_with(dir, "strings", CACHE, backend).unwrap();
    append(&journal, 1, &["a"]);
    append(&journal, 2, &["b", "c"]);
    append(&journal, 4, &["d"]);
    append(&journal, 5, &["e"]);
    assert_eq!(journal.quarantine_from(4).unwrap(), 2);
    let id = journal.quarantined().unwrap()[0].0;
    (journal, id)
}

#[test]
fn restoring_a_quarantine_that_continues_the_timeline_puts_it_back_durably() {
    for backend in [Backend::Segments, Backend::Sled] {
        let dir = tempfile::tempdir().unwrap();
        let (journal, id) = quarantined_tail(dir.path(), backend);
        let plan = journal.plan_restore(&[id]).unwrap();
        assert_eq!((plan.after, plan.last()), (3, 5));
        assert_eq!(
            journal.quarantined().unwrap().len(),
            2,
            "a plan writes nothing"
        );
        let restored = journal.restore_quarantined(&[id]).unwrap();
        assert_eq!(restored, plan);
        assert!(journal.quarantined().unwrap().is_empty(), "{backend:?}");
        drop(journal);
        let journal = Journal::open_with(dir.path(), "strings", CACHE, backend).unwrap();
        assert_eq!(
            seqs(&journal, 1).unwrap(),
            vec![1, 2, 3, 4, 5],
            "{backend:?}"
        );
        let events: Vec<String> = journal
            .read_from::<String>(4)
            .map(|entry| entry.unwrap().event().unwrap().clone())
            .collect();
        assert_eq!(events, vec!["d", "e"]);
        assert!(journal.quarantined().unwrap().is_empty());
    }
}

#[test]
fn a_restore_is_refused_once_the_engine_wrote_the_quarantined_seqs_again() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, id) = quarantined_tail(dir.path(), Backend::Segments);
    append(&journal, 4, &["d2"]);
    match journal.restore_quarantined(&[id]).unwrap_err() {
        RestoreError::TimelineMovedOn {
            seq, last, id: got, ..
        } => {
            assert_eq!((seq, last, got), (4, 4, id))
        }
        other => panic!("expected TimelineMovedOn, got {other}"),
    }
    assert_eq!(journal.quarantined().unwrap().len(), 2, "nothing moved");
    assert_eq!(seqs(&journal, 1).unwrap(), vec![1, 2, 3, 4]);
}

#[test]
fn a_restore_refuses_a_record_that_does_not_verify_a_gap_and_an_unknown_id() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, &["a"]);
    append(&journal, 2, &["b"]);
    append(&journal, 3, &["c"]);
    let mut corrupt = journal
        .raw(Tree::Records)
        .get(2u64.to_be_bytes())
        .unwrap()
        .unwrap()
        .to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    journal
        .raw(Tree::Records)
        .insert(2u64.to_be_bytes(), corrupt)
        .unwrap();
    assert_eq!(journal.quarantine_from(2).unwrap(), 2);
    let id = journal.quarantined().unwrap()[0].0;
    match journal.restore_quarantined(&[id]).unwrap_err() {
        RestoreError::DoesNotVerify { seq, .. } => assert_eq!(seq, 2),
        other => panic!("expected DoesNotVerify, got {other}"),
    }
    match journal.restore_quarantined(&[id + 1000]).unwrap_err() {
        RestoreError::NoSuchQuarantine { id: got, .. } => assert_eq!(got, id + 1000),
        other => panic!("expected NoSuchQuarantine, got {other}"),
    }
    assert_eq!(journal.quarantined().unwrap().len(), 2, "nothing moved");
    assert_eq!(seqs(&journal, 1).unwrap(), vec![1]);

    // Seq 3 alone, after seq 1: a gap at seq 2.
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, &["a"]);
    append(&journal, 2, &["b"]);
    append(&journal, 3, &["c"]);
    journal.quarantine_from(3).unwrap();
    let id = journal.quarantined().unwrap()[0].0;
    journal.discard(2).unwrap();
    match journal.restore_quarantined(&[id]).unwrap_err() {
        RestoreError::NotContiguous {
            expected, found, ..
        } => assert_eq!((expected, found), (2, 3)),
        other => panic!("expected NotContiguous, got {other}"),
    }
}
