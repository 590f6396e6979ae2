//! `Replay` opens whatever is on disk with a typed error, never a panic.

use super::*;
use crate::test_damage::{self, Ev};

const SCHEMA: &str = "replay-tests";

/// Issue 11: `Replay::open` on a power-cut image whose sled log makes
/// sled panic in its own recovery took the process down (exit status 101).
#[test]
fn replay_open_never_panics_on_a_damaged_journal() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    test_damage::write_journal(&layout.journal, SCHEMA, 3_000);
    test_damage::make_sled_panic(&layout.journal);

    let opened = std::panic::catch_unwind(|| Replay::<Ev>::open(root.path(), SCHEMA).map(drop));
    let error = opened
        .expect("Replay::open does not panic")
        .expect_err("the damaged journal does not open");
    match &error {
        ReplayError::Journal(journal @ JournalError::SledPanicked { path, .. }) => {
            assert_eq!(*path, layout.journal);
            assert_eq!(journal.damage(), Some(None));
        }
        other => panic!("expected SledPanicked, got {other}"),
    }
    assert!(error.to_string().contains("sled panicked"), "{error}");
}

#[test]
fn replay_open_of_a_directory_without_a_journal_is_not_found() {
    let root = tempfile::tempdir().unwrap();
    let error = Replay::<Ev>::open(root.path(), SCHEMA).unwrap_err();
    assert!(
        matches!(error, ReplayError::Journal(JournalError::NotFound { .. })),
        "{error}"
    );
}
