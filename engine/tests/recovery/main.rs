//! Recovery never loses what it has (issue 11): a checkpoint is never
//! deleted because the journal disagrees with it; a journal that cannot be
//! used is moved aside (kept) only when asked, and the engine opens from
//! the checkpoint; opening never panics, sled's own panics included;
//! errors say incompatible or damaged, with a cause a caller can match;
//! and whatever opening decides on its own is in `Recovery`.

mod checkpoints;
#[path = "../common/mod.rs"]
mod common;
mod damage;

use std::path::Path;

use damage::{
    copy_dir, damage_checkpoint, damage_record, entries_named, make_sled_panic, sled_panics_on,
    write_big_journal,
};
use solostate::persistence::checkpoint::Checkpoints;
use solostate::persistence::journal::{Journal, Resumed};
use solostate::{
    AsOfError, CheckpointPolicy, DamagedJournal, Durability, Engine, JournalBackend,
    JournalUnusable, OpenCause, OpenError, SetAsideWhy, State, StateEvent,
};

type Ev = StateEvent<u64, String>;

const SCHEMA: &str = "engine-tests/recovery";

fn builder(dir: &Path) -> solostate::Builder<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema(SCHEMA)
        .durability(Durability::Always)
        .journal_cache_bytes(4 << 20)
        // The tests write checkpoints themselves (`write_checkpoints`), at
        // seqs they choose: the engine's own schedule depends on how fast
        // the blocking pool runs.
        .checkpoints(CheckpointPolicy::never())
}

/// The value written at `seq`.
fn value(seq: u64) -> String {
    format!("value {seq}")
}

/// Writes the events `from..=through` one at a time (each its own batch,
/// so checkpoints fall where the policy says), event `seq` putting
/// `value(seq)` at key `seq`.
async fn write(engine: &Engine<Ev>, from: u64, through: u64) {
    for seq in from..=through {
        let ack = engine.submit(Ev::put(seq, value(seq))).await.unwrap();
        assert_eq!(ack.seq, seq);
    }
}

/// The state after the events `1..=seq` of [`write`].
fn state_through(seq: u64) -> State<Ev> {
    (1..=seq).map(|seq| (seq, value(seq))).collect()
}

/// Writes the checkpoints of [`write`]'s states at `seqs`, as the engine
/// does (its checkpoint store, its schema).
fn write_checkpoints(dir: &Path, seqs: &[u64]) {
    let store = Checkpoints::open(&dir.join("checkpoints"), SCHEMA).unwrap();
    for &seq in seqs {
        store.write::<Ev>(seq, &state_through(seq)).unwrap();
    }
}

fn checkpoint_seqs(dir: &Path) -> Vec<u64> {
    Checkpoints::open(&dir.join("checkpoints"), SCHEMA)
        .unwrap()
        .list()
        .unwrap()
}

/// An engine directory with 350 events and checkpoints at 100, 200 and
/// 300, whose newest checkpoints are newer than its journal, which ends at `journal_last` (0:
/// the journal was deleted; otherwise an older copy of it was put back).
/// Returns the checkpoints' seqs.
async fn journal_behind(dir: &Path, journal_last: u64) -> Vec<u64> {
    let engine = builder(dir).open().await.unwrap();
    write(&engine, 1, journal_last).await;
    engine.shutdown().await.unwrap();
    let old = dir.join("old-journal");
    copy_dir(&dir.join("journal"), &old);
    let engine = builder(dir).open().await.unwrap();
    write(&engine, journal_last + 1, 350).await;
    engine.shutdown().await.unwrap();
    write_checkpoints(dir, &[100, 200, 300]);
    let checkpoints = checkpoint_seqs(dir);
    assert_eq!(checkpoints, [100, 200, 300]);
    std::fs::remove_dir_all(dir.join("journal")).unwrap();
    if journal_last > 0 {
        std::fs::rename(&old, dir.join("journal")).unwrap();
    } else {
        std::fs::remove_dir_all(&old).unwrap();
    }
    checkpoints
}

/// Issue 11: a missing or shorter journal beside newer checkpoints made
/// the engine delete the checkpoints and open at seq 0, or at the
/// journal's last seq, with only a `tracing::error!`.
#[tokio::test]
async fn a_journal_behind_the_checkpoints_never_deletes_them() {
    for journal_last in [0, 50] {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = journal_behind(dir.path(), journal_last).await;
        let newest = checkpoints[checkpoints.len() - 1];

        let error = builder(dir.path()).open().await.unwrap_err();
        assert_eq!(
            error,
            OpenError::JournalBehind {
                path: dir.path().join("journal"),
                journal_last,
                checkpoint: newest,
            }
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("seq {journal_last}")),
            "{message}"
        );
        assert!(message.contains(&format!("seq {newest}")), "{message}");
        assert!(message.contains("on_damaged_journal"), "{message}");
        assert_eq!(
            checkpoint_seqs(dir.path()),
            checkpoints,
            "a refused open deletes nothing"
        );
        // Refusing again changes nothing either.
        builder(dir.path()).open().await.unwrap_err();
        assert_eq!(checkpoint_seqs(dir.path()), checkpoints);
    }
}

#[tokio::test]
async fn a_journal_behind_the_checkpoints_is_moved_aside_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = journal_behind(dir.path(), 50).await;
    let newest = checkpoints[checkpoints.len() - 1];

    let engine = builder(dir.path())
        .on_damaged_journal(DamagedJournal::MoveAside)
        .open()
        .await
        .unwrap();
    let recovery = engine.recovery().clone();
    assert_eq!(recovery.checkpoint, Some(newest));
    assert_eq!((recovery.last_seq, recovery.replayed), (newest, 0));
    let moved = recovery.journal_moved_aside.clone().expect("moved aside");
    assert_eq!(moved.checkpoint, newest);
    assert_eq!(moved.why, JournalUnusable::Behind { journal_last: 50 });
    assert_eq!(
        entries_named(dir.path(), "journal."),
        std::slice::from_ref(&moved.to)
    );
    assert!(
        moved
            .to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("journal.behind-checkpoint-"),
        "{moved:?}"
    );
    assert!(!recovery.is_clean());
    assert_eq!(engine.reader().seq(), newest);
    assert_eq!(engine.reader().snapshot().to_map(), state_through(newest));
    // Seqs stay dense, and what came before says why it is not there.
    let next = engine.submit(Ev::put(1, "new".into())).await.unwrap();
    assert_eq!(next.seq, newest + 1);
    let before = newest - 1;
    assert!(
        !checkpoints.contains(&before),
        "{checkpoints:?}: no checkpoint holds seq {before}"
    );
    let refused = engine.as_of(before).await.unwrap_err();
    assert!(
        matches!(refused, AsOfError::Pruned { seq, first } if seq == before && first == newest + 1),
        "{refused}"
    );
    engine.shutdown().await.unwrap();
    assert_eq!(checkpoint_seqs(dir.path()), checkpoints);

    // The journal moved aside is kept as it was: a journal ending at 50.
    let kept = Journal::open(&moved.to, SCHEMA, 1 << 20).unwrap();
    assert_eq!(kept.last_seq::<Ev>().unwrap(), 50);
    drop(kept);
    // And the fresh journal remembers where it came from.
    let fresh = Journal::open(&dir.path().join("journal"), SCHEMA, 1 << 20).unwrap();
    assert_eq!(
        fresh.resumed().unwrap(),
        Some(Resumed {
            after: newest,
            predecessor: moved.to.clone()
        })
    );
    drop(fresh);

    // The fresh journal carries on: a plain open needs no option.
    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(engine.reader().seq(), newest + 1);
    assert_eq!(engine.recovery().checkpoint, Some(newest));
    assert!(engine.recovery().journal_moved_aside.is_none());
    engine.shutdown().await.unwrap();
}

/// Issue 11: with sled panicking in its own recovery, the engine returned
/// an untyped `OpenError::Journal`, and three intact checkpoints beside
/// the journal were no way in.
#[tokio::test]
async fn a_journal_sled_cannot_open_is_moved_aside_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let last = write_big_journal(dir.path());
    let checkpoint = last / 2;
    let state: State<Ev> = (1..=checkpoint)
        .map(|seq| (seq, format!("{}{}", value(seq), "x".repeat(200))))
        .collect();
    Checkpoints::open(&dir.path().join("checkpoints"), SCHEMA)
        .unwrap()
        .write::<Ev>(checkpoint, &state)
        .unwrap();
    let journal = dir.path().join("journal");
    make_sled_panic(&journal);

    // Without the option: a typed error naming the path and the option,
    // and nothing changed.
    let error = builder(dir.path())
        .journal_backend(JournalBackend::Sled)
        .open()
        .await
        .unwrap_err();
    assert_eq!(
        error.cause(),
        Some(OpenCause::Damaged { seq: None }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("sled panicked"), "{message}");
    assert!(
        message.contains(&journal.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("checkpoint at seq {checkpoint}")),
        "{message}"
    );
    assert!(message.contains("on_damaged_journal"), "{message}");
    assert!(entries_named(dir.path(), "journal.").is_empty());

    let engine = builder(dir.path())
        .on_damaged_journal(DamagedJournal::MoveAside)
        .open()
        .await
        .unwrap();
    let recovery = engine.recovery().clone();
    let moved = recovery.journal_moved_aside.clone().expect("moved aside");
    assert_eq!(moved.checkpoint, checkpoint);
    match &moved.why {
        JournalUnusable::Unreadable { cause, message } => {
            assert_eq!(*cause, OpenCause::Damaged { seq: None });
            assert!(message.contains("Uninitialized"), "{message}");
        }
        other => panic!("expected an unreadable journal, got {other:?}"),
    }
    assert!(
        moved
            .to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("journal.damaged-"),
        "{moved:?}"
    );
    assert!(moved.to.join("db").is_file(), "the damaged journal is kept");
    assert!(sled_panics_on(&moved.to), "and kept as it was found");
    assert_eq!(recovery.checkpoint, Some(checkpoint));
    assert_eq!(recovery.last_seq, checkpoint);
    assert_eq!(engine.reader().seq(), checkpoint);
    assert_eq!(
        engine.reader().snapshot().to_map(),
        state,
        "every event through the checkpoint"
    );
    let next = engine.submit(Ev::put(0, "after".into())).await.unwrap();
    assert_eq!(next.seq, checkpoint + 1);
    engine.shutdown().await.unwrap();

    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(engine.reader().seq(), checkpoint + 1);
    engine.shutdown().await.unwrap();
}

/// A log that sled recovers nothing from (here: zeroed) used to open as a
/// new, empty journal: the engine restarted at seq 0 without a word.
#[tokio::test]
async fn a_journal_sled_lost_is_refused_not_restarted_at_seq_0() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path())
        .journal_backend(JournalBackend::Sled)
        .checkpoints(CheckpointPolicy::never())
        .open()
        .await
        .unwrap();
    write(&engine, 1, 20).await;
    engine.shutdown().await.unwrap();
    let db = dir.path().join("journal").join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0; len]).unwrap();

    let error = builder(dir.path()).open().await.unwrap_err();
    assert_eq!(
        error.cause(),
        Some(OpenCause::Damaged { seq: None }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("no journal header"), "{message}");
    assert!(message.contains("no checkpoint verifies"), "{message}");
    // With no checkpoint there is nothing to resume from: the option
    // cannot help, and still changes nothing.
    let error = builder(dir.path())
        .on_damaged_journal(DamagedJournal::MoveAside)
        .open()
        .await
        .unwrap_err();
    assert_eq!(
        error.cause(),
        Some(OpenCause::Damaged { seq: None }),
        "{error}"
    );
    assert!(entries_named(dir.path(), "journal.").is_empty());
}

#[tokio::test]
async fn a_schema_mismatch_is_incompatible_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path()).open().await.unwrap();
    write(&engine, 1, 3).await;
    engine.shutdown().await.unwrap();

    let error = builder(dir.path())
        .schema("another-schema")
        .on_damaged_journal(DamagedJournal::MoveAside)
        .open()
        .await
        .unwrap_err();
    assert_eq!(error.cause(), Some(OpenCause::Incompatible), "{error}");
    let message = error.to_string();
    assert!(message.contains("incompatible"), "{message}");
    assert!(!message.contains("corrupt"), "{message}");
    assert!(!message.contains("is damaged"), "{message}");
    assert!(
        entries_named(dir.path(), "journal.").is_empty(),
        "an incompatible journal is never moved aside"
    );
}

/// Also: the refused open touches nothing of the running engine's, not
/// even what looks like a stray temporary checkpoint file (it would be the
/// running engine's checkpoint in progress).
#[tokio::test]
async fn a_journal_another_engine_holds_is_already_open_not_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path()).open().await.unwrap();
    let in_progress = dir
        .path()
        .join("checkpoints")
        .join("ckpt-00000000000000000009.tmp");
    std::fs::write(&in_progress, b"being written").unwrap();
    let error = builder(dir.path())
        .on_damaged_journal(DamagedJournal::MoveAside)
        .open()
        .await
        .unwrap_err();
    assert_eq!(error.cause(), Some(OpenCause::AlreadyOpen), "{error}");
    assert!(entries_named(dir.path(), "journal.").is_empty());
    assert!(
        in_progress.exists(),
        "the running engine's file was left alone"
    );
    engine.shutdown().await.unwrap();
}

/// Not only sled's panics: an error sled returns for its own files (here
/// a garbled `conf`) makes the journal unusable too, and the option moves
/// it aside.
#[tokio::test]
async fn a_journal_sled_reports_damaged_is_moved_aside_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path())
        .journal_backend(JournalBackend::Sled)
        .open()
        .await
        .unwrap();
    write(&engine, 1, 30).await;
    engine.shutdown().await.unwrap();
    write_checkpoints(dir.path(), &[10, 20]);
    std::fs::write(
        dir.path().join("journal").join("conf"),
        b"garbage garbage\n",
    )
    .unwrap();

    let error = builder(dir.path()).open().await.unwrap_err();
    assert_eq!(
        error.cause(),
        Some(OpenCause::Damaged { seq: None }),
        "{error}"
    );
    assert!(
        error.to_string().contains("checkpoint at seq 20"),
        "{error}"
    );

    let engine = builder(dir.path())
        .on_damaged_journal(DamagedJournal::MoveAside)
        .open()
        .await
        .unwrap();
    let moved = engine
        .recovery()
        .journal_moved_aside
        .clone()
        .expect("moved aside");
    assert_eq!(moved.checkpoint, 20);
    assert!(
        matches!(
            moved.why,
            JournalUnusable::Unreadable {
                cause: OpenCause::Damaged { seq: None },
                ..
            }
        ),
        "{moved:?}"
    );
    assert_eq!(
        std::fs::read(moved.to.join("conf")).unwrap(),
        b"garbage garbage\n",
        "kept as found"
    );
    assert_eq!(engine.reader().snapshot().to_map(), state_through(20));
    assert_eq!(
        engine.submit(Ev::put(0, "next".into())).await.unwrap().seq,
        21
    );
    engine.shutdown().await.unwrap();
}
