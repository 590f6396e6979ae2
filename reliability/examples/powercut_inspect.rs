//! Inspects an engine directory that the power-cut harness dumped
//! (`SOLOSTATE_POWERCUT_DUMP`): the checkpoints, the journal's first and
//! last seqs, the live timeline as runs of seqs by writer (each event's
//! writer and index read from its values' headers), the rollback markers
//! and the archive, then what a reopen recovers and its `Recovery`.
//!
//! Run: `cargo run -p solostate-reliability --example powercut_inspect --
//! /tmp/pcdump/cycle-2/engine` (it works on a copy; the dump is left as
//! it is).

use std::path::PathBuf;

use solostate::StateEvent;
use solostate::persistence::checkpoint::Checkpoints;
use solostate::persistence::journal::{Entry, JournalError, Step};
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
