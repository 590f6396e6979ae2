//! Shared by the tool's tests: directories written by a real engine, and
//! the real binary run against them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use solostate::{CheckpointPolicy, Durability, Engine, JournalBackend, StateEvent};

/// The event type of the test directories.
pub type Ev = StateEvent<String, u64>;

/// The schema the test directories are written with.
pub const SCHEMA: &str = "kv-v1";

/// The key of the `i`-th put.
pub fn key(i: u64) -> String {
    format!("key-{i:05}")
}

/// What `write` wrote.
pub struct Written {
    /// The engine's directory.
    pub dir: PathBuf,
    /// The last seq.
    pub last: u64,
}

/// A multi-thread runtime for the engine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `events` puts (`key(i) = i` for i in 1..=events, over 40
/// distinct keys, so later ones overwrite), one event per batch, with a
/// checkpoint every `checkpoint_every` events; then, if `rollback_to` is
/// given, a rollback to it; then shuts down (which writes a last
/// checkpoint).
pub fn write(
    root: &Path,
    events: u64,
    checkpoint_every: u64,
    rollback_to: Option<u64>,
    backend: JournalBackend,
) -> Written {
    let dir = root.join("engine");
    let last = runtime().block_on(async {
        let engine = Engine::<Ev>::builder()
            .path(&dir)
            .schema(SCHEMA)
            .durability(Durability::Never)
            .journal_backend(backend)
            .checkpoints(
                CheckpointPolicy::default()
                    .every_events(checkpoint_every)
                    .keep(100),
            )
            .open()
            .await
            .unwrap();
        let mut last = 0;
        for i in 1..=events {
            last = engine
                .submit(StateEvent::put(key(i % 40), i))
                .await
                .unwrap()
                .seq;
        }
        if let Some(target) = rollback_to {
            last = engine.rollback_to(target).await.unwrap().seq;
        }
        engine.shutdown().await.unwrap();
        last
    });
    Written { dir, last }
}

/// Runs the shipped binary with `args`.
pub fn solostate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_solostate"))
        .args(args)
        .output()
        .unwrap()
}

/// A path as a `&str` argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// For a run that must have found damage: asserts exit code 2, and
/// returns its stdout and the first `damaged: ` line in it.
pub fn damage_found(output: &Output) -> (String, String) {
    let text = stdout(output);
    assert_eq!(output.status.code(), Some(2), "{text}{}", stderr(output));
    let line = text
        .lines()
        .find(|line| line.starts_with("damaged: "))
        .unwrap_or_else(|| panic!("no damage line in {text}"))
        .to_owned();
    (text, line)
}

/// The journal's only segment file.
pub fn segment(dir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

/// The checkpoint files, by seq.
pub fn checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            let seq = name
                .strip_prefix("ckpt-")?
                .strip_suffix(".ckpt")?
                .parse()
                .ok()?;
            Some((seq, path))
        })
        .collect();
    found.sort();
    found
}

/// Every file under `dir` with its bytes, to show a command changed
/// nothing.
pub fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.push((path, bytes));
            }
        }
    }
    found.sort();
    found
}

/// Damages the journal record holding the `nth` (from 0) occurrence of
/// `needle` in the only segment, so that the segment log's frame still
/// verifies (its crc is recomputed, as the segment log computes it: over
/// the frame number, then the payload) but the record's own crc does not:
/// damage that only the journal's record check can find.
pub fn damage_record_inside_its_frame(dir: &Path, needle: &[u8], nth: usize) {
    let path = segment(dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let le32 = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut offset = 28; // the segment header
    let mut seen = 0;
    while offset + 16 <= bytes.len() {
        let len = le32(&bytes, offset) as usize;
        let frame_no = u64::from_le_bytes(bytes[offset + 8..offset + 16].try_into().unwrap());
        assert!(frame_no != 0, "{needle:?} occurrence {nth} not found");
        let payload = offset + 16..offset + 16 + len;
        let hits: Vec<usize> = bytes[payload.clone()]
            .windows(needle.len())
            .enumerate()
            .filter(|(_, window)| *window == needle)
            .map(|(at, _)| payload.start + at)
            .collect();
        if let Some(&at) = hits.get(nth - seen) {
            bytes[at] ^= 0x01;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&frame_no.to_le_bytes());
            crc.update(&bytes[payload]);
            let crc = crc.finalize();
            bytes[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            return;
        }
        seen += hits.len();
        offset = payload.end;
    }
    panic!("{needle:?} occurrence {nth} not found");
}
