//! Rollback tests: splitting, archiving, nesting, refusals, restarts, and
//! reads that start inside a rolled-back gap.

use super::*;

const CACHE: u64 = 8 << 20;

fn open(dir: &Path) -> Journal {
    Journal::open(dir, "strings", CACHE).unwrap()
}

fn ev(seq: u64, event: &str) -> Entry<String> {
    Entry {
        seq,
        step: Step::Event(event.to_owned()),
    }
}

fn rb(seq: u64, target: u64) -> Entry<String> {
    Entry {
        seq,
        step: Step::Rollback { target },
    }
}

fn steps(journal: &Journal, from: u64) -> Vec<Entry<String>> {
    journal
        .read_from::<String>(from)
        .collect::<Result<_, _>>()
        .unwrap()
}

fn archive(journal: &Journal) -> Vec<Entry<String>> {
    journal
        .read_archive::<String>()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn append(journal: &Journal, first: u64, events: &[&str]) {
    let events: Vec<String> = events.iter().map(|s| s.to_string()).collect();
    journal.append(first, &events).unwrap();
}

/// Ten events, 1..=10, in batches [1,2] [3,4,5] [6] [7..=10].
fn ten(journal: &Journal) {
    append(journal, 1, &["1", "2"]);
    append(journal, 3, &["3", "4", "5"]);
    append(journal, 6, &["6"]);
    append(journal, 7, &["7", "8", "9", "10"]);
}

fn refusal(result: Result<RollbackReport, JournalError>) -> RollbackRefusal {
    match result {
        Err(JournalError::InvalidRollback { reason, .. }) => reason,
        other => panic!("expected InvalidRollback, got {other:?}"),
    }
}

#[test]
fn a_rollback_inside_a_batch_splits_it_and_archives_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    ten(&journal);
    let report = journal.rollback::<String>(4, 11).unwrap();
    assert_eq!(
        report,
        RollbackReport {
            events_archived: 6,
            records_archived: 3
        }
    );
    assert_eq!(
        steps(&journal, 1),
        vec![ev(1, "1"), ev(2, "2"), ev(3, "3"), ev(4, "4"), rb(11, 4)]
    );
    let archived = archive(&journal);
    let seqs: Vec<u64> = archived.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![5, 6, 7, 8, 9, 10], "original seqs are kept");
    assert_eq!(archived[0], ev(5, "5"));
    // The split suffix is its own record under its first archived seq.
    assert!(
        journal
            .raw(Tree::Archive)
            .get(5u64.to_be_bytes())
            .unwrap()
            .is_some()
    );
    assert_eq!(journal.last_seq::<String>().unwrap(), 11);
    append(&journal, 12, &["12"]);
    assert_eq!(steps(&journal, 11), vec![rb(11, 4), ev(12, "12")]);
}

#[test]
fn a_rollback_to_zero_leaves_only_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    ten(&journal);
    let report = journal.rollback::<String>(0, 11).unwrap();
    assert_eq!(report.events_archived, 10);
    assert_eq!(report.records_archived, 4);
    assert_eq!(steps(&journal, 1), vec![rb(11, 0)]);
    assert_eq!(archive(&journal).len(), 10);
    assert_eq!(journal.last_seq::<String>().unwrap(), 11);
}

#[test]
fn a_rollback_of_an_empty_journal_to_zero_writes_marker_one() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    assert_eq!(
        journal.rollback::<String>(0, 1).unwrap(),
        RollbackReport::default()
    );
    assert_eq!(steps(&journal, 1), vec![rb(1, 0)]);
}

#[test]
fn a_rollback_to_the_last_seq_archives_nothing_but_writes_a_marker() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    ten(&journal);
    let report = journal.rollback::<String>(10, 11).unwrap();
    assert_eq!(report, RollbackReport::default());
    assert_eq!(steps(&journal, 10), vec![ev(10, "10"), rb(11, 10)]);
    assert!(archive(&journal).is_empty());
}

#[test]
fn nested_rollbacks_and_a_rollback_to_a_marker_archive_everything_in_seq_order() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    ten(&journal);
    journal.rollback::<String>(5, 11).unwrap();
    append(&journal, 12, &["12", "13"]);
    append(&journal, 14, &["14", "15"]);
    // Inside the first rollback's gap: refused.
    assert_eq!(
        refusal(journal.rollback::<String>(8, 16)),
        RollbackRefusal::RolledBack { marker: 11 }
    );
    // To the marker itself: its state is seq 5's.
    let report = journal.rollback::<String>(11, 16).unwrap();
    assert_eq!(report.events_archived, 4);
    assert_eq!(
        steps(&journal, 1)
            .into_iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 11, 16]
    );
    assert_eq!(steps(&journal, 11), vec![rb(11, 5), rb(16, 11)]);
    append(&journal, 17, &["17"]);
    // Nested: back before the first rollback, archiving its marker too.
    let report = journal.rollback::<String>(3, 18).unwrap();
    assert_eq!(
        report,
        RollbackReport {
            events_archived: 3,
            records_archived: 4
        }
    );
    assert_eq!(
        steps(&journal, 1),
        vec![ev(1, "1"), ev(2, "2"), ev(3, "3"), rb(18, 3)]
    );
    let archived = archive(&journal);
    let seqs: Vec<u64> = archived.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
    assert_eq!(archived[7], rb(11, 5));
    assert_eq!(archived[12], rb(16, 11));
    assert_eq!(archived[13], ev(17, "17"));
}

#[test]
fn a_rollback_reads_back_the_same_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (timeline, archived) = {
        let journal = open(dir.path());
        ten(&journal);
        journal.rollback::<String>(7, 11).unwrap();
        append(&journal, 12, &["12"]);
        journal.flush().unwrap();
        (steps(&journal, 1), archive(&journal))
    };
    let journal = open(dir.path());
    assert_eq!(steps(&journal, 1), timeline);
    assert_eq!(archive(&journal), archived);
    assert_eq!(journal.last_seq::<String>().unwrap(), 12);
    assert_eq!(timeline[7], rb(11, 7));
}

#[test]
fn each_refusal_is_named_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    ten(&journal);
    assert_eq!(
        refusal(journal.rollback::<String>(11, 11)),
        RollbackRefusal::AfterLast { last: 10 }
    );
    assert_eq!(
        refusal(journal.rollback::<String>(5, 12)),
        RollbackRefusal::MarkerSeq { expected: 11 }
    );
    assert_eq!(
        refusal(journal.rollback::<String>(5, 10)),
        RollbackRefusal::MarkerSeq { expected: 11 }
    );
    journal.rollback::<String>(4, 11).unwrap();
    assert_eq!(
        refusal(journal.rollback::<String>(9, 12)),
        RollbackRefusal::RolledBack { marker: 11 }
    );
    journal.prune_through(2).unwrap();
    assert_eq!(journal.first_seq().unwrap(), 3);
    assert_eq!(
        refusal(journal.rollback::<String>(1, 12)),
        RollbackRefusal::Pruned { first: 3 }
    );
    let err = journal.rollback::<String>(1, 12).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "journal {}: cannot roll back to seq 1: the journal was pruned; its first retained seq is 3",
            dir.path().display()
        )
    );
    // Nothing was written by any refusal.
    assert_eq!(steps(&journal, 3), vec![ev(3, "3"), ev(4, "4"), rb(11, 4)]);
    // The seq just before the retained prefix is still a valid target.
    journal.rollback::<String>(2, 12).unwrap();
    assert_eq!(steps(&journal, 3), vec![rb(12, 2)]);
}

#[test]
fn an_archive_collision_aborts_the_whole_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    ten(&journal);
    let planted = codec::encode_batch(&["planted".to_string()]).unwrap();
    journal
        .raw(Tree::Archive)
        .insert(7u64.to_be_bytes(), planted)
        .unwrap();
    let before = steps(&journal, 1);
    let err = journal.rollback::<String>(4, 11).unwrap_err();
    assert!(
        matches!(&err, JournalError::Collision { seq: 7, path } if path == dir.path()),
        "{err}"
    );
    assert_eq!(steps(&journal, 1), before, "the timeline is untouched");
    assert_eq!(archive(&journal), vec![ev(7, "planted")]);
}

#[test]
fn a_read_starting_inside_a_rolled_back_gap_starts_at_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    ten(&journal);
    journal.rollback::<String>(5, 11).unwrap();
    append(&journal, 12, &["12"]);
    for from in 6..=11 {
        assert_eq!(
            steps(&journal, from),
            vec![rb(11, 5), ev(12, "12")],
            "from {from}"
        );
    }
    assert_eq!(
        steps(&journal, 5),
        vec![ev(5, "5"), rb(11, 5), ev(12, "12")]
    );
    assert!(steps(&journal, 13).is_empty());
    assert_eq!(journal.rolled_back_at(8).unwrap(), Some((11, 5)));
    assert_eq!(journal.rolled_back_at(11).unwrap(), None);
    assert_eq!(journal.rolled_back_at(5).unwrap(), None);
}

#[test]
fn a_marker_whose_target_is_not_the_previous_end_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    append(&journal, 1, &["1", "2", "3"]);
    let marker = codec::encode_rollback(2).unwrap();
    journal
        .raw(Tree::Records)
        .insert(5u64.to_be_bytes(), marker)
        .unwrap();
    let err = journal
        .read_from::<String>(1)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Gap {
                expected: 4,
                found: 5,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn decode_record_of_a_marker_is_not_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.rollback::<String>(0, 1).unwrap();
    let record = journal
        .raw(Tree::Records)
        .get(1u64.to_be_bytes())
        .unwrap()
        .unwrap();
    assert!(matches!(
        codec::decode_batch::<String>(&record).unwrap_err(),
        CodecError::WrongKind { .. }
    ));
    assert_eq!(steps(&journal, 1)[0].event(), None);
}
