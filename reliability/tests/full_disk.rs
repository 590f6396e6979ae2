//! A real full disk: the engine's directory is a tmpfs of 8 MiB, filled
//! by a pipelined writer until a journal write fails. The failed batch
//! must be refused with `AckError::Journal` of kind `StorageFull`, nothing
//! refused may be acked, the published state must stop at the last ack,
//! and after the tmpfs is remounted larger, a reopen must hold every
//! acked event and none of the refused ones.
//!
//! The filling runs in a child process (this test, run again with
//! [`CHILD_ENV`] set): after a real I/O error sled 0.34's last flush on
//! close can wait forever, so the engine leaves it on a thread of its
//! own and the directory stays locked until the process exits. The child
//! reports each outcome on stdout; the parent remounts and reopens.
//!
//! Mounting needs root (or CAP_SYS_ADMIN) on Linux; where it is not
//! allowed the test says why and passes without checking anything.

#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;

use solostate::{AckError, CheckpointPolicy, Durability, Engine, ShutdownError, StateEvent};
use solostate_reliability::workload::runtime;

type Ev = StateEvent<u64, String>;

/// A tmpfs mounted for the test's life, unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Result<Self, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Tmpfs(dir))
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remounting the tmpfs larger failed");
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        // Best effort: a leftover mount under /tmp is harmless.
        let _ = Command::new("umount").arg(self.0).status();
    }
}

async fn open(dir: &Path) -> Engine<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema("full-disk-v1")
        .durability(Durability::Always)
        .checkpoints(CheckpointPolicy::never())
        .journal_cache_bytes(1 << 20)
        .max_batch(32)
        .open()
        .await
        .expect("open the engine")
}

/// Set in the child: the directory to fill.
const CHILD_ENV: &str = "SOLOSTATE_FULL_DISK_CHILD";
const TEST: &str = "full_disk_refuses_the_failed_batch_and_a_reopen_keeps_every_ack";

/// The child: fills `dir`, printing `ACK key seq` and `REFUSED key` for
/// each event, checking the refusals and the shutdown error as it goes.
async fn fill(dir: &Path) {
    let engine = open(dir).await;
    let value = "x".repeat(2048);
    let mut in_flight = std::collections::VecDeque::new();
    let mut last_acked = 0;
    let mut refused = 0;
    let mut report = |key: u64, outcome: Result<solostate::Ack, AckError<_>>| match outcome {
        Ok(ack) => {
            assert_eq!(refused, 0, "key {key} acked after a refusal");
            last_acked = ack.seq;
            println!("ACK {key} {}", ack.seq);
        }
        Err(AckError::Journal { message, io }) => {
            assert_eq!(io, Some(ErrorKind::StorageFull), "{message}");
            assert!(message.contains("seqs "), "{message}");
            assert!(message.contains(&dir.display().to_string()), "{message}");
            refused += 1;
            println!("REFUSED {key}");
        }
        Err(other) => panic!("key {key}: {other}, not a journal error"),
    };
    // 8 MiB holds a few thousand 2 KiB values; the bound is never reached.
    for key in 0..100_000u64 {
        let Ok(pending) = engine.send(Ev::put(key, value.clone())).await else {
            break; // the full disk stopped the engine
        };
        in_flight.push_back((key, pending));
        if in_flight.len() >= 64 {
            let (key, pending) = in_flight.pop_front().unwrap();
            report(key, pending.await);
        }
    }
    for (key, pending) in in_flight {
        report(key, pending.await);
    }
    assert!(refused > 0, "the disk never filled");
    assert_eq!(
        engine.reader().seq(),
        last_acked,
        "published past the last ack"
    );
    match engine.shutdown().await {
        Err(ShutdownError::Journal { io, .. }) => assert_eq!(io, Some(ErrorKind::StorageFull)),
        other => panic!("shutdown gave {other:?}, not the full disk"),
    }
    println!("DONE");
}

#[test]
fn full_disk_refuses_the_failed_batch_and_a_reopen_keeps_every_ack() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let runtime = runtime().unwrap();
        runtime.block_on(fill(Path::new(&dir)));
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let tmpfs = match Tmpfs::mount(root.path(), "8m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let dir = root.path().join("engine");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &dir)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("DONE"),
        "the child failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut acked = HashMap::new();
    let mut refused = Vec::new();
    for line in stdout.lines() {
        // libtest prints "test NAME ... " before the first line of output.
        let words: Vec<&str> = line
            .split_whitespace()
            .skip_while(|word| !matches!(*word, "ACK" | "REFUSED"))
            .collect();
        match words.as_slice() {
            ["ACK", key, seq] => {
                acked.insert(key.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap());
            }
            ["REFUSED", key] => refused.push(key.parse::<u64>().unwrap()),
            _ => {}
        }
    }
    let last = acked.values().copied().max().unwrap_or(0);
    assert_eq!(acked.len() as u64, last, "acked seqs are dense");
    eprintln!(
        "full disk after {} acked events; {} refused",
        acked.len(),
        refused.len()
    );

    tmpfs.grow("64m");
    let runtime = runtime().unwrap();
    runtime.block_on(async {
        let engine = open(&dir).await;
        let snapshot = engine.reader().snapshot();
        assert_eq!(snapshot.seq(), last, "reopened at another seq");
        for key in acked.keys() {
            assert!(snapshot.get(key).is_some(), "acked key {key} lost");
        }
        for key in &refused {
            assert!(snapshot.get(key).is_none(), "refused key {key} came back");
        }
        engine.shutdown().await.unwrap();
    });
}
