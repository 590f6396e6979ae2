//! Opening a journal whatever is on disk: a typed error that says whether
//! the journal is incompatible (intact, but for another schema or format)
//! or damaged (its bytes changed, sled lost it, sled panics on it), and
//! never a panic.

use super::open::header;
use super::*;
use crate::test_damage::{self, Ev};

const CACHE: u64 = 1 << 20;

/// Replaces a key of the journal's meta tree (or a record) through the
/// store underneath, as another build, or damage, would have left it.
fn poke(dir: &Path, tree: Tree, key: &[u8], value: &[u8]) {
    let backend = Backend::detect(dir).unwrap();
    let opened = Store::open(dir, backend, CACHE, false).unwrap();
    opened.store.apply(&[Op::Insert(tree, key, value)]).unwrap();
    opened.store.flush(&storage::Os).unwrap();
}

#[test]
fn a_schema_mismatch_is_incompatible_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    drop(Journal::open(dir.path(), "bank-v1", CACHE).unwrap());
    let error = Journal::open(dir.path(), "inventory-v1", CACHE).unwrap_err();
    assert!(
        matches!(error, JournalError::SchemaMismatch { .. }),
        "{error}"
    );
    assert!(error.is_incompatible());
    assert_eq!(error.damage(), None);
    let message = error.to_string();
    assert!(message.contains("incompatible"), "{message}");
    assert!(!message.contains("corrupt"), "{message}");
    assert!(!message.contains("is damaged"), "{message}");
}

#[test]
fn a_header_of_another_format_version_is_incompatible_not_a_corrupt_header() {
    let dir = tempfile::tempdir().unwrap();
    drop(Journal::open(dir.path(), "bank-v1", CACHE).unwrap());
    let mut newer = header("bank-v1");
    newer[0] = codec::FORMAT_VERSION + 1;
    poke(dir.path(), Tree::Meta, HEADER_KEY, &newer);
    let error = Journal::open(dir.path(), "bank-v1", CACHE).unwrap_err();
    assert!(
        matches!(
            error,
            JournalError::UnsupportedFormat { found, expected, .. }
                if found == codec::FORMAT_VERSION + 1 && expected == codec::FORMAT_VERSION
        ),
        "{error}"
    );
    assert!(error.is_incompatible());
    let message = error.to_string();
    assert!(message.contains("incompatible"), "{message}");
    assert!(!message.contains("corrupt"), "{message}");
}

#[test]
fn a_record_of_another_format_version_is_incompatible_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    journal.append(1, &["a".to_owned()]).unwrap();
    journal.flush().unwrap();
    drop(journal);
    let mut newer = codec::encode_batch(&["b".to_owned()]).unwrap();
    newer[0] = codec::FORMAT_VERSION + 1;
    poke(dir.path(), Tree::Records, &2u64.to_be_bytes(), &newer);
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    let error = journal.repair_tail().unwrap_err();
    assert!(error.is_incompatible(), "{error}");
    assert_eq!(error.damage(), None);
    let message = error.to_string();
    assert!(message.contains("seq 2"), "{message}");
    assert!(message.contains("incompatible"), "{message}");
    assert!(!message.contains("corrupt"), "{message}");
}

#[test]
fn a_flipped_record_byte_is_damage_with_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    for seq in 1..=3 {
        journal.append(seq, &[format!("event {seq}")]).unwrap();
    }
    journal.flush().unwrap();
    drop(journal);
    let mut damaged = codec::encode_batch(&["event 2".to_owned()]).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x40;
    poke(dir.path(), Tree::Records, &2u64.to_be_bytes(), &damaged);
    let journal = Journal::open(dir.path(), "strings", CACHE).unwrap();
    let error = journal
        .read_from::<String>(1)
        .find_map(Result::err)
        .expect("the damaged record fails to read");
    assert_eq!(error.damage(), Some(Some(2)), "{error}");
    assert!(!error.is_incompatible());
    assert!(error.to_string().contains("is damaged"), "{error}");
}

/// Issue 11: sled 0.34.7 panics in its own recovery on some damaged logs
/// ("tried to serialize Uninitialized"), and that panic went through
/// `Journal::open` to the caller.
#[test]
fn a_journal_sled_panics_on_is_a_typed_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    test_damage::write_journal(&journal, "panics", 3_000);
    test_damage::make_sled_panic(&journal);
    for open in [Journal::open, Journal::open_existing] {
        let opened = std::panic::catch_unwind(|| open(&journal, "panics", CACHE));
        let error = opened
            .expect("Journal::open does not panic")
            .expect_err("the damaged journal does not open");
        assert!(
            matches!(&error, JournalError::SledPanicked { path, message, .. }
                if *path == journal && message.contains("Uninitialized")),
            "{error}"
        );
        assert_eq!(error.damage(), Some(None));
        let text = error.to_string();
        assert!(text.contains("sled panicked"), "{text}");
        assert!(text.contains(&journal.display().to_string()), "{text}");
    }
}

/// A sled log that sled cannot make sense of (here: all zeroes) opens as
/// an empty database. That used to become a new, empty journal, silently
/// starting over at seq 0.
#[test]
fn a_log_sled_lost_is_a_damaged_journal_not_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let last = test_damage::write_journal(dir.path(), "lost", 40);
    assert!(last > 0);
    let db = dir.path().join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0; len]).unwrap();
    let error = Journal::open(dir.path(), "lost", CACHE).unwrap_err();
    assert!(matches!(error, JournalError::BadHeader { .. }), "{error}");
    assert_eq!(error.damage(), Some(None));
    assert!(error.to_string().contains("no journal header"), "{error}");
}

#[test]
fn a_new_journal_is_not_mistaken_for_a_lost_one() {
    let dir = tempfile::tempdir().unwrap();
    drop(Journal::open(dir.path(), "fresh", CACHE).unwrap());
    let journal = Journal::open(dir.path(), "fresh", CACHE).unwrap();
    assert_eq!(journal.last_seq::<Ev>().unwrap(), 0);
}

#[test]
fn resume_after_continues_the_seqs_and_says_why_the_prefix_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "resumed", CACHE).unwrap();
    assert_eq!(journal.resumed().unwrap(), None);
    let predecessor = dir.path().with_extension("damaged-1");
    journal.resume_after(41, &predecessor).unwrap();
    assert_eq!(journal.first_seq().unwrap(), 42);
    assert_eq!(journal.last_seq::<Ev>().unwrap(), 41);
    journal.append(42, &[Ev::put(1, "a".into())]).unwrap();
    journal.flush().unwrap();
    drop(journal);
    let journal = Journal::open(dir.path(), "resumed", CACHE).unwrap();
    assert_eq!(journal.last_seq::<Ev>().unwrap(), 42);
    assert_eq!(
        journal.resumed().unwrap(),
        Some(Resumed {
            after: 41,
            predecessor
        })
    );
    let error = journal.read_from::<Ev>(1).next().unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            JournalError::Pruned {
                seq: 1,
                first: 42,
                ..
            }
        ),
        "{error}"
    );
    // Only an empty journal can be resumed: records would not follow.
    let refused = journal.resume_after(100, dir.path()).unwrap_err();
    assert!(matches!(refused, JournalError::Gap { .. }), "{refused}");
}

#[test]
fn begin_after_reads_as_a_pruned_journal_with_no_resumed_mark() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "begun", CACHE).unwrap();
    journal.begin_after(41).unwrap();
    drop(journal);
    let journal = Journal::open(dir.path(), "begun", CACHE).unwrap();
    assert_eq!(journal.first_seq().unwrap(), 42);
    assert_eq!(journal.last_seq::<Ev>().unwrap(), 41);
    assert_eq!(journal.resumed().unwrap(), None);
    journal.append(42, &[Ev::put(1, "a".into())]).unwrap();
    assert_eq!(journal.last_seq::<Ev>().unwrap(), 42);
    // Only an empty journal can begin after a seq: records would not follow.
    let refused = journal.begin_after(100).unwrap_err();
    assert!(matches!(refused, JournalError::Gap { .. }), "{refused}");
}

/// sled's own error for files it cannot read (here its `conf`, garbled) is
/// damage too, so recovery may move such a journal aside when asked.
#[test]
fn a_conf_sled_cannot_read_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    test_damage::write_journal(dir.path(), "conf", 10);
    let conf = dir.path().join("conf");
    let zeroes = vec![0; std::fs::metadata(&conf).unwrap().len() as usize];
    for garbage in [&b"garbage garbage\n"[..], &zeroes[..]] {
        std::fs::write(&conf, garbage).unwrap();
        let error = Journal::open(dir.path(), "conf", CACHE).unwrap_err();
        assert!(matches!(error, JournalError::Storage { .. }), "{error}");
        assert_eq!(error.damage(), Some(None), "{error}");
        assert!(!error.is_incompatible(), "{error}");
    }
}
