//! The bytes of a segment file: its header, its frames, and the ops inside
//! a frame. Pure encoding and checked decoding; the only I/O here is the
//! positional read and write every other part of the log goes through.
//!
//! Everything is little-endian. Decoding never panics and never allocates
//! more than the bytes it was given (a frame's `len` is checked against the
//! bytes left in the file before anything is read), so garbage in a torn
//! tail costs at most a failed check.

use std::fs::File;
use std::io;

use super::Op;

/// The first eight bytes of every segment: names the format and its
/// version, so that a file that is not a segment (or a segment of a later
/// format) is refused instead of being misread.
pub(super) const MAGIC: [u8; 8] = *b"SSEGLOG1";

/// A segment header: magic, segment number (u64), the frame number of the
/// segment's first frame (u64), crc32 of those 24 bytes (u32).
pub(super) const HEADER_LEN: u64 = 28;

/// A frame header: payload length (u32), crc32 over frame number and
/// payload (u32), frame number (u64).
pub(super) const FRAME_HEADER_LEN: u64 = 16;

/// The most payload one frame can carry: its length field is a u32.
pub(super) const MAX_PAYLOAD: u64 = u32::MAX as u64;

/// The op tag of an insert.
const TAG_INSERT: u8 = 1;
/// The op tag of a removal.
const TAG_REMOVE: u8 = 2;

/// The fixed bytes of an insert op besides its key and value: tag, tree,
/// key length (u32), value length (u32). Also the weight an index entry
/// adds to its segment's live bytes, so that compaction can compare live
/// bytes with a file's length.
pub(super) const INSERT_OVERHEAD: u64 = 10;

/// The file name of segment `number`: 16 lowercase hex digits, so that
/// names sort like numbers.
pub(super) fn segment_name(number: u64) -> String {
    format!("{number:016x}.seg")
}

/// The segment number a file name stands for, if it is a segment's name
/// (exactly as [`segment_name`] writes it; anything else in the directory
/// is not ours to read).
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// The segment's number, which must match its file name.
    pub(super) segment: u64,
    /// The frame number its first frame carries: the previous segment's
    /// last frame number plus one, so the chain can be checked across a
    /// segment boundary even when a segment holds no frame yet.
    pub(super) first_frame: u64,
}

/// The bytes of a segment header.
pub(super) fn encode_header(header: Header) -> [u8; HEADER_LEN as usize] {
    let mut bytes = [0u8; HEADER_LEN as usize];
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..16].copy_from_slice(&header.segment.to_le_bytes());
    bytes[16..24].copy_from_slice(&header.first_frame.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes a segment header.
///
/// # Errors
///
/// Why the bytes are not a header: too short, wrong magic, or a bad crc.
pub(super) fn decode_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < HEADER_LEN as usize {
        return Err(format!(
            "segment header is {} bytes, expected {HEADER_LEN}",
            bytes.len()
        ));
    }
    if bytes[0..8] != MAGIC {
        return Err("segment header has the wrong magic".into());
    }
    let stored = u32::from_le_bytes(le4(&bytes[24..28]));
    if crc32fast::hash(&bytes[0..24]) != stored {
        return Err("segment header crc does not match".into());
    }
    Ok(Header {
        segment: u64::from_le_bytes(le8(&bytes[8..16])),
        first_frame: u64::from_le_bytes(le8(&bytes[16..24])),
    })
}

/// A frame ready to be written, and where each op's value sits in it.
pub(super) struct EncodedFrame {
    /// Frame header and payload, written with one `write`.
    pub(super) bytes: Vec<u8>,
    /// Per op, in order: the value's offset from the frame's start and its
    /// length, for an insert; `None` for a removal.
    pub(super) values: Vec<Option<(u64, u32)>>,
}

/// The payload bytes `ops` encode to.
pub(super) fn payload_len(ops: &[Op<'_>]) -> u64 {
    ops.iter()
        .map(|op| match op {
            Op::Insert { key, value, .. } => {
                INSERT_OVERHEAD + key.len() as u64 + value.len() as u64
            }
            Op::Remove { key, .. } => 6 + key.len() as u64,
        })
        .sum()
}

/// Encodes `ops` as frame `frame_no`.
///
/// # Errors
///
/// The payload's length, when it exceeds [`MAX_PAYLOAD`] (or a key or a
/// value exceeds a u32 length field).
pub(super) fn encode_frame(frame_no: u64, ops: &[Op<'_>]) -> Result<EncodedFrame, u64> {
    let len = payload_len(ops);
    if len > MAX_PAYLOAD {
        return Err(len);
    }
    let total = usize::try_from(FRAME_HEADER_LEN + len).map_err(|_| len)?;
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(&(len as u32).to_le_bytes());
    bytes.extend_from_slice(&[0u8; 4]);
    bytes.extend_from_slice(&frame_no.to_le_bytes());
    let mut values = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Insert { tree, key, value } => {
                bytes.push(TAG_INSERT);
                bytes.push(*tree);
                bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
                bytes.extend_from_slice(key);
                bytes.extend_from_slice(&(value.len() as u32).to_le_bytes());
                values.push(Some((bytes.len() as u64, value.len() as u32)));
                bytes.extend_from_slice(value);
            }
            Op::Remove { tree, key } => {
                bytes.push(TAG_REMOVE);
                bytes.push(*tree);
                bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
                bytes.extend_from_slice(key);
                values.push(None);
            }
        }
    }
    let crc = frame_crc(frame_no, &bytes[FRAME_HEADER_LEN as usize..]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(EncodedFrame { bytes, values })
}

/// The crc a frame carries: over its frame number, then its payload, so
/// that a valid frame left at the right offset by an older life of the
/// file (same bytes, other number) does not verify.
pub(super) fn frame_crc(frame_no: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame_no.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// One decoded op; keys are copied out, values are left in the file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum DecodedOp {
    /// An insert; its value is `value_len` bytes at `value_at` from the
    /// payload's start.
    Insert {
        /// The tree.
        tree: u8,
        /// The key.
        key: Vec<u8>,
        /// The value's offset from the payload's start.
        value_at: u64,
        /// The value's length.
        value_len: u32,
    },
    /// A removal.
    Remove {
        /// The tree.
        tree: u8,
        /// The key.
        key: Vec<u8>,
    },
}

/// Decodes a verified payload into its ops.
///
/// # Errors
///
/// Why the payload is not a sequence of ops: an unknown tag, or a length
/// that runs past the payload's end.
pub(super) fn decode_ops(payload: &[u8]) -> Result<Vec<DecodedOp>, String> {
    let mut ops = Vec::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<std::ops::Range<usize>, String> {
        let end = at
            .checked_add(n)
            .filter(|end| *end <= payload.len())
            .ok_or_else(|| format!("op at payload byte {at} runs past the payload's end"))?;
        let range = *at..end;
        *at = end;
        Ok(range)
    };
    while at < payload.len() {
        let head = take(&mut at, 6)?;
        let (tag, tree) = (payload[head.start], payload[head.start + 1]);
        let key_len = u32::from_le_bytes(le4(&payload[head.start + 2..head.end])) as usize;
        let key = payload[take(&mut at, key_len)?].to_vec();
        match tag {
            TAG_INSERT => {
                let len = take(&mut at, 4)?;
                let value_len = u32::from_le_bytes(le4(&payload[len]));
                let value = take(&mut at, value_len as usize)?;
                ops.push(DecodedOp::Insert {
                    tree,
                    key,
                    value_at: value.start as u64,
                    value_len,
                });
            }
            TAG_REMOVE => ops.push(DecodedOp::Remove { tree, key }),
            other => {
                return Err(format!(
                    "unknown op tag {other} at payload byte {}",
                    head.start
                ));
            }
        }
    }
    Ok(ops)
}

/// A frame read from a file whose header and crc verified.
pub(super) struct RawFrame {
    /// Its payload.
    pub(super) payload: Vec<u8>,
    /// Header plus payload: where the next frame starts, from this one.
    pub(super) total_len: u64,
}

/// How many bytes [`ReadAhead`] reads at a time.
const READ_AHEAD: usize = 4 << 20;

/// Reads a file front to back in [`READ_AHEAD`]-byte pieces, for the scan
/// at open: a log of small frames would otherwise cost two `pread`s per
/// frame (its header, then its payload), which made reopening a journal
/// of a few hundred thousand frames take a second. Reads larger than the
/// buffer go straight to the file.
pub(super) struct ReadAhead<'a> {
    file: &'a File,
    /// The file's length: never read past it.
    file_len: u64,
    /// The bytes of the file from `start` on.
    buf: Vec<u8>,
    start: u64,
}

impl<'a> ReadAhead<'a> {
    /// A reader of `file`, which is `file_len` bytes long.
    pub(super) fn new(file: &'a File, file_len: u64) -> ReadAhead<'a> {
        ReadAhead {
            file,
            file_len,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Fills `out` with the file's bytes at `offset`.
    fn read(&mut self, out: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + out.len() as u64;
        let buffered = self.start..self.start + self.buf.len() as u64;
        if offset >= buffered.start && end <= buffered.end {
            let at = (offset - self.start) as usize;
            out.copy_from_slice(&self.buf[at..at + out.len()]);
            return Ok(());
        }
        if out.len() >= READ_AHEAD {
            return read_at(self.file, out, offset);
        }
        let want = (self.file_len.saturating_sub(offset) as usize)
            .min(READ_AHEAD)
            .max(out.len());
        self.buf.resize(want, 0);
        read_at(self.file, &mut self.buf, offset)?;
        self.start = offset;
        out.copy_from_slice(&self.buf[..out.len()]);
        Ok(())
    }
}

/// Reads and verifies the frame at `offset`, which must carry frame number
/// `expected`, in a file of `file_len` bytes.
///
/// # Errors
///
/// `Ok(Err(reason))` when the bytes there are not that frame (short, a
/// length past the end of the file, a wrong number, a bad crc); `Err` for
/// an I/O error reading them.
pub(super) fn read_frame(
    file: &mut ReadAhead<'_>,
    offset: u64,
    file_len: u64,
    expected: u64,
) -> io::Result<Result<RawFrame, String>> {
    let left = file_len.saturating_sub(offset);
    if left < FRAME_HEADER_LEN {
        return Ok(Err(format!(
            "frame header is cut short ({left} of {FRAME_HEADER_LEN} bytes)"
        )));
    }
    let mut head = [0u8; FRAME_HEADER_LEN as usize];
    file.read(&mut head, offset)?;
    let len = u64::from(u32::from_le_bytes(le4(&head[0..4])));
    let crc = u32::from_le_bytes(le4(&head[4..8]));
    let frame_no = u64::from_le_bytes(le8(&head[8..16]));
    if len > left - FRAME_HEADER_LEN {
        return Ok(Err(format!(
            "frame length {len} runs past the end of the file ({} bytes left)",
            left - FRAME_HEADER_LEN
        )));
    }
    if frame_no != expected {
        return Ok(Err(format!("frame number {frame_no}, expected {expected}")));
    }
    let mut payload = vec![0u8; len as usize];
    file.read(&mut payload, offset + FRAME_HEADER_LEN)?;
    if frame_crc(frame_no, &payload) != crc {
        return Ok(Err(format!("frame {frame_no} crc does not match")));
    }
    Ok(Ok(RawFrame {
        payload,
        total_len: FRAME_HEADER_LEN + len,
    }))
}

/// Fills `buf` from `file` at `offset`, without moving a cursor, so that
/// readers on other threads can share the handle.
///
/// # Errors
///
/// The operating system's error, or `UnexpectedEof` if the file is
/// shorter.
pub(super) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            ) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Writes all of `buf` to `file` at `offset` (one `pwrite` where the
/// kernel takes it all, as it does for a regular file).
///
/// # Errors
///
/// The operating system's error (`StorageFull` stays `StorageFull`).
pub(super) fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            match std::os::windows::fs::FileExt::seek_write(
                file,
                &buf[done..],
                offset + done as u64,
            ) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Four bytes as an array (the caller sliced exactly four).
fn le4(bytes: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(bytes);
    out
}

/// Eight bytes as an array (the caller sliced exactly eight).
fn le8(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(bytes);
    out
}
