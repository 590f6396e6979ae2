//! [`Writers`]: client tasks that write unique keys through the live nodes
//! while a test kills, pauses and partitions them, and remember how every
//! write ended.
//!
//! Every key is written once (`{prefix}{client}-{n}` = `n`), so "every
//! acknowledged write survived" is a plain set check on each node's state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::cluster::{ClusterClient, Written};

/// One write and how it ended.
#[derive(Debug, Clone)]
pub struct Record {
    /// The key (unique).
    pub key: String,
    /// Its value.
    pub value: u64,
    /// The node it was sent to.
    pub via: u64,
    /// How it ended.
    pub outcome: Written,
    /// When it was sent.
    pub sent: Instant,
    /// When the answer came.
    pub at: Instant,
}

/// Client tasks writing through whichever nodes [`Writers::set_targets`]
/// last named.
pub struct Writers {
    targets: Arc<Mutex<Vec<u64>>>,
    /// When each acknowledged write was sent and answered, as they come.
    acks: Arc<Mutex<Vec<(Instant, Instant)>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<Record>>>,
}

impl Writers {
    /// Starts `clients` tasks writing through `targets` in turn, keys
    /// `{prefix}{client}-{n}` (give each `Writers` its own prefix).
    pub fn start(client: &ClusterClient, prefix: &str, clients: u64, targets: Vec<u64>) -> Writers {
        let targets = Arc::new(Mutex::new(targets));
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|c| {
                let prefix = prefix.to_owned();
                let (client, targets, stop, acks) = (
                    client.clone(),
                    Arc::clone(&targets),
                    Arc::clone(&stop),
                    Arc::clone(&acks),
                );
                tokio::spawn(async move {
                    let mut records = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let via = {
                            let targets = targets.lock().expect("targets lock");
                            targets[(n + c) as usize % targets.len()]
                        };
                        let key = format!("{prefix}{c}-{n}");
                        let sent = Instant::now();
                        let outcome = client.put(via, &key, n).await;
                        let at = Instant::now();
                        if matches!(outcome, Written::Acked { .. }) {
                            acks.lock().expect("acks lock").push((sent, at));
                        }
                        records.push(Record {
                            key,
                            value: n,
                            via,
                            outcome,
                            sent,
                            at,
                        });
                        n += 1;
                    }
                    records
                })
            })
            .collect();
        Writers {
            targets,
            acks,
            stop,
            tasks,
        }
    }

    /// Sends the following writes only through `targets`.
    pub fn set_targets(&self, targets: Vec<u64>) {
        assert!(!targets.is_empty());
        *self.targets.lock().expect("targets lock") = targets;
    }

    /// Waits until a write sent after `cut` is acknowledged, and returns
    /// when the first such ack came; `None` if none within `patience`.
    /// (A write sent before the cut may be acked just after it by the old
    /// leader: that says nothing about the new one.)
    pub async fn first_ack_after(&self, cut: Instant, patience: Duration) -> Option<Instant> {
        let deadline = Instant::now() + patience;
        loop {
            let first = self
                .acks
                .lock()
                .expect("acks lock")
                .iter()
                .filter(|(sent, _)| *sent > cut)
                .map(|(_, at)| *at)
                .min();
            if first.is_some() || Instant::now() > deadline {
                return first;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the tasks and returns every write.
    pub async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.expect("a writer task panicked"));
        }
        all
    }
}

/// The acknowledged writes of `records`, key to value, and the highest log
/// index among them.
pub fn acked(records: &[Record]) -> (BTreeMap<String, u64>, u64) {
    let mut keys = BTreeMap::new();
    let mut top = 0;
    for record in records {
        if let Written::Acked { index, .. } = record.outcome {
            keys.insert(record.key.clone(), record.value);
            top = top.max(index);
        }
    }
    (keys, top)
}

/// The acknowledged writes missing from (or different in) `state`.
pub fn missing(acked: &BTreeMap<String, u64>, state: &BTreeMap<String, u64>) -> Vec<String> {
    acked
        .iter()
        .filter(|(k, v)| state.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}
