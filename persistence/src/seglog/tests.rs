//! The log's behaviour on an undamaged directory: round trips, reopen,
//! locking, iterate-and-remove, concurrent syncs and compaction.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use super::{Op, Opened, Options, SegError, SegLog, format};

/// The model every test compares with: (tree, key) -> value.
pub(super) type Model = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

/// Opens (creating) `dir` with `segment_bytes`.
pub(super) fn open(dir: &Path, segment_bytes: u64) -> Opened {
    SegLog::open(
        dir,
        true,
        Options {
            segment_bytes,
            ..Options::default()
        },
    )
    .unwrap()
}

/// Applies `ops` to `log` and to `model`.
pub(super) fn apply(log: &SegLog, model: &mut Model, ops: &[Op<'_>]) {
    log.apply(ops).unwrap();
    for op in ops {
        match op {
            Op::Insert { tree, key, value } => {
                model.insert((*tree, key.to_vec()), value.to_vec());
            }
            Op::Remove { tree, key } => {
                model.remove(&(*tree, key.to_vec()));
            }
        }
    }
}

/// Everything in `log`'s trees `0..trees`, read through `range`.
pub(super) fn contents(log: &SegLog, trees: u8) -> Model {
    let mut found = Model::new();
    for tree in 0..trees {
        for entry in log.range(tree, Bound::Unbounded, Bound::Unbounded) {
            let (key, value) = entry.unwrap();
            found.insert((tree, key), value);
        }
    }
    found
}

/// Asserts that `log` equals `model` through every read: `get` of every
/// key, the full `range`, `first`, `last` and `is_empty`.
pub(super) fn assert_matches(log: &SegLog, model: &Model, trees: u8) {
    assert_eq!(&contents(log, trees), model, "range differs from the model");
    for ((tree, key), value) in model {
        assert_eq!(log.get(*tree, key).unwrap().as_ref(), Some(value));
    }
    for tree in 0..trees {
        let mut in_tree = model
            .range((tree, Vec::new())..)
            .take_while(|((t, _), _)| *t == tree);
        let first = in_tree.next().map(|((_, k), v)| (k.clone(), v.clone()));
        let last = model
            .iter()
            .rfind(|((t, _), _)| *t == tree)
            .map(|((_, k), v)| (k.clone(), v.clone()));
        assert_eq!(log.first(tree).unwrap(), first, "first of tree {tree}");
        assert_eq!(log.last(tree).unwrap(), last, "last of tree {tree}");
    }
    assert_eq!(log.is_empty(), model.is_empty());
}

/// The segment files in `dir`, ascending.
pub(super) fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(format::parse_segment_name)
                .is_some()
        })
        .collect();
    found.sort();
    found
}

/// An insert op.
pub(super) fn put<'a>(tree: u8, key: &'a [u8], value: &'a [u8]) -> Op<'a> {
    Op::Insert { tree, key, value }
}

#[test]
fn round_trip_across_trees_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let opened = open(dir.path(), 64 << 20);
    assert!(opened.created);
    assert!(opened.tail.is_none());
    let log = opened.log;
    assert!(log.is_empty());
    apply(
        &log,
        &mut model,
        &[
            put(0, b"b", b"2"),
            put(0, b"a", b"1"),
            put(1, b"a", b"other tree"),
        ],
    );
    apply(
        &log,
        &mut model,
        &[
            put(2, b"", b""),
            put(0, b"c", &[7u8; 5000]),
            Op::Remove { tree: 0, key: b"b" },
        ],
    );
    apply(
        &log,
        &mut model,
        &[
            put(0, b"a", b"1 again"),
            Op::Remove {
                tree: 1,
                key: b"zz",
            },
        ],
    );
    assert_matches(&log, &model, 3);
    assert_eq!(log.get(0, b"b").unwrap(), None);
    assert_eq!(log.get(9, b"a").unwrap(), None);
    let ranged: Vec<_> = log
        .range(
            0,
            Bound::Excluded(b"a".to_vec()),
            Bound::Included(b"c".to_vec()),
        )
        .map(Result::unwrap)
        .collect();
    assert_eq!(ranged, vec![(b"c".to_vec(), vec![7u8; 5000])]);
    let size = log.size_on_disk();
    assert_eq!(
        size,
        std::fs::metadata(&segments(dir.path())[0]).unwrap().len()
    );
    log.sync().unwrap();
    drop(log);
    let reopened = open(dir.path(), 64 << 20);
    assert!(!reopened.created);
    assert!(reopened.tail.is_none());
    assert_matches(&reopened.log, &model, 3);
    assert_eq!(reopened.log.size_on_disk(), size);
    assert_eq!(reopened.log.path(), dir.path());
}

#[test]
fn rollover_starts_numbered_segments_and_reopen_replays_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let log = open(dir.path(), 4096).log;
    for i in 0..40u32 {
        let key = i.to_be_bytes();
        apply(
            &log,
            &mut model,
            &[put((i % 3) as u8, &key, &[i as u8; 700])],
        );
    }
    let files = segments(dir.path());
    assert!(files.len() > 3, "{files:?}");
    assert!(files[0].ends_with("0000000000000001.seg"));
    assert_matches(&log, &model, 3);
    drop(log);
    let reopened = open(dir.path(), 4096);
    assert!(reopened.tail.is_none());
    assert_matches(&reopened.log, &model, 3);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), 4096).log;
    let error = SegLog::open(dir.path(), true, Options::default()).unwrap_err();
    assert!(
        matches!(&error, SegError::AlreadyOpen { path } if path == dir.path()),
        "{error}"
    );
    drop(first);
    SegLog::open(dir.path(), false, Options::default()).unwrap();
}

#[test]
fn open_without_create_on_a_directory_without_segments_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let error = SegLog::open(dir.path(), false, Options::default()).unwrap_err();
    assert!(matches!(error, SegError::NotFound { .. }), "{error}");
    assert!(
        !dir.path().join("lock").exists(),
        "a lock file was left behind"
    );
    let missing = dir.path().join("missing");
    let error = SegLog::open(&missing, false, Options::default()).unwrap_err();
    assert!(matches!(error, SegError::NotFound { .. }), "{error}");
    let nested = dir.path().join("a").join("b");
    assert!(open(&nested, 4096).created);
    assert_eq!(segments(&nested).len(), 1);
}

#[test]
fn range_allows_removing_each_key_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4096).log;
    for i in 0..50u32 {
        log.apply(&[put(1, &i.to_be_bytes(), &i.to_le_bytes())])
            .unwrap();
    }
    let mut seen = Vec::new();
    for entry in log.range(
        1,
        Bound::Included(10u32.to_be_bytes().to_vec()),
        Bound::Unbounded,
    ) {
        let (key, value) = entry.unwrap();
        assert_eq!(key.len(), 4);
        assert_eq!(
            value,
            u32::from_be_bytes(key.clone().try_into().unwrap()).to_le_bytes()
        );
        log.apply(&[Op::Remove { tree: 1, key: &key }]).unwrap();
        seen.push(key);
    }
    assert_eq!(seen.len(), 40);
    let left: Vec<_> = log
        .range(1, Bound::Unbounded, Bound::Unbounded)
        .map(|e| e.unwrap().0)
        .collect();
    let expected: Vec<_> = (0..10u32).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(left, expected);
}

#[test]
fn sync_from_another_thread_while_applying_neither_deadlocks_nor_loses_frames() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 16 << 10).log;
    let mut model = Model::new();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = std::sync::atomic::AtomicBool::new(false);
    let syncs = std::thread::scope(|scope| {
        let syncer = scope.spawn(|| {
            let mut syncs = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if syncs == 1 {
                    started.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                // Both ways a flush thread can sync: through the log, and
                // through the handle it hands out.
                if syncs.is_multiple_of(2) {
                    log.sync().unwrap();
                } else {
                    log.active_file().sync_data().unwrap();
                }
                syncs += 1;
            }
            syncs
        });
        // Start writing once the syncer runs, so the two overlap.
        while !started.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::yield_now();
        }
        for i in 0..400u32 {
            let key = (i % 64).to_be_bytes();
            apply(
                &log,
                &mut model,
                &[put(0, &key, &[i as u8; 300]), put(2, b"n", &key)],
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        syncer.join().unwrap()
    });
    assert!(syncs > 0);
    log.sync().unwrap();
    assert_matches(&log, &model, 3);
    drop(log);
    assert_matches(&open(dir.path(), 16 << 10).log, &model, 3);
}

#[test]
fn compact_reclaims_a_removed_prefix_and_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let log = open(dir.path(), 4096).log;
    for i in 0..60u32 {
        apply(
            &log,
            &mut model,
            &[put(0, &i.to_be_bytes(), &[i as u8; 500])],
        );
    }
    // Keep a few old keys live, so compaction has something to copy.
    for i in 0..50u32 {
        if i % 10 != 3 {
            apply(
                &log,
                &mut model,
                &[Op::Remove {
                    tree: 0,
                    key: &i.to_be_bytes(),
                }],
            );
        }
    }
    let before = log.size_on_disk();
    let files_before = segments(dir.path()).len();
    let reclaimed = log.compact().unwrap();
    assert!(reclaimed > 0);
    assert!(
        log.size_on_disk() < before,
        "{} >= {before}",
        log.size_on_disk()
    );
    assert!(segments(dir.path()).len() < files_before);
    assert_matches(&log, &model, 1);
    assert_eq!(log.compact().unwrap(), 0, "a second compaction found work");
    drop(log);
    let reopened = open(dir.path(), 4096);
    assert!(reopened.tail.is_none());
    assert_matches(&reopened.log, &model, 1);
}

#[test]
fn a_compacted_segment_restored_before_reopen_replays_harmlessly() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let log = open(dir.path(), 4096).log;
    for i in 0..30u32 {
        apply(
            &log,
            &mut model,
            &[put(0, &(i % 12).to_be_bytes(), &[i as u8; 600])],
        );
    }
    for i in 0..12u32 {
        if i % 4 == 0 {
            apply(
                &log,
                &mut model,
                &[Op::Remove {
                    tree: 0,
                    key: &i.to_be_bytes(),
                }],
            );
        }
    }
    // Save every segment as it is before compaction deletes some.
    let saved: Vec<(PathBuf, Vec<u8>)> = segments(dir.path())
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    let reclaimed = log.compact().unwrap();
    assert!(reclaimed > 0);
    assert!(!saved[0].0.exists(), "compaction kept the oldest segment");
    assert_matches(&log, &model, 1);
    drop(log);
    // A power cut before the last deletion's directory fsync: that segment
    // reappears (the deletions before it were durable before it began).
    let (path, bytes) = saved.iter().rev().find(|(path, _)| !path.exists()).unwrap();
    std::fs::write(path, bytes).unwrap();
    let reopened = open(dir.path(), 4096);
    assert!(reopened.tail.is_none());
    assert_matches(&reopened.log, &model, 1);
}

#[test]
fn a_batch_over_the_frame_limit_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4096).log;
    let size = log.size_on_disk();
    // Many references to one buffer: a payload past u32::MAX without
    // allocating it.
    let value = vec![1u8; 64 << 20];
    let ops: Vec<Op<'_>> = (0..70).map(|_| put(0, b"k", &value)).collect();
    let error = log.apply(&ops).unwrap_err();
    assert!(matches!(error, SegError::TooLarge { .. }), "{error}");
    assert_eq!(log.size_on_disk(), size);
    assert!(log.get(0, b"k").unwrap().is_none());
    log.apply(&[put(0, b"k", b"v")]).unwrap();
}

#[test]
fn readers_on_other_threads_see_whole_values_while_the_writer_applies_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 8192).log;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut reclaimed = 0;
    // Each value is its version repeated: a torn or misplaced read shows.
    let check = |key: &[u8], value: &[u8]| {
        assert_eq!(value.len(), 200 + key[0] as usize * 10, "key {key:?}");
        assert!(
            value.iter().all(|b| *b == value[0]),
            "a torn value for {key:?}"
        );
    };
    let started = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|scope| {
        for reader in 0..2 {
            let (log, stop, started) = (&log, &stop, &started);
            scope.spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    for key in 0..16u8 {
                        if let Some(value) = log.get(0, &[key]).unwrap() {
                            check(&[key], &value);
                        }
                    }
                    for entry in log.range(0, Bound::Unbounded, Bound::Unbounded) {
                        let (key, value) = entry.unwrap();
                        check(&key, &value);
                    }
                    if let Some((key, value)) = log.last(0).unwrap() {
                        check(&key, &value);
                    }
                    if reads == 0 {
                        started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    reads += 1;
                }
                assert!(reads > 0, "reader {reader} never read");
            });
        }
        // Start writing once both readers run, so they overlap.
        while started.load(std::sync::atomic::Ordering::Relaxed) < 2 {
            std::thread::yield_now();
        }
        for round in 0..600u32 {
            let key = [(round % 16) as u8];
            let value = vec![round as u8; 200 + key[0] as usize * 10];
            if round % 7 == 3 {
                log.apply(&[Op::Remove { tree: 0, key: &key }]).unwrap();
            } else {
                log.apply(&[put(0, &key, &value)]).unwrap();
            }
            if round % 50 == 49 {
                reclaimed += log.compact().unwrap();
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(
        segments(dir.path()).len() < 600 * 300 / 8192,
        "compaction never ran"
    );
}

/// The active segment is zero-filled ahead of its frames, so appends that
/// fit leave the file's length alone (their `fdatasync`s commit no new
/// size), and a reopen neither reports the zeros nor cuts them, and
/// appends right after the last frame.
#[test]
fn the_active_segment_is_preallocated_and_a_reopen_appends_after_its_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 64 << 20).log;
    let mut model = Model::new();
    let file = || segments(dir.path())[0].clone();
    let len = || std::fs::metadata(file()).unwrap().len();
    apply(&log, &mut model, &[put(0, b"first", &[1; 100])]);
    let preallocated = len();
    let first_end =
        format::HEADER_LEN + format::FRAME_HEADER_LEN + format::INSERT_OVERHEAD + 5 + 100;
    assert_eq!(
        preallocated,
        first_end + Options::default().preallocate_bytes
    );
    for i in 0..100u32 {
        apply(&log, &mut model, &[put(0, &i.to_be_bytes(), &[2; 100])]);
    }
    log.sync().unwrap();
    assert_eq!(len(), preallocated, "appends that fit grew the file");
    assert_eq!(log.size_on_disk(), preallocated);
    drop(log);
    let reopened = open(dir.path(), 64 << 20);
    assert!(reopened.tail.is_none(), "{:?}", reopened.tail);
    assert_eq!(len(), preallocated, "the reopen cut the preallocated zeros");
    assert_matches(&reopened.log, &model, 1);
    apply(&reopened.log, &mut model, &[put(0, b"after", b"reopen")]);
    drop(reopened);
    assert_matches(&open(dir.path(), 64 << 20).log, &model, 1);
}

/// Regression: a segment the log rolls over from loses its preallocated
/// zeros first. Open checks every segment but the last to its final byte,
/// so zeros left there would make the next open refuse the log as
/// corrupt. (With one setting the zeros never reach the rollover point;
/// reopening with smaller segments than the log was written with puts
/// the frames' end past `segment_bytes` while zeros still follow it.)
#[test]
fn a_rolled_over_segment_is_trimmed_to_its_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let log = open(dir.path(), 64 << 20).log;
    for i in 0..40u32 {
        apply(&log, &mut model, &[put(0, &i.to_be_bytes(), &[3; 1000])]);
    }
    drop(log);
    let log = open(dir.path(), 16 << 10).log;
    apply(&log, &mut model, &[put(0, b"rolls", b"over")]);
    assert_eq!(segments(dir.path()).len(), 2, "no rollover");
    drop(log);
    let reopened = SegLog::open(
        dir.path(),
        false,
        Options {
            segment_bytes: 16 << 10,
            ..Options::default()
        },
    )
    .expect("a zero tail left in a rolled-over segment reads as damage");
    assert_matches(&reopened.log, &model, 1);
}
