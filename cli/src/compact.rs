//! `compact DIR [--dry-run]`: prune the journal behind its oldest
//! checkpoint, as `Retention::SinceOldestCheckpoint` does after each
//! checkpoint, for a directory written with full history.
//!
//! The checkpoint pruned behind is the oldest one that loads in full
//! (every entry decoded, its count and state hash checked), so the
//! directory still opens, and every seq from that checkpoint on can still
//! be rebuilt, rolled back to and dumped; the seqs before it cannot,
//! which is why it takes an explicit command. The pruning is the
//! journal's own (`Journal::prune_through`): the removed records, their
//! state hashes and the new first seq in one atomic write, flushed. The
//! archive and quarantine are kept. On the segment log the space comes
//! back only once old segments are mostly pruned records (the active
//! segment is never deleted), so the bytes on disk may not shrink at once.

use std::io::Write;
use std::path::Path;

use solostate::persistence::journal::Journal;

use crate::error::{CliError, Failure, journal_failure};
use crate::info::torn_tail;
use crate::open;
use crate::typed::Typed;

/// sled's page cache for the writable open (as the read-only one).
const SLED_CACHE_BYTES: u64 = 16 << 20;

/// Plans, and unless `dry_run` performs, the compaction of `dir`.
pub(crate) fn compact(
    dir: &Path,
    allow_sled_writes: bool,
    typed: &dyn Typed,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let opened = open::open(dir, allow_sled_writes, Some(typed))?;
    // Opening the journal for writing would cut a torn tail: not asked.
    if let Some(found) = torn_tail(&opened) {
        return Err(Failure::Damage(found));
    }
    let journal_path = opened.layout.journal.clone();
    let first = opened.journal.first_seq()?;
    let (_, last) = opened
        .journal
        .scan_last()
        .map_err(|error| journal_failure(error, &journal_path))?;
    let write = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(CliError::from);
    let base = match &opened.checkpoints {
        Some(store) => store
            .list()?
            .into_iter()
            .filter(|&seq| seq >= first && seq <= last)
            .find(|&seq| typed.load_checkpoint(store, seq).is_ok()),
        None => None,
    };
    let Some(base) = base else {
        write(
            out,
            format!(
                "nothing to compact: no checkpoint in seqs {first}..={last} loads in full, so the journal is all the history there is"
            ),
        )?;
        return Ok(());
    };
    let before = opened.journal.size_on_disk()?;
    write(
        out,
        format!(
            "plan:        prune the journal's seqs {first}..={base}, which the checkpoint at seq {base} covers (it loads in full); seqs before {base} can no longer be rebuilt, rolled back to or dumped"
        ),
    )?;
    if dry_run {
        write(out, "dry run:     nothing was changed".to_owned())?;
        return Ok(());
    }
    let schema = opened.schema.clone();
    let opened_backend = opened.journal.backend();
    // A writable open takes the same lock.
    drop(opened);
    // The older schemas' epochs are only pruned, never decoded, but the
    // open checks that something reads them.
    let older = typed.older_schemas();
    let older: Vec<&str> = older.iter().map(String::as_str).collect();
    let backend = opened_backend;
    let journal =
        Journal::open_upgrading(&journal_path, &schema, &older, SLED_CACHE_BYTES, backend)
            .map_err(|error| journal_failure(error, &journal_path))?;
    let removed = journal
        .prune_through(base)
        .and_then(|removed| journal.flush().map(|()| removed))
        .map_err(|error| journal_failure(error, &journal_path))?;
    let after = journal.size_on_disk()?;
    let first = journal.first_seq()?;
    write(
        out,
        format!(
            "compacted:   {removed} records pruned; the journal now begins at seq {first}; {before} bytes on disk before, {after} after"
        ),
    )?;
    Ok(())
}
