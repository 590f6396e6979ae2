//! The order of the durability steps the module docs' argument rests on,
//! as the log records them: a power cut between any two steps must leave
//! a directory that reopens as a prefix with every synced frame, and that
//! holds only if the steps come in this order.

use super::Op;
use super::tests::{open, put};
use super::trace::Step;

/// The first position at or after `from` where `step` was taken.
fn after(steps: &[Step], from: usize, step: Step) -> Option<usize> {
    steps[from..]
        .iter()
        .position(|s| *s == step)
        .map(|at| from + at)
}

/// Asserts that every frame written before `before` was synced (its
/// segment `fdatasync`ed after the write) before `before`.
fn assert_written_frames_synced(steps: &[Step], before: usize) {
    for (at, step) in steps[..before].iter().enumerate() {
        if let Step::Write(segment) = step {
            assert!(
                steps[at + 1..before].contains(&Step::SyncFile(*segment)),
                "a frame written to segment {segment} at step {at} was not synced before step {before}: {steps:?}"
            );
        }
    }
}

#[test]
fn a_rollover_syncs_the_old_segment_creates_the_new_and_syncs_the_directory_before_writing_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4096).log;
    for i in 0..30u32 {
        log.apply(&[put(0, &i.to_be_bytes(), &[1; 700])]).unwrap();
    }
    let steps = log.steps();
    let newest = steps
        .iter()
        .filter_map(|s| match s {
            Step::Write(segment) => Some(*segment),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(newest >= 3, "{steps:?}");
    for segment in 2..=newest {
        let first_write = after(&steps, 0, Step::Write(segment)).unwrap();
        assert_written_frames_synced(&steps, first_write);
        let last_old_write = steps
            .iter()
            .rposition(|s| *s == Step::Write(segment - 1))
            .unwrap();
        let synced = after(&steps, last_old_write, Step::SyncFile(segment - 1)).unwrap();
        let created = after(&steps, synced, Step::Created(segment)).unwrap();
        let dir_synced = after(&steps, created, Step::SyncDir).unwrap();
        assert!(dir_synced < first_write, "segment {segment}: {steps:?}");
    }
}

/// Regression: compaction must sync the active segment before it removes
/// a segment, even when it copied nothing: the removals that made the old
/// segment dead are in the active segment, and if a power cut took them
/// back while the deletion stayed, the log would reopen without frames
/// that were never undone (not a prefix).
#[test]
fn compaction_syncs_every_written_frame_before_a_removal_and_the_directory_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4096).log;
    for i in 0..24u32 {
        log.apply(&[put(0, &i.to_be_bytes(), &[1; 700])]).unwrap();
    }
    // Everything in the old segments dies, by removals that are only
    // written, not synced.
    for i in 0..24u32 {
        log.apply(&[Op::Remove {
            tree: 0,
            key: &i.to_be_bytes(),
        }])
        .unwrap();
    }
    assert!(log.compact().unwrap() > 0);
    let steps = log.steps();
    let removals: Vec<(usize, u64)> = steps
        .iter()
        .enumerate()
        .filter_map(|(at, s)| match s {
            Step::Removed(segment) => Some((at, *segment)),
            _ => None,
        })
        .collect();
    assert!(removals.len() >= 2, "{steps:?}");
    for (k, &(at, segment)) in removals.iter().enumerate() {
        assert_eq!(segment, k as u64 + 1, "not the oldest first: {steps:?}");
        assert_written_frames_synced(&steps, at);
        let next = removals.get(k + 1).map_or(steps.len(), |r| r.0);
        assert!(
            steps[at + 1..next].contains(&Step::SyncDir),
            "removal of segment {segment} was not made durable before the next: {steps:?}"
        );
    }
}
