//! Journal append cost: one packed record per batch against one record per
//! event, side by side on the same events, each followed by one flush per
//! batch (group commit). Also prints journal bytes per event against the
//! bare bincode payload per event.
//!
//! `record_building` splits what a durable engine spends on a batch's
//! record, on the same events: `encode_batch` (what the owner did before
//! submitters encoded their own events), `encode_event` for each event (the
//! submitters' encode plus the decode-back check, run in parallel across
//! them) and `encode_pieces` (what the owner does now: frame the record
//! from those bytes).
//!
//! Events are 64-byte-value puts (`key: u64`, `value`: 64 bytes), in
//! batches of 1024. Criterion reports events/s; the ratio between the two
//! variants is the point.
//!
//! Run: `cargo bench -p solostate-persistence --bench journal`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use solostate_commands::StateEvent;
use solostate_persistence::codec;
use solostate_persistence::journal::Journal;

/// Events per batch (one flush each).
const BATCH: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Put {
    key: u64,
    /// 64 opaque bytes (a `Vec<u8>`: bincode writes a 1-byte length and
    /// the bytes, where integer arrays would be varint-compressed).
    value: Vec<u8>,
}

fn batch(first_seq: u64) -> Vec<Put> {
    (0..BATCH as u64)
        .map(|i| Put {
            key: (first_seq + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 100_000,
            value: (first_seq + i).to_le_bytes().repeat(8),
        })
        .collect()
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("journal_append_flush");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);

    let packed = Journal::open(&dir.path().join("packed"), "put", 64 << 20).expect("open");
    let mut packed_seq = 1;
    group.bench_function("packed_record_per_batch", |b| {
        b.iter(|| {
            let events = batch(packed_seq);
            packed.append(packed_seq, &events).expect("append");
            packed.flush().expect("flush");
            packed_seq += BATCH as u64;
        })
    });

    let single = Journal::open(&dir.path().join("single"), "put", 64 << 20).expect("open");
    let mut single_seq = 1;
    group.bench_function("record_per_event", |b| {
        b.iter(|| {
            let events = batch(single_seq);
            for (i, event) in events.iter().enumerate() {
                single
                    .append(single_seq + i as u64, std::slice::from_ref(event))
                    .expect("append");
            }
            single.flush().expect("flush");
            single_seq += BATCH as u64;
        })
    });
    group.finish();
    let per_event = |journal: &Journal, next_seq: u64| {
        journal.size_on_disk().expect("size") as f64 / (next_seq - 1).max(1) as f64
    };
    eprintln!(
        "sled size on disk after the runs (includes reserved, unfilled segments): \
         packed {:.1} bytes/event, record-per-event {:.1} bytes/event",
        per_event(&packed, packed_seq),
        per_event(&single, single_seq),
    );

    // Bytes per event: the framed record against the bare payload.
    let events = batch(1);
    let record = codec::encode_batch(&events).expect("encode");
    let payload: usize = events
        .iter()
        .map(|e| {
            codec::encode_batch(std::slice::from_ref(e))
                .expect("encode")
                .len()
                - codec::HEADER_LEN
                - 2 // the record kind and the one-event length prefix
        })
        .sum();
    eprintln!(
        "journal bytes per event: {:.2} (record of {} events: {} bytes; bare event payload: {:.2} bytes; ratio {:.3})",
        record.len() as f64 / BATCH as f64,
        BATCH,
        record.len(),
        payload as f64 / BATCH as f64,
        record.len() as f64 / payload as f64,
    );
    black_box(record);
}

fn bench_record_building(c: &mut Criterion) {
    record_building(c, "record_building", batch(1));
    // The engine benches' event: a put of a u64 key and a 64-byte value
    // of eight full u64 words.
    let puts: Vec<StateEvent<u64, [u64; 8]>> = (0..BATCH as u64)
        .map(|i| StateEvent::put(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), [u64::MAX - i; 8]))
        .collect();
    record_building(c, "record_building_state_event", puts);
}

fn record_building<E: Serialize + serde::de::DeserializeOwned>(
    c: &mut Criterion,
    name: &str,
    events: Vec<E>,
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("encode_batch", |b| {
        b.iter(|| codec::encode_batch(black_box(&events)).expect("encode"))
    });
    group.bench_function("encode_event_each", |b| {
        b.iter(|| {
            black_box(&events)
                .iter()
                .map(|e| codec::encode_event(e).expect("encode"))
                .collect::<Vec<_>>()
        })
    });
    let pieces: Vec<_> = events
        .iter()
        .map(|e| codec::encode_event(e).expect("encode"))
        .collect();
    assert_eq!(
        codec::encode_pieces(&pieces).expect("frame"),
        codec::encode_batch(&events).expect("encode"),
        "one format"
    );
    group.bench_function("encode_pieces", |b| {
        b.iter(|| codec::encode_pieces(black_box(&pieces)).expect("frame"))
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_record_building);
criterion_main!(benches);
