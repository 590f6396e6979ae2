//! The log on a damaged directory: torn tails at every offset, stale
//! frames past a cut, garbage and zeros, flipped bytes where nothing was
//! unsynced, a torn segment header, and power cuts that keep a random
//! subset of the unsynced pages.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::tests::{Model, apply, assert_matches, contents, open, put, segments};
use super::{Op, Options, SegError, SegLog, format};

/// A small deterministic generator (xorshift64*), so damage is random but
/// reproducible without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Copies the segment files of `from` into a fresh directory, the last
/// one replaced by `last`.
fn with_last_segment(from: &Path, last: &[u8]) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    let files = segments(from);
    for (i, file) in files.iter().enumerate() {
        let target = to.path().join(file.file_name().unwrap());
        if i + 1 == files.len() {
            std::fs::write(target, last).unwrap();
        } else {
            std::fs::copy(file, target).unwrap();
        }
    }
    to
}

/// Writes `n` frames, one key each, into a fresh log; returns the models
/// after each frame (`models[k]` = after k frames) and where each frame
/// starts in the last segment. Written without preallocation, so the file
/// ends where its last frame does and tests can damage it byte by byte
/// (the logs they reopen it with preallocate).
fn write_frames(dir: &Path, n: u32, value_len: usize) -> (Vec<Model>, Vec<u64>) {
    let exact = Options {
        segment_bytes: 64 << 20,
        preallocate_bytes: 0,
    };
    let log = SegLog::open(dir, true, exact).unwrap().log;
    let mut model = Model::new();
    let mut models = vec![model.clone()];
    let mut starts = Vec::new();
    for i in 0..n {
        starts.push(log.size_on_disk());
        let value = vec![i as u8 + 1; value_len];
        apply(
            &log,
            &mut model,
            &[
                put(0, &i.to_be_bytes(), &value),
                put(1, b"n", &i.to_be_bytes()),
            ],
        );
        models.push(model.clone());
    }
    (models, starts)
}

#[test]
fn a_torn_last_frame_is_cut_at_every_offset_and_appending_after_it_survives() {
    let dir = tempfile::tempdir().unwrap();
    let (models, starts) = write_frames(dir.path(), 5, 40);
    let full = std::fs::read(&segments(dir.path())[0]).unwrap();
    let last_start = starts[4];
    for cut in last_start..full.len() as u64 {
        let damaged = with_last_segment(dir.path(), &full[..cut as usize]);
        let opened = open(damaged.path(), 64 << 20);
        let log = opened.log;
        assert_matches(&log, &models[4], 2);
        if cut == last_start {
            assert!(
                opened.tail.is_none(),
                "a cut at a frame boundary is no tear"
            );
        } else {
            let tail = opened.tail.expect("no tail reported");
            assert_eq!(tail.offset, last_start, "cut at {cut}");
            assert_eq!(tail.dropped_bytes, cut - last_start);
            assert!(!tail.header_torn);
        }
        let mut model = models[4].clone();
        apply(&log, &mut model, &[put(2, b"after", b"the cut")]);
        drop(log);
        let reopened = open(damaged.path(), 64 << 20);
        assert!(reopened.tail.is_none(), "cut at {cut}: {:?}", reopened.tail);
        assert_matches(&reopened.log, &model, 3);
    }
}

/// Regression: the cut must be made durable (truncated) before new frames
/// are appended, or frames past it come back behind the new ones.
#[test]
fn a_cut_tail_is_never_resurrected_behind_new_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (models, starts) = write_frames(dir.path(), 10, 64);
    let mut bytes = std::fs::read(&segments(dir.path())[0]).unwrap();
    // Damage frame 6's crc: frames 6..=10 after it are intact, but the log
    // ends before frame 6.
    bytes[starts[5] as usize + 4] ^= 0xff;
    std::fs::write(&segments(dir.path())[0], &bytes).unwrap();
    let opened = open(dir.path(), 64 << 20);
    let tail = opened.tail.expect("no tail reported");
    assert_eq!(tail.offset, starts[5]);
    assert!(tail.nonzero);
    let log = opened.log;
    assert_matches(&log, &models[5], 2);
    // Two new frames of exactly the old frames' size: without the cut, the
    // old frames 8..=10 would sit right behind them with the right numbers.
    let mut model = models[5].clone();
    for i in 100..102u32 {
        apply(
            &log,
            &mut model,
            &[
                put(0, &i.to_be_bytes(), &[9; 64]),
                put(1, b"n", &i.to_be_bytes()),
            ],
        );
    }
    drop(log);
    let reopened = open(dir.path(), 64 << 20);
    assert!(reopened.tail.is_none(), "{:?}", reopened.tail);
    assert_matches(&reopened.log, &model, 2);
    for stale in 7..10u32 {
        assert_eq!(reopened.log.get(0, &stale.to_be_bytes()).unwrap(), None);
    }
}

/// Garbage past the last frame is cut and reported; zeros (what
/// preallocation leaves, or pages a power cut never wrote back) are
/// neither: no frame is all zeros, so nothing is dropped.
#[test]
fn garbage_after_the_last_frame_is_cut_and_zeros_are_kept_unreported() {
    let dir = tempfile::tempdir().unwrap();
    let (models, _) = write_frames(dir.path(), 4, 100);
    let full = std::fs::read(&segments(dir.path())[0]).unwrap();
    let mut rng = Rng(0x5eed);
    for round in 0..40 {
        let extra = 1 + (rng.next() % 9000) as usize;
        let zeros = round % 2 == 0;
        let mut damaged_bytes = full.clone();
        damaged_bytes.extend((0..extra).map(|_| if zeros { 0 } else { rng.next() as u8 | 1 }));
        let damaged = with_last_segment(dir.path(), &damaged_bytes);
        let opened = open(damaged.path(), 64 << 20);
        assert_matches(&opened.log, &models[4], 2);
        let on_disk = std::fs::metadata(&segments(damaged.path())[0])
            .unwrap()
            .len();
        if zeros {
            assert!(opened.tail.is_none(), "round {round}: {:?}", opened.tail);
            assert_eq!(on_disk, damaged_bytes.len() as u64, "zeros were cut");
        } else {
            let tail = opened.tail.as_ref().expect("no tail reported");
            assert_eq!(tail.offset, full.len() as u64);
            assert_eq!(tail.dropped_bytes, extra as u64);
            assert!(tail.nonzero, "round {round}");
            assert_eq!(
                on_disk,
                full.len() as u64,
                "the tail was not cut from the file"
            );
        }
        // Either way the next frame lands right after the last one, and
        // a reopen finds it and no tail.
        let mut model = models[4].clone();
        apply(&opened.log, &mut model, &[put(2, b"next", b"frame")]);
        drop(opened);
        let reopened = open(damaged.path(), 64 << 20);
        assert!(
            reopened.tail.is_none(),
            "round {round}: {:?}",
            reopened.tail
        );
        assert_matches(&reopened.log, &model, 3);
    }
}

/// Writes frames of one fixed size until there are three segments, and
/// two more into the third; returns the model.
fn three_segments(dir: &Path) -> Model {
    let log = open(dir, 4096).log;
    let mut model = Model::new();
    let mut i = 0u32;
    let mut after = 0;
    while after < 2 {
        apply(
            &log,
            &mut model,
            &[put(0, &i.to_be_bytes(), &[i as u8; 500])],
        );
        i += 1;
        if segments(dir).len() == 3 {
            after += 1;
        }
    }
    assert_eq!(segments(dir).len(), 3);
    model
}

/// The fixed size of one frame written by [`three_segments`].
const FRAME_LEN: u64 = format::FRAME_HEADER_LEN + format::INSERT_OVERHEAD + 4 + 500;

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

fn expect_corrupt(dir: &Path, path: &Path, offset: u64) {
    let error = SegLog::open(
        dir,
        false,
        Options {
            segment_bytes: 4096,
            ..Options::default()
        },
    )
    .unwrap_err();
    match &error {
        SegError::Corrupt {
            path: p, offset: o, ..
        } => {
            assert_eq!((p.as_path(), *o), (path, offset), "{error}");
        }
        other => panic!("expected corrupt, got {other}"),
    }
    let shown = error.to_string();
    assert!(shown.contains(&path.display().to_string()) && shown.contains(&offset.to_string()));
}

#[test]
fn a_flipped_byte_in_a_non_last_segment_is_corrupt_with_its_path_and_offset() {
    for (segment, frame) in [(0usize, 1u64), (1, 0), (0, 0)] {
        let dir = tempfile::tempdir().unwrap();
        three_segments(dir.path());
        let path = segments(dir.path())[segment].clone();
        let frame_at = format::HEADER_LEN + frame * FRAME_LEN;
        flip(&path, frame_at + format::FRAME_HEADER_LEN + 20);
        expect_corrupt(dir.path(), &path, frame_at);
    }
}

#[test]
fn a_damaged_header_with_frames_behind_it_is_corrupt_even_in_the_last_segment() {
    for segment in [0usize, 2] {
        let dir = tempfile::tempdir().unwrap();
        three_segments(dir.path());
        let path = segments(dir.path())[segment].clone();
        flip(&path, 9);
        expect_corrupt(dir.path(), &path, 0);
    }
}

#[test]
fn a_missing_middle_segment_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    three_segments(dir.path());
    std::fs::remove_file(&segments(dir.path())[1]).unwrap();
    let third = segments(dir.path())[1].clone();
    expect_corrupt(dir.path(), &third, 0);
}

#[test]
fn a_last_segment_with_a_torn_header_is_removed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4096).log;
    let mut model = Model::new();
    let mut i = 0u32;
    while segments(dir.path()).len() < 2 {
        apply(&log, &mut model, &[put(0, &i.to_be_bytes(), &[1; 700])]);
        i += 1;
    }
    drop(log);
    // The power went while rolling over: the new header never made it.
    let newest: PathBuf = segments(dir.path())[1].clone();
    let header = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &header[..11]).unwrap();
    let opened = open(dir.path(), 4096);
    let tail = opened.tail.expect("no tail reported");
    assert!(tail.header_torn);
    assert_eq!(
        (tail.segment.as_path(), tail.offset, tail.dropped_bytes),
        (newest.as_path(), 0, 11)
    );
    assert!(tail.nonzero);
    assert!(!newest.exists());
    assert_matches(&opened.log, &model, 1);
    apply(&opened.log, &mut model, &[put(0, b"next", &[2; 700])]);
    drop(opened.log);
    let reopened = open(dir.path(), 4096);
    assert!(reopened.tail.is_none());
    assert_matches(&reopened.log, &model, 1);
}

/// One step of the power-cut test.
#[derive(Debug, Clone)]
enum Step {
    /// A frame: up to three puts or removes of keys 0..8 on tree 0.
    Frame(Vec<(bool, u8, u16)>),
    /// A `sync()`.
    Sync,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let frame =
        prop::collection::vec((any::<bool>(), 0u8..8, 0u16..6000), 1..4).prop_map(Step::Frame);
    prop::collection::vec(prop_oneof![6 => frame, 1 => Just(Step::Sync)], 1..50)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// After a power cut that keeps a random subset of the 4 KiB pages
    /// written since the last sync (the rest keep what they held before),
    /// the log reopens as a prefix of the applied frames that holds every
    /// frame applied before the last sync.
    #[test]
    fn a_power_cut_keeping_random_pages_reopens_as_a_prefix_with_every_synced_frame(
        steps in steps(),
        seed in any::<u64>(),
        keep_size in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), 16 << 10).log;
        let mut model = Model::new();
        let mut models = vec![model.clone()];
        // What the last segment held at its last durable point, and how
        // many frames were durable then.
        let mut durable = (segments(dir.path()), std::fs::read(&segments(dir.path())[0]).unwrap(), 0usize);
        for step in &steps {
            match step {
                Step::Sync => {
                    log.sync().unwrap();
                    let files = segments(dir.path());
                    let bytes = std::fs::read(files.last().unwrap()).unwrap();
                    durable = (files, bytes, models.len() - 1);
                }
                Step::Frame(ops) => {
                    let n = (models.len() as u32).to_be_bytes();
                    let values: Vec<Vec<u8>> = ops.iter().map(|(_, _, len)| vec![n[3]; *len as usize]).collect();
                    let keys: Vec<[u8; 1]> = ops.iter().map(|(_, key, _)| [*key]).collect();
                    let mut batch = vec![put(1, b"#", &n)];
                    for ((insert, _, _), (key, value)) in ops.iter().zip(keys.iter().zip(&values)) {
                        batch.push(if *insert { put(0, key, value) } else { Op::Remove { tree: 0, key } });
                    }
                    apply(&log, &mut model, &batch);
                    models.push(model.clone());
                    let files = segments(dir.path());
                    if files != durable.0 {
                        // A rollover synced everything before the new segment.
                        let bytes = std::fs::read(files.last().unwrap()).unwrap();
                        durable = (files, bytes, models.len() - 1);
                    }
                }
            }
        }
        drop(log);
        // The cut: pages of the last segment keep the new or the old bytes.
        let (files, old, synced) = durable;
        let last = files.last().unwrap();
        let new = std::fs::read(last).unwrap();
        let len = if keep_size { new.len() } else { old.len() };
        let mut rng = Rng(seed | 1);
        let mut cut = vec![0u8; len];
        for (page, chunk) in cut.chunks_mut(4096).enumerate() {
            let from = if rng.next().is_multiple_of(2) { &new } else { &old };
            for (i, byte) in chunk.iter_mut().enumerate() {
                *byte = from.get(page * 4096 + i).copied().unwrap_or(0);
            }
        }
        std::fs::write(last, &cut).unwrap();
        let opened = open(dir.path(), 16 << 10);
        let log = opened.log;
        let recovered = log
            .get(1, b"#")
            .unwrap()
            .map_or(0, |n| u32::from_be_bytes(n.try_into().unwrap()) as usize);
        prop_assert!(recovered >= synced, "recovered {} frames, {} were synced", recovered, synced);
        prop_assert!(recovered < models.len());
        prop_assert_eq!(&contents(&log, 2), &models[recovered]);
        // And it keeps working: a new frame survives a clean reopen.
        let mut model = models[recovered].clone();
        apply(&log, &mut model, &[put(0, b"after", b"cut")]);
        drop(log);
        prop_assert_eq!(&contents(&open(dir.path(), 16 << 10).log, 2), &model);
    }
}

#[test]
fn a_bad_frame_before_a_torn_header_is_corrupt_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4096).log;
    let mut i = 0u32;
    while segments(dir.path()).len() < 2 {
        log.apply(&[put(0, &i.to_be_bytes(), &[1; 700])]).unwrap();
        i += 1;
    }
    drop(log);
    let files = segments(dir.path());
    std::fs::write(&files[1], b"SSEG").unwrap();
    // The first segment was synced in full before the rollover began, so
    // damage to its last frame is damage, whatever happened after it.
    let frame_len = format::FRAME_HEADER_LEN + format::INSERT_OVERHEAD + 4 + 700;
    let last_frame = format::HEADER_LEN + (u64::from(i) - 1) * frame_len;
    flip(&files[0], last_frame + format::FRAME_HEADER_LEN + 30);
    expect_corrupt(dir.path(), &files[0], last_frame);
}
