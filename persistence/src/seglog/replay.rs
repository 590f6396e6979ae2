//! Opening a log: take the directory's lock, list the segments, replay
//! every frame in order into the index, and cut off the torn tail of the
//! last segment (the only place a power cut can leave one; see the module
//! docs for why).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use super::format::{self, DecodedOp, FRAME_HEADER_LEN, HEADER_LEN, Header};
use super::index::{Index, Loc, Segment};
use super::{Active, Opened, Options, SegError, SegLog, TailCut, Writer, io_error};

/// See [`SegLog::open`] and, with `read_only`, [`SegLog::open_read_only`].
pub(super) fn open(
    dir: &Path,
    create: bool,
    read_only: bool,
    options: Options,
) -> Result<Opened, SegError> {
    let create = create && !read_only;
    if create {
        crate::sync::create_dir_all(dir).map_err(io_error(dir))?;
    } else if !dir.is_dir() || list_segments(dir)?.is_empty() {
        // Checked before taking the lock, so that a mistaken open leaves
        // no `lock` file behind in a directory that holds no log.
        return Err(SegError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let lock = take_lock(dir, read_only)?;
    let mut numbers = list_segments(dir)?;
    let mut tail = None;
    if let Some(&last) = numbers.last()
        && let Some(cut) = remove_if_header_torn(dir, last, read_only)?
    {
        numbers.pop();
        tail = Some(cut);
    }
    let mut created = false;
    if numbers.is_empty() {
        if !create {
            return Err(SegError::NotFound {
                path: dir.to_path_buf(),
            });
        }
        create_segment(dir, 1, 1)?;
        crate::sync::sync_dir(dir).map_err(io_error(dir))?;
        numbers.push(1);
        created = true;
    }
    for pair in numbers.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(SegError::Corrupt {
                path: dir.join(format::segment_name(pair[1])),
                offset: 0,
                reason: format!(
                    "segment {} follows segment {}: a segment is missing",
                    pair[1], pair[0]
                ),
            });
        }
    }
    let mut index = Index::default();
    let mut next_frame = None;
    let mut end = HEADER_LEN;
    let mut allocated = HEADER_LEN;
    // After a torn header was removed, the segment before it is the last
    // one, but it was synced in full before the rollover began: a bad
    // frame in it is damage, not a torn tail.
    let header_removed = tail.is_some();
    for (i, &number) in numbers.iter().enumerate() {
        let last = i + 1 == numbers.len() && !header_removed;
        let scanned = scan_segment(dir, number, last, read_only, next_frame, &mut index)?;
        next_frame = Some(scanned.next_frame);
        end = scanned.end;
        allocated = scanned.allocated;
        if scanned.tail.is_some() {
            tail = scanned.tail;
        }
    }
    let active = *numbers.last().unwrap_or(&1);
    let segment = index
        .segments
        .get(&active)
        .ok_or_else(|| SegError::NotFound {
            path: dir.to_path_buf(),
        })?;
    let (file, path) = (Arc::clone(&segment.file), segment.path.clone());
    let log = SegLog {
        dir: dir.to_path_buf(),
        options,
        writer: Mutex::new(Writer {
            segment: active,
            file: Arc::clone(&file),
            path: path.clone(),
            end,
            allocated,
            next_frame: next_frame.unwrap_or(1),
        }),
        index: RwLock::new(index),
        active: Mutex::new(Active {
            segment: active,
            file,
            path,
        }),
        poisoned: AtomicBool::new(false),
        _lock: lock,
        #[cfg(test)]
        steps: Mutex::default(),
    };
    Ok(Opened { log, created, tail })
}

/// Opens (creating) and exclusively locks `dir/lock`. With `read_only`
/// the file is opened for reading and never created: a log without one
/// was never opened by a writer that could still hold it (every writer
/// creates it before anything else), so there is nothing to lock (`None`).
fn take_lock(dir: &Path, read_only: bool) -> Result<Option<File>, SegError> {
    let path = dir.join("lock");
    let opened = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .create(!read_only)
        .truncate(false)
        .open(&path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if read_only && error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(&path)(error)),
    };
    // `File::try_lock` (Rust 1.89, the workspace's rust-version): an
    // exclusive lock with no unsafe code and no extra crate.
    //
    // A lock can outlive its holder's `close` for an instant: it belongs
    // to the open file description, and a child that another thread of
    // this process is spawning holds a copy of every descriptor until its
    // `exec` closes them. This module's tests saw a reopen right after a
    // drop refused and then granted 100 µs later (about once in 30 runs
    // of the suite, in which one test spawns a process; the holder was
    // not identified for certain), and the power-cut harness spawns
    // `fusermount3` beside a reopening engine. So a held lock is retried
    // for a short while before it is reported as another owner.
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            Err(TryLockError::WouldBlock) => {
                return Err(SegError::AlreadyOpen {
                    path: dir.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(SegError::Io { path, source }),
        }
    }
}

/// How long a held lock is tried again before open reports
/// [`SegError::AlreadyOpen`] (see `take_lock`), so a real second owner is
/// reported after about this long. It was 50 ms, and CI (2 cores, the
/// whole suite building and running) once saw a reopen right after a
/// clean shutdown refused with the sibling tests of that binary spawning
/// processes: a spawning child's copy of the descriptor can outlive 50 ms
/// on a loaded machine. sled's open waits 300 ms for the same reason.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// The pause between tries.
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// The segment numbers in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>, SegError> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if let Some(number) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_segment_name)
        {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Creates segment `number`, whose first frame will be `first_frame`: its
/// header written and `fdatasync`ed. The caller fsyncs the directory.
pub(super) fn create_segment(
    dir: &Path,
    number: u64,
    first_frame: u64,
) -> Result<(File, PathBuf), SegError> {
    let path = dir.join(format::segment_name(number));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error(&path))?;
    let header = format::encode_header(Header {
        segment: number,
        first_frame,
    });
    format::write_at(&file, &header, 0)
        .and_then(|()| file.sync_data())
        .map_err(io_error(&path))?;
    Ok((file, path))
}

/// Removes the last segment if it is no longer than a header and its
/// header does not verify: a power cut while rolling over to it, before it
/// held a frame (a header is synced before any frame is written). A longer
/// file with a bad header is left for the scan to report as corrupt. With
/// `read_only` the file stays, and what a writer's open would remove is
/// reported all the same.
fn remove_if_header_torn(
    dir: &Path,
    number: u64,
    read_only: bool,
) -> Result<Option<TailCut>, SegError> {
    let path = dir.join(format::segment_name(number));
    let len = std::fs::metadata(&path).map_err(io_error(&path))?.len();
    if len > HEADER_LEN {
        // Checked first, so that open never reads a whole segment here.
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(io_error(&path))?;
    if bytes.len() as u64 > HEADER_LEN || format::decode_header(&bytes).is_ok() {
        return Ok(None);
    }
    if !read_only {
        std::fs::remove_file(&path).map_err(io_error(&path))?;
        crate::sync::sync_dir(dir).map_err(io_error(dir))?;
        tracing::warn!(path = %path.display(), "removed a segment whose header was torn");
    }
    Ok(Some(TailCut {
        segment: path,
        offset: 0,
        dropped_bytes: bytes.len() as u64,
        nonzero: bytes.iter().any(|b| *b != 0),
        header_torn: true,
    }))
}

/// What scanning one segment found.
struct Scanned {
    /// The frame number after its last frame.
    next_frame: u64,
    /// Where its frames end: where the next frame goes.
    end: u64,
    /// The file's length after any cut: `end` plus a preallocated tail of
    /// zeros, if the segment is the last and has one.
    allocated: u64,
    /// What was cut off, if this is the last segment and it had a torn
    /// tail.
    tail: Option<TailCut>,
}

/// Replays segment `number` into `index` (adding it to the index's
/// segments). `expected` is the frame number the previous segment ended
/// before, if any; `last` says whether a bad frame is a torn tail (cut)
/// or damage (corrupt). With `read_only` the file is opened for reading
/// and a torn tail is reported but not cut: the index ends at the last
/// whole frame either way.
fn scan_segment(
    dir: &Path,
    number: u64,
    last: bool,
    read_only: bool,
    expected: Option<u64>,
    index: &mut Index,
) -> Result<Scanned, SegError> {
    let path = dir.join(format::segment_name(number));
    let corrupt = |offset: u64, reason: String| SegError::Corrupt {
        path: path.clone(),
        offset,
        reason,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(&path)
        .map_err(io_error(&path))?;
    let len = file.metadata().map_err(io_error(&path))?.len();
    let mut head = vec![0u8; HEADER_LEN.min(len) as usize];
    format::read_at(&file, &mut head, 0).map_err(io_error(&path))?;
    let header = format::decode_header(&head).map_err(|reason| corrupt(0, reason))?;
    if header.segment != number {
        return Err(corrupt(
            0,
            format!("header names segment {}, expected {number}", header.segment),
        ));
    }
    if let Some(expected) = expected.filter(|e| *e != header.first_frame) {
        return Err(corrupt(
            0,
            format!(
                "header's first frame {} does not follow frame {}",
                header.first_frame,
                expected.wrapping_sub(1)
            ),
        ));
    }
    let file = Arc::new(file);
    index.segments.insert(
        number,
        Segment {
            file: Arc::clone(&file),
            path: path.clone(),
            len,
            live: 0,
        },
    );
    let mut next = header.first_frame;
    let mut offset = HEADER_LEN;
    let mut ahead = format::ReadAhead::new(&file, len);
    while offset < len {
        let checked = format::read_frame(&mut ahead, offset, len, next)
            .map_err(io_error(&path))?
            .and_then(|frame| {
                let ops = format::decode_ops(&frame.payload)
                    .map_err(|reason| format!("frame {next} does not decode: {reason}"))?;
                Ok((frame.total_len, ops))
            });
        match checked {
            Ok((total_len, ops)) => {
                replay_ops(index, number, offset + FRAME_HEADER_LEN, ops);
                offset += total_len;
                next += 1;
            }
            Err(reason) if last => {
                // Zeros to the end are the preallocated tail (or pages a
                // power cut never wrote back): no frame of ours is ever
                // all zeros, so nothing is dropped, and no stale frame can
                // hide there. Anything else is cut.
                if !any_nonzero(&file, offset, len).map_err(io_error(&path))? {
                    return Ok(Scanned {
                        next_frame: next,
                        end: offset,
                        allocated: len,
                        tail: None,
                    });
                }
                let tail = if read_only {
                    TailCut {
                        segment: path.clone(),
                        offset,
                        dropped_bytes: len - offset,
                        nonzero: true,
                        header_torn: false,
                    }
                } else {
                    cut_tail(&file, &path, offset, len, &reason)?
                };
                if let Some(segment) = index.segments.get_mut(&number) {
                    segment.len = offset;
                }
                return Ok(Scanned {
                    next_frame: next,
                    end: offset,
                    allocated: offset,
                    tail: Some(tail),
                });
            }
            Err(reason) => return Err(corrupt(offset, reason)),
        }
    }
    Ok(Scanned {
        next_frame: next,
        end: offset,
        allocated: offset,
        tail: None,
    })
}

/// Applies one verified frame's ops to the index; `payload_at` is the
/// payload's offset in segment `number`.
fn replay_ops(index: &mut Index, number: u64, payload_at: u64, ops: Vec<DecodedOp>) {
    for op in ops {
        match op {
            DecodedOp::Insert {
                tree,
                key,
                value_at,
                value_len,
            } => index.insert(
                tree,
                key,
                Loc {
                    segment: number,
                    offset: payload_at + value_at,
                    len: value_len,
                },
            ),
            DecodedOp::Remove { tree, key } => index.remove(tree, &key),
        }
    }
}

/// Cuts the last segment back to `offset` (the end of its last valid
/// frame), dropping non-zero bytes past it, and makes the cut durable
/// before anything is appended, so a stale frame past it can never be
/// resurrected behind new ones.
fn cut_tail(
    file: &File,
    path: &Path,
    offset: u64,
    len: u64,
    reason: &str,
) -> Result<TailCut, SegError> {
    file.set_len(offset)
        .and_then(|()| file.sync_data())
        .map_err(io_error(path))?;
    tracing::warn!(
        path = %path.display(),
        offset,
        dropped_bytes = len - offset,
        reason,
        "cut a torn tail off the last segment"
    );
    Ok(TailCut {
        segment: path.to_path_buf(),
        offset,
        dropped_bytes: len - offset,
        // The caller cuts only a tail with a non-zero byte in it: a tail
        // of zeros is free space (see the module docs, on preallocation).
        nonzero: true,
        header_torn: false,
    })
}

/// Whether any byte of `file` in `from..to` is non-zero, read in bounded
/// chunks.
fn any_nonzero(file: &File, from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(buf.len() as u64) as usize;
        format::read_at(file, &mut buf[..n], at)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(true);
        }
        at += n as u64;
    }
    Ok(false)
}

/// Whether `dir` holds a segment log: its `lock` file or a segment. For
/// telling a journal's backend from its files before opening it.
pub(crate) fn holds_log(dir: &Path) -> bool {
    if dir.join("lock").is_file() {
        return true;
    }
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(format::parse_segment_name)
                .is_some()
        })
    })
}
