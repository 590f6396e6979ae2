//! Compaction: reclaim the oldest segments once little of them is live,
//! one at a time, each deletion durable before the next is considered.
//! The module docs give the argument for why that order is safe.

use super::trace::Step;
use super::{Op, SegError, SegLog, io_error, lock};

/// The most value bytes one copy frame carries; a segment with more live
/// data is copied forward in several frames (each a set of inserts of
/// current values, so a power cut between them loses nothing).
const COPY_FRAME_BYTES: u64 = 8 << 20;

/// See [`SegLog::compact`].
pub(super) fn compact(log: &SegLog) -> Result<u64, SegError> {
    let mut writer = lock(&log.writer);
    log.check_poisoned()?;
    let mut reclaimed = 0;
    loop {
        let (oldest, entries, file, path, len) = {
            let index = log.read_index();
            let Some((&oldest, segment)) = index.segments.first_key_value() else {
                break;
            };
            if oldest == writer.segment || segment.live.saturating_mul(4) > segment.len {
                break;
            }
            (
                oldest,
                index.entries_in(oldest),
                std::sync::Arc::clone(&segment.file),
                segment.path.clone(),
                segment.len,
            )
        };
        // Copy the live entries forward, in frames of bounded size.
        let mut batch: Vec<(u8, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0u64;
        for (at, (tree, key, loc)) in entries.iter().enumerate() {
            let value = log.read_value(&file, *loc)?;
            batch_bytes += value.len() as u64 + key.len() as u64;
            batch.push((*tree, key.clone(), value));
            if batch_bytes >= COPY_FRAME_BYTES || at + 1 == entries.len() {
                let ops: Vec<Op<'_>> = batch
                    .iter()
                    .map(|(tree, key, value)| Op::Insert {
                        tree: *tree,
                        key,
                        value,
                    })
                    .collect();
                log.append_frame(&mut writer, &ops)?;
                log.roll_if_full(&mut writer)?;
                batch.clear();
                batch_bytes = 0;
            }
        }
        // Always sync, even with nothing copied: the removals and inserts
        // that shadow the old segment's dead entries must be durable
        // before it goes, or a power cut could take them back while the
        // deletion stays, losing a prefix's frame.
        if let Err(source) = writer.file.sync_data() {
            log.poison();
            return Err(SegError::Io {
                path: writer.path.clone(),
                source,
            });
        }
        log.record(Step::SyncFile(writer.segment));
        log.write_index().segments.remove(&oldest);
        std::fs::remove_file(&path).map_err(|source| {
            log.poison();
            SegError::Io {
                path: path.clone(),
                source,
            }
        })?;
        log.record(Step::Removed(oldest));
        crate::sync::sync_dir(&log.dir).map_err(|error| {
            log.poison();
            io_error(&log.dir)(error)
        })?;
        log.record(Step::SyncDir);
        tracing::debug!(path = %path.display(), bytes = len, "compacted a segment");
        reclaimed += len;
    }
    Ok(reclaimed)
}
