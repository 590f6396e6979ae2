//! Bad events never stop the engine (issue 11, section 4). A durable
//! engine checks each event on the submitter's side, before it is queued:
//! an event that fails to encode, is too large for a journal record, or
//! would not decode back is refused alone, with the event handed back, and
//! the engine keeps serving. Batching never builds a record over the
//! limit, and the `_blocking` calls never queue an event they cannot wait
//! for.

use std::convert::Infallible;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use solostate::{Engine, Event, Refusal, SendError, SubmitError, TrySubmitError, Txn};

/// A `u64` whose `Serialize` fails for 13, as a user type's may.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Amount(u64);

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            Err(serde::ser::Error::custom("13 does not serialize"))
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Doc {
    /// Sets `key` to `amount`.
    Put { key: u64, amount: Amount },
    /// Sets `key` to the body's length: big events, small state.
    Blob { key: u64, body: String },
}

impl Event for Doc {
    type Key = u64;
    type Value = u64;
    type Rejection = Infallible;

    fn apply(&self, tx: &mut Txn<'_, u64, u64>) -> Result<(), Infallible> {
        match self {
            Doc::Put { key, amount } => tx.insert(*key, amount.0),
            Doc::Blob { key, body } => tx.insert(*key, body.len() as u64),
        }
        Ok(())
    }
}

fn put(key: u64, amount: u64) -> Doc {
    Doc::Put {
        key,
        amount: Amount(amount),
    }
}

fn blob(key: u64, len: usize) -> Doc {
    Doc::Blob {
        key,
        body: "x".repeat(len),
    }
}

async fn open_doc(dir: &std::path::Path) -> Engine<Doc> {
    Engine::<Doc>::builder()
        .path(dir)
        .schema("refused-events-doc")
        .journal_cache_bytes(16 << 20)
        // Let the big events go once committed.
        .as_of_window(1)
        .change_capacity(1)
        .open()
        .await
        .unwrap()
}

fn sorted<E: Event<Key = u64, Value = u64>>(engine: &Engine<E>) -> Vec<(u64, u64)> {
    let mut entries: Vec<_> = engine
        .reader()
        .snapshot()
        .view()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    entries.sort_unstable();
    entries
}

#[tokio::test]
async fn encode_failure_rejects_only_that_event() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_doc(dir.path()).await;
    // On this current-thread runtime the owner runs only when the test
    // awaits, so the valid events around the bad one share one batch.
    let first = engine.try_submit(put(1, 10)).unwrap();
    let refused = engine.try_submit(put(2, 13)).unwrap_err();
    let third = engine.try_submit(put(3, 30)).unwrap();
    match refused {
        TrySubmitError::Refused {
            event,
            reason: Refusal::Encode { message },
        } => {
            assert_eq!(event, put(2, 13), "the event is handed back");
            assert!(message.contains("13 does not serialize"), "{message}");
        }
        other => panic!("expected Refused(Encode), got {other:?}"),
    }
    assert_eq!(first.await.unwrap().seq, 1);
    assert_eq!(third.await.unwrap().seq, 2);
    let stats = engine.stats();
    assert_eq!((stats.batches, stats.refused), (1, 1), "{stats:?}");

    // The engine keeps serving, and `submit` refuses the same way.
    match engine.submit(put(4, 13)).await {
        Err(SubmitError::Refused {
            event,
            reason: Refusal::Encode { .. },
        }) => assert_eq!(event, put(4, 13)),
        other => panic!("expected Refused(Encode), got {other:?}"),
    }
    assert_eq!(engine.submit(put(5, 50)).await.unwrap().seq, 3);
    engine.shutdown().await.unwrap();

    let reopened = open_doc(dir.path()).await;
    assert_eq!(reopened.reader().seq(), 3);
    assert_eq!(sorted(&reopened), [(1, 10), (3, 30), (5, 50)]);
    reopened.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_event_is_refused_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_doc(dir.path()).await;
    let size = 300 << 20;
    match engine.submit(blob(1, size)).await {
        Err(SubmitError::Refused {
            event,
            reason: Refusal::TooLarge { size: found, limit },
        }) => {
            assert_eq!(event, blob(1, size), "the event is handed back");
            // The variant index (1 byte), the key (1) and the length (5).
            assert_eq!(found, size + 7);
            assert_eq!(limit, Engine::<Doc>::MAX_EVENT_BYTES);
            assert_eq!(limit, (256 << 20) - 10);
        }
        other => panic!("expected Refused(TooLarge), got {other:?}"),
    }
    assert!(!engine.is_closed());
    assert_eq!(engine.stats().last_seq, 0);
    assert_eq!(engine.submit(put(2, 20)).await.unwrap().seq, 1);
    engine.shutdown().await.unwrap();

    let reopened = open_doc(dir.path()).await;
    assert_eq!(sorted(&reopened), [(2, 20)]);
    reopened.shutdown().await.unwrap();
}

#[tokio::test]
async fn big_events_never_share_an_oversized_record() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_doc(dir.path()).await;
    // Six 50 MiB events queued before the owner runs: one batch by count,
    // 300 MiB of events, over the 256 MiB record limit together.
    let len = 50 << 20;
    let pending: Vec<_> = (0..6)
        .map(|key| engine.try_submit(blob(key, len)).unwrap())
        .collect();
    let small = engine.try_submit(put(6, 60)).unwrap();
    for (i, pending) in pending.into_iter().enumerate() {
        assert_eq!(pending.await.unwrap().seq, i as u64 + 1);
    }
    assert_eq!(small.await.unwrap().seq, 7);
    let stats = engine.stats();
    // A record of several events holds at most 16 MiB of them, so each
    // big event got one of its own, and the small one too.
    assert_eq!((stats.batches, stats.largest_batch), (7, 1), "{stats:?}");
    assert_eq!(engine.submit(put(7, 70)).await.unwrap().seq, 8);
    engine.shutdown().await.unwrap();

    let reopened = open_doc(dir.path()).await;
    assert_eq!(reopened.reader().seq(), 8);
    let mut expected: Vec<_> = (0..6).map(|key| (key, len as u64)).collect();
    expected.extend([(6, 60), (7, 70)]);
    assert_eq!(sorted(&reopened), expected);
    reopened.shutdown().await.unwrap();
}

/// Any serde type as an event that sets key 0 to 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wrapped<T>(T);

impl<T> Event for Wrapped<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Key = u64;
    type Value = u64;
    type Rejection = Infallible;

    fn apply(&self, tx: &mut Txn<'_, u64, u64>) -> Result<(), Infallible> {
        tx.insert(0, 1);
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tagged {
    Put { key: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Key(u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fields {
    key: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Flattened {
    #[serde(flatten)]
    fields: Fields,
}

/// Submits `value` to a fresh durable engine, expects it refused with the
/// event handed back and nothing applied, and then reopens the directory.
async fn refused_then_reopened<T>(value: T) -> Refusal
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Engine::<Wrapped<T>>::builder()
            .path(dir.path())
            .schema("refused-events-wrapped")
            .journal_cache_bytes(4 << 20)
            .open()
    };
    let engine = open().await.unwrap();
    let reason = match engine.submit(Wrapped(value)).await {
        Err(SubmitError::Refused { reason, .. }) => reason,
        Err(other) => panic!("expected Refused, got {other:?}"),
        Ok(ack) => panic!("expected Refused, got an ack at seq {}", ack.seq),
    };
    let stats = engine.stats();
    assert_eq!((stats.last_seq, stats.refused), (0, 1), "{stats:?}");
    assert!(!engine.is_closed());
    engine.shutdown().await.unwrap();
    let reopened = open().await.expect("the directory reopens");
    assert_eq!(reopened.reader().seq(), 0);
    reopened.shutdown().await.unwrap();
    reason
}

#[tokio::test]
async fn events_bincode_cannot_read_back_are_refused() {
    for (what, reason) in [
        ("tag", refused_then_reopened(Tagged::Put { key: 1 }).await),
        ("untagged", refused_then_reopened(Untagged::Key(1)).await),
        (
            "serde_json::Value",
            refused_then_reopened(serde_json::json!({ "key": 1 })).await,
        ),
    ] {
        match reason {
            Refusal::Unreadable { message } => {
                assert!(message.contains("deserialize_any"), "{what}: {message}");
            }
            other => panic!("{what}: expected Unreadable, got {other:?}"),
        }
    }
    // flatten writes a map of unknown length, which bincode cannot encode.
    let flattened = Flattened {
        fields: Fields { key: 1 },
    };
    match refused_then_reopened(flattened).await {
        Refusal::Encode { message } => assert!(message.contains("flatten"), "{message}"),
        other => panic!("flatten: expected Encode, got {other:?}"),
    }
}

#[tokio::test]
async fn in_memory_engines_do_not_check_events() {
    // Nothing is journaled, so nothing needs to decode back.
    let engine = Engine::<Wrapped<Tagged>>::builder().open().await.unwrap();
    let ack = engine
        .submit(Wrapped(Tagged::Put { key: 1 }))
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    engine.shutdown().await.unwrap();
}

#[test]
fn submit_blocking_on_a_runtime_thread_queues_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let engine = open_doc(dir.path()).await;
        match engine.submit_blocking(put(1, 10)) {
            Err(SubmitError::Refused {
                event,
                reason: Refusal::BlockingInRuntime,
            }) => assert_eq!(event, put(1, 10)),
            other => panic!("expected Refused(BlockingInRuntime), got {other:?}"),
        }
        let stats = engine.stats();
        assert_eq!(
            (stats.queue_depth, stats.last_seq, stats.refused),
            (0, 0, 1),
            "{stats:?}"
        );
        // The refused event took no seq: the next one is the first.
        assert_eq!(engine.submit(put(2, 20)).await.unwrap().seq, 1);
        engine.shutdown().await.unwrap();
        assert_eq!(sorted(&open_doc(dir.path()).await), [(2, 20)]);
    });
}

#[test]
fn send_blocking_on_a_runtime_thread_refuses_rather_than_block() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = Engine::<Doc>::builder()
            .channel_capacity(1)
            .open()
            .await
            .unwrap();
        // With room in the queue there is nothing to block on.
        let queued = engine.send_blocking(put(1, 10)).unwrap();
        // Full: blocking here would stop the owner for good.
        match engine.send_blocking(put(2, 20)) {
            Err(SendError::Refused {
                event,
                reason: Refusal::BlockingInRuntime,
            }) => assert_eq!(event, put(2, 20)),
            other => panic!("expected Refused(BlockingInRuntime), got {other:?}"),
        }
        assert_eq!(engine.stats().queue_depth, 1);
        assert_eq!(queued.await.unwrap().seq, 1);
        assert_eq!(engine.submit(put(3, 30)).await.unwrap().seq, 2);
        engine.shutdown().await.unwrap();
    });
}

#[test]
fn blocking_calls_wait_in_place_on_a_multi_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    runtime.block_on(async move {
        let engine = open_doc(&path).await;
        // On a worker thread, then on the runtime's block_on thread.
        let on_worker = engine.clone();
        let seq = tokio::spawn(async move { on_worker.submit_blocking(put(1, 10)).unwrap().seq })
            .await
            .unwrap();
        assert_eq!(seq, 1);
        let pending = engine.send_blocking(put(2, 20)).unwrap();
        assert_eq!(pending.wait_blocking().unwrap().seq, 2);
        // And on one of its blocking-pool threads.
        let on_pool = engine.clone();
        let seq = tokio::task::spawn_blocking(move || on_pool.submit_blocking(put(3, 30)))
            .await
            .unwrap()
            .unwrap()
            .seq;
        assert_eq!(seq, 3);
        assert_eq!(engine.stats().refused, 0);
        engine.shutdown().await.unwrap();
    });
}
