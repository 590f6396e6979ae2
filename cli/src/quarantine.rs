//! `quarantine list DIR`: the records an engine opened with
//! `recover_to_prefix(true)` set aside, each checked as the journal
//! checks a record, read-only. (Putting them back is not built: the seqs
//! they held are written anew once the engine resumes, so a restore would
//! need to decide which history wins.)

use std::io::Write;
use std::path::Path;

use solostate::persistence::codec::{self, RecordKind};

use crate::error::{CliError, Failure};
use crate::open;

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
