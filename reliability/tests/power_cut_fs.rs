//! The power-cut simulator through a real FUSE mount: what survives a cut
//! is exactly what was synced. Each test mounts its own filesystem; where
//! FUSE is unavailable they print why and pass, unless
//! `SOLOSTATE_REQUIRE_FUSE=1` (CI), which makes that a failure.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use solostate::persistence::sync::sync_dir;
use solostate_reliability::powercut::{CutMode, Image, Simulator, Trigger, mount_or_skip};

/// Mounts an empty simulator in a fresh directory and runs `body` on it.
fn with_mount(body: impl FnOnce(&Simulator, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let Some(sim) = mount_or_skip(dir.path(), &Image::empty()) else {
        return;
    };
    let path = sim.path().to_owned();
    body(&sim, &path);
}

#[test]
fn an_unsynced_write_is_gone_after_a_cut() {
    with_mount(|sim, root| {
        fs::write(root.join("f"), b"hello").unwrap();
        sync_dir(root).unwrap();
        assert_eq!(fs::read(root.join("f")).unwrap(), b"hello");
        let (image, stats) = sim.cut(CutMode::DropAll);
        assert_eq!(
            image.file("f"),
            Some(&b""[..]),
            "the name was synced, the data not"
        );
        assert_eq!(stats.dropped_bytes, 5);
    });
}

#[test]
fn a_write_then_fsync_survives_a_cut() {
    with_mount(|sim, root| {
        let mut f = File::create(root.join("f")).unwrap();
        f.write_all(b"durable").unwrap();
        f.sync_all().unwrap();
        f.write_all(b" and not").unwrap();
        sync_dir(root).unwrap();
        let (image, _) = sim.cut(CutMode::DropAll);
        assert_eq!(image.file("f"), Some(&b"durable"[..]));
    });
}

#[test]
fn fdatasync_makes_data_durable_too() {
    with_mount(|sim, root| {
        let f = File::create(root.join("f")).unwrap();
        f.write_all_at(b"abc", 10).unwrap();
        f.sync_data().unwrap();
        sync_dir(root).unwrap();
        let (image, _) = sim.cut(CutMode::DropAll);
        let mut expected = vec![0u8; 10];
        expected.extend_from_slice(b"abc");
        assert_eq!(image.file("f"), Some(&expected[..]));
    });
}

#[test]
fn a_synced_file_whose_directory_was_not_synced_is_gone() {
    with_mount(|sim, root| {
        let mut f = File::create(root.join("orphan")).unwrap();
        f.write_all(b"data").unwrap();
        f.sync_all().unwrap();
        let (image, stats) = sim.cut(CutMode::DropAll);
        assert_eq!(image.names(""), Some(vec![]));
        assert_eq!(stats.lost_inodes, 1);
    });
}

#[test]
fn a_rename_is_durable_after_fsyncdir() {
    with_mount(|sim, root| {
        let mut f = File::create(root.join("a.tmp")).unwrap();
        f.write_all(b"v1").unwrap();
        f.sync_all().unwrap();
        fs::rename(root.join("a.tmp"), root.join("a")).unwrap();
        sync_dir(root).unwrap();
        let (image, _) = sim.cut(CutMode::DropAll);
        assert_eq!(image.names(""), Some(vec!["a".to_owned()]));
        assert_eq!(image.file("a"), Some(&b"v1"[..]));
    });
}

#[test]
fn a_rename_without_fsyncdir_leaves_the_old_name() {
    with_mount(|sim, root| {
        let mut f = File::create(root.join("old")).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_all().unwrap();
        sync_dir(root).unwrap();
        fs::rename(root.join("old"), root.join("new")).unwrap();
        let (image, _) = sim.cut(CutMode::DropAll);
        assert_eq!(image.names(""), Some(vec!["old".to_owned()]));
        assert_eq!(image.file("old"), Some(&b"x"[..]));
    });
}

#[test]
fn a_new_directory_needs_its_parent_synced_and_itself_for_its_names() {
    with_mount(|sim, root| {
        fs::create_dir_all(root.join("d/e")).unwrap();
        fs::write(root.join("d/e/f"), b"1").unwrap();
        sync_dir(root).unwrap();
        sync_dir(&root.join("d/e")).unwrap(); // but not d
        let (image, _) = sim.cut(CutMode::DropAll);
        assert_eq!(
            image.names("d"),
            Some(vec![]),
            "d's entry for e was never synced"
        );
    });
}

#[test]
fn unlink_and_rmdir_are_undone_unless_synced() {
    with_mount(|sim, root| {
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("f"), b"").unwrap();
        fs::write(root.join("g"), b"").unwrap();
        sync_dir(root).unwrap();
        fs::remove_dir(root.join("d")).unwrap();
        fs::remove_file(root.join("f")).unwrap();
        sync_dir(root).unwrap();
        fs::remove_file(root.join("g")).unwrap();
        let (image, _) = sim.cut(CutMode::DropAll);
        assert_eq!(image.names(""), Some(vec!["g".to_owned()]));
    });
}

#[test]
fn after_a_cut_every_operation_fails_with_eio() {
    with_mount(|sim, root| {
        let f = File::create(root.join("f")).unwrap();
        let _ = sim.cut(CutMode::DropAll);
        let error = f.write_all_at(b"late", 0).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(5), "{error}");
        assert_eq!(f.sync_all().unwrap_err().raw_os_error(), Some(5));
        drop(f);
    });
}

#[test]
fn random_subset_keeps_some_unsynced_writes_in_order() {
    with_mount(|sim, root| {
        let f = File::create(root.join("f")).unwrap();
        f.sync_all().unwrap();
        sync_dir(root).unwrap();
        for i in 0..64u8 {
            f.write_all_at(&[i + 1], u64::from(i)).unwrap();
        }
        drop(f);
        let (image, stats) = sim.cut(CutMode::RandomSubset { seed: 3 });
        let data = image.file("f").unwrap();
        let kept = data.iter().filter(|&&b| b != 0).count();
        assert!(kept > 10 && kept < 54, "kept {kept} of 64 one-byte writes");
        for (i, &b) in data.iter().enumerate() {
            assert!(b == 0 || b == i as u8 + 1, "byte {i} is {b}");
        }
        assert_eq!(stats.dropped_bytes, 64 - kept as u64);
    });
}

#[test]
fn torn_prefix_keeps_a_prefix_of_the_unsynced_writes() {
    with_mount(|sim, root| {
        let mut f = File::create(root.join("f")).unwrap();
        f.sync_all().unwrap();
        sync_dir(root).unwrap();
        for _ in 0..32 {
            f.write_all(&[7u8; 100]).unwrap();
        }
        drop(f);
        let (image, _) = sim.cut(CutMode::TornPrefix { seed: 11 });
        let data = image.file("f").unwrap();
        assert!(
            data.len() < 3200,
            "{} bytes: nothing was torn off",
            data.len()
        );
        assert!(data.iter().all(|&b| b == 7), "a prefix has no holes");
    });
}

#[test]
fn a_create_trigger_cuts_inside_the_operation_after_it() {
    with_mount(|sim, root| {
        sim.arm(Trigger::AfterCreate {
            prefix: "ckpt-".into(),
            suffix: ".tmp".into(),
            then: 1,
        });
        fs::write(root.join("other.tmp"), b"not watched").unwrap();
        assert!(!sim.is_frozen());
        let mut f = File::create(root.join("ckpt-1.tmp")).unwrap();
        f.write_all(b"first").unwrap();
        assert!(
            f.sync_all().is_err(),
            "the second operation after the create fails"
        );
        assert!(sim.is_frozen());
        assert!(sim.model().trigger_fired());
    });
}

#[test]
fn a_cut_image_mounts_again_with_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sim) = mount_or_skip(dir.path(), &Image::empty()) else {
        return;
    };
    let root = sim.path().to_owned();
    fs::create_dir(root.join("d")).unwrap();
    let mut f = File::create(root.join("d/f")).unwrap();
    f.write_all(b"kept").unwrap();
    f.sync_all().unwrap();
    sync_dir(&root.join("d")).unwrap();
    sync_dir(&root).unwrap();
    drop(f);
    let (image, _) = sim.cut(CutMode::DropAll);
    sim.unmount().unwrap();
    let sim = Simulator::mount(dir.path(), &image).unwrap();
    assert_eq!(fs::read(root.join("d/f")).unwrap(), b"kept");
    let mut f = OpenOptions::new()
        .append(true)
        .open(root.join("d/f"))
        .unwrap();
    f.write_all(b", and more").unwrap();
    drop(f);
    assert_eq!(fs::read(root.join("d/f")).unwrap(), b"kept, and more");
    let (again, _) = sim.cut(CutMode::DropAll);
    assert_eq!(
        again.file("d/f"),
        Some(&b"kept"[..]),
        "the append was not synced"
    );
}

#[test]
fn flock_is_exclusive_across_processes_on_the_mount() {
    with_mount(|_sim, root| {
        let path = root.join("locked");
        fs::write(&path, b"").unwrap();
        let flock = |args: &[&str]| {
            std::process::Command::new("flock")
                .args(args)
                .arg(&path)
                .args(["-c", "true"])
                .status()
        };
        let Ok(free) = flock(&["-n", "-x"]) else {
            eprintln!("skipped: no flock(1) here");
            return;
        };
        assert!(free.success(), "an unlocked file can be locked");
        let mut holder = std::process::Command::new("flock")
            .arg("-x")
            .arg(&path)
            .args(["-c", "echo locked; sleep 30"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the holder has the lock.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        let busy = flock(&["-n", "-x"]).unwrap();
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(!busy.success(), "a second exclusive lock must fail");
    });
}

#[test]
fn reads_see_every_write_and_create_truncates() {
    with_mount(|_sim, root| {
        let path = root.join("f");
        fs::write(&path, b"abcdef").unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        f.write_all_at(b"XY", 4).unwrap();
        f.write_all_at(b"!", 10).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abcdXY\0\0\0\0!");
        f.set_len(3).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abc");
        drop(f);
        fs::write(&path, b"z").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"z");
        let names: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
    });
}
