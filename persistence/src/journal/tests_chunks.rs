//! Chunked records: round trips, every operation that moves or removes a
//! record, damaged and missing chunks, torn chunked tails, and sled's
//! blob directory under the largest values the journal writes.

use super::*;
use crate::codec::{ChunkHead, ChunkProblem};

const CACHE: u64 = 8 << 20;

fn open(dir: &Path) -> Journal {
    // Chunks are sled's: the segment log stores every record whole.
    Journal::open_with(dir, "strings", CACHE, Backend::Sled).unwrap()
}

/// `count` events of `len` bytes each, starting with `tag`.
fn events(tag: &str, count: usize, len: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            format!(
                "{tag}{i:06}{}",
                "x".repeat(len.saturating_sub(tag.len() + 6))
            )
        })
        .collect()
}

fn read(journal: &Journal, from: u64) -> Result<Vec<(u64, String)>, JournalError> {
    journal
        .read_from::<String>(from)
        .map(|entry| {
            entry.map(|e| match e.step {
                Step::Event(event) => (e.seq, event),
                Step::Rollback { target } => (e.seq, format!("rollback to {target}")),
            })
        })
        .collect()
}

fn numbered(first: u64, events: &[String]) -> Vec<(u64, String)> {
    (first..).zip(events.iter().cloned()).collect()
}

/// The chunk heads in `tree`, by key.
fn heads(tree: &tests_support::RawTree<'_>) -> Vec<(Vec<u8>, ChunkHead)> {
    tree.entries()
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_vec(), codec::chunk_head(&value).ok()??)))
        .collect()
}

/// Every chunk belongs to a head in the timeline, the archive or the
/// quarantine, and every head has all of its chunks: nothing orphaned,
/// nothing lost. Returns the number of chunks.
fn assert_chunks_accounted_for(journal: &Journal) -> usize {
    let mut expected: Vec<(u64, u32)> = Vec::new();
    for tree in [
        &journal.raw(Tree::Records),
        &journal.raw(Tree::Archive),
        &journal.raw(Tree::Quarantine),
    ] {
        for (_, head) in heads(tree) {
            expected.extend((0..head.chunks).map(|index| (head.id, index)));
        }
    }
    expected.sort_unstable();
    let found: Vec<(u64, u32)> = journal
        .raw(Tree::Chunks)
        .entries()
        .into_iter()
        .map(|(key, _)| {
            (
                u64::from_be_bytes(key[..8].try_into().unwrap()),
                u32::from_be_bytes(key[8..].try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(found, expected, "chunks and heads disagree");
    found.len()
}

/// The chunk keys of the head at `seq` in the timeline.
fn chunk_keys_at(journal: &Journal, seq: u64) -> Vec<sled::IVec> {
    let value = journal
        .raw(Tree::Records)
        .get(seq.to_be_bytes())
        .unwrap()
        .unwrap();
    let keys = journal.chunk_keys(&value).unwrap();
    assert!(!keys.is_empty(), "the record at seq {seq} is not chunked");
    keys
}

#[test]
fn a_chunked_record_round_trips_through_a_reopen_and_small_ones_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let small = events("s", 3, 10);
    let big = events("b", 2000, 64);
    {
        let journal = open(dir.path());
        journal.append(1, &small).unwrap();
        let len = journal.append(4, &big).unwrap();
        assert!(len > 30 * CHUNK_BYTES, "{len}");
        journal.flush().unwrap();
        // The small record is stored exactly as before chunking.
        let stored = journal
            .raw(Tree::Records)
            .get(1u64.to_be_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(stored.as_ref(), codec::encode_batch(&small).unwrap());
        assert_eq!(
            assert_chunks_accounted_for(&journal),
            len.div_ceil(CHUNK_BYTES)
        );
        assert!(
            journal
                .raw(Tree::Chunks)
                .entries()
                .iter()
                .all(|(_, v)| v.len() <= CHUNK_BYTES),
            "a chunk over the limit"
        );
    }
    let journal = open(dir.path());
    let mut all = numbered(1, &small);
    all.extend(numbered(4, &big));
    assert_eq!(read(&journal, 1).unwrap(), all);
    assert_eq!(read(&journal, 1000).unwrap(), all[999..]);
    assert_eq!(journal.last_seq::<String>().unwrap(), 2003);
    assert_eq!(journal.repair_tail().unwrap(), None);
}

#[test]
fn a_record_of_exactly_the_limit_stays_whole_and_one_byte_more_is_chunked() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    // One String event: header 9 + kind 1 + count 1 + length 3 + bytes.
    let fits = vec!["x".repeat(CHUNK_BYTES - 14)];
    assert_eq!(codec::encode_batch(&fits).unwrap().len(), CHUNK_BYTES);
    journal.append(1, &fits).unwrap();
    assert_eq!(assert_chunks_accounted_for(&journal), 0);
    let over = vec!["x".repeat(CHUNK_BYTES - 13)];
    journal.append(2, &over).unwrap();
    assert_eq!(assert_chunks_accounted_for(&journal), 2);
    assert_eq!(
        read(&journal, 1).unwrap(),
        [(1, fits[0].clone()), (2, over[0].clone())]
    );
}

#[test]
fn rollback_before_a_chunked_record_archives_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let first = events("a", 5, 10);
    let big = events("b", 1000, 64);
    journal.append(1, &first).unwrap();
    journal.append(6, &big).unwrap();
    let report = journal.rollback::<String>(5, 1006).unwrap();
    assert_eq!(report.events_archived, 1000);
    let chunks = assert_chunks_accounted_for(&journal);
    assert!(chunks > 10);
    assert_eq!(
        heads(&journal.raw(Tree::Archive)).len(),
        1,
        "the head moved to the archive"
    );
    let archived: Vec<(u64, String)> = journal
        .read_archive::<String>()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.seq, entry.event().unwrap().clone())
        })
        .collect();
    assert_eq!(archived, numbered(6, &big));
    let mut timeline = numbered(1, &first);
    timeline.push((1006, "rollback to 5".into()));
    assert_eq!(read(&journal, 1).unwrap(), timeline);
}

#[test]
fn rollback_into_a_chunked_record_splits_it_and_removes_its_old_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let big = events("b", 1000, 64);
    {
        let journal = open(dir.path());
        journal.append(1, &big).unwrap();
        let old = chunk_keys_at(&journal, 1);
        journal.rollback::<String>(600, 1001).unwrap();
        // Both halves are over the limit, so both are chunked anew.
        assert_eq!(heads(&journal.raw(Tree::Records)).len(), 1);
        assert_eq!(heads(&journal.raw(Tree::Archive)).len(), 1);
        assert_chunks_accounted_for(&journal);
        for key in old {
            assert_eq!(
                journal.raw(Tree::Chunks).get(&key).unwrap(),
                None,
                "an old chunk is left"
            );
        }
    }
    let journal = open(dir.path());
    let mut timeline = numbered(1, &big[..600]);
    timeline.push((1001, "rollback to 600".into()));
    assert_eq!(read(&journal, 1).unwrap(), timeline);
    let archived: Vec<u64> = journal
        .read_archive::<String>()
        .map(|entry| entry.unwrap().seq)
        .collect();
    assert_eq!(archived, (601..=1000).collect::<Vec<_>>());
}

#[test]
fn pruning_a_chunked_record_removes_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let big = events("b", 500, 64);
    journal.append(1, &big).unwrap();
    journal.append(501, &events("c", 500, 64)).unwrap();
    let before = assert_chunks_accounted_for(&journal);
    assert_eq!(journal.prune_through(500).unwrap(), 1);
    let after = assert_chunks_accounted_for(&journal);
    assert!(after < before && after > 0, "{before} -> {after}");
    assert_eq!(journal.first_seq().unwrap(), 501);
    assert_eq!(read(&journal, 501).unwrap().len(), 500);
}

#[test]
fn quarantine_moves_a_chunked_record_and_gives_it_back_reassembled() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.append(1, &events("a", 3, 10)).unwrap();
    let big = events("b", 500, 64);
    journal.append(4, &big).unwrap();
    assert_eq!(journal.quarantine_from(4).unwrap(), 1);
    assert_chunks_accounted_for(&journal);
    assert_eq!(journal.last_seq::<String>().unwrap(), 3);
    let quarantined = journal.quarantined().unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].1, 4);
    assert_eq!(
        codec::decode_batch::<String>(&quarantined[0].2).unwrap(),
        big
    );
    // The seqs are written anew.
    journal.append(4, &events("c", 500, 64)).unwrap();
    assert_chunks_accounted_for(&journal);
}

#[test]
fn discarding_a_chunked_record_removes_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.append(1, &events("a", 3, 10)).unwrap();
    journal.append(4, &events("b", 500, 64)).unwrap();
    journal.discard(4).unwrap();
    assert_eq!(assert_chunks_accounted_for(&journal), 0);
    assert_eq!(journal.last_seq::<String>().unwrap(), 3);
}

#[test]
fn a_missing_chunk_is_reported_as_corrupt_with_the_records_seq() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.append(1, &events("a", 500, 64)).unwrap();
    journal.append(501, &events("b", 3, 10)).unwrap();
    let keys = chunk_keys_at(&journal, 1);
    journal.raw(Tree::Chunks).remove(&keys[2]).unwrap();
    let error = read(&journal, 1).unwrap_err();
    match &error {
        JournalError::Corrupt {
            seq: 1,
            source:
                CodecError::Chunks {
                    problem: ChunkProblem::Missing { index: 2, .. },
                },
            ..
        } => {}
        other => panic!("expected a missing chunk at seq 1, got {other:?}"),
    }
    assert!(error.to_string().contains("seq 1"), "{error}");
    assert!(error.to_string().contains("chunk 2 of"), "{error}");
    // Not the last record: repair leaves it for the caller to see.
    assert_eq!(journal.repair_tail().unwrap(), None);
}

#[test]
fn a_damaged_chunk_fails_the_records_checksum_with_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.append(1, &events("a", 3, 10)).unwrap();
    journal.append(4, &events("b", 500, 64)).unwrap();
    let keys = chunk_keys_at(&journal, 4);
    let mut chunk = journal
        .raw(Tree::Chunks)
        .get(&keys[1])
        .unwrap()
        .unwrap()
        .to_vec();
    chunk[100] ^= 0x01;
    journal.raw(Tree::Chunks).insert(&keys[1], chunk).unwrap();
    match read(&journal, 1).unwrap_err() {
        JournalError::Corrupt {
            seq: 4,
            source: CodecError::ChecksumMismatch { .. },
            ..
        } => {}
        other => panic!("expected a checksum mismatch at seq 4, got {other:?}"),
    }
    match journal.last_seq::<String>().unwrap_err() {
        JournalError::Corrupt { seq: 4, .. } => {}
        other => panic!("expected seq 4, got {other:?}"),
    }
}

#[test]
fn a_chunk_beyond_the_heads_count_is_corrupt_and_not_taken_for_a_tear() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.append(1, &events("a", 500, 64)).unwrap();
    let keys = chunk_keys_at(&journal, 1);
    let mut extra = keys.last().unwrap().to_vec();
    extra[11] += 1;
    journal
        .raw(Tree::Chunks)
        .insert(extra, &b"more"[..])
        .unwrap();
    match journal.repair_tail().unwrap_err() {
        JournalError::Corrupt {
            seq: 1,
            source:
                CodecError::Chunks {
                    problem: ChunkProblem::Extra { .. },
                },
            ..
        } => {}
        other => panic!("expected an extra chunk at seq 1, got {other:?}"),
    }
}

#[test]
fn a_torn_chunked_tail_is_removed_with_its_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let first = events("a", 3, 10);
    {
        let journal = open(dir.path());
        journal.append(1, &first).unwrap();
        journal.append(4, &events("b", 500, 64)).unwrap();
        // The last chunk cut short, as a write cut off by a crash.
        let keys = chunk_keys_at(&journal, 4);
        let last = keys.last().unwrap();
        let chunk = journal.raw(Tree::Chunks).get(last).unwrap().unwrap();
        journal
            .raw(Tree::Chunks)
            .insert(last, &chunk[..chunk.len() / 2])
            .unwrap();
        let torn = journal.repair_tail().unwrap().expect("a torn tail");
        assert_eq!(torn.seq, 4);
        assert!(
            matches!(
                torn.reason,
                CodecError::Chunks {
                    problem: ChunkProblem::Length { .. }
                }
            ),
            "{:?}",
            torn.reason
        );
        assert_eq!(assert_chunks_accounted_for(&journal), 0);
    }
    let journal = open(dir.path());
    assert_eq!(read(&journal, 1).unwrap(), numbered(1, &first));
    assert_eq!(journal.repair_tail().unwrap(), None);
}

#[test]
fn a_chunked_tail_missing_its_last_chunks_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.append(1, &events("a", 3, 10)).unwrap();
    journal.append(4, &events("b", 500, 64)).unwrap();
    let keys = chunk_keys_at(&journal, 4);
    for key in &keys[keys.len() - 2..] {
        journal.raw(Tree::Chunks).remove(key).unwrap();
    }
    let torn = journal.repair_tail().unwrap().expect("a torn tail");
    assert_eq!(torn.seq, 4);
    assert_eq!(assert_chunks_accounted_for(&journal), 0);
    assert_eq!(journal.last_seq::<String>().unwrap(), 3);
}

/// The largest values the journal writes: whole records of exactly
/// [`CHUNK_BYTES`] and full chunks, packed in consecutive keys, with the
/// removals (pruning, rollback, quarantine) that make sled merge nodes.
/// sled must not write a single blob file.
#[test]
fn values_at_the_limit_never_make_sled_write_a_blob_file() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let fits = vec!["x".repeat(CHUNK_BYTES - 14)];
    let mut seq = 1;
    for round in 0..6u64 {
        for _ in 0..400 {
            journal.append(seq, &fits).unwrap();
            seq += 1;
        }
        // About 1 MiB, so 256 full chunks.
        let big = vec!["y".repeat(CHUNK_BYTES * 256 - 20)];
        journal.append(seq, &big).unwrap();
        seq += 1;
        journal.flush().unwrap();
        match round % 3 {
            0 => {
                journal.prune_through(seq - 300).unwrap();
            }
            1 => {
                let target = seq - 150;
                journal.rollback::<String>(target, seq).unwrap();
                seq += 1;
            }
            _ => {
                journal.quarantine_from(seq - 100).unwrap();
                seq -= 100;
            }
        }
        journal.flush().unwrap();
    }
    assert_chunks_accounted_for(&journal);
    let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(blobs.is_empty(), "sled wrote blob files: {blobs:?}");
}
