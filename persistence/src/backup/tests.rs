//! The backup writer on its own: what it leaves at the destination, and
//! what it refuses.

use super::*;
use crate::replay::Replay;
use solostate_commands::{State, StateEvent};

type Ev = StateEvent<String, u64>;

fn state() -> State<Ev> {
    let mut state = State::<Ev>::new();
    state.insert("alice".to_owned(), 10);
    state.insert("bob".to_owned(), 20);
    state
}

#[test]
fn a_backup_opens_at_its_seq_with_its_state_on_either_backend() {
    for backend in [Backend::Segments, Backend::Sled] {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("nested").join("copy");
        let written = write::<Ev>(&dest, "accounts-v1", backend, 42, &state()).unwrap();
        assert_eq!(written.seq, 42);
        assert!(written.bytes > 0);
        assert!(written.checkpoint.is_file(), "{written:?}");
        let replay = Replay::<Ev>::open(&dest, "accounts-v1").unwrap();
        assert_eq!(replay.last_seq().unwrap(), 42, "{backend:?}");
        assert_eq!(replay.journal().first_seq().unwrap(), 43);
        assert_eq!(replay.journal().backend(), backend);
        assert_eq!(replay.journal().resumed().unwrap(), None);
        assert_eq!(replay.state_at(42).unwrap(), state());
        // Nothing but the backup is left beside it.
        let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["copy"], "{backend:?}");
    }
}

#[test]
fn an_empty_destination_directory_is_used_and_a_non_empty_one_refused() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("copy");
    fs::create_dir(&dest).unwrap();
    write::<Ev>(&dest, "s", Backend::Segments, 1, &state()).unwrap();

    let taken = root.path().join("taken");
    fs::create_dir(&taken).unwrap();
    fs::write(taken.join("precious"), b"x").unwrap();
    let error = write::<Ev>(&taken, "s", Backend::Segments, 1, &state()).unwrap_err();
    assert!(
        matches!(&error, BackupWriteError::DestinationInUse { path } if *path == taken),
        "{error}"
    );
    let file = root.path().join("file");
    fs::write(&file, b"x").unwrap();
    let error = write::<Ev>(&file, "s", Backend::Segments, 1, &state()).unwrap_err();
    assert!(matches!(error, BackupWriteError::DestinationInUse { .. }));
    // Neither refusal touched what was there, nor left a temporary behind.
    assert_eq!(fs::read(taken.join("precious")).unwrap(), b"x");
    let mut names: Vec<_> = fs::read_dir(root.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["copy", "file", "taken"]);
}

/// A value whose `Serialize` fails: the checkpoint cannot be written, after
/// the journal was created in the temporary directory.
#[derive(Debug, Clone, serde::Deserialize)]
struct Unwritable;

impl serde::Serialize for Unwritable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("unwritable on purpose"))
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Nothing;

impl Event for Nothing {
    type Key = u8;
    type Value = Unwritable;
    type Rejection = std::convert::Infallible;

    fn apply(
        &self,
        _: &mut solostate_commands::Txn<'_, u8, Unwritable>,
    ) -> Result<(), Self::Rejection> {
        Ok(())
    }
}

#[test]
fn a_failed_write_leaves_no_directory_behind() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("copy");
    let mut state = State::<Nothing>::new();
    state.insert(1, Unwritable);
    let error = write::<Nothing>(&dest, "s", Backend::Segments, 1, &state).unwrap_err();
    assert!(matches!(error, BackupWriteError::Checkpoint(_)), "{error}");
    assert!(!dest.exists());
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
}
