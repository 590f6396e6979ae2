//! The log store's own behaviour: what it stores survives a reopen,
//! truncate and purge remove exactly what they should, and a damaged value
//! is a typed error naming its tree and key.

use std::collections::BTreeSet;

use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};
use solostate::persistence::seglog::{Op, Options, SegLog};
use solostate_replication::{LogStore, LogStoreError, Request, TypeConfig};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// Entry `index` of term `term`: blank at 1, membership at 2, normal after.
fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    let payload = match index {
        1 => EntryPayload::Blank,
        2 => {
            let voters = BTreeSet::from([1, 2, 3]);
            EntryPayload::Membership(Membership::<u64, BasicNode>::new(vec![voters], None))
        }
        _ => EntryPayload::Normal(Request {
            event: vec![index as u8; 3],
        }),
    };
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn indexes(entries: &[Entry<TypeConfig>]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

#[test]
fn append_truncate_purge_and_vote_survive_reopen() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            store.append_entries((1..=10).map(|i| entry(1, i))).unwrap();
            store.truncate(log_id(1, 8)).await.unwrap();
            // Truncate is inclusive: 8 itself is gone (guards an off-by-one).
            let state = store.get_log_state().await.unwrap();
            assert_eq!(
                state.last_log_id,
                Some(log_id(1, 7)),
                "truncate(8) keeps ..=7"
            );
            assert_eq!(store.entry(8).unwrap(), None);
            store.purge(log_id(1, 3)).await.unwrap();
            let vote = Vote::new_committed(2, 1);
            store.save_vote(&vote).await.unwrap();
            store.save_committed(Some(log_id(1, 5))).await.unwrap();
            // A later durable write carries the committed id with it.
            store.append_entries([entry(2, 8)]).unwrap();
        }
        let mut store = LogStore::open(dir.path()).unwrap();
        let all = store.try_get_log_entries(0..).await.unwrap();
        assert_eq!(
            indexes(&all),
            vec![4, 5, 6, 7, 8],
            "truncate removed 8.., purge ..=3"
        );
        assert_eq!(
            all[4].log_id,
            log_id(2, 8),
            "the entry appended after truncate"
        );
        assert_eq!(all[0], entry(1, 4));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(2, 8)));
        assert_eq!(
            store.read_vote().await.unwrap(),
            Some(Vote::new_committed(2, 1))
        );
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 5)));
        let range = store.try_get_log_entries(5..7).await.unwrap();
        assert_eq!(indexes(&range), vec![5, 6]);
    });
}

#[test]
fn blank_and_membership_entries_round_trip() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let written: Vec<_> = (1..=3).map(|i| entry(1, i)).collect();
        LogStore::open(dir.path())
            .unwrap()
            .append_entries(written.clone())
            .unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.try_get_log_entries(..).await.unwrap(), written);
    });
}

#[test]
fn purge_of_everything_keeps_the_last_purged_id_as_last_log_id() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(dir.path()).unwrap();
            store.append_entries((1..=4).map(|i| entry(1, i))).unwrap();
            store.purge(log_id(1, 4)).await.unwrap();
        }
        let mut store = LogStore::open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
        assert_eq!(state.last_log_id, Some(log_id(1, 4)));
        assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
    });
}

#[test]
fn reopen_after_drop_keeps_every_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5u64 {
        let store = LogStore::open(dir.path()).unwrap();
        // Each return of append_entries is the point where openraft's
        // callback fires: everything before it must be there after reopen.
        store
            .append_entries((1..=3).map(|i| entry(1, round * 3 + i)))
            .unwrap();
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        for index in 1..=(round + 1) * 3 {
            assert_eq!(
                store.entry(index).unwrap(),
                Some(entry(1, index)),
                "index {index} after round {round}"
            );
        }
    }
}

#[test]
fn corrupt_entry_is_a_typed_error_naming_tree_and_index() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        LogStore::open(dir.path())
            .unwrap()
            .append_entries((1..=4).map(|i| entry(1, i)))
            .unwrap();
        // Flip one payload byte of entry 3 behind the store's back, through
        // the segment log itself (so its own frame crc is right, as for a
        // value that rots after it was read at open). Tree 1 is the log.
        {
            let log = SegLog::open(dir.path(), false, Options::default())
                .unwrap()
                .log;
            let key = 3u64.to_be_bytes();
            let mut bytes = log.get(1, &key).unwrap().unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            log.apply(&[Op::Insert {
                tree: 1,
                key: &key,
                value: &bytes,
            }])
            .unwrap();
            log.sync().unwrap();
        }
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            store.entry(2).unwrap(),
            Some(entry(1, 2)),
            "an undamaged entry still reads"
        );
        match store.entry(3) {
            Err(LogStoreError::Corrupt { tree, key, reason }) => {
                assert_eq!(tree, "raft_log");
                assert_eq!(key, "index 3");
                assert!(reason.contains("crc"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Through openraft's API it is a StorageError on the logs, naming it.
        let err = store.try_get_log_entries(1..).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("raft_log") && text.contains("index 3"),
            "{text}"
        );
    });
}

/// The `.seg` files of the store in `dir`, with their lengths.
fn segments(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "seg"))
        .map(|entry| (entry.path(), entry.metadata().unwrap().len()))
        .collect();
    found.sort();
    found
}

/// An entry at `index` with a payload of `bytes` bytes.
fn big_entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(Request {
            event: vec![index as u8; bytes],
        }),
    }
}

#[test]
fn a_purge_deletes_the_segments_it_emptied() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        // 40 MiB of entries in 16 MiB segments: three segments or more.
        for chunk in 0..40u64 {
            store
                .append_entries((1..=4).map(|i| big_entry(chunk * 4 + i, 256 << 10)))
                .unwrap();
        }
        let before = segments(dir.path());
        assert!(before.len() >= 3, "{before:?}");
        store.purge(log_id(1, 150)).await.unwrap();
        let after = segments(dir.path());
        assert!(
            after.len() < before.len() && !after.contains(&before[0]),
            "the oldest segments, dead after the purge, are gone: {before:?} then {after:?}"
        );
        // What the purge kept still reads, here and after a reopen.
        let kept = indexes(&store.try_get_log_entries(..).await.unwrap());
        assert_eq!(kept, (151..=160).collect::<Vec<_>>());
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        let reread = store.try_get_log_entries(..).await.unwrap();
        assert_eq!(indexes(&reread), (151..=160).collect::<Vec<_>>());
        assert_eq!(reread[0], big_entry(151, 256 << 10));
        assert_eq!(
            store.get_log_state().await.unwrap().last_purged_log_id,
            Some(log_id(1, 150))
        );
    });
}

#[test]
fn a_torn_tail_is_cut_at_open_and_reported_with_every_stored_entry_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path()).unwrap();
    store.append_entries((1..=5).map(|i| entry(1, i))).unwrap();
    assert!(store.tail_cut().is_none());
    drop(store);
    // What a power cut in the middle of the next write leaves: the start of
    // a frame after the last one, never synced.
    let (last, _) = segments(dir.path()).pop().unwrap();
    let frames_end = {
        let bytes = std::fs::read(&last).unwrap();
        // Frames are followed by preallocated zeros; the garbage goes
        // right after the last non-zero byte, where the next frame would.
        bytes.iter().rposition(|b| *b != 0).unwrap() as u64 + 1
    };
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        file.write_all_at(&[0x5a; 21], frames_end).unwrap();
    }
    let store = LogStore::open(dir.path()).unwrap();
    let cut = store.tail_cut().expect("the torn frame is reported");
    assert_eq!(cut.segment, last);
    assert_eq!(cut.offset, frames_end);
    for index in 1..=5 {
        assert_eq!(store.entry(index).unwrap(), Some(entry(1, index)));
    }
    // The cut is durable and done: the next open finds nothing to cut.
    drop(store);
    assert!(LogStore::open(dir.path()).unwrap().tail_cut().is_none());
}
