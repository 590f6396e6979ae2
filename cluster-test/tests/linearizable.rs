//! Linearizability: clients run a compare-and-swap register workload
//! (linearizable reads, puts, compare-and-swaps on a few keys) through all
//! three node processes, while the leader is SIGKILLed and restarted and
//! then cut off by the proxies and healed. The history (call and return
//! times, outputs, and "unknown" for every call whose outcome the client
//! never learned) is checked with this crate's Porcupine-style checker.
//!
//! Short form: one run of about 6 s. Long form:
//! `SOLOSTATE_LINEARIZABLE_ROUNDS=20`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use solostate_cluster_test::cluster::{Cluster, ClusterClient, Written};
use solostate_cluster_test::linearizability::{Limits, Operation, Verdict, check_kv};
use solostate_cluster_test::model::{KvInput, KvOutput};
use solostate_cluster_test::proxy::LinkMode;
use tokio::sync::watch;

type Op = Operation<KvInput<String, u64>, KvOutput<u64>>;

const KEYS: u64 = 3;
const CLIENTS: u64 = 4;

/// A small xorshift: the workload needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn client_loop(
    client: ClusterClient,
    id: u64,
    origin: Instant,
    stop: watch::Receiver<bool>,
) -> Vec<Op> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0xff51_afd7_ed55_8ccd));
    let nanos = |at: Instant| (at - origin).as_nanos() as u64;
    let mut history = Vec::new();
    while !*stop.borrow() {
        let node = 1 + rng.below(3);
        let key = format!("r{}", rng.below(KEYS));
        let call = Instant::now();
        let choice = rng.below(10);
        if choice < 4 {
            let read = client.get(node, &key, true).await;
            let ret = Instant::now();
            // A read that was not served had no effect: leave it out.
            if let Ok(value) = read {
                history.push(Operation::returned(
                    id,
                    KvInput::Read { key },
                    nanos(call),
                    nanos(ret),
                    KvOutput::Value(value),
                ));
            }
            continue;
        }
        let value = rng.below(5);
        let (input, outcome) = if choice < 7 {
            let expected =
                [None, Some(0), Some(1), Some(2), Some(3), Some(4)][rng.below(6) as usize];
            let outcome = client.cas(node, &key, expected, Some(value)).await;
            (
                KvInput::CompareAndSwap {
                    key,
                    expected,
                    new: Some(value),
                },
                outcome,
            )
        } else {
            let outcome = client.put(node, &key, value).await;
            (KvInput::Put { key, value }, outcome)
        };
        let ret = Instant::now();
        match outcome {
            Written::Acked { .. } => history.push(Operation::returned(
                id,
                input,
                nanos(call),
                nanos(ret),
                KvOutput::Ok,
            )),
            Written::Rejected => history.push(Operation::returned(
                id,
                input,
                nanos(call),
                nanos(ret),
                KvOutput::Mismatch,
            )),
            // Not sent: it cannot have taken effect.
            Written::Refused => {}
            Written::Unknown => history.push(Operation::unknown(id, input, nanos(call))),
        }
    }
    history
}

fn rounds() -> u64 {
    std::env::var("SOLOSTATE_LINEARIZABLE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cas_register_history_across_failover_and_partition_is_linearizable() {
    for round in 0..rounds() {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster =
            Cluster::start(env!("CARGO_BIN_EXE_cluster-node").as_ref(), dir.path(), 3).await;
        let origin = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| tokio::spawn(client_loop(cluster.client(), id, origin, stopped.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let first = cluster.wait_leader(&[]).await;
        cluster.kill(first);
        cluster.wait_leader(&[first]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.restart(first).await;
        let second = cluster.wait_leader(&[]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster
            .network()
            .isolate(second, LinkMode::Blackhole)
            .unwrap();
        cluster.wait_leader(&[second]).await;
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        cluster.network().heal();
        cluster.wait_leader(&[]).await;
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        stop.send_replace(true);
        let mut history = Vec::new();
        for client in clients {
            history.extend(Arc::new(client.await.unwrap()).iter().cloned());
        }
        let returned = history.iter().filter(|op| op.ret().is_some()).count();
        let unknown = history.len() - returned;
        let verdict = check_kv(&history, &Limits::default()).unwrap();
        println!(
            "round {round}: {} operations ({returned} returned, {unknown} unknown), leaders {first} killed then {second} cut off: {}",
            history.len(),
            if verdict.is_linearizable() {
                "linearizable"
            } else {
                "NOT linearizable"
            }
        );
        assert!(
            returned > 20,
            "too few operations completed to mean anything: {returned}"
        );
        match verdict {
            Verdict::Linearizable => {}
            other => panic!("round {round}: {other:?}"),
        }
    }
}
