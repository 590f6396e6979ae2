//! Hostile journals: random damage to the records of a real sled journal,
//! through sled's API (every kind of record damage, precisely placed) and
//! to sled's files on disk (what a bad disk or a stray write does). Every
//! outcome must be a typed error or a clean read, a torn tail repaired
//! included; never a panic, and never an event other than the one written
//! at its seq.

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::journal::Step;

const CACHE: u64 = 1 << 20;
const SCHEMA: &str = "bad-input";
/// Batches written: batch `i` (from 0) holds `i % 3 + 1` events.
const BATCHES: u64 = 12;

/// The event written at `seq`: a function of the seq, so a read can be
/// checked without a model.
fn event(seq: u64) -> String {
    format!("event {seq} {}", "x".repeat((seq % 7) as usize))
}

/// Writes the journal; returns the first seq of every batch and the last
/// seq.
fn write(journal: &Journal) -> (Vec<u64>, u64) {
    let mut firsts = Vec::new();
    let mut seq = 1;
    for batch in 0..BATCHES {
        let len = batch % 3 + 1;
        let events: Vec<String> = (seq..seq + len).map(event).collect();
        journal.append(seq, &events).unwrap();
        firsts.push(seq);
        seq += len;
    }
    journal.flush().unwrap();
    (firsts, seq - 1)
}

/// Reads the whole timeline after a repair of the tail, checking every
/// event against what was written: the read is a prefix of seqs from 1,
/// then possibly one typed error. Returns the last seq read.
fn read_checked(journal: &Journal) -> Result<u64, TestCaseError> {
    let _ = journal.repair_tail(); // a typed result either way
    let mut expected = 1;
    for entry in journal.read_from::<String>(1) {
        let Ok(entry) = entry else {
            break; // a typed error ends the read
        };
        prop_assert_eq!(entry.seq, expected, "seqs are dense from 1");
        match &entry.step {
            Step::Event(found) => prop_assert_eq!(found, &event(entry.seq)),
            Step::Rollback { .. } => prop_assert!(false, "no rollback was written"),
        }
        expected += 1;
    }
    Ok(expected - 1)
}

#[derive(Debug, Clone)]
enum Damage {
    /// Flip bit `bit` (modulo the record's bits).
    Flip { bit: usize },
    /// Keep only the first `len` bytes (modulo the record's length).
    Truncate { len: usize },
    /// Replace the record with these bytes.
    Replace(Vec<u8>),
    /// Remove the record.
    Remove,
    /// Insert a record under a key that is not 8 bytes.
    BadKey(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(|bit| Damage::Flip { bit }),
        any::<usize>().prop_map(|len| Damage::Truncate { len }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Damage::Replace),
        Just(Damage::Remove),
        proptest::collection::vec(any::<u8>(), 0..12)
            .prop_filter("not a seq", |key| key.len() != 8)
            .prop_map(Damage::BadKey),
    ]
}

fn damaged_through_sled(dir: &Path, at: prop::sample::Index, damage: &Damage) -> (u64, u64) {
    let journal = Journal::open(dir, SCHEMA, CACHE).unwrap();
    let (firsts, last) = write(&journal);
    let key = firsts[at.index(firsts.len())].to_be_bytes();
    let record = journal
        .raw(Tree::Records)
        .get(key)
        .unwrap()
        .unwrap()
        .to_vec();
    match damage {
        Damage::Flip { bit } => {
            let mut record = record.clone();
            let bit = bit % (record.len() * 8);
            record[bit / 8] ^= 1 << (bit % 8);
            journal.raw(Tree::Records).insert(key, record).unwrap();
        }
        Damage::Truncate { len } => {
            journal
                .raw(Tree::Records)
                .insert(key, &record[..len % record.len()])
                .unwrap();
        }
        Damage::Replace(bytes) => {
            journal
                .raw(Tree::Records)
                .insert(key, bytes.as_slice())
                .unwrap();
        }
        Damage::Remove => {
            journal.raw(Tree::Records).remove(key).unwrap();
        }
        Damage::BadKey(bad) => {
            journal
                .raw(Tree::Records)
                .insert(bad.as_slice(), record)
                .unwrap();
        }
    }
    journal.flush().unwrap();
    (firsts[at.index(firsts.len())], last)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48)
    ))]

    /// Damage through sled's API, read back after a reopen: the events
    /// before the damaged record always read back, nothing wrong is ever
    /// read, and the damaged record is either reported (typed) or, as the
    /// last record, repaired away as a torn tail.
    #[test]
    fn damaged_records_give_a_typed_error_or_a_clean_prefix(
        at in any::<prop::sample::Index>(),
        damage in damage(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (damaged, last) = damaged_through_sled(dir.path(), at, &damage);
        let journal = Journal::open(dir.path(), SCHEMA, CACHE).unwrap();
        let read = read_checked(&journal)?;
        prop_assert!(read >= damaged - 1, "read stopped at {} before the damage at {}", read, damaged);
        prop_assert!(read <= last);
        let _ = journal.last_seq::<String>();
        let _ = journal.prune_through(read);
    }

    /// Damage to sled's own files on disk: a byte of the database file
    /// overwritten, or the file cut short. Opening may fail (typed), and
    /// sled may lose records past the damage; whatever reads back is what
    /// was written.
    #[test]
    fn damaged_sled_files_give_a_typed_error_or_a_clean_prefix(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        truncate in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = Journal::open_with(dir.path(), SCHEMA, CACHE, Backend::Sled).unwrap();
            write(&journal);
        }
        let db = dir.path().join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let at = at.index(bytes.len());
        if truncate {
            bytes.truncate(at);
        } else {
            bytes[at] = byte;
        }
        std::fs::write(&db, &bytes).unwrap();
        if let Ok(journal) = Journal::open(dir.path(), SCHEMA, CACHE) {
            read_checked(&journal)?;
        }
    }
}
