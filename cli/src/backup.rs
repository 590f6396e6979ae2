//! `backup DIR DEST`: an openable copy of an engine's directory at its
//! last seq, written offline.
//!
//! The copy is the one the engine's online `Engine::backup` writes, by
//! the same function (`solostate::persistence::backup::write`): a
//! checkpoint of the state at the last seq `S` and an empty journal that
//! begins after `S`, on the source's backend and under its schema, built
//! under a hidden temporary name and renamed into place, so `DEST` holds
//! a whole durable backup or nothing. Offline there is no snapshot to
//! take, so the state at `S` is rebuilt from the directory (the newest
//! checkpoint at or before `S`, then the journal), which is why the
//! command needs the event type. The source is opened read-only, under
//! its lock, so no engine can write it meanwhile and the copy is of one
//! seq. The history before `S` (events, archive, quarantine, recorded
//! state hashes) is not copied: as-of reads before `S` are not possible on
//! the copy.

use std::io::Write;
use std::path::Path;

use crate::error::{CliError, Failure, journal_failure};
use crate::open;
use crate::typed::Typed;

/// Backs `dir` up into `dest` at its last seq.
pub(crate) fn backup(
    dir: &Path,
    allow_sled_writes: bool,
    typed: &dyn Typed,
    dest: &Path,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let opened = open::open(dir, allow_sled_writes, Some(typed))?;
    // A torn tail never reached the disk whole, so it was never
    // acknowledged: the backup holds the last seq that verifies, and says
    // so.
    crate::warn_torn_tail(&opened);
    let (_, seq) = opened
        .journal
        .scan_last()
        .map_err(|error| journal_failure(error, &opened.layout.journal))?;
    let (written, hash) = typed.backup(&opened, seq, dest)?;
    writeln!(
        out,
        "backed up:   seq {}, {} bytes, to {} (state hash {hash:016x}; checkpoint {})",
        written.seq,
        written.bytes,
        dest.display(),
        written.checkpoint.display()
    )
    .map_err(CliError::from)?;
    Ok(())
}
