//! The `replay` and `open` groups of the `durable` bench: replaying a
//! journal, its parts, and opening from a checkpoint.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use solostate::{CheckpointPolicy, Durability, Engine, StateEvent};
use solostate_persistence::codec;
use solostate_persistence::journal::Journal;
use tokio::runtime::Runtime;

use super::{
    CACHE_BYTES, CHECKPOINT_KEYS, Ev, REPLAY_BATCH, REPLAY_EVENTS, SCHEMA, open_with, puts,
    runtime, value, wanted,
};

/// The replay journal, written once by the first `replay` run.
struct ReplayJournal {
    dir: tempfile::TempDir,
    records: Vec<sled::IVec>,
}

/// Writes [`REPLAY_EVENTS`] events in records of [`REPLAY_BATCH`], exactly
/// as an engine with batches of that size would, and prints the journal's
/// bytes per event.
fn write_replay_journal() -> ReplayJournal {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal =
        Journal::open(&dir.path().join("journal"), SCHEMA, CACHE_BYTES).expect("open the journal");
    let mut record_bytes = 0usize;
    let mut payload_bytes = 0usize;
    let mut records = Vec::new();
    let mut seq = 1;
    for b in 0..REPLAY_EVENTS / REPLAY_BATCH {
        let events = puts(0xFEED + b, REPLAY_BATCH as usize);
        record_bytes += journal.append(seq, &events).expect("append");
        // The bare payload: each event encoded alone, minus the record
        // header, the record kind and the one-byte length of a one-event
        // sequence.
        payload_bytes += events
            .iter()
            .map(|e| {
                let alone = codec::encode_batch(std::slice::from_ref(e)).expect("encode");
                alone.len() - codec::HEADER_LEN - 2
            })
            .sum::<usize>();
        records.push(codec::encode_batch(&events).expect("encode").into());
        seq += REPLAY_BATCH;
    }
    journal.flush().expect("flush");
    let on_disk = journal.size_on_disk().expect("size");
    let n = REPLAY_EVENTS as f64;
    eprintln!(
        "journal bytes per event ({REPLAY_EVENTS} events, records of {REPLAY_BATCH}; \
         value 64 bytes, key u64): record {:.2}, bare payload {:.2} (record/payload {:.3}), \
         size_on_disk {:.2} (size_on_disk/record {:.3}, size_on_disk/64-byte value {:.2})",
        record_bytes as f64 / n,
        payload_bytes as f64 / n,
        record_bytes as f64 / payload_bytes as f64,
        on_disk as f64 / n,
        on_disk as f64 / record_bytes as f64,
        on_disk as f64 / n / 64.0,
    );
    ReplayJournal { dir, records }
}

pub(super) fn replay(c: &mut Criterion) {
    if !wanted("replay") {
        return;
    }
    let rt = runtime();
    let journal = write_replay_journal();
    let path = journal.dir.path();
    let journal_path = path.join("journal");
    let mut group = c.benchmark_group("replay");
    group
        .throughput(Throughput::Elements(REPLAY_EVENTS))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    // Every timed part leaves closing untimed.
    group.bench_function("engine_reopen", |b| {
        // No checkpoints: every reopen replays the whole journal.
        b.iter_custom(|iters| {
            time_reopens(&rt, path, iters, |engine| {
                assert_eq!(engine.stats().last_seq, REPLAY_EVENTS);
            })
        })
    });
    group.bench_function("journal_open", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let journal = Journal::open(&journal_path, SCHEMA, CACHE_BYTES).expect("open");
                total += start.elapsed();
                drop(journal);
            }
            total
        })
    });
    let opened = Journal::open(&journal_path, SCHEMA, CACHE_BYTES).expect("open");
    group.bench_function("read_and_decode", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for entry in opened.read_from::<Ev>(1) {
                black_box(entry.expect("a good record"));
                n += 1;
            }
            assert_eq!(n, REPLAY_EVENTS);
        })
    });
    drop(opened);
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            for record in &journal.records {
                black_box(codec::decode_batch::<Ev>(record).expect("decode"));
            }
        })
    });
    group.finish();
}

/// Opening an engine from a checkpoint of [`CHECKPOINT_KEYS`] distinct
/// keys, with no journal tail to replay. The engine itself writes the
/// events and, at shutdown, the checkpoint.
pub(super) fn open(c: &mut Criterion) {
    if !wanted("open") {
        return;
    }
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    rt.block_on(async {
        let engine = open_with(
            Some(path),
            Durability::Never,
            CheckpointPolicy::never().on_shutdown(true),
        )
        .await;
        let mut pending = std::collections::VecDeque::new();
        for key in 0..CHECKPOINT_KEYS {
            pending.push_back(
                engine
                    .send(StateEvent::put(key, value(key)))
                    .await
                    .expect("send"),
            );
            if pending.len() >= 4096 {
                pending
                    .pop_front()
                    .expect("non-empty")
                    .await
                    .expect("a put applies");
            }
        }
        for ack in pending {
            ack.await.expect("a put applies");
        }
        engine.shutdown().await.expect("clean shutdown");
    });
    let mut group = c.benchmark_group("open");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("from_checkpoint_1M_keys", |b| {
        b.iter_custom(|iters| {
            time_reopens(&rt, path, iters, |engine| {
                let recovery = engine.recovery();
                assert_eq!(recovery.checkpoint, Some(CHECKPOINT_KEYS));
                assert_eq!(recovery.replayed, 0);
                assert_eq!(engine.reader().len() as u64, CHECKPOINT_KEYS);
            })
        })
    });
    group.finish();
}

/// Opens an engine on `path` `iters` times, writing no checkpoints, checks
/// each with `check`, and returns the time spent opening only: closing
/// (joining sled's threads) is left untimed.
fn time_reopens(rt: &Runtime, path: &Path, iters: u64, check: impl Fn(&Engine<Ev>)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let engine = rt.block_on(open_with(
            Some(path),
            Durability::Always,
            CheckpointPolicy::never(),
        ));
        total += start.elapsed();
        check(&engine);
        rt.block_on(engine.shutdown()).expect("clean shutdown");
    }
    total
}
