//! How the active segment grows: zero-filled ahead of its frames
//! (preallocation), and replaced by a new segment once full (rollover).
//! The module docs give the durability argument for both.

use std::sync::Arc;

use super::index::Segment;
use super::{Active, SegError, SegLog, Writer, format, io_error, lock, replay, trace};

/// What preallocation writes, a slice at a time.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

impl SegLog {
    /// Zero-fills the active segment `preallocate_bytes` past its last
    /// frame once the frames have reached the end of what was filled
    /// before (never past `segment_bytes`, where the log rolls over). The
    /// frame that reached the end already made this batch's `fdatasync`
    /// commit a new file length, so the zeros ride on that sync, and the
    /// frames that follow overwrite blocks that exist: their `fdatasync`s
    /// have no length to commit. Best effort: a failed fill (a full disk)
    /// leaves only zeros behind, which open neither reports nor cuts, and
    /// the frame writes then meet the error themselves.
    pub(super) fn preallocate(&self, writer: &mut Writer) {
        writer.allocated = writer.allocated.max(writer.end);
        let target = (writer.end + self.options.preallocate_bytes).min(self.options.segment_bytes);
        if writer.end < writer.allocated || target <= writer.end {
            return;
        }
        let mut at = writer.end;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            if let Err(error) = format::write_at(&writer.file, &ZEROS[..n], at) {
                tracing::debug!(path = %writer.path.display(), %error, "could not preallocate");
                break;
            }
            at += n as u64;
        }
        writer.allocated = at;
    }

    /// Rolls over to a new segment once the active one exceeds
    /// `segment_bytes`: `fdatasync` the old one, create the next (header
    /// written and `fdatasync`ed), fsync the directory, then switch. Any
    /// failure poisons the log: the order is what the tail-cut argument
    /// rests on.
    pub(super) fn roll_if_full(&self, writer: &mut Writer) -> Result<(), SegError> {
        if writer.end <= self.options.segment_bytes {
            return Ok(());
        }
        let number = writer.segment + 1;
        // Only the last segment may end in zeros: the old one loses its
        // preallocated tail in the same sync that makes it whole, so open
        // keeps checking every earlier segment to its last byte.
        let trimmed = if writer.allocated > writer.end {
            writer.file.set_len(writer.end)
        } else {
            Ok(())
        };
        let rolled = trimmed
            .and_then(|()| writer.file.sync_data())
            .map_err(io_error(&writer.path))
            .and_then(|()| {
                self.record(trace::Step::SyncFile(writer.segment));
                let created = replay::create_segment(&self.dir, number, writer.next_frame)?;
                self.record(trace::Step::Created(number));
                crate::sync::sync_dir(&self.dir).map_err(io_error(&self.dir))?;
                self.record(trace::Step::SyncDir);
                Ok(created)
            });
        let (file, path) = rolled.inspect_err(|_| self.poison())?;
        let file = Arc::new(file);
        let mut index = self.write_index();
        if let Some(old) = index.segments.get_mut(&writer.segment) {
            old.len = writer.end;
        }
        index.segments.insert(
            number,
            Segment {
                file: Arc::clone(&file),
                path: path.clone(),
                len: format::HEADER_LEN,
                live: 0,
            },
        );
        drop(index);
        *lock(&self.active) = Active {
            segment: number,
            file: Arc::clone(&file),
            path: path.clone(),
        };
        *writer = Writer {
            segment: number,
            file,
            path,
            end: format::HEADER_LEN,
            allocated: format::HEADER_LEN,
            next_frame: writer.next_frame,
        };
        Ok(())
    }
}
