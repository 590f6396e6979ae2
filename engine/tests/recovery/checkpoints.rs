//! What opening does with checkpoints it cannot use, or that the journal
//! does not reach, and with the leftovers of writing them: set aside and
//! reported, never deleted.

use super::*;

/// A quarantine used to delete every checkpoint after the quarantined
/// seq; they are set aside instead, and reported.
#[tokio::test]
async fn a_quarantine_sets_later_checkpoints_aside_and_never_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path())
        .journal_backend(JournalBackend::Sled)
        .open()
        .await
        .unwrap();
    write(&engine, 1, 250).await;
    engine.shutdown().await.unwrap();
    write_checkpoints(dir.path(), &[100, 200]);
    let checkpoints = checkpoint_seqs(dir.path());
    let [.., older, newer] = checkpoints[..] else {
        panic!("two checkpoints or more: {checkpoints:?}");
    };
    // The newer checkpoint does not verify, so replay starts after the
    // older one and meets the damaged record between them.
    let damaged = older + (newer - older) / 2;
    damage_checkpoint(dir.path(), newer);
    damage_record(dir.path(), damaged);

    let error = builder(dir.path()).open().await.unwrap_err();
    assert_eq!(
        error.cause(),
        Some(OpenCause::Damaged { seq: Some(damaged) }),
        "{error}"
    );
    assert!(error.to_string().contains("recover_to_prefix"), "{error}");

    let engine = builder(dir.path())
        .recover_to_prefix(true)
        .open()
        .await
        .unwrap();
    let recovery = engine.recovery().clone();
    assert_eq!(recovery.quarantined_from, Some(damaged));
    assert_eq!(recovery.checkpoint, Some(older));
    assert_eq!(recovery.last_seq, damaged - 1);
    assert_eq!(recovery.skipped_checkpoints.len(), 1, "{recovery:?}");
    assert_eq!(recovery.skipped_checkpoints[0].seq, newer);
    assert_eq!(
        recovery.skipped_checkpoints[0].cause,
        OpenCause::Damaged { seq: Some(newer) }
    );
    assert_eq!(recovery.checkpoints_set_aside.len(), 1, "{recovery:?}");
    let aside = &recovery.checkpoints_set_aside[0];
    assert_eq!(aside.seq, newer);
    assert_eq!(aside.why, SetAsideWhy::AfterQuarantine { from: damaged });
    assert!(aside.to.is_file(), "kept: {aside:?}");
    assert_eq!(
        engine.reader().snapshot().to_map(),
        state_through(damaged - 1)
    );
    engine.shutdown().await.unwrap();
    assert_eq!(
        checkpoint_seqs(dir.path()),
        checkpoints[..checkpoints.len() - 1]
    );
}

/// Checkpoints after the journal's end that do not verify used to be
/// deleted; they are set aside (their seqs are written anew) and reported.
#[tokio::test]
async fn a_damaged_checkpoint_after_the_journal_end_is_set_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = journal_behind(dir.path(), 250).await;
    let (kept, after): (Vec<u64>, Vec<u64>) = checkpoints.iter().partition(|&&seq| seq <= 250);
    assert!(!kept.is_empty(), "{checkpoints:?}");
    for &seq in &after {
        damage_checkpoint(dir.path(), seq);
    }

    let engine = builder(dir.path()).open().await.unwrap();
    let recovery = engine.recovery().clone();
    assert_eq!(recovery.checkpoint, kept.last().copied());
    assert_eq!(recovery.last_seq, 250);
    assert_eq!(
        recovery.skipped_checkpoints.len(),
        after.len(),
        "{recovery:?}"
    );
    let set_aside: Vec<u64> = recovery
        .checkpoints_set_aside
        .iter()
        .map(|aside| aside.seq)
        .collect();
    assert_eq!(set_aside, after);
    for aside in &recovery.checkpoints_set_aside {
        assert_eq!(aside.why, SetAsideWhy::AfterJournalEnd { resume_from: 250 });
        assert!(aside.to.is_file(), "kept: {aside:?}");
    }
    engine.shutdown().await.unwrap();
    assert_eq!(checkpoint_seqs(dir.path()), kept);
}

#[tokio::test]
async fn stray_temporary_checkpoint_files_removed_at_open_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path()).open().await.unwrap();
    write(&engine, 1, 5).await;
    engine.shutdown().await.unwrap();
    let tmp = dir
        .path()
        .join("checkpoints")
        .join("ckpt-00000000000000000004.tmp");
    std::fs::write(&tmp, b"half a checkpoint").unwrap();

    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(
        engine.recovery().removed_temp_files,
        std::slice::from_ref(&tmp)
    );
    assert!(!engine.recovery().is_clean());
    assert!(!tmp.exists());
    engine.shutdown().await.unwrap();

    let engine = builder(dir.path()).open().await.unwrap();
    assert!(engine.recovery().is_clean(), "{:?}", engine.recovery());
    engine.shutdown().await.unwrap();
}

/// State hashes recorded for seqs after the journal's end (their events
/// were lost with the tail) are removed at open; that is reported too.
#[tokio::test]
async fn state_hashes_after_the_journal_end_removed_at_open_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(&dir.path().join("journal"), SCHEMA, 1 << 20).unwrap();
        let events: Vec<Ev> = (1..=5).map(|seq| Ev::put(seq, value(seq))).collect();
        journal.append(1, &events).unwrap();
        // As if the batch holding seqs 6..=8 was lost with its hash kept.
        journal.record_state_hash(8, 0x5eed).unwrap();
        journal.flush().unwrap();
    }
    let engine = builder(dir.path()).open().await.unwrap();
    let recovery = engine.recovery().clone();
    assert_eq!(recovery.last_seq, 5);
    assert_eq!(recovery.removed_state_hashes, 1, "{recovery:?}");
    assert!(!recovery.is_clean());
    // Seq 8 comes round again and is not checked against the stale hash.
    write(&engine, 6, 8).await;
    engine.shutdown().await.unwrap();
    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(engine.reader().seq(), 8);
    engine.shutdown().await.unwrap();
}

/// Issue 11: one flipped byte in a checkpoint's header was reported as
/// "format version 16711681". At open it is a damaged checkpoint, passed
/// over and reported as damage, not as an incompatible version.
#[tokio::test]
async fn a_flipped_checkpoint_header_byte_is_damage_not_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path()).open().await.unwrap();
    write(&engine, 1, 20).await;
    engine.shutdown().await.unwrap();
    write_checkpoints(dir.path(), &[20]);
    let path = Checkpoints::open(&dir.path().join("checkpoints"), SCHEMA)
        .unwrap()
        .path_of(20);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xff; // the third byte of the format version
    std::fs::write(&path, bytes).unwrap();

    let engine = builder(dir.path()).open().await.unwrap();
    let recovery = engine.recovery().clone();
    assert_eq!(recovery.checkpoint, None);
    assert_eq!(recovery.replayed, 20);
    let [skipped] = &recovery.skipped_checkpoints[..] else {
        panic!("one checkpoint passed over: {recovery:?}");
    };
    assert_eq!(skipped.seq, 20);
    assert_eq!(skipped.path, path);
    assert_eq!(skipped.cause, OpenCause::Damaged { seq: Some(20) });
    assert!(
        skipped.message.contains("is damaged"),
        "{}",
        skipped.message
    );
    assert!(
        !skipped.message.contains("16711681 "),
        "{}",
        skipped.message
    );
    assert!(
        !skipped.message.contains("has format version"),
        "{}",
        skipped.message
    );
    assert_eq!(engine.reader().snapshot().to_map(), state_through(20));
    engine.shutdown().await.unwrap();
}
