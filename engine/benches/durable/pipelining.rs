//! The `pipelining` group of the durable bench: `Builder::pipelined` on
//! and off, side by side.

use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use solostate::{Durability, JournalBackend, StoreKind};

use super::{Tune, engine_throughput, runtime, wanted};

/// Pipelining under `Always` (`Builder::pipelined`), on and off side by
/// side: with [`WRITERS`] × [`IN_FLIGHT`] events in flight against batches
/// of 1024, up to four batches wait, so one can be applied while the one
/// before it flushes; with the default batch (4096) every event in flight
/// fits in one batch, and there is little to overlap (the control: it
/// should not get slower). On both stores.
pub(crate) fn pipelining(c: &mut Criterion) {
    if !wanted("pipelining") {
        return;
    }
    let rt = runtime();
    let mut group = c.benchmark_group("pipelining");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3));
    let always = Some(Durability::Always);
    let segments = JournalBackend::Segments;
    let rows: [(&str, Tune); 8] = [
        ("batch1024/pipelined", |b| b.max_batch(1024)),
        ("batch1024/unpipelined", |b| {
            b.max_batch(1024).pipelined(false)
        }),
        ("batch1024_versioned/pipelined", |b| {
            b.max_batch(1024).store(StoreKind::Versioned)
        }),
        ("batch1024_versioned/unpipelined", |b| {
            b.max_batch(1024)
                .store(StoreKind::Versioned)
                .pipelined(false)
        }),
        ("batch4096/pipelined", |b| b),
        ("batch4096/unpipelined", |b| b.pipelined(false)),
        ("batch4096_versioned/pipelined", |b| {
            b.store(StoreKind::Versioned)
        }),
        ("batch4096_versioned/unpipelined", |b| {
            b.store(StoreKind::Versioned).pipelined(false)
        }),
    ];
    for (name, tune) in rows {
        engine_throughput(&mut group, &rt, name, always, segments, tune);
    }
    // A slower disk: every flush takes 2 ms more, asleep on the flushing
    // thread (what an fsync waiting on a device costs: time, no CPU). Only
    // with `--features fault-injection`, which supplies the delay.
    #[cfg(feature = "fault-injection")]
    {
        use super::Ev;
        use solostate::{Builder, FaultPlan};
        fn slow(builder: Builder<Ev>) -> Builder<Ev> {
            let plan = FaultPlan::new().flush_delay(Duration::from_millis(2));
            builder.max_batch(1024).faults(plan)
        }
        let rows: [(&str, Tune); 4] = [
            ("slow_flush_2ms/batch1024/pipelined", slow),
            ("slow_flush_2ms/batch1024/unpipelined", |b| {
                slow(b).pipelined(false)
            }),
            ("slow_flush_2ms/batch1024_versioned/pipelined", |b| {
                slow(b).store(StoreKind::Versioned)
            }),
            ("slow_flush_2ms/batch1024_versioned/unpipelined", |b| {
                slow(b).store(StoreKind::Versioned).pipelined(false)
            }),
        ];
        for (name, tune) in rows {
            engine_throughput(&mut group, &rt, name, always, segments, tune);
        }
    }
    group.finish();
}
