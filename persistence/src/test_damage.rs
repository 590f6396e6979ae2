//! Test fixtures: sled journals damaged on disk the way a power cut can
//! leave them, so that the open paths meet sled's own failures.

use std::path::Path;

use solostate_commands::StateEvent;

use crate::journal::{Backend, Journal};

/// The event type of the fixtures.
pub(crate) type Ev = StateEvent<u64, String>;

/// Writes a journal of `batches` batches (batch `i` holds `i % 7 + 1`
/// puts of 200-byte values: several of sled's 512 KiB segments) under
/// `schema`, flushing every 50 batches, and returns its last seq.
pub(crate) fn write_journal(dir: &Path, schema: &str, batches: u64) -> u64 {
    let journal = Journal::open_with(dir, schema, 1 << 20, Backend::Sled).unwrap();
    let mut seq = 1;
    for i in 0..batches {
        let events: Vec<Ev> = (0..i % 7 + 1)
            .map(|k| Ev::put(seq + k, "x".repeat(200)))
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
pub(crate) fn sled_panics_on(dir: &Path) -> bool {
    std::panic::catch_unwind(|| {
        let _ = sled::Config::new()
            .path(dir)
            .cache_capacity(1 << 20)
            .flush_every_ms(None)
            .open();
    })
    .is_err()
}

/// Copies the directory `from` (files and subdirectories) to `to`.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Zeroes 64 KiB of the sled log `db` in the journal directory `dir`.
fn zero_at(dir: &Path, at: usize) {
    let db = dir.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    let end = (at + (64 << 10)).min(bytes.len());
    bytes[at..end].fill(0);
    std::fs::write(&db, &bytes).unwrap();
}

/// Zeroes 64 KiB of the sled log of the journal in `dir` (the kind of hole
/// an unsynced range leaves after a power cut), at an offset where sled
/// panics in its own recovery ("tried to serialize Uninitialized") when
/// opening it. Offsets are tried on a scratch copy, since an open that
/// does not panic may rewrite sled's files. Panics if no offset works:
/// then the fixture, not the code under test, has stopped working.
pub(crate) fn make_sled_panic(dir: &Path) {
    let scratch = dir.with_extension("scratch");
    let len = std::fs::metadata(dir.join("db")).unwrap().len() as usize;
    for eighths in [4, 3, 5, 2, 6] {
        let at = len * eighths / 8;
        let _ = std::fs::remove_dir_all(&scratch);
        copy_dir(dir, &scratch);
        zero_at(&scratch, at);
        if sled_panics_on(&scratch) {
            std::fs::remove_dir_all(&scratch).unwrap();
            zero_at(dir, at);
            return;
        }
    }
    panic!(
        "the fixture no longer makes sled panic: no zeroed range of {} did",
        dir.display()
    );
}
