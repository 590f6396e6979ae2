//! The simulator's semantics on the model itself, without a mount.

use std::ffi::OsStr;

use super::*;
use crate::powercut::image::{CutMode, Image, ImageNode};

fn name(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A model with a synced file `f` in the root, empty.
fn with_synced_file() -> (Model, Ino) {
    let mut m = Model::default();
    let f = m.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
    m.fsync_dir(ROOT).unwrap();
    (m, f)
}

#[test]
fn unsynced_data_is_dropped_and_synced_data_kept() {
    let (mut m, f) = with_synced_file();
    m.write(f, 0, b"synced").unwrap();
    m.fsync(f).unwrap();
    m.write(f, 6, b" lost").unwrap();
    assert_eq!(m.read(f, 0, 100).unwrap(), b"synced lost");
    let (image, stats) = m.cut(CutMode::DropAll);
    assert_eq!(image.file("f"), Some(&b"synced"[..]));
    assert_eq!(stats.unsynced_bytes, 5);
    assert_eq!(stats.dropped_bytes, 5);
}

#[test]
fn fsync_applies_only_the_pending_writes() {
    let (mut m, f) = with_synced_file();
    m.write(f, 0, &[1; 1000]).unwrap();
    m.fsync(f).unwrap();
    m.write(f, 10, &[2; 3]).unwrap();
    let Body::File(file) = &m.inodes[&f].body else {
        unreachable!()
    };
    assert_eq!(
        file.pending.len(),
        1,
        "the synced write is no longer pending"
    );
    m.fsync(f).unwrap();
    let (image, _) = m.cut(CutMode::DropAll);
    let data = image.file("f").unwrap();
    assert_eq!(data.len(), 1000);
    assert_eq!(&data[9..14], &[1, 2, 2, 2, 1]);
}

#[test]
fn truncates_are_durable_only_when_synced() {
    let (mut m, f) = with_synced_file();
    m.write(f, 0, b"abcdef").unwrap();
    m.fsync(f).unwrap();
    m.set_len(f, 2).unwrap();
    assert_eq!(
        m.clone().cut(CutMode::DropAll).0.file("f"),
        Some(&b"abcdef"[..])
    );
    m.fsync(f).unwrap();
    assert_eq!(m.cut(CutMode::DropAll).0.file("f"), Some(&b"ab"[..]));
}

#[test]
fn a_synced_file_without_a_synced_name_is_gone() {
    let mut m = Model::default();
    let f = m.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
    m.write(f, 0, b"data").unwrap();
    m.fsync(f).unwrap();
    let (image, stats) = m.cut(CutMode::DropAll);
    assert_eq!(image.names(""), Some(vec![]));
    assert_eq!(stats.lost_inodes, 1);
}

#[test]
fn a_rename_needs_fsyncdir_of_both_directories() {
    let mut m = Model::default();
    let a = m.create(ROOT, name("a"), Kind::Dir, 0o755).unwrap();
    let b = m.create(ROOT, name("b"), Kind::Dir, 0o755).unwrap();
    let f = m.create(a, name("f"), Kind::File, 0o644).unwrap();
    m.fsync(f).unwrap();
    for dir in [ROOT, a, b] {
        m.fsync_dir(dir).unwrap();
    }
    m.rename(a, name("f"), b, name("g"), false, false).unwrap();
    m.fsync_dir(b).unwrap();
    // a still lists f durably: both names survive, one inode.
    let (image, _) = m.clone().cut(CutMode::DropAll);
    assert_eq!(image.names("a"), Some(vec!["f".to_owned()]));
    assert_eq!(image.names("b"), Some(vec!["g".to_owned()]));
    m.fsync_dir(a).unwrap();
    let (image, _) = m.cut(CutMode::DropAll);
    assert_eq!(image.names("a"), Some(vec![]));
}

#[test]
fn rename_over_a_file_replaces_it_and_no_replace_refuses() {
    let (mut m, f) = with_synced_file();
    let g = m.create(ROOT, name("g"), Kind::File, 0o644).unwrap();
    m.write(g, 0, b"g").unwrap();
    assert_eq!(
        m.rename(ROOT, name("f"), ROOT, name("g"), true, false),
        Err(FsError::Exists)
    );
    m.rename(ROOT, name("f"), ROOT, name("g"), false, false)
        .unwrap();
    assert_eq!(m.lookup(ROOT, name("g")), Ok(f));
    assert_eq!(m.lookup(ROOT, name("f")), Err(FsError::NotFound));
    assert!(!m.inodes.contains_key(&g), "the replaced file is freed");
}

#[test]
fn rename_exchange_swaps_two_names() {
    let (mut m, f) = with_synced_file();
    let g = m.create(ROOT, name("g"), Kind::File, 0o644).unwrap();
    m.rename(ROOT, name("f"), ROOT, name("g"), false, true)
        .unwrap();
    assert_eq!(m.lookup(ROOT, name("f")), Ok(g));
    assert_eq!(m.lookup(ROOT, name("g")), Ok(f));
}

#[test]
fn a_directory_cannot_move_into_itself() {
    let mut m = Model::default();
    let a = m.create(ROOT, name("a"), Kind::Dir, 0o755).unwrap();
    let b = m.create(a, name("b"), Kind::Dir, 0o755).unwrap();
    assert_eq!(
        m.rename(ROOT, name("a"), b, name("a"), false, false),
        Err(FsError::Invalid)
    );
}

#[test]
fn rmdir_refuses_a_non_empty_directory_and_unlink_a_directory() {
    let mut m = Model::default();
    let d = m.create(ROOT, name("d"), Kind::Dir, 0o755).unwrap();
    m.create(d, name("f"), Kind::File, 0o644).unwrap();
    assert_eq!(m.rmdir(ROOT, name("d")), Err(FsError::NotEmpty));
    assert_eq!(m.unlink(ROOT, name("d")), Err(FsError::IsDir));
    assert_eq!(m.rmdir(d, name("f")), Err(FsError::NotDir));
    m.unlink(d, name("f")).unwrap();
    m.rmdir(ROOT, name("d")).unwrap();
}

#[test]
fn an_unlinked_open_file_lives_until_released_unless_a_durable_name_holds_it() {
    let mut m = Model::default();
    let f = m.create(ROOT, name("f"), Kind::File, 0o644).unwrap();
    m.open(f).unwrap();
    m.unlink(ROOT, name("f")).unwrap();
    m.write(f, 0, b"still writable").unwrap();
    assert_eq!(m.inode_count(), 2);
    m.release(f);
    assert_eq!(m.inode_count(), 1, "nothing reaches it any more");

    let (mut m, f) = with_synced_file();
    m.unlink(ROOT, name("f")).unwrap();
    assert_eq!(m.inode_count(), 2, "the durable name still reaches it");
    assert_eq!(
        m.clone().cut(CutMode::DropAll).0.names(""),
        Some(vec!["f".to_owned()])
    );
    m.fsync_dir(ROOT).unwrap();
    assert_eq!(m.inode_count(), 1);
    assert!(!m.inodes.contains_key(&f));
}

#[test]
fn random_subset_is_seeded_and_keeps_order() {
    let (mut m, f) = with_synced_file();
    for round in 1..=2u8 {
        for i in 0..32u64 {
            m.write(f, i, &[round]).unwrap();
        }
    }
    let cut = |seed| m.clone().cut(CutMode::RandomSubset { seed }).0;
    assert_eq!(cut(5), cut(5), "one seed, one image");
    let data = cut(5).file("f").unwrap().to_vec();
    assert!(
        data.contains(&2) && data.iter().any(|&b| b != 2),
        "{data:?}"
    );
    assert_ne!(cut(5), cut(6));
}

#[test]
fn torn_prefix_tears_only_the_last_kept_write() {
    let (mut m, f) = with_synced_file();
    for i in 0..20u64 {
        m.write(f, i * 10, &[9; 10]).unwrap();
    }
    for seed in 0..20 {
        let (image, stats) = m.clone().cut(CutMode::TornPrefix { seed });
        let data = image.file("f").unwrap();
        assert!(data.iter().all(|&b| b == 9), "a prefix is contiguous");
        assert_eq!(stats.dropped_bytes, 200 - data.len() as u64);
    }
}

#[test]
fn every_operation_fails_after_a_cut() {
    let (mut m, f) = with_synced_file();
    let _ = m.cut(CutMode::DropAll);
    assert_eq!(m.write(f, 0, b"x"), Err(FsError::PowerOff));
    assert_eq!(m.fsync(f), Err(FsError::PowerOff));
    assert_eq!(m.lookup(ROOT, name("f")), Err(FsError::PowerOff));
    assert_eq!(
        m.create(ROOT, name("g"), Kind::File, 0o644),
        Err(FsError::PowerOff)
    );
}

#[test]
fn after_ops_trigger_fails_the_nth_mutating_operation() {
    let (mut m, f) = with_synced_file();
    m.arm(Trigger::AfterOps(2));
    m.read(f, 0, 1).unwrap(); // reads do not count
    m.write(f, 0, b"1").unwrap();
    m.write(f, 1, b"2").unwrap();
    assert_eq!(m.fsync(f), Err(FsError::PowerOff));
    assert!(m.is_frozen() && m.trigger_fired());
}

#[test]
fn an_image_round_trips_through_a_model() {
    let mut m = Model::default();
    let d = m.create(ROOT, name("d"), Kind::Dir, 0o700).unwrap();
    let f = m.create(d, name("f"), Kind::File, 0o600).unwrap();
    m.write(f, 0, b"bytes").unwrap();
    let image = m.current_image();
    assert_eq!(image.file("d/f"), Some(&b"bytes"[..]));
    assert!(matches!(
        image.node("d"),
        Some(ImageNode::Dir { perm: 0o700, .. })
    ));
    let again = Model::from_image(&image);
    assert_eq!(again.current_image(), image);
    let (cut, stats) = again.clone().cut(CutMode::DropAll);
    assert_eq!(cut, image, "a mounted image is all durable");
    assert_eq!(stats.unsynced_ops, 0);
    assert_eq!(Model::default().current_image(), Image::empty());
}
