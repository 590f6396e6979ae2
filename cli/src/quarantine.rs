//! `quarantine list DIR`: the records an engine opened with
//! `recover_to_prefix(true)` set aside, each checked as the journal
//! checks a record, read-only; and `quarantine restore DIR --id N`,
//! which puts them back.
//!
//! The seqs a quarantine held are written anew once the engine resumes,
//! so a restore would have to decide which history wins. It does not
//! decide: it restores only while the timeline has not moved on (the
//! journal holds nothing at or after the restored seqs, and they continue
//! it from its last seq + 1), and refuses otherwise, naming the seq the
//! engine wrote again; and only records that verify
//! (`Journal::restore_quarantined`, one atomic write, flushed). The
//! state hashes the quarantine removed are gone, so `verify` checks the
//! restored seqs by replay alone.

use std::io::Write;
use std::path::Path;

use solostate::persistence::codec::{self, RecordKind};
use solostate::persistence::journal::Journal;

use crate::error::{CliError, Failure, journal_failure};
use crate::info::torn_tail;
use crate::open;
use crate::typed::Typed;

/// sled's page cache for the writable open (as the read-only one).
const SLED_CACHE_BYTES: u64 = 16 << 20;

/// Plans, and unless `dry_run` performs, the restore of the quarantines
/// `ids` in `dir`; with the event type, then replays to the new last seq.
pub(crate) fn restore(
    dir: &Path,
    allow_sled_writes: bool,
    typed: Option<&dyn Typed>,
    ids: &[u64],
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let opened = open::open(dir, allow_sled_writes, typed)?;
    // Opening the journal for writing would cut a torn tail: not asked.
    if let Some(found) = torn_tail(&opened) {
        return Err(Failure::Damage(found));
    }
    let plan = opened.journal.plan_restore(ids).map_err(CliError::from)?;
    let write = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(CliError::from);
    for record in &plan.records {
        let what = if record.rollback {
            "a rollback marker".to_owned()
        } else {
            format!("seqs {}..={}", record.seq, record.end)
        };
        write(
            out,
            format!(
                "plan:        quarantine {}: the record at seq {} ({what}, {} bytes) verifies and continues the timeline",
                record.id, record.seq, record.bytes
            ),
        )?;
    }
    write(
        out,
        format!(
            "plan:        the journal's last seq goes from {} to {}",
            plan.after,
            plan.last()
        ),
    )?;
    if dry_run {
        write(out, "dry run:     nothing was changed".to_owned())?;
        return Ok(());
    }
    let (journal_path, schema) = (opened.layout.journal.clone(), opened.schema.clone());
    // A writable open takes the same lock.
    drop(opened);
    let journal = Journal::open(&journal_path, &schema, SLED_CACHE_BYTES)
        .map_err(|error| journal_failure(error, &journal_path))?;
    let done = journal.restore_quarantined(ids).map_err(CliError::from)?;
    drop(journal);
    write(
        out,
        format!(
            "restored:    {} records; the journal now ends at seq {}",
            done.records.len(),
            done.last()
        ),
    )?;
    match typed {
        Some(typed) => {
            let reopened = open::open(dir, allow_sled_writes, Some(typed))?;
            let (entries, hash) = typed.state_hash_at(&reopened, done.last())?;
            write(
                out,
                format!(
                    "replayed:    the state at seq {}: {entries} entries, state hash {hash:016x}",
                    done.last()
                ),
            )?;
        }
        None => write(
            out,
            "not replayed: pass --types to decode and replay the restored events".to_owned(),
        )?,
    }
    Ok(())
}

/// Lists the quarantined records of `dir`.
pub(crate) fn list(
    dir: &Path,
    allow_sled_writes: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let opened = open::open(dir, allow_sled_writes, None)?;
    let quarantined = opened.journal.quarantined()?;
    if quarantined.is_empty() {
        writeln!(out, "quarantine: empty").map_err(CliError::from)?;
        return Ok(());
    }
    for (id, seq, record) in quarantined {
        let verdict = match codec::peek(&record) {
            Ok(RecordKind::Events { count }) => format!(
                "verifies: {count} events (seqs {seq}..={})",
                (seq + count).saturating_sub(1)
            ),
            Ok(RecordKind::Rollback { target }) => {
                format!("verifies: a rollback marker to seq {target}")
            }
            Err(error) => format!("does not verify: {error}"),
        };
        writeln!(
            out,
            "quarantine {id}: record at seq {seq}, {} bytes: {verdict}",
            record.len()
        )
        .map_err(CliError::from)?;
    }
    Ok(())
}
