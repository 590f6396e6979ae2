//! sled 0.34.7 writes page fragments over about 131 KB to files under
//! `journal/blobs/` and never syncs them, so after a power cut the journal
//! can point into empty blobs and fail to open (issue 11). The journal
//! keeps every sled value small enough that sled never writes one: these
//! tests drive a durable engine with the default configuration through
//! both ways blobs used to appear, large events and big batches of small
//! ones, and check that `journal/blobs` stays empty, across a restart.

use std::path::Path;

use solostate::{Engine, JournalBackend, StateEvent};

type Ev = StateEvent<u64, Vec<u8>>;

const SCHEMA: &str = "solostate-tests/no-blobs";

async fn open(dir: &Path) -> Engine<Ev> {
    // Blob files are sled's: the segment log has none.
    Engine::<Ev>::builder()
        .path(dir)
        .schema(SCHEMA)
        .journal_backend(JournalBackend::Sled)
        .open()
        .await
        .unwrap()
}

/// The blob files sled has written under the engine's directory.
fn blobs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("journal").join("blobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A value of `len` bytes that differs from key to key.
fn value(key: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (key as usize + i * 7) as u8).collect()
}

/// Values of several hundred KB up to a few MB, alone and several to a
/// batch: each is a record (or part of one) far over sled's threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_write_no_blob_files_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [300_000, 700_000, 2_500_000, 150_000, 1_200_000, 450_000];
    {
        let engine = open(dir.path()).await;
        // Alone: each waits for its ack.
        for (key, &len) in sizes.iter().enumerate() {
            engine
                .submit(Ev::put(key as u64, value(key as u64, len)))
                .await
                .unwrap();
        }
        // Together: queued before the owner drains them, so batches hold
        // several.
        let pending: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let key = 100 + i as u64;
                engine.try_submit(Ev::put(key, value(key, len))).unwrap()
            })
            .collect();
        for ack in pending {
            ack.await.unwrap();
        }
        engine.shutdown().await.unwrap();
    }
    assert_eq!(
        blobs(dir.path()),
        Vec::<String>::new(),
        "sled wrote blob files"
    );

    let engine = open(dir.path()).await;
    assert_eq!(engine.recovery().last_seq, 2 * sizes.len() as u64);
    let snapshot = engine.reader().snapshot();
    for (i, &len) in sizes.iter().enumerate() {
        for key in [i as u64, 100 + i as u64] {
            assert_eq!(
                snapshot.get(&key).as_deref(),
                Some(&value(key, len)),
                "key {key}"
            );
        }
    }
    engine
        .submit(Ev::put(999, value(999, 900_000)))
        .await
        .unwrap();
    engine.shutdown().await.unwrap();
    assert_eq!(
        blobs(dir.path()),
        Vec::<String>::new(),
        "sled wrote blob files after the restart"
    );
}

/// Tens of thousands of 64-byte values, pipelined so that the owner's
/// batches grow to the default `max_batch` (4096): records of hundreds of
/// KB, each a single sled value before chunking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_batches_of_small_events_write_no_blob_files_across_a_restart() {
    const EVENTS: u64 = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let largest_batch = {
        let engine = open(dir.path()).await;
        let mut pending = std::collections::VecDeque::new();
        for key in 0..EVENTS {
            pending.push_back(engine.send(Ev::put(key, value(key, 64))).await.unwrap());
            // Keep most of the queue full, so the owner drains big batches.
            if pending.len() >= 6000 {
                pending.pop_front().unwrap().await.unwrap();
            }
        }
        for ack in pending {
            ack.await.unwrap();
        }
        let largest = engine.stats().largest_batch;
        engine.shutdown().await.unwrap();
        largest
    };
    assert!(
        largest_batch >= 1024,
        "batches stayed small ({largest_batch}), so this test proves nothing"
    );
    assert_eq!(
        blobs(dir.path()),
        Vec::<String>::new(),
        "sled wrote blob files"
    );

    let engine = open(dir.path()).await;
    assert_eq!(engine.recovery().last_seq, EVENTS);
    let snapshot = engine.reader().snapshot();
    assert_eq!(snapshot.len() as u64, EVENTS);
    assert_eq!(
        snapshot.get(&(EVENTS - 1)).as_deref(),
        Some(&value(EVENTS - 1, 64))
    );
    let pending: Vec<_> = (EVENTS..EVENTS + 5000)
        .map(|key| engine.try_submit(Ev::put(key, value(key, 64))).unwrap())
        .collect();
    for ack in pending {
        ack.await.unwrap();
    }
    engine.shutdown().await.unwrap();
    assert_eq!(
        blobs(dir.path()),
        Vec::<String>::new(),
        "sled wrote blob files after the restart"
    );
}
