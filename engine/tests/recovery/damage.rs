//! Damaging an engine's directory the ways the recovery tests need: the
//! journal's sled log, one record, one checkpoint file.

use std::path::{Path, PathBuf};

use solostate::JournalBackend;
use solostate::persistence::checkpoint::Checkpoints;
use solostate::persistence::journal::Journal;

use crate::{Ev, SCHEMA, value};

pub use crate::common::copy_dir;

/// The entries of the engine's directory whose names start with `prefix`.
pub fn entries_named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
        })
        .collect();
    found.sort();
    found
}

/// Writes, with the persistence crate directly (the engine's own on-disk
/// layout), a journal of several of sled's segments under `dir/journal`:
/// batch `i` holds `i % 7 + 1` events of [`write`]'s kind, with 200-byte
/// values. Returns the last seq.
pub fn write_big_journal(dir: &Path) -> u64 {
    // On sled: the fixtures below damage sled's files.
    let journal =
        Journal::open_with(&dir.join("journal"), SCHEMA, 1 << 20, JournalBackend::Sled).unwrap();
    let mut seq = 1;
    for i in 0..3_000u64 {
        let events: Vec<Ev> = (seq..seq + i % 7 + 1)
            .map(|seq| Ev::put(seq, format!("{}{}", value(seq), "x".repeat(200))))
            .collect();
        journal.append(seq, &events).unwrap();
        seq += events.len() as u64;
        if i % 50 == 0 {
            journal.flush().unwrap();
        }
    }
    journal.flush().unwrap();
    seq - 1
}

/// Whether sled itself panics opening the database in `dir`.
pub fn sled_panics_on(dir: &Path) -> bool {
    std::panic::catch_unwind(|| {
        let _ = sled::Config::new()
            .path(dir)
            .cache_capacity(1 << 20)
            .flush_every_ms(None)
            .open();
    })
    .is_err()
}

/// Zeroes 64 KiB of the sled log `journal/db` at `at`.
pub fn zero_at(journal: &Path, at: usize) {
    let db = journal.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    let end = (at + (64 << 10)).min(bytes.len());
    bytes[at..end].fill(0);
    std::fs::write(&db, &bytes).unwrap();
}

/// Damages the journal in `journal` so that sled panics in its own
/// recovery when opening it ("tried to serialize Uninitialized", what the
/// issue saw after a power cut): zeroes 64 KiB of its log, at the first
/// offset tried (on a scratch copy) where sled panics. Panics if there is
/// none: then the fixture, not the engine, has stopped working.
pub fn make_sled_panic(journal: &Path) {
    let scratch = journal.with_extension("scratch");
    let len = std::fs::metadata(journal.join("db")).unwrap().len() as usize;
    for eighths in [4, 3, 5, 2, 6] {
        let at = len * eighths / 8;
        let _ = std::fs::remove_dir_all(&scratch);
        copy_dir(journal, &scratch);
        zero_at(&scratch, at);
        if sled_panics_on(&scratch) {
            std::fs::remove_dir_all(&scratch).unwrap();
            zero_at(journal, at);
            return;
        }
    }
    panic!(
        "the fixture no longer makes sled panic on {}",
        journal.display()
    );
}

/// Flips a payload bit in the journal record whose key is `seq`.
pub fn damage_record(dir: &Path, seq: u64) {
    let db = sled::open(dir.join("journal")).unwrap();
    let records = db.open_tree("journal").unwrap();
    let mut record = records.get(seq.to_be_bytes()).unwrap().unwrap().to_vec();
    let last = record.len() - 1;
    record[last] ^= 0x10;
    records.insert(seq.to_be_bytes(), record).unwrap();
    db.flush().unwrap();
}

/// Flips a byte in the middle of the checkpoint file at `seq`.
pub fn damage_checkpoint(dir: &Path, seq: u64) {
    let path = Checkpoints::open(&dir.join("checkpoints"), SCHEMA)
        .unwrap()
        .path_of(seq);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}
