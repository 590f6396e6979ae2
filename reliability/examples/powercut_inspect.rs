//! Inspects an engine directory that the power-cut harness dumped
//! (`SOLOSTATE_POWERCUT_DUMP`): the checkpoints, the journal's first and
//! last seqs, its files (on the segment log: each segment's length; on
//! sled: sled's segment headers, is the unstable tail contiguous?),
//! the live timeline as runs of seqs by writer (each event's
//! writer and index read from its values' headers), the rollback markers
//! and the archive, then what a reopen recovers and its `Recovery`.
//!
//! Run: `cargo run -p solostate-reliability --example powercut_inspect --
//! /tmp/pcdump/cycle-2/engine` (it works on a copy; the dump is left as
//! it is).

use std::path::PathBuf;

use solostate::StateEvent;
use solostate::persistence::checkpoint::Checkpoints;
use solostate::persistence::journal::{Backend, Entry, JournalError, Step};
use solostate::persistence::replay::Replay;
use solostate_reliability::powercut::workload::{PcEvent, SCHEMA, index_of_value, writer_of};

fn main() -> Result<(), String> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: powercut_inspect ENGINE_DIR")?
        .into();
    let copy = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = copy.path().join("engine");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dir)
        .arg(&root)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cp -a {}: {status}", dir.display()));
    }
    match Checkpoints::open(&root.join("checkpoints"), SCHEMA) {
        Ok(store) => println!(
            "checkpoints: {:?}",
            store.list().map_err(|e| e.to_string())?
        ),
        Err(e) => println!("checkpoints: {e}"),
    }
    let journal = root.join("journal");
    match Backend::detect(&journal) {
        Some(Backend::Sled) => sled_segments(&journal)?,
        _ => log_segments(&journal)?,
    }
    let replay = Replay::<PcEvent>::open(&root, SCHEMA).map_err(|e| e.to_string())?;
    let first = replay.journal().first_seq().map_err(|e| e.to_string())?;
    let last = replay.last_seq().map_err(|e| e.to_string())?;
    println!("journal: first seq {first}, last seq {last}");
    println!("live timeline:");
    print_runs(replay.steps(first..));
    println!("archive:");
    print_runs(replay.archived());
    drop(replay);
    // What an engine makes of it (on the copy: an open may repair it).
    solostate_reliability::workload::runtime()?.block_on(async {
        match solostate::Engine::<PcEvent>::builder()
            .path(&root)
            .schema(SCHEMA)
            .open()
            .await
        {
            Ok(engine) => {
                println!("reopened at seq {}", engine.reader().seq());
                println!("recovery: {:?}", engine.recovery());
                engine.shutdown().await.map_err(|e| e.to_string())
            }
            Err(e) => {
                println!("reopen failed: {e}");
                Ok(())
            }
        }
    })
}

/// Prints the segment log's files and their lengths, in name order (the
/// log's order).
fn log_segments(journal: &std::path::Path) -> Result<(), String> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(journal)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|entry| {
            let len = entry.metadata().map_or(0, |meta| meta.len());
            (entry.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    files.sort();
    println!("segment log files: {files:?}");
    Ok(())
}

/// Prints sled's segment headers (sled 0.34.7, `pagecache/logger.rs`: a
/// crc32 xor `!0`, then the segment's lsn and the highest stable lsn it
/// saw, each a little-endian i64 xor `i64::MAX`): the newest few by lsn,
/// and every lsn missing between the lowest segment of sled's "unstable
/// tail" (the one holding the highest `max_stable_lsn`) and the newest.
/// sled's recovery expects that tail to be contiguous.
fn sled_segments(journal: &std::path::Path) -> Result<(), String> {
    // sled's conf is text followed by a binary crc.
    let conf = std::fs::read(journal.join("conf")).map_err(|e| e.to_string())?;
    let conf = String::from_utf8_lossy(&conf);
    let size: i64 = conf
        .lines()
        .find_map(|l| l.strip_prefix("segment_size: "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("conf names no segment_size")?;
    let db = std::fs::read(journal.join("db")).map_err(|e| e.to_string())?;
    let word = |b: &[u8]| i64::from_le_bytes(b.try_into().expect("8 bytes")) ^ i64::MAX;
    let mut by_lsn = std::collections::BTreeMap::new();
    let mut max_stable = 0;
    for (index, segment) in db.chunks_exact(size as usize).enumerate() {
        let header = &segment[..20];
        let crc = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) ^ u32::MAX;
        if crc != crc32fast::hash(&header[4..20]) {
            continue; // never written, or zeroed
        }
        let (lsn, stable) = (word(&header[4..12]), word(&header[12..20]));
        max_stable = max_stable.max(stable);
        by_lsn.insert(lsn, (index, stable));
    }
    println!(
        "sled segments ({size} bytes each): {} with a valid header",
        by_lsn.len()
    );
    for (lsn, (index, stable)) in by_lsn.iter().rev().take(6).rev() {
        println!(
            "  lsn {lsn:#x} (segment {}) at file offset {}: max_stable_lsn {stable:#x}",
            lsn / size,
            *index as i64 * size
        );
    }
    let newest = by_lsn.keys().next_back().copied().unwrap_or(0);
    let missing: Vec<String> = (max_stable / size..=newest / size)
        .map(|n| n * size)
        .filter(|lsn| !by_lsn.contains_key(lsn))
        .map(|lsn| format!("{lsn:#x}"))
        .collect();
    println!(
        "  highest max_stable_lsn {max_stable:#x}; segments missing from there to the newest: \
         {missing:?}"
    );
    Ok(())
}

/// An event's writer and index, from its first put's value header.
fn who(event: &PcEvent) -> (Option<u32>, Option<u64>) {
    fn index(event: &PcEvent) -> Option<u64> {
        match event {
            StateEvent::Put { value, .. } => index_of_value(value),
            StateEvent::Batch(events) => events.iter().find_map(index),
            _ => None,
        }
    }
    (writer_of(event), index(event))
}

/// Prints the steps as runs of consecutive seqs, one line per marker, and
/// each writer's first and last index in the run.
fn print_runs(steps: impl Iterator<Item = Result<Entry<PcEvent>, JournalError>>) {
    let mut run: Option<(u64, u64)> = None;
    let mut by_writer: std::collections::BTreeMap<u32, (u64, u64)> = Default::default();
    let flush = |run: &mut Option<(u64, u64)>,
                 by: &mut std::collections::BTreeMap<u32, (u64, u64)>| {
        if let Some((a, b)) = run.take() {
            println!(
                "  events {a}..={b} ({} seqs), writers' indexes: {by:?}",
                b - a + 1
            );
        }
        by.clear();
    };
    for entry in steps {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                flush(&mut run, &mut by_writer);
                println!("  error: {e}");
                return;
            }
        };
        match &entry.step {
            Step::Rollback { target } => {
                flush(&mut run, &mut by_writer);
                println!("  marker at {} -> {target}", entry.seq);
            }
            Step::Event(event) => {
                match run {
                    Some((_, b)) if b + 1 == entry.seq => run = Some((run.unwrap().0, entry.seq)),
                    _ => {
                        flush(&mut run, &mut by_writer);
                        run = Some((entry.seq, entry.seq));
                    }
                }
                if let (Some(w), Some(i)) = who(event) {
                    let e = by_writer.entry(w).or_insert((i, i));
                    e.0 = e.0.min(i);
                    e.1 = e.1.max(i);
                }
            }
        }
    }
    flush(&mut run, &mut by_writer);
}
