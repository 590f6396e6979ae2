//! Journal tests: round trips, refusals, corruption and torn tails.

use super::*;

const CACHE: u64 = 8 << 20;

fn entries(journal: &Journal, from: u64) -> Result<Vec<(u64, String)>, JournalError> {
    journal
        .read_from::<String>(from)
        .map(|entry| {
            entry.map(|e| match e.step {
                Step::Event(event) => (e.seq, event),
                Step::Rollback { target } => (e.seq, format!("rollback to {target}")),
            })
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn appended_batches_read_back_in_order_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
        journal.append(1, &strings(&["a", "b"])).unwrap();
        journal.append(3, &strings(&["c"])).unwrap();
        journal.append(4, &strings(&["d", "e", "f"])).unwrap();
        journal.flush().unwrap();
    }
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    let all = entries(&journal, 1).unwrap();
    let seqs: Vec<u64> = all.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(all[5].1, "f");
    // Starting mid-record skips the record's earlier events.
    assert_eq!(
        entries(&journal, 5).unwrap(),
        vec![(5, "e".to_string()), (6, "f".to_string())]
    );
    assert_eq!(journal.last_seq::<String>().unwrap(), 6);
}

#[tokio::test]
async fn flush_async_makes_appends_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
        journal.append(1, &strings(&["a"])).unwrap();
        journal.flush_async().await.unwrap();
    }
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    assert_eq!(entries(&journal, 1).unwrap(), vec![(1, "a".to_string())]);
}

#[test]
fn an_empty_journal_has_last_seq_zero() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    assert_eq!(journal.last_seq::<String>().unwrap(), 0);
    assert!(entries(&journal, 1).unwrap().is_empty());
}

#[test]
fn a_second_open_of_the_same_directory_is_already_open() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Journal::open(dir.path(), "strings", CACHE).unwrap();
    let err = Journal::open(dir.path(), "strings", CACHE).unwrap_err();
    assert!(
        matches!(&err, JournalError::AlreadyOpen { path } if path == dir.path()),
        "{err}"
    );
    assert!(err.to_string().contains("already open"));
}

#[test]
fn a_journal_of_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Journal::open(dir.path(), "bank-v1", CACHE).unwrap());
    let err = Journal::open(dir.path(), "inventory-v1", CACHE).unwrap_err();
    match err {
        JournalError::SchemaMismatch {
            found, expected, ..
        } => {
            assert_eq!(
                (found.as_str(), expected.as_str()),
                ("bank-v1", "inventory-v1")
            )
        }
        other => panic!("expected SchemaMismatch, got {other}"),
    }
}

#[test]
fn a_corrupt_record_in_the_middle_names_its_seq_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    journal.append(1, &strings(&["a"])).unwrap();
    journal.append(2, &strings(&["b", "c"])).unwrap();
    journal.append(4, &strings(&["d"])).unwrap();
    // Flip one payload bit of the middle record.
    let mut record = journal
        .raw(Tree::Records)
        .get(2u64.to_be_bytes())
        .unwrap()
        .unwrap()
        .to_vec();
    let last = record.len() - 1;
    record[last] ^= 0x01;
    journal
        .raw(Tree::Records)
        .insert(2u64.to_be_bytes(), record)
        .unwrap();

    let results: Vec<_> = journal.read_from::<String>(1).collect();
    assert_eq!(
        results.len(),
        2,
        "the good prefix, then the error, then nothing"
    );
    assert_eq!(results[0].as_ref().unwrap().seq, 1);
    match &results[1] {
        Err(JournalError::Corrupt { seq, path, source }) => {
            assert_eq!(*seq, 2);
            assert_eq!(path, dir.path());
            assert!(matches!(source, CodecError::ChecksumMismatch { .. }));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_torn_last_record_is_removed_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    journal.append(1, &strings(&["a", "b"])).unwrap();
    let last = codec::encode_batch(&strings(&["c", "d"])).unwrap();
    for cut in 0..last.len() {
        journal
            .raw(Tree::Records)
            .insert(3u64.to_be_bytes(), &last[..cut])
            .unwrap();
        let torn = journal.repair_tail().unwrap().expect("torn record found");
        assert_eq!(torn.seq, 3);
        assert!(matches!(torn.reason, CodecError::Truncated { len, .. } if len == cut));
        assert_eq!(journal.last_seq::<String>().unwrap(), 2, "cut at {cut}");
        assert_eq!(
            entries(&journal, 1).unwrap().len(),
            2,
            "the good prefix stays"
        );
    }
    assert_eq!(
        journal.repair_tail().unwrap(),
        None,
        "a good tail is left alone"
    );
}

#[test]
fn a_bit_flip_in_the_last_record_is_repaired_but_not_one_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    journal.append(1, &strings(&["a"])).unwrap();
    journal.append(2, &strings(&["b"])).unwrap();
    let flip = |seq: u64| {
        let mut record = journal
            .raw(Tree::Records)
            .get(seq.to_be_bytes())
            .unwrap()
            .unwrap()
            .to_vec();
        let last = record.len() - 1;
        record[last] ^= 0x80;
        journal
            .raw(Tree::Records)
            .insert(seq.to_be_bytes(), record)
            .unwrap();
    };
    flip(1);
    assert_eq!(
        journal.repair_tail().unwrap(),
        None,
        "only the tail is a tear"
    );
    assert!(matches!(
        entries(&journal, 1).unwrap_err(),
        JournalError::Corrupt { seq: 1, .. }
    ));
    flip(2);
    let torn = journal.repair_tail().unwrap().unwrap();
    assert_eq!(torn.seq, 2);
    assert!(matches!(torn.reason, CodecError::ChecksumMismatch { .. }));
}

#[test]
fn a_missing_record_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    journal.append(1, &strings(&["a"])).unwrap();
    journal.append(3, &strings(&["c"])).unwrap();
    let err = entries(&journal, 1).unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Gap {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn events_of_another_type_fail_with_seq_and_type_name() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    journal.append(1, &strings(&["not a number"])).unwrap();
    let err = journal
        .read_from::<Vec<bool>>(1)
        .next()
        .unwrap()
        .unwrap_err();
    match err {
        JournalError::Corrupt {
            seq: 1,
            source: CodecError::Decode { type_name, .. },
            ..
        } => assert!(type_name.contains("Vec<bool>")),
        other => panic!("expected a decode error at seq 1, got {other}"),
    }
}
