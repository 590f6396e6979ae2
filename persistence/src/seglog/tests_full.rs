//! A write that fails part way (the disk or the file-size limit is
//! reached): nothing of the frame may stay in the file, and the error
//! keeps its kind, because the engine reports a full disk as such.
//!
//! A test cannot fill a real disk, so it runs itself again under a shell
//! with `ulimit -f` (and `SIGXFSZ` ignored, which `exec` keeps): writes
//! past the limit then fail with `EFBIG`, after a short write, which is
//! exactly the shape of `ENOSPC` on a nearly full disk.

use std::path::Path;
use std::process::Command;

use super::SegError;
use super::tests::{Model, apply, assert_matches, open, put, segments};

/// Set, to the log's directory, only in the re-run child.
const CHILD_ENV: &str = "SOLOSTATE_SEGLOG_FSIZE_CHILD";

#[test]
fn a_write_that_fails_part_way_is_cut_back_and_keeps_its_error_kind() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = "trap '' XFSZ; ulimit -f 256 || exit 3; exec \"$0\" --exact \
                  seglog::tests_full::child_writes_until_the_file_size_limit \
                  --include-ignored --test-threads 1 --nocapture";
    let output = match Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&exe)
        .env(CHILD_ENV, dir.path())
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            eprintln!("skipped: no `sh` to set a file-size limit with: {error}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Without the limit: the log opens with nothing to cut.
    let opened = open(dir.path(), 64 << 20);
    assert!(opened.tail.is_none(), "{:?}", opened.tail);
    assert!(!opened.log.is_empty());
}

/// The child's half; does nothing unless run by the test above.
#[test]
#[ignore = "run by a_write_that_fails_part_way_is_cut_back_and_keeps_its_error_kind under ulimit -f"]
fn child_writes_until_the_file_size_limit() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let log = open(dir, 64 << 20).log;
    let mut model = Model::new();
    let value = vec![7u8; 10 << 10];
    let mut written = 0u32;
    let error = loop {
        let key = written.to_be_bytes();
        match log.apply(&[put(0, &key, &value)]) {
            Ok(()) => {
                model.insert((0, key.to_vec()), value.clone());
                written += 1;
            }
            Err(error) => break error,
        }
        assert!(written < 1000, "the file-size limit never hit");
    };
    assert!(written > 0);
    match &error {
        SegError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::FileTooLarge, "{error}");
        }
        other => panic!("expected an i/o error, got {other}"),
    }
    let on_disk = std::fs::metadata(&segments(dir)[0]).unwrap().len();
    assert_eq!(
        on_disk,
        log.size_on_disk(),
        "part of the failed frame stayed"
    );
    assert_matches(&log, &model, 1);
    // An op that fits still goes in after the failure.
    apply(&log, &mut model, &[put(1, b"small", b"")]);
    drop(log);
    let reopened = open(dir, 64 << 20);
    assert!(reopened.tail.is_none(), "{:?}", reopened.tail);
    assert_matches(&reopened.log, &model, 2);
}
