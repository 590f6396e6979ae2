//! The harness's dealings with its child processes and their output: the
//! check child's run, the dump of a failing cycle's directory, and a
//! child's stderr.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::super::child::{CHILD_COMMAND, CheckOutcome, MAX_OUTCOME, Settings};
use super::Config;

/// Runs the check child on the mounted cut image and reads its outcome.
/// A child that dies without one (an abort, a crash) counts as a panicked
/// open; one that hangs for 5 minutes is killed and counts as failed.
pub(super) fn check(
    config: &Config,
    scratch: &Path,
    dir: &Path,
    settings: Settings,
    from: u64,
) -> Result<CheckOutcome, String> {
    let out = scratch.join("outcome.bin");
    let _ = std::fs::remove_file(&out); // a previous cycle's
    let mut child = Command::new(&config.child)
        .arg(CHILD_COMMAND)
        .arg("check")
        .arg(dir)
        .arg(settings.retention_arg())
        .arg(settings.every_events.to_string())
        .arg(from.to_string())
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", config.child.display()))?;
    let stderr = drain(child.stderr.take().expect("piped"));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        match child
            .try_wait()
            .map_err(|e| format!("wait for the check: {e}"))?
        {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        return Ok(CheckOutcome {
            open: Err("the reopen hung for 5 minutes".into()),
            open_panic: None,
            steps: Err("not read".into()),
        });
    };
    match std::fs::read(&out) {
        Ok(bytes) => {
            let config = bincode::config::standard().with_limit::<MAX_OUTCOME>();
            bincode::serde::decode_from_slice(&bytes, config)
                .map(|(outcome, _)| outcome)
                .map_err(|e| format!("the check's outcome is unreadable: {e}"))
        }
        Err(_) => Ok(CheckOutcome {
            open: Err("the check process died".into()),
            open_panic: Some(format!("{status}: {}", tail(&stderr))),
            steps: Err("not read".into()),
        }),
    }
}

/// Copies the directory tree `from` to `to` (files and directories only:
/// all the simulator has).
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    if !from.exists() {
        return Ok(()); // cut before the engine made it
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Reads a child's stderr on a thread of its own, so it never blocks.
pub(super) fn drain(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text); // whatever arrived
        text
    })
}

/// The last few lines of a child's stderr.
pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}
