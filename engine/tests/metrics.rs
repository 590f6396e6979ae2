//! The `metrics` feature, read as an application reads it: a Prometheus
//! recorder is installed, engines do real work, and the rendered text is
//! checked against what the engine answered and what `Engine::stats`
//! says. One recorder serves this whole binary, so each test labels its
//! engine (`Builder::metrics_label`) and reads only its own series.

mod common;

use std::sync::OnceLock;

use common::{TestEvent, quiet_intentional_panics};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use solostate::{AckError, Durability, Engine, StateEvent, SubmitError};

/// The process's recorder, installed before any engine opens (engines
/// register their metrics at open).
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder in this test binary")
    })
}

/// The value of the series `name{engine="<engine>"}` in Prometheus text,
/// if it is there.
fn find(text: &str, name: &str, engine: &str) -> Option<f64> {
    let prefix = format!("{name}{{engine=\"{engine}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse().expect("a sample value"))
}

/// A scrape of the recorder.
struct Scrape {
    text: String,
    engine: &'static str,
}

impl Scrape {
    fn now(engine: &'static str) -> Self {
        Scrape {
            text: recorder().render(),
            engine,
        }
    }

    /// The series' value; it must be there.
    fn get(&self, name: &str) -> f64 {
        find(&self.text, name, self.engine).unwrap_or_else(|| {
            panic!(
                "no {name}{{engine=\"{}\"}} in the scrape:\n{}",
                self.engine, self.text
            )
        })
    }

    /// The series' value, 0 when absent (a histogram never recorded).
    fn get_or_zero(&self, name: &str) -> f64 {
        find(&self.text, name, self.engine).unwrap_or(0.0)
    }
}

fn put(key: u8) -> TestEvent {
    TestEvent::Kv(StateEvent::put(key, key))
}

/// Durable under `Durability::Always`, with small batches behind a deep
/// queue so that batches are pipelined: every count in the scrape equals
/// what the engine answered, and every batch (pipelined ones too) has its
/// apply and flush timed.
#[tokio::test]
async fn durable_engine_reports_applied_rejected_batches_flushes_and_journal_bytes() {
    const ENGINE: &str = "durable";
    recorder();
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Engine::<TestEvent>::builder()
            .path(dir.path())
            .schema("metrics-test-v1")
            .durability(Durability::Always)
            .max_batch(8)
            .metrics_label(ENGINE)
            .open()
    };
    let engine = open().await.unwrap();

    // All queued before the owner runs (a current-thread runtime): 200
    // puts, one in ten a deliberate rejection instead.
    let mut pendings = Vec::new();
    for i in 0..200u32 {
        let event = if i % 10 == 9 {
            TestEvent::WriteThenReject { key: 1, value: 2 }
        } else {
            put((i % 250) as u8)
        };
        pendings.push(engine.send(event).await.unwrap());
    }
    let (mut acked, mut rejected) = (0u64, 0u64);
    for pending in pendings {
        match pending.await {
            Ok(_) => acked += 1,
            Err(AckError::Rejected(_)) => rejected += 1,
            Err(other) => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((acked, rejected), (180, 20));
    let stats = engine.stats();
    assert!(
        stats.pipelined > 0,
        "the backlog should pipeline some batches: {stats:?}"
    );

    let scrape = Scrape::now(ENGINE);
    assert_eq!(scrape.get("solostate_events_applied_total"), acked as f64);
    assert_eq!(stats.applied, acked);
    assert_eq!(
        scrape.get("solostate_events_rejected_total"),
        rejected as f64
    );
    assert_eq!(scrape.get("solostate_events_panicked_total"), 0.0);
    let batches = stats.batches as f64;
    assert!(batches > 0.0);
    assert_eq!(scrape.get("solostate_batch_size_events_count"), batches);
    assert_eq!(
        scrape.get("solostate_batch_size_events_sum"),
        acked as f64,
        "the batch sizes add up to the applied events"
    );
    assert_eq!(
        scrape.get("solostate_apply_duration_seconds_count"),
        batches
    );
    assert!(scrape.get("solostate_apply_duration_seconds_sum") > 0.0);
    assert_eq!(
        scrape.get("solostate_flush_duration_seconds_count"),
        batches,
        "every batch is flushed under Always, pipelined ones included"
    );
    assert!(scrape.get("solostate_flush_duration_seconds_sum") > 0.0);
    assert_eq!(
        scrape.get("solostate_ack_latency_seconds_count"),
        acked as f64,
        "one ack latency per acked event"
    );
    assert!(scrape.get("solostate_ack_latency_seconds_sum") > 0.0);
    let bytes = scrape.get("solostate_journal_bytes_total");
    assert!(
        bytes >= acked as f64,
        "at least a byte per journaled event: {bytes}"
    );
    assert_eq!(
        scrape.get("solostate_recovery_duration_seconds_count"),
        1.0,
        "one recovery per open"
    );

    // Shutting down writes a checkpoint (the default policy); reopening
    // recovers from it.
    engine.shutdown().await.unwrap();
    let checkpoints = engine.stats().checkpoints;
    assert!(checkpoints > 0);
    let scrape = Scrape::now(ENGINE);
    assert_eq!(
        scrape.get("solostate_checkpoint_duration_seconds_count"),
        checkpoints as f64
    );
    assert!(scrape.get("solostate_checkpoint_duration_seconds_sum") > 0.0);
    assert_eq!(scrape.get("solostate_checkpoint_failures_total"), 0.0);

    let engine = open().await.unwrap();
    let scrape = Scrape::now(ENGINE);
    assert_eq!(scrape.get("solostate_recovery_duration_seconds_count"), 2.0);
    assert!(scrape.get("solostate_recovery_duration_seconds_sum") > 0.0);
    engine.shutdown().await.unwrap();
}

/// Panicking events are counted as panicked, and an in-memory engine
/// journals and flushes nothing.
#[tokio::test]
async fn panicked_events_are_counted_and_memory_engines_journal_nothing() {
    const ENGINE: &str = "panics";
    quiet_intentional_panics();
    recorder();
    let engine = Engine::<TestEvent>::builder()
        .metrics_label(ENGINE)
        .open()
        .await
        .unwrap();
    for key in 0..3 {
        let answer = engine
            .submit(TestEvent::WriteThenPanic { key, value: 1 })
            .await;
        assert!(matches!(answer, Err(SubmitError::Panicked { .. })));
        engine.submit(put(key)).await.unwrap();
    }
    let scrape = Scrape::now(ENGINE);
    assert_eq!(scrape.get("solostate_events_panicked_total"), 3.0);
    assert_eq!(engine.stats().panicked, 3);
    assert_eq!(scrape.get("solostate_events_applied_total"), 3.0);
    assert_eq!(scrape.get("solostate_events_rejected_total"), 0.0);
    assert_eq!(scrape.get("solostate_journal_bytes_total"), 0.0);
    assert_eq!(
        scrape.get_or_zero("solostate_flush_duration_seconds_count"),
        0.0
    );
    assert_eq!(
        scrape.get_or_zero("solostate_recovery_duration_seconds_count"),
        0.0
    );
    engine.shutdown().await.unwrap();
}

/// On a current-thread runtime nothing runs the owner until this task
/// waits, so all 50 commands are queued when it takes its first: the
/// gauge shows the 49 behind it.
#[tokio::test]
async fn queue_depth_is_the_backlog_the_owner_found() {
    const ENGINE: &str = "queue";
    recorder();
    let engine = Engine::<StateEvent<u32, u32>>::builder()
        .metrics_label(ENGINE)
        .open()
        .await
        .unwrap();
    let pendings: Vec<_> = (0..50)
        .map(|i| engine.try_submit(StateEvent::put(i, i)).unwrap())
        .collect();
    for pending in pendings {
        pending.await.unwrap();
    }
    let scrape = Scrape::now(ENGINE);
    assert_eq!(scrape.get("solostate_queue_depth"), 49.0);
    assert_eq!(
        scrape.get("solostate_batch_size_events_count"),
        1.0,
        "the 50 went in one batch"
    );
    assert_eq!(scrape.get("solostate_batch_size_events_sum"), 50.0);
    engine.shutdown().await.unwrap();
}

/// The reader lag is the slowest change-feed subscriber's backlog in
/// batches: it grows while a subscriber reads nothing, is 1 (the batch
/// just published) once it has caught up, and 0 without subscribers.
#[tokio::test]
async fn reader_lag_is_the_slowest_subscribers_backlog() {
    const ENGINE: &str = "lag";
    recorder();
    let engine = Engine::<StateEvent<u32, u32>>::builder()
        .change_capacity(64)
        .metrics_label(ENGINE)
        .open()
        .await
        .unwrap();
    let lag = || Scrape::now(ENGINE).get("solostate_reader_lag_batches");
    let mut feed = engine.reader().changes();
    for i in 0..5 {
        engine.submit(StateEvent::put(i, i)).await.unwrap();
    }
    assert_eq!(lag(), 5.0, "five batches unread");

    for _ in 0..5 {
        feed.recv().await.unwrap();
    }
    engine.submit(StateEvent::put(9, 9)).await.unwrap();
    assert_eq!(lag(), 1.0, "caught up but for the batch just published");

    drop(feed);
    engine.submit(StateEvent::put(10, 10)).await.unwrap();
    assert_eq!(lag(), 0.0, "no subscribers, no lag");
    engine.shutdown().await.unwrap();
}
