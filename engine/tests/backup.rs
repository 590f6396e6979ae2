//! Online backup: `Engine::backup` while writers keep submitting, opened
//! as a new engine whose state hash is the source's at the backup's seq;
//! a model test interleaving backups with events, checkpoints (and the
//! journal pruning behind them) and rollbacks, on either store and either
//! journal backend; and the refusals.
//!
//! Long form: `PROPTEST_CASES=500 cargo test -p solostate --test backup`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::model::{Kv, durability_and_store, kv, model_kv};
use proptest::prelude::*;
use solostate::persistence::backup::BackupWriteError;
use solostate::persistence::hash::state_hash;
use solostate::persistence::replay::Replay;
use solostate::{
    AckError, BackupError, CheckpointPolicy, Durability, Engine, JournalBackend, OpenCause,
    Retention, State,
};

const SCHEMA: &str = "backup-test-v1";

async fn open(dir: &Path) -> Engine<Kv> {
    Engine::<Kv>::builder()
        .path(dir)
        .schema(SCHEMA)
        .journal_cache_bytes(2 << 20)
        .open()
        .await
        .expect("open")
}

fn state_of(engine: &Engine<Kv>) -> State<Kv> {
    engine.reader().snapshot().to_map()
}

/// Writers keep submitting under `Durability::Always` (and checkpoints
/// keep landing) while the backup runs; the copy opens at exactly its
/// seq, with the state hash the source's journal replays to at that seq,
/// and takes new events after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writers_opens_at_its_seq_with_the_sources_state() {
    let dir = tempfile::tempdir().unwrap();
    let source_dir = dir.path().join("source");
    let dest = dir.path().join("backups").join("copy");
    let engine = Engine::<Kv>::builder()
        .path(&source_dir)
        .schema(SCHEMA)
        .durability(Durability::Always)
        .checkpoints(CheckpointPolicy::default().every_events(64).keep(2))
        .journal_cache_bytes(2 << 20)
        .open()
        .await
        .unwrap();
    for key in 0..200u8 {
        engine.submit(Kv::put(key, key / 2)).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u8)
        .map(|writer| {
            let (engine, stop) = (engine.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut acked = 0u64;
                let mut i = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    i = i.wrapping_add(1);
                    let key = i.wrapping_mul(2).wrapping_add(writer);
                    engine.submit(Kv::put(key, i)).await.unwrap();
                    acked += 1;
                }
                acked
            })
        })
        .collect();
    // Let the writers get going, so the backup lands among their batches.
    let before = engine.reader().seq();
    engine.reader().wait_for(before + 100).await.unwrap();
    let report = engine.backup(&dest).await.unwrap();
    // Writers carried on during and after the backup.
    engine.reader().wait_for(report.seq + 100).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for writer in writers {
        acked += writer.await.unwrap();
    }
    assert!(
        acked >= 200,
        "writers were served throughout ({acked} acks)"
    );
    assert!(report.seq > before, "{report:?}");
    assert!(report.bytes > 0 && report.path == dest, "{report:?}");
    let source_last = engine.reader().seq();
    assert!(source_last > report.seq);
    engine.shutdown().await.unwrap();

    // The source's own record of the state at S, rebuilt from its disk.
    let replay = Replay::<Kv>::open(&source_dir, SCHEMA).unwrap();
    let expected = state_hash::<Kv>(&replay.state_at(report.seq).unwrap()).unwrap();
    drop(replay);

    let copy = open(&dest).await;
    assert_eq!(copy.reader().seq(), report.seq, "the copy's last seq is S");
    assert_eq!(state_hash::<Kv>(&state_of(&copy)).unwrap(), expected);
    let recovery = copy.recovery();
    assert_eq!(recovery.checkpoint, Some(report.seq));
    assert_eq!((recovery.replayed, recovery.last_seq), (0, report.seq));
    assert!(recovery.journal_moved_aside.is_none() && recovery.skipped_checkpoints.is_empty());
    // The copy is an engine of its own: new events continue after S, and
    // survive its restart.
    let ack = copy.submit(Kv::put(255, 1)).await.unwrap();
    assert_eq!(ack.seq, report.seq + 1);
    copy.shutdown().await.unwrap();
    let copy = open(&dest).await;
    assert_eq!(copy.reader().seq(), report.seq + 1);
    assert_eq!(copy.reader().snapshot().get(&255).as_deref(), Some(&1));
    copy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_backup_is_refused_into_a_non_empty_destination_and_the_engine_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("source")).await;
    engine.submit(Kv::put(1, 1)).await.unwrap();
    let dest = dir.path().join("taken");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("precious"), b"mine").unwrap();
    let error = engine.backup(&dest).await.unwrap_err();
    assert!(
        matches!(&error, BackupError::Write(BackupWriteError::DestinationInUse { path }) if *path == dest),
        "{error}"
    );
    assert_eq!(std::fs::read(dest.join("precious")).unwrap(), b"mine");
    // A file is no destination either.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        engine.backup(&file).await,
        Err(BackupError::Write(
            BackupWriteError::DestinationInUse { .. }
        ))
    ));
    // Nothing else was left beside them, and the engine still serves.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["file", "source", "taken"]);
    assert_eq!(engine.submit(Kv::put(2, 2)).await.unwrap().seq, 2);
    // An empty directory is a fine destination.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(engine.backup(&empty).await.unwrap().seq, 2);
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_in_memory_engine_refuses_to_back_up() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::<Kv>::builder().open().await.unwrap();
    engine.submit(Kv::put(1, 1)).await.unwrap();
    let dest = dir.path().join("copy");
    assert!(matches!(
        engine.backup(&dest).await,
        Err(BackupError::InMemory)
    ));
    assert!(!dest.exists());
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_backup_keeps_the_sources_schema_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("source")).await;
    engine.submit(Kv::put(1, 1)).await.unwrap();
    let dest = dir.path().join("copy");
    engine.backup(&dest).await.unwrap();
    engine.shutdown().await.unwrap();
    let error = Engine::<Kv>::builder()
        .path(&dest)
        .schema("another-schema")
        .open()
        .await
        .unwrap_err();
    assert_eq!(error.cause(), Some(OpenCause::Incompatible), "{error}");
    // Refused without changing it: it still opens under its own schema.
    let copy = open(&dest).await;
    assert_eq!(copy.reader().seq(), 1);
    copy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_backup_after_the_engine_closed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("source")).await;
    engine.shutdown().await.unwrap();
    let dest = dir.path().join("copy");
    assert!(matches!(
        engine.backup(&dest).await,
        Err(BackupError::Closed)
    ));
    assert!(!dest.exists());
}

#[tokio::test]
async fn a_backup_of_an_empty_engine_opens_empty_at_seq_zero() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("source")).await;
    let dest = dir.path().join("copy");
    assert_eq!(engine.backup(&dest).await.unwrap().seq, 0);
    engine.shutdown().await.unwrap();
    let copy = open(&dest).await;
    assert_eq!(
        (copy.reader().seq(), copy.reader().snapshot().len()),
        (0, 0)
    );
    assert_eq!(copy.submit(Kv::put(1, 1)).await.unwrap().seq, 1);
    copy.shutdown().await.unwrap();
}

// ---- the model test ----

#[derive(Debug, Clone)]
enum Step {
    /// Submit these events, pipelined.
    Events(Vec<Kv>),
    /// Roll back to the live seq found `back` positions from the end.
    Rollback { back: usize },
    /// Start a backup and let it run while the next steps go on.
    Backup,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => proptest::collection::vec(kv(), 1..16).prop_map(Step::Events),
        2 => (0usize..30).prop_map(|back| Step::Rollback { back }),
        2 => Just(Step::Backup),
    ]
}

type Map = HashMap<u8, u8>;

fn run(
    steps: Vec<Step>,
    every: u64,
    pick: u8,
    prune: bool,
    backend: JournalBackend,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let (durability, store) = durability_and_store(pick);
        let retention = if prune {
            Retention::SinceOldestCheckpoint
        } else {
            Retention::FullHistory
        };
        let engine = Engine::<Kv>::builder()
            .store(store)
            .journal_backend(backend)
            .path(dir.path().join("source"))
            .schema(SCHEMA)
            .durability(durability)
            .journal_cache_bytes(2 << 20)
            .checkpoints(CheckpointPolicy::default().every_events(every).keep(1))
            .retention(retention)
            .as_of_window(4)
            .open()
            .await
            .expect("open");
        // The state at every seq ever given out: seqs are never reused, so
        // each has one state, whatever rollbacks undo later.
        let mut ever: Vec<Map> = vec![Map::new()];
        // Seqs a rollback may still go to (live in the timeline).
        let mut live: Vec<u64> = vec![0];
        let mut backups = Vec::new();
        for step in steps {
            match step {
                Step::Events(events) => {
                    let mut pending = Vec::new();
                    for event in &events {
                        pending.push(engine.send(event.clone()).await.expect("accepts"));
                    }
                    for (event, ack) in events.iter().zip(pending) {
                        let mut next = ever.last().unwrap().clone();
                        let expected = model_kv(event, &mut next).ok().map(|()| {
                            ever.push(next);
                            live.push(ever.len() as u64 - 1);
                            ever.len() as u64 - 1
                        });
                        match ack.await {
                            Ok(ack) => prop_assert_eq!(Some(ack.seq), expected),
                            Err(AckError::Rejected(_)) => prop_assert_eq!(None, expected),
                            Err(other) => panic!("unexpected ack error: {other}"),
                        }
                    }
                }
                Step::Rollback { back } => {
                    let target = live[live.len() - 1 - back % live.len()];
                    let Ok(ack) = engine.rollback_to(target).await else {
                        // Behind the pruned prefix: refused, nothing changed.
                        prop_assert!(prune, "rollback to {} refused", target);
                        continue;
                    };
                    live.retain(|&seq| seq <= target);
                    ever.push(ever[target as usize].clone());
                    prop_assert_eq!(ack.seq, ever.len() as u64 - 1);
                    live.push(ack.seq);
                }
                Step::Backup => {
                    let dest = dir.path().join(format!("backup-{}", backups.len()));
                    let engine = engine.clone();
                    let at_least = ever.len() as u64 - 1;
                    let task = tokio::spawn(async move { engine.backup(dest).await });
                    backups.push((task, at_least));
                }
            }
        }
        let mut reports = Vec::new();
        for (task, at_least) in backups {
            let report = task.await.expect("backup task").expect("backup");
            // Spawned after `at_least` was acked: it holds at least that.
            prop_assert!(
                report.seq >= at_least,
                "{:?} before seq {}",
                report,
                at_least
            );
            reports.push(report);
        }
        engine.shutdown().await.expect("clean shutdown");
        for report in reports {
            // On the source's backend, whatever the opening engine's default.
            prop_assert_eq!(
                JournalBackend::detect(&report.path.join("journal")),
                Some(backend)
            );
            let copy = open(&report.path).await;
            prop_assert_eq!(copy.reader().seq(), report.seq);
            let found: Map = copy
                .reader()
                .snapshot()
                .view()
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect();
            let expected = &ever[report.seq as usize];
            prop_assert_eq!(&found, expected, "backup at seq {}", report.seq);
            let expected: State<Kv> = expected.clone().into_iter().collect();
            prop_assert_eq!(
                state_hash::<Kv>(&state_of(&copy)).unwrap(),
                state_hash::<Kv>(&expected).unwrap()
            );
            copy.shutdown().await.expect("clean shutdown");
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(12)
    ))]

    #[test]
    fn backups_interleaved_with_events_checkpoints_and_rollbacks_open_to_the_model_state(
        steps in proptest::collection::vec(step(), 1..10),
        every in 2u64..20,
        pick in 0u8..6,
        prune in any::<bool>(),
        sled in any::<bool>(),
    ) {
        let backend = if sled { JournalBackend::Sled } else { JournalBackend::Segments };
        run(steps, every, pick, prune, backend)?;
    }
}
