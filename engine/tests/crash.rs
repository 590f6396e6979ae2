//! Crash test: a child process writes with `Durability::Always` and prints
//! every acked seq; the parent SIGKILLs it at a random moment, reopens the
//! journal, and checks that every acked seq is present and that the state
//! equals the replay of a prefix of the events. The journal directory is
//! kept across cycles, so each cycle also recovers what the earlier kills
//! left. The engine checkpoints every 1,500 events, so kills also land in
//! the middle of checkpoint writes. Cycles alternate the store the child
//! writes with (persistent, versioned) and the one the parent reopens
//! with, so each store recovers what the other wrote.
//!
//! Short form (CI): 30 cycles. Long form:
//! `SOLOSTATE_CRASH_CYCLES=1000 cargo test -p solostate --test crash --release`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use solostate::{CheckpointPolicy, Durability, Engine, StateEvent, StoreKind};

type Ev = StateEvent<u64, u64>;

/// Set in the child: the journal directory to write to.
const CHILD_ENV: &str = "SOLOSTATE_CRASH_CHILD";
/// Set in the child when it writes with the versioned store.
const VERSIONED_ENV: &str = "SOLOSTATE_CRASH_VERSIONED";
/// Keys the child writes: event with seq `s` puts `s` at key `s % KEYS`.
const KEYS: u64 = 97;

async fn open(dir: &Path, store: StoreKind) -> Engine<Ev> {
    Engine::<Ev>::builder()
        .store(store)
        .path(dir)
        .schema("crash-test-v1")
        .durability(Durability::Always)
        .journal_cache_bytes(4 << 20)
        // Frequent checkpoints, so kills also land mid-checkpoint and
        // recovery opens from checkpoints plus a journal tail.
        .checkpoints(CheckpointPolicy::default().every_events(1_500).keep(2))
        .open()
        .await
        .expect("open the journal")
}

/// The child: writes forever, pipelined, printing each acked seq.
async fn child(dir: &Path, store: StoreKind) {
    let engine = open(dir, store).await;
    let mut next = engine.reader().seq() + 1;
    let mut in_flight = std::collections::VecDeque::new();
    let mut out = std::io::stdout().lock();
    loop {
        let pending = engine.send(Ev::put(next % KEYS, next)).await.expect("send");
        in_flight.push_back((next, pending));
        next += 1;
        if in_flight.len() >= 32 {
            let (expected, pending) = in_flight.pop_front().expect("non-empty");
            let ack = pending.await.expect("a put is never rejected");
            assert_eq!(ack.seq, expected, "a single writer's seqs are predictable");
            writeln!(out, "ACK {}", ack.seq).expect("stdout");
            out.flush().expect("stdout");
        }
    }
}

/// A small deterministic generator, so a failing cycle can be rerun.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn acked_events_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let store = if std::env::var_os(VERSIONED_ENV).is_some() {
            StoreKind::Versioned
        } else {
            StoreKind::Persistent
        };
        runtime.block_on(child(Path::new(&dir), store));
        return;
    }
    let cycles: u64 = std::env::var("SOLOSTATE_CRASH_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut random = 0x2545_F491_4F6C_DD1D_u64;
    let mut total_acked = 0u64;
    for cycle in 0..cycles {
        let (writer, reopener) = if cycle % 2 == 0 {
            (StoreKind::Versioned, StoreKind::Persistent)
        } else {
            (StoreKind::Persistent, StoreKind::Versioned)
        };
        let mut command = Command::new(std::env::current_exe().unwrap());
        if writer == StoreKind::Versioned {
            command.env(VERSIONED_ENV, "1");
        }
        let mut child = command
            .args([
                "--exact",
                "acked_events_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line.strip_prefix("ACK ") {
                    acked.push(seq.trim().parse::<u64>().expect("a seq"));
                }
            }
            acked
        });
        // Kill somewhere between startup and well into the writing.
        let delay = 20 + next_random(&mut random) % 180;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        let acked = reader.join().unwrap();
        total_acked += acked.len() as u64;

        let max_acked = acked.iter().copied().max().unwrap_or(0);
        runtime.block_on(async {
            let engine = open(dir.path(), reopener).await;
            let snapshot = engine.reader().snapshot();
            let recovered = snapshot.seq();
            assert!(
                recovered >= max_acked,
                "cycle {cycle}: acked seq {max_acked} lost, recovered only up to {recovered}"
            );
            // The state must be exactly the replay of events 1..=recovered.
            let mut model = std::collections::HashMap::new();
            for seq in 1..=recovered {
                model.insert(seq % KEYS, seq);
            }
            let live: std::collections::HashMap<u64, u64> =
                snapshot.view().iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(live, model, "cycle {cycle}: state is not a prefix replay");
            engine.shutdown().await.unwrap();
        });
    }
    assert!(
        total_acked > 0,
        "the children acked nothing; the test proved nothing"
    );
    eprintln!("crash test: {cycles} kill cycles, {total_acked} acked events, none lost");
}
