//! `info DIR`: what a directory holds, read-only.

use std::io::Write;

use solostate::persistence::codec::FORMAT_VERSION;
use solostate::persistence::journal::{Backend, JournalError, ScannedRecord};

use crate::error::{CliError, Damage, Failure, checkpoint_damage, journal_failure};
use crate::open::{self, Opened};
use crate::typed::Typed;

/// Prints what `dir` holds; returns the damage it met on the way (a torn
/// tail, a checkpoint or archived record that does not verify).
pub(crate) fn info(
    dir: &std::path::Path,
    allow_sled_writes: bool,
    typed: Option<&dyn Typed>,
    out: &mut dyn Write,
) -> Result<Vec<Damage>, Failure> {
    let opened = open::open(dir, allow_sled_writes, typed)?;
    let journal = &opened.journal;
    let journal_path = &opened.layout.journal;
    let mut damage = Vec::new();
    writeln!(out, "directory:    {}", opened.root.display()).map_err(CliError::from)?;
    writeln!(out, "schema:       {}", opened.schema).map_err(CliError::from)?;
    for epoch in opened.journal.epochs() {
        writeln!(
            out,
            "older schema: {} through seq {} (read through an upcaster)",
            epoch.schema, epoch.through
        )
        .map_err(CliError::from)?;
    }
    writeln!(out, "format:       journal record format {FORMAT_VERSION}")
        .map_err(CliError::from)?;
    let backend = match journal.backend() {
        Backend::Sled => "sled",
        _ => "segment log",
    };
    let size = journal.size_on_disk()?;
    writeln!(
        out,
        "journal:      {} ({backend}), {size} bytes on disk",
        journal_path.display()
    )
    .map_err(CliError::from)?;
    let first = journal.first_seq()?;
    match journal.scan_last() {
        Ok((_, 0)) => writeln!(out, "seqs:         none (empty journal)"),
        Ok((_, last)) if last < first => writeln!(
            out,
            "seqs:         none retained (pruned through {last}; the next event is {first})"
        ),
        Ok((_, last)) => writeln!(out, "seqs:         {first}..={last}"),
        Err(error) => {
            damage.push(damaged(error, journal_path)?);
            writeln!(
                out,
                "seqs:         from {first}; the last record does not verify"
            )
        }
    }
    .map_err(CliError::from)?;
    let hashes = journal.state_hashes(0..=u64::MAX);
    match hashes {
        Ok(hashes) => match (hashes.first(), hashes.last()) {
            (Some((low, _)), Some((high, _))) => writeln!(
                out,
                "state hashes: {} recorded (seqs {low}..={high})",
                hashes.len()
            ),
            _ => writeln!(out, "state hashes: none recorded"),
        },
        Err(error) => {
            damage.push(damaged(error, journal_path)?);
            writeln!(out, "state hashes: a recorded hash does not verify")
        }
    }
    .map_err(CliError::from)?;
    if let Some(resumed) = journal.resumed()? {
        writeln!(
            out,
            "resumed:      after seq {}; the journal before it was moved to {}",
            resumed.after,
            resumed.predecessor.display()
        )
        .map_err(CliError::from)?;
    }
    if let Some(found) = torn_tail(&opened) {
        writeln!(out, "torn tail:    {found}").map_err(CliError::from)?;
        damage.push(found);
    }
    let archive: Result<Vec<ScannedRecord>, JournalError> = journal.scan_archive().collect();
    match archive {
        Ok(records) if records.is_empty() => writeln!(out, "archive:      empty"),
        Ok(records) => {
            let events: u64 = records.iter().map(|r| r.last + 1 - r.seq).sum();
            writeln!(
                out,
                "archive:      {} records, {events} steps undone by rollbacks (seqs {}..={})",
                records.len(),
                records.iter().map(|r| r.seq).min().unwrap_or(0),
                records.iter().map(|r| r.last).max().unwrap_or(0),
            )
        }
        Err(error) => {
            damage.push(damaged(error, journal_path)?);
            writeln!(out, "archive:      an archived record does not verify")
        }
    }
    .map_err(CliError::from)?;
    let quarantined = journal.quarantined()?;
    if quarantined.is_empty() {
        writeln!(out, "quarantine:   empty").map_err(CliError::from)?;
    } else {
        let ids: std::collections::BTreeSet<u64> = quarantined.iter().map(|q| q.0).collect();
        writeln!(
            out,
            "quarantine:   {} records set aside by {} recoveries to a prefix (first seqs {})",
            quarantined.len(),
            ids.len(),
            quarantined
                .iter()
                .map(|q| q.1.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .map_err(CliError::from)?;
    }
    checkpoints(&opened, typed, out, &mut damage)?;
    for path in open::set_aside(&opened).map_err(CliError::from)? {
        writeln!(out, "set aside:    {} (kept by recovery)", path.display())
            .map_err(CliError::from)?;
    }
    Ok(damage)
}

/// Lists each checkpoint with its size and whether it verified.
fn checkpoints(
    opened: &Opened,
    typed: Option<&dyn Typed>,
    out: &mut dyn Write,
    damage: &mut Vec<Damage>,
) -> Result<(), Failure> {
    let Some(store) = &opened.checkpoints else {
        writeln!(out, "checkpoints:  none (no checkpoints directory)").map_err(CliError::from)?;
        return Ok(());
    };
    let seqs = store.list()?;
    writeln!(
        out,
        "checkpoints:  {} in {}",
        seqs.len(),
        store.dir().display()
    )
    .map_err(CliError::from)?;
    for seq in seqs {
        let verdict = match store.verify_file(seq) {
            Ok(summary) => {
                let full = typed.map(|typed| typed.load_checkpoint(store, seq));
                let bytes = summary.bytes;
                let head = format!(
                    "  seq {seq}: {bytes} bytes, {} entries, state hash {:016x}",
                    summary.entries, summary.state_hash
                );
                match full {
                    None => format!(
                        "{head}: framing and crc verified (entries not decoded: no event type)"
                    ),
                    Some(Ok(())) => format!("{head}: verified"),
                    // The framing and crc verified: entries that do not
                    // decode are of another type, not damage.
                    Some(Err(error)) => format!(
                        "{head}: framing and crc verified, but the entries are not of this event type: {error}"
                    ),
                }
            }
            Err(error) => {
                if let Some(found) = checkpoint_damage(&error) {
                    damage.push(found);
                }
                let bytes = std::fs::metadata(store.path_of(seq)).map_or(0, |m| m.len());
                format!("  seq {seq}: {bytes} bytes: NOT verified: {error}")
            }
        };
        writeln!(out, "{verdict}").map_err(CliError::from)?;
    }
    for path in store.unfinished()? {
        writeln!(
            out,
            "  unfinished:  {} (left by a crash mid-write; an engine's open removes it)",
            path.display()
        )
        .map_err(CliError::from)?;
    }
    Ok(())
}

/// The torn tail the read-only open found, as damage.
pub(crate) fn torn_tail(opened: &Opened) -> Option<Damage> {
    let tail = opened.journal.torn_tail()?;
    let last = opened.journal.scan_last().map(|(_, last)| last).ok();
    let after = last.map_or_else(String::new, |last| {
        format!("; the journal reads through seq {last}, and anything written after it is there")
    });
    let what = if tail.header_torn {
        format!(
            "the segment's header is torn ({} bytes; an engine's open removes the file){after}",
            tail.dropped_bytes
        )
    } else {
        format!(
            "{} bytes from offset {} do not form frames that verify: a write a crash cut short (never acknowledged), or damage to synced bytes, which cannot be told apart in the last segment; an engine's open cuts them{after}",
            tail.dropped_bytes, tail.offset
        )
    };
    Some(Damage {
        path: tail.segment.clone(),
        seq: last.map(|last| last + 1),
        what,
    })
}

/// A journal error met while listing: damage, or the error itself.
fn damaged(error: JournalError, journal: &std::path::Path) -> Result<Damage, Failure> {
    match journal_failure(error, journal) {
        Failure::Damage(found) => Ok(found),
        error => Err(error),
    }
}
