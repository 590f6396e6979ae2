//! Settings that cannot work are refused at `open` with
//! `OpenError::InvalidConfig` naming them, before anything touches the
//! disk; and `Durability::Every` flushes on a runtime without timers.

mod common;

use std::time::Duration;

use common::copy_dir;

use solostate::persistence::replay::Replay;
use solostate::{CheckpointPolicy, Durability, Engine, OpenError, StateEvent};

type Ev = StateEvent<u64, u64>;

/// The setting an `open` refused, or a panic naming what it did instead.
async fn refused(builder: solostate::Builder<Ev>) -> &'static str {
    match builder.open().await {
        Err(OpenError::InvalidConfig { setting, .. }) => setting,
        Err(other) => panic!("expected InvalidConfig, got {other}"),
        Ok(engine) => {
            engine.shutdown().await.unwrap();
            panic!("the setting was accepted")
        }
    }
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let durable = || {
        Engine::<Ev>::builder()
            .path(dir.path().join("db"))
            .schema("settings-v1")
    };
    assert_eq!(
        refused(durable().journal_cache_bytes(0)).await,
        "journal_cache_bytes"
    );
    assert_eq!(
        refused(durable().journal_cache_bytes(255)).await,
        "journal_cache_bytes"
    );
    assert_eq!(refused(durable().schema("")).await, "schema");
    assert_eq!(
        refused(Engine::<Ev>::builder().path(dir.path().join("db"))).await,
        "schema",
        "a durable engine's schema has no default: the type's Rust name is not stable"
    );
    assert_eq!(
        refused(durable().checkpoints(CheckpointPolicy::default().every_events(0))).await,
        "checkpoints.every_events"
    );
    assert_eq!(
        refused(durable().checkpoints(CheckpointPolicy::default().every_bytes(0))).await,
        "checkpoints.every_bytes"
    );
    assert!(
        !dir.path().join("db").exists(),
        "a refused open creates nothing"
    );
}

#[tokio::test]
async fn an_empty_path_is_refused_and_writes_nothing_in_the_current_directory() {
    let before: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let builder = Engine::<Ev>::builder().path("").schema("settings-v1");
    assert_eq!(refused(builder).await, "path");
    let after: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        before, after,
        "nothing was created in the current directory"
    );
}

#[tokio::test]
async fn an_as_of_window_of_zero_keeps_only_the_current_state() {
    let engine = Engine::<Ev>::builder()
        .as_of_window(0)
        .open()
        .await
        .unwrap();
    engine.submit(Ev::put(1, 1)).await.unwrap();
    engine.submit(Ev::put(2, 2)).await.unwrap();
    assert_eq!(engine.as_of(2).await.unwrap().len(), 2);
    assert!(matches!(
        engine.as_of(1).await,
        Err(solostate::AsOfError::Forgotten { seq: 1, .. })
    ));
    engine.shutdown().await.unwrap();
}

/// `Durability::Every` used to flush from a tokio task on a tokio timer:
/// on a runtime without timers `open` succeeded, the task panicked, and
/// acknowledged events never reached the journal file. The flush now runs
/// on a thread of its own. Its effect is seen from outside: a copy of the
/// directory taken while the engine runs holds the event once a flush has
/// written it (sled keeps unflushed writes in its own buffers).
#[test]
fn every_flushes_on_a_runtime_without_timers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    runtime.block_on(async {
        let engine = Engine::<Ev>::builder()
            .path(&live)
            .schema("settings-v1")
            .durability(Durability::Every(Duration::from_millis(20)))
            .open()
            .await
            .unwrap();
        let ack = engine.submit(Ev::put(7, 70)).await.unwrap();
        let copy = dir.path().join("copy");
        let mut found = false;
        // Bounded: 10 s is hundreds of flush intervals.
        for attempt in 0..200 {
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)))
                .await
                .unwrap();
            let _ = std::fs::remove_dir_all(&copy);
            copy_dir(&live, &copy);
            let replay = Replay::<Ev>::open(&copy, "settings-v1");
            if let Ok(replay) = replay
                && replay.state_at(ack.seq).is_ok()
            {
                found = true;
                eprintln!("flushed within {} ms", (attempt + 1) * 50);
                break;
            }
        }
        assert!(found, "the acked event never reached the journal file");
        engine.shutdown().await.unwrap();
    });
}
