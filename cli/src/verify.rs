//! `verify DIR`: every journal record, every checkpoint, and with the
//! event type a full replay against every recorded state hash.

use std::io::Write;

use solostate::persistence::checkpoint::CheckpointSummary;
use solostate::persistence::codec::RecordKind;

use crate::error::{CliError, Damage, Failure, checkpoint_damage, journal_failure};
use crate::info::torn_tail;
use crate::open;
use crate::progress;
use crate::typed::Typed;

/// What verify found: the damage (exit code 2), and what it could not
/// check (exit code 1 when there is no damage).
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Damage, each named by path and seq.
    pub(crate) damage: Vec<Damage>,
    /// Things that are not damage but could not be verified (a checkpoint
    /// of another schema or format).
    pub(crate) unverified: Vec<String>,
}

/// Verifies `dir`, printing each finding as it goes and a last line
/// `result: ...`.
pub(crate) fn verify(
    dir: &std::path::Path,
    allow_sled_writes: bool,
    typed: Option<&dyn Typed>,
    out: &mut dyn Write,
) -> Result<Verdict, Failure> {
    let mut verdict = Verdict::default();
    let opened = match open::open(dir, allow_sled_writes, typed) {
        Ok(opened) => opened,
        Err(Failure::Damage(found)) => {
            writeln!(out, "{found}").map_err(CliError::from)?;
            writeln!(out, "result: damage found (the journal does not open)")
                .map_err(CliError::from)?;
            verdict.damage.push(found);
            return Ok(verdict);
        }
        Err(error) => return Err(error),
    };
    let journal = &opened.journal;
    let journal_path = &opened.layout.journal;
    let first = journal.first_seq()?;
    // Only for the progress bar's length: a last record that does not
    // verify is met, and reported, by the scan below.
    let (_, last) = journal.scan_last().unwrap_or((None, first));

    // The timeline: framing, crc and order of every record.
    let bar = progress::bar(last.saturating_sub(first) + 1, "records");
    let (mut records, mut events, mut markers, mut reached) = (0u64, 0u64, 0u64, first - 1);
    let mut timeline_damaged = false;
    for record in journal.scan() {
        match record {
            Ok(record) => {
                records += 1;
                match record.kind {
                    RecordKind::Events { count } => events += count,
                    RecordKind::Rollback { .. } => markers += 1,
                }
                reached = record.last;
                bar.set_position(record.last.saturating_sub(first) + 1);
            }
            Err(error) => {
                bar.finish_and_clear();
                report(&mut verdict, journal_failure(error, journal_path), out)?;
                timeline_damaged = true;
            }
        }
    }
    bar.finish_and_clear();
    if let Some(found) = torn_tail(&opened) {
        writeln!(out, "{found}").map_err(CliError::from)?;
        verdict.damage.push(found);
        timeline_damaged = true;
    }
    writeln!(
        out,
        "journal:     {records} records verified ({events} events, {markers} rollback markers), seqs {first}..={reached}, in {}",
        journal_path.display()
    )
    .map_err(CliError::from)?;

    let mut archived = 0u64;
    for record in journal.scan_archive() {
        match record {
            Ok(_) => archived += 1,
            Err(error) => report(&mut verdict, journal_failure(error, journal_path), out)?,
        }
    }
    writeln!(out, "archive:     {archived} records verified").map_err(CliError::from)?;
    match journal.state_hashes(0..=u64::MAX) {
        Ok(hashes) => writeln!(out, "hashes:      {} state hashes verified", hashes.len()),
        Err(error) => {
            report(&mut verdict, journal_failure(error, journal_path), out)?;
            writeln!(out, "hashes:      a recorded state hash does not verify")
        }
    }
    .map_err(CliError::from)?;

    let good = checkpoints(&opened, typed, &mut verdict, out)?;

    match typed {
        None => writeln!(
            out,
            "replay:      skipped: the event type is not known (pass --types, or use solostate_cli::run::<E>())"
        )
        .map_err(CliError::from)?,
        Some(_) if timeline_damaged => writeln!(
            out,
            "replay:      skipped: the journal's timeline is damaged"
        )
        .map_err(CliError::from)?,
        Some(typed) => {
            let before = verdict.damage.len();
            let replayed = typed.replay_all(&opened, &good, &mut verdict.damage)?;
            for found in &verdict.damage[before..] {
                writeln!(out, "{found}").map_err(CliError::from)?;
            }
            for note in &replayed.notes {
                writeln!(out, "note:        {note}").map_err(CliError::from)?;
            }
            writeln!(
                out,
                "replay:      seqs {}..={} decoded and replayed, {} recorded state hashes checked, {} checkpoints' state hashes reproduced",
                replayed.base + 1,
                replayed.last,
                replayed.hashes_checked,
                replayed.checkpoints_matched
            )
            .map_err(CliError::from)?;
        }
    }
    let result = match (verdict.damage.len(), verdict.unverified.len()) {
        (0, 0) => "result: ok".to_owned(),
        (0, n) => format!("result: no damage found, but {n} things could not be verified"),
        (n, _) => format!("result: damage found ({n} problems)"),
    };
    writeln!(out, "{result}").map_err(CliError::from)?;
    Ok(verdict)
}

/// Verifies every checkpoint (in full with the event type); returns the
/// ones that verified.
fn checkpoints(
    opened: &open::Opened,
    typed: Option<&dyn Typed>,
    verdict: &mut Verdict,
    out: &mut dyn Write,
) -> Result<Vec<CheckpointSummary>, Failure> {
    let Some(store) = &opened.checkpoints else {
        writeln!(out, "checkpoints: none").map_err(CliError::from)?;
        return Ok(Vec::new());
    };
    let seqs = store.list()?;
    let bar = progress::bar(seqs.len() as u64, "checkpoints");
    let mut good = Vec::new();
    for seq in seqs {
        let checked = store.verify_file(seq).map(|summary| {
            let full = typed.map(|typed| typed.load_checkpoint(store, seq));
            (summary, full)
        });
        match checked {
            Ok((summary, None | Some(Ok(())))) => good.push(summary),
            // The framing and crc verified, so the bytes are as written:
            // entries that then do not decode, or decode to another count
            // or hash, are of another type or encoding, not damage.
            Ok((_, Some(Err(error)))) => {
                let problem = format!(
                    "checkpoint at seq {seq}: {error} (its framing and crc verify: the entries are not of this event type)"
                );
                bar.suspend(|| writeln!(out, "unverified:  {problem}"))
                    .map_err(CliError::from)?;
                verdict.unverified.push(problem);
            }
            Err(error) => match checkpoint_damage(&error) {
                Some(found) => {
                    bar.suspend(|| writeln!(out, "{found}"))
                        .map_err(CliError::from)?;
                    verdict.damage.push(found);
                }
                None => {
                    let problem = format!("checkpoint at seq {seq}: {error}");
                    bar.suspend(|| writeln!(out, "unverified:  {problem}"))
                        .map_err(CliError::from)?;
                    verdict.unverified.push(problem);
                }
            },
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let how = if typed.is_some() {
        "entries decoded, counts and state hashes checked"
    } else {
        "framing and crc; entries not decoded: no event type"
    };
    writeln!(
        out,
        "checkpoints: {} verified ({how}) in {}",
        good.len(),
        store.dir().display()
    )
    .map_err(CliError::from)?;
    Ok(good)
}

/// Prints and records a failure met while verifying: damage goes on the
/// list, an error ends the command.
fn report(verdict: &mut Verdict, failure: Failure, out: &mut dyn Write) -> Result<(), Failure> {
    match failure {
        Failure::Damage(found) => {
            writeln!(out, "{found}").map_err(CliError::from)?;
            verdict.damage.push(found);
            Ok(())
        }
        error => Err(error),
    }
}
