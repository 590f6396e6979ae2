//! Journaled engines: state survives a restart, seqs continue, and a bad
//! journal fails the open with an error that names what and where. That an
//! ack under `Durability::Always` is durable without any shutdown is
//! proven by `crash.rs`, which kills the writer; corrupt records are in
//! `checkpoints.rs`, next to the option that recovers past them.

use std::time::Duration;

use solostate::{Durability, Engine, OpenError, StateEvent, SubmitError};

type Ev = StateEvent<u64, String>;

async fn open(dir: &std::path::Path, durability: Durability) -> Result<Engine<Ev>, OpenError> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema("restart-test-v1")
        .durability(durability)
        .journal_cache_bytes(4 << 20)
        .open()
        .await
}

fn sorted(engine: &Engine<Ev>) -> Vec<(u64, String)> {
    let mut entries: Vec<_> = engine
        .reader()
        .snapshot()
        .view()
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    entries.sort();
    entries
}

async fn write_some(engine: &Engine<Ev>) -> u64 {
    let mut last = 0;
    for i in 0..50u64 {
        last = engine
            .submit(Ev::put(i % 7, format!("v{i}")))
            .await
            .unwrap()
            .seq;
    }
    assert!(matches!(
        engine.submit(Ev::insert(0, "dup".into())).await,
        Err(SubmitError::Rejected(_))
    ));
    last = engine.submit(Ev::delete(3)).await.unwrap().seq.max(last);
    last
}

#[tokio::test]
async fn state_and_seqs_survive_a_restart_under_every_durability() {
    for durability in [
        Durability::Always,
        Durability::Every(Duration::from_millis(5)),
        Durability::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path(), durability).await.unwrap();
        let last = write_some(&engine).await;
        let before = sorted(&engine);
        engine.shutdown().await.unwrap();

        let engine = open(dir.path(), durability).await.unwrap();
        assert_eq!(engine.reader().seq(), last, "{durability:?}");
        assert_eq!(engine.stats().last_seq, last);
        assert_eq!(sorted(&engine), before, "{durability:?}");
        let next = engine.submit(Ev::put(100, "after".into())).await.unwrap();
        assert_eq!(next.seq, last + 1, "seqs continue after a restart");
        engine.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Durability::Always).await.unwrap();
    let err = open(dir.path(), Durability::Always).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, OpenError::Journal { .. }), "{message}");
    assert!(message.contains("already open"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_journal_of_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Durability::Always).await.unwrap();
    engine.submit(Ev::put(1, "x".into())).await.unwrap();
    engine.shutdown().await.unwrap();

    let err = Engine::<StateEvent<u64, u64>>::builder()
        .path(dir.path())
        .schema("restart-test-u64-v1")
        .open()
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("schema"), "{message}");
    assert!(
        message.contains("restart-test-v1") && message.contains("restart-test-u64-v1"),
        "names both schemas: {message}"
    );
}

#[tokio::test]
async fn an_initial_state_with_a_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Engine::<Ev>::builder()
        .path(dir.path())
        .schema("restart-test-v1")
        .initial_state(solostate::imbl::hashmap! {1 => "x".to_string()})
        .open()
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        OpenError::InvalidConfig {
            setting: "initial_state",
            ..
        }
    ));
}
