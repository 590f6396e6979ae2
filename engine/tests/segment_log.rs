//! The engine on its default journal backend, the segment log: what
//! opening cuts off the end of the last segment is reported in
//! `Recovery::cut_segment_tail` (a torn write, never acknowledged; or
//! damage it cannot tell from one, never read), and a journal written on
//! sled keeps opening on sled whatever the builder says.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use solostate::{CheckpointPolicy, Durability, Engine, JournalBackend, StateEvent};

type Ev = StateEvent<u64, u64>;

const SCHEMA: &str = "engine-tests/segment-log";

fn builder(dir: &Path) -> solostate::Builder<Ev> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema(SCHEMA)
        .journal_backend(JournalBackend::Segments)
        .durability(Durability::Always)
        .checkpoints(CheckpointPolicy::never())
}

/// Writes puts `1..=count` (key = seq) and shuts down.
async fn write(dir: &Path, count: u64) {
    let engine = builder(dir).open().await.unwrap();
    for key in 1..=count {
        engine.submit(Ev::put(key, key * 10)).await.unwrap();
    }
    engine.shutdown().await.unwrap();
}

/// The journal's segment files, in order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    found.sort();
    found
}

/// Where a segment's frames end: past its 28-byte header, each frame is
/// a `len: u32`, a crc, a `frame_no: u64` that is never 0, and `len`
/// bytes; after the last come the preallocated zeros.
fn frames_end(segment: &Path) -> u64 {
    let bytes = std::fs::read(segment).unwrap();
    let mut at = 28;
    while at + 16 <= bytes.len() && bytes[at + 8..at + 16] != [0; 8] {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        at += 16 + len as usize;
    }
    at as u64
}

#[tokio::test]
async fn a_torn_write_at_the_end_of_the_log_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 20).await;
    let last = segments(dir.path()).pop().expect("a segment");
    let len = std::fs::metadata(&last).unwrap().len();
    let end = frames_end(&last);
    assert!(end < len, "the segment is preallocated past its frames");
    // What a crash in the middle of a frame's write leaves: part of a
    // frame header and some payload, never synced, never acknowledged,
    // where the next frame would go (over the preallocated zeros).
    let torn = [7u8, 0, 0, 0, 0xAB, 0xCD, 0xEF, 0x01, 0x15, 0, 0];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .write_all_at(&torn, end)
        .unwrap();

    let engine = builder(dir.path()).open().await.unwrap();
    let recovery = engine.recovery().clone();
    let cut = recovery
        .cut_segment_tail
        .as_ref()
        .expect("the cut is reported");
    assert_eq!(cut.segment, last);
    assert_eq!(cut.offset, end);
    assert_eq!(
        cut.dropped_bytes,
        len - end,
        "the torn bytes and the zeros after them"
    );
    assert!(cut.nonzero && !cut.header_torn);
    assert!(!recovery.is_clean());
    assert_eq!(recovery.last_seq, 20);
    assert_eq!(std::fs::metadata(&last).unwrap().len(), end, "cut off");
    let snapshot = engine.reader().snapshot();
    assert_eq!(snapshot.len(), 20);
    assert_eq!(snapshot.get(&20).as_deref(), Some(&200));
    // The next event follows, and a clean reopen has nothing to report.
    assert_eq!(engine.submit(Ev::put(21, 210)).await.unwrap().seq, 21);
    engine.shutdown().await.unwrap();
    let engine = builder(dir.path()).open().await.unwrap();
    assert!(engine.recovery().is_clean(), "{:?}", engine.recovery());
    assert_eq!(engine.reader().seq(), 21);
    engine.shutdown().await.unwrap();
}

/// Damage inside the last segment cannot be told from a torn write (a
/// power cut can keep a later unsynced frame and drop an earlier one), so
/// the log is cut at the damaged frame: what follows is lost, but the cut
/// is reported, and nothing damaged is ever read. (Damage in an earlier
/// segment, which can hold no torn write, fails the open: the segment
/// log's own tests.)
#[tokio::test]
async fn damage_in_the_last_segment_is_cut_there_and_reported_never_read() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 20).await;
    let segment = segments(dir.path()).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let len = bytes.len() as u64;
    // A byte in the middle of the synced frames (past the 28-byte header),
    // not of the zeros preallocated after them.
    let at = frames_end(&segment) as usize / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();

    let engine = builder(dir.path()).open().await.unwrap();
    let recovery = engine.recovery().clone();
    let cut = recovery
        .cut_segment_tail
        .as_ref()
        .expect("the cut is reported");
    assert_eq!(cut.segment, segment);
    assert!(cut.offset <= at as u64, "cut at or before the damage");
    assert_eq!(cut.offset + cut.dropped_bytes, len);
    assert!(cut.nonzero);
    let last = recovery.last_seq;
    assert!(last < 20, "the damaged frame and those after it are gone");
    // What was kept is exactly the prefix that was written.
    let snapshot = engine.reader().snapshot();
    assert_eq!(snapshot.len() as u64, last);
    for key in 1..=last {
        assert_eq!(snapshot.get(&key).as_deref(), Some(&(key * 10)));
    }
    engine.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_journal_written_on_sled_keeps_opening_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let engine = builder(dir.path())
        .journal_backend(JournalBackend::Sled)
        .open()
        .await
        .unwrap();
    engine.submit(Ev::put(1, 10)).await.unwrap();
    engine.shutdown().await.unwrap();
    // This builder asks for the segment log; the files say sled.
    let engine = builder(dir.path()).open().await.unwrap();
    assert_eq!(engine.reader().seq(), 1);
    engine.submit(Ev::put(2, 20)).await.unwrap();
    engine.shutdown().await.unwrap();
    assert!(dir.path().join("journal").join("conf").is_file());
    assert!(
        segments(dir.path()).is_empty(),
        "no segment log was created"
    );
}
