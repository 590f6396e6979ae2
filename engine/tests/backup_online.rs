//! The owner does not wait for a backup's copy: with the copy held up
//! (its one marked value's `Serialize` waits on a flag), writers are
//! acknowledged, readers see new snapshots and a rollback commits, and
//! the backup, once let go, still holds the state at its own seq.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize, Serializer};
use solostate::{Durability, Engine, StateEvent};

/// A value; `Held(HELD)` makes its `Serialize` wait while [`HOLD`] is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Held(u8);

const HELD: u8 = 255;
static HOLD: AtomicBool = AtomicBool::new(false);
static WAITING: AtomicBool = AtomicBool::new(false);

impl Serialize for Held {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == HELD && HOLD.load(Ordering::SeqCst) {
            WAITING.store(true, Ordering::SeqCst);
            // Bounded, so that a broken engine fails the test, not hangs it.
            let until = Instant::now() + Duration::from_secs(30);
            while HOLD.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        serializer.serialize_u8(self.0)
    }
}

type Ev = StateEvent<u8, Held>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_readers_and_rollbacks_go_on_while_a_backup_is_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let open = |path: std::path::PathBuf| {
        Engine::<Ev>::builder()
            .path(path)
            .schema("backup-online-v1")
            .durability(Durability::Always)
            // Nothing else serializes the state while the copy is held.
            .state_hash_every(0)
            .journal_cache_bytes(2 << 20)
            .open()
    };
    let engine = open(dir.path().join("source")).await.unwrap();
    engine.submit(Ev::put(1, Held(HELD))).await.unwrap();
    let at = engine.submit(Ev::put(2, Held(0))).await.unwrap().seq;

    HOLD.store(true, Ordering::SeqCst);
    let dest = dir.path().join("copy");
    let backup = tokio::spawn({
        let (engine, dest) = (engine.clone(), dest.clone());
        async move { engine.backup(dest).await }
    });
    while !WAITING.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The copy is stuck in the middle of its checkpoint. The engine serves.
    let reader = engine.reader();
    for i in 0..50u8 {
        let ack = engine.submit(Ev::put(3, Held(i))).await.unwrap();
        assert_eq!(reader.wait_for(ack.seq).await.unwrap().seq(), ack.seq);
    }
    let rolled = engine.rollback_to(1).await.unwrap();
    assert_eq!(rolled.seq, at + 51);
    assert!(reader.snapshot().get(&2).is_none());
    assert!(!backup.is_finished(), "the copy was still held");

    HOLD.store(false, Ordering::SeqCst);
    let report = backup.await.unwrap().unwrap();
    assert_eq!(report.seq, at, "the backup's seq is where its turn came");
    engine.shutdown().await.unwrap();

    let copy = open(dest).await.unwrap();
    let snapshot = copy.reader().snapshot();
    assert_eq!(snapshot.seq(), at);
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot.get(&1).as_deref(), Some(&Held(HELD)));
    assert_eq!(snapshot.get(&2).as_deref(), Some(&Held(0)));
    copy.shutdown().await.unwrap();
}
