//! Checkpoints: opening from the newest checkpoint that verifies plus the
//! journal tail gives the same state as replaying the whole journal; a
//! corrupt checkpoint is passed over; compaction keeps what is needed; and
//! a corrupt journal record can be skipped past only on request, loudly.

use std::path::Path;
use std::sync::{Arc, Mutex};

use solostate::persistence::hash::state_hash;
use solostate::{
    AsOfError, CheckpointPolicy, Durability, Engine, JournalBackend, OpenError, ReplayProgress,
    Retention, RollbackError, StateEvent,
};

type Ev = StateEvent<u64, u64>;

fn builder(dir: &Path) -> solostate::Builder<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema("checkpoints-test-v1")
        .durability(Durability::Never)
        .journal_cache_bytes(4 << 20)
        .checkpoints(CheckpointPolicy::default().every_events(100).keep(2))
}

/// Writes `count` events in pipelined bursts; returns the last seq.
async fn write(engine: &Engine<Ev>, count: u64) -> u64 {
    let mut pending = Vec::new();
    for i in 0..count {
        pending.push(engine.send(Ev::put(i % 613, i)).await.unwrap());
    }
    let mut last = 0;
    for ack in pending {
        last = ack.await.unwrap().seq;
    }
    last
}

fn hash(engine: &Engine<Ev>) -> u64 {
    state_hash::<Ev>(&engine.reader().snapshot().to_map()).unwrap()
}

fn checkpoint_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "ckpt"))
        .collect();
    files.sort();
    files
}

/// Writes `count` events one at a time, so each is its own batch and
/// checkpoints fall where the policy says; returns the last seq.
async fn write_one_by_one(engine: &Engine<Ev>, count: u64) -> u64 {
    let mut last = 0;
    for i in 0..count {
        last = engine.submit(Ev::put(i % 613, i)).await.unwrap().seq;
    }
    last
}

#[tokio::test]
async fn a_checkpoint_plus_the_tail_equals_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    // 1,000 events, then a checkpoint at 1,000 from the shutdown.
    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(write(&engine, 1_000).await, 1_000);
    engine.shutdown().await.unwrap();
    // A tail of 50 more, with no further checkpoint.
    let engine = builder(dir.path())
        .checkpoints(CheckpointPolicy::never())
        .open()
        .await
        .unwrap();
    let last = write_one_by_one(&engine, 50).await;
    assert_eq!(last, 1_050);
    let live = hash(&engine);
    engine.shutdown().await.unwrap();

    let progress = Arc::new(Mutex::new(Vec::<ReplayProgress>::new()));
    let seen = Arc::clone(&progress);
    let engine = builder(dir.path())
        .on_replay_progress(move |p| seen.lock().unwrap().push(p))
        .open()
        .await
        .unwrap();
    let recovery = engine.recovery().clone();
    assert_eq!(
        recovery.checkpoint,
        Some(1_000),
        "opened from the checkpoint"
    );
    assert_eq!(recovery.replayed, 50, "only the tail is replayed");
    assert_eq!(recovery.last_seq, last);
    assert_eq!(hash(&engine), live);
    assert_eq!(progress.lock().unwrap().last().map(|p| p.seq), Some(last));
    engine.shutdown().await.unwrap();

    // Without checkpoints, the whole journal replays to the same state.
    std::fs::remove_dir_all(dir.path().join("checkpoints")).unwrap();
    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(engine.recovery().checkpoint, None);
    assert_eq!(engine.recovery().replayed, last);
    assert_eq!(hash(&engine), live);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_newest_checkpoint_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path()).open().await.unwrap();
    let last = write_one_by_one(&engine, 250).await;
    let live = hash(&engine);
    engine.shutdown().await.unwrap();

    let files = checkpoint_files(dir.path());
    assert!(files.len() >= 2, "{files:?}");
    let newest = files.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(newest, bytes).unwrap();

    let engine = builder(dir.path()).open().await.unwrap();
    let recovery = engine.recovery();
    assert_eq!(recovery.skipped_checkpoints.len(), 1, "{recovery:?}");
    assert!(recovery.checkpoint.unwrap() < last);
    assert_eq!(recovery.last_seq, last);
    assert_eq!(hash(&engine), live);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn compaction_prunes_the_journal_behind_the_oldest_kept_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path())
        .retention(Retention::SinceOldestCheckpoint)
        .open()
        .await
        .unwrap();
    let last = write(&engine, 1_000).await;
    let live = hash(&engine);
    engine.shutdown().await.unwrap();

    let replay =
        solostate::persistence::replay::Replay::<Ev>::open(dir.path(), "checkpoints-test-v1")
            .unwrap();
    let first = replay.journal().first_seq().unwrap();
    assert!(
        first > 1,
        "the journal prefix was pruned (first seq {first})"
    );
    drop(replay);

    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(engine.reader().seq(), last);
    assert_eq!(hash(&engine), live);
    // What was compacted away is refused, not half-done.
    assert!(matches!(
        engine.as_of(1).await,
        Err(AsOfError::Pruned { seq: 1, first: f }) if f == first
    ));
    assert!(matches!(
        engine.rollback_to(1).await,
        Err(RollbackError::Unavailable(AsOfError::Pruned { seq: 1, .. }))
    ));
    assert_eq!(
        engine.reader().seq(),
        last,
        "a refused rollback changes nothing"
    );
    assert_eq!(engine.submit(Ev::put(1, 1)).await.unwrap().seq, last + 1);
    engine.shutdown().await.unwrap();
}

/// Flips a payload bit in the journal record whose key is `seq`.
fn corrupt_record(dir: &Path, seq: u64) {
    let db = sled::open(dir.join("journal")).unwrap();
    let records = db.open_tree("journal").unwrap();
    let mut record = records.get(seq.to_be_bytes()).unwrap().unwrap().to_vec();
    let last = record.len() - 1;
    record[last] ^= 0x10;
    records.insert(seq.to_be_bytes(), record).unwrap();
    db.flush().unwrap();
}

#[tokio::test]
async fn a_corrupt_record_fails_the_open_unless_recovering_to_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path())
        .journal_backend(JournalBackend::Sled)
        .checkpoints(CheckpointPolicy::never())
        .open()
        .await
        .unwrap();
    for i in 1..=6u64 {
        engine.submit(Ev::put(i, i)).await.unwrap();
    }
    engine.shutdown().await.unwrap();
    corrupt_record(dir.path(), 4);

    let error = builder(dir.path()).open().await.unwrap_err();
    assert!(matches!(error, OpenError::Journal { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("seq 4"), "{message}");
    assert!(message.contains("checksum"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );

    let engine = builder(dir.path())
        .recover_to_prefix(true)
        .open()
        .await
        .unwrap();
    assert_eq!(engine.recovery().quarantined_from, Some(4));
    assert_eq!(engine.reader().seq(), 3);
    assert_eq!(engine.reader().len(), 3);
    assert_eq!(engine.submit(Ev::put(9, 9)).await.unwrap().seq, 4);
    engine.shutdown().await.unwrap();

    // The quarantine is done: a plain open now succeeds.
    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(engine.reader().seq(), 4);
    engine.shutdown().await.unwrap();
}
