//! Opening a journal read-only, for inspection tools: nothing on disk
//! changes, a torn tail is reported but not cut, any schema opens, and a
//! journal a writer holds is refused.

use super::*;

const CACHE: u64 = 1 << 20;

/// A segment-log journal holding three one-event batches, seqs 1 to 3,
/// whose events are the strings `marker-1` to `marker-3`.
fn three_batches(dir: &Path) {
    let journal = Journal::open(dir, "strings-v1", CACHE).unwrap();
    for seq in 1..=3u64 {
        journal.append(seq, &[format!("marker-{seq}")]).unwrap();
    }
    journal.flush().unwrap();
}

/// The only segment file's path.
fn segment(dir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

#[test]
fn a_read_only_open_reports_a_torn_tail_and_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    three_batches(dir.path());
    let path = segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(8)
        .position(|window| window == b"marker-3")
        .unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let journal = Journal::open_read_only(dir.path(), None, &[], CACHE).unwrap();
    let tail = journal.torn_tail().expect("the damaged frame is reported");
    assert_eq!(tail.segment, path);
    let seqs: Vec<u64> = journal.scan().map(|record| record.unwrap().seq).collect();
    assert_eq!(seqs, [1, 2]);
    drop(journal);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");

    // A writer's open cuts it, as before.
    let journal = Journal::open(dir.path(), "strings-v1", CACHE).unwrap();
    assert!(journal.torn_tail().is_some());
    drop(journal);
    assert!(std::fs::read(&path).unwrap().len() < bytes.len());
}

#[test]
fn a_read_only_open_accepts_any_schema_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    three_batches(dir.path());
    let journal = Journal::open_read_only(dir.path(), None, &[], CACHE).unwrap();
    assert_eq!(journal.schema().unwrap(), "strings-v1");
    let records: Vec<ScannedRecord> = journal.scan().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.seq == r.last && r.kind == codec::RecordKind::Events { count: 1 })
    );
    drop(journal);
    let error = Journal::open_read_only(dir.path(), Some("other-v1"), &[], CACHE).unwrap_err();
    assert!(
        matches!(error, JournalError::SchemaMismatch { .. }),
        "{error}"
    );
}

#[test]
fn a_read_only_open_is_refused_while_a_writer_holds_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    three_batches(dir.path());
    let writer = Journal::open(dir.path(), "strings-v1", CACHE).unwrap();
    let error = Journal::open_read_only(dir.path(), None, &[], CACHE).unwrap_err();
    assert!(matches!(error, JournalError::AlreadyOpen { .. }), "{error}");
    drop(writer);
    Journal::open_read_only(dir.path(), None, &[], CACHE).unwrap();
}

#[test]
fn a_read_only_open_of_an_empty_directory_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let error = Journal::open_read_only(dir.path(), None, &[], CACHE).unwrap_err();
    assert!(matches!(error, JournalError::NotFound { .. }), "{error}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn scan_last_gives_the_last_seq_without_the_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings-v1", CACHE).unwrap();
    assert_eq!(journal.scan_last().unwrap(), (None, 0));
    journal.append(1, &["a", "b", "c"]).unwrap();
    let (record, last) = journal.scan_last().unwrap();
    assert_eq!(last, 3);
    assert_eq!(journal.last_seq::<String>().unwrap(), last);
    let record = record.unwrap();
    assert_eq!((record.seq, record.last), (1, 3));
    assert_eq!(record.kind, codec::RecordKind::Events { count: 3 });
}
