//! `rollback DIR --to SEQ [--dry-run]`: the engine's own rollback, run
//! offline.
//!
//! The rollback itself is the engine's (`Engine::rollback_to`, through
//! the single writer), so it is the same durable step a live engine takes:
//! the undone events move to the journal's archive (kept), a marker at the
//! next seq says the state there is the state at the target, and
//! checkpoints after the target are deleted. The tool first plans it on a
//! read-only open (the state at the target is rebuilt and hashed, which
//! proves it can be), prints the plan, and with `--dry-run` stops there.
//! After the rollback it rebuilds the state at the new seq from disk and
//! checks that it hashes as the target's did.

use std::io::Write;
use std::path::Path;

use crate::error::{CliError, Damage, Failure};
use crate::info::torn_tail;
use crate::open;
use crate::typed::Typed;

/// Plans, and unless `dry_run` performs, a rollback of `dir` to `target`.
pub(crate) fn rollback(
    dir: &Path,
    allow_sled_writes: bool,
    typed: &dyn Typed,
    target: u64,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let opened = open::open(dir, allow_sled_writes, Some(typed))?;
    // An engine's open would cut a torn tail before rolling back; the
    // tool changes nothing it was not asked to, so it stops instead.
    if let Some(found) = torn_tail(&opened) {
        return Err(Failure::Damage(found));
    }
    let journal_path = opened.layout.journal.clone();
    let (_, last) = opened
        .journal
        .scan_last()
        .map_err(|error| crate::error::journal_failure(error, &journal_path))?;
    if target >= last {
        return Err(CliError::BadSeq {
            path: journal_path,
            reason: format!(
                "nothing to roll back: --to {target} is not before the journal's last seq, {last}"
            ),
        }
        .into());
    }
    let (entries, hash) = typed.state_hash_at(&opened, target)?;
    let doomed: Vec<String> = match &opened.checkpoints {
        Some(store) => store
            .list()?
            .into_iter()
            .filter(|&seq| seq > target)
            .map(|seq| seq.to_string())
            .collect(),
        None => Vec::new(),
    };
    let write = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(CliError::from);
    write(
        out,
        format!(
            "plan:        roll back to seq {target} (the journal's last seq is {last}): a rollback marker at seq {}, whose state is the state at seq {target}",
            last + 1
        ),
    )?;
    write(
        out,
        format!("state:       at seq {target}: {entries} entries, state hash {hash:016x}"),
    )?;
    write(
        out,
        format!(
            "archive:     seqs {}..={last} move to the journal's archive (kept, see dump --archive)",
            target + 1
        ),
    )?;
    if !doomed.is_empty() {
        write(
            out,
            format!(
                "checkpoints: deleted, being after the target: seqs {}",
                doomed.join(", ")
            ),
        )?;
    }
    if dry_run {
        write(out, "dry run:     nothing was changed".to_owned())?;
        return Ok(());
    }
    let (root, schema) = (opened.root.clone(), opened.schema.clone());
    // The engine takes the journal's lock; the tool's must go first.
    drop(opened);
    let (seq, recovery) = typed.rollback(&root, &schema, target)?;
    if let Some(recovery) = recovery {
        write(
            out,
            format!("recovery:    opening the engine found: {recovery}"),
        )?;
    }
    let reopened = open::open(&root, allow_sled_writes, Some(typed))?;
    let (_, after) = typed.state_hash_at(&reopened, seq)?;
    if after != hash {
        return Err(Failure::Damage(Damage {
            path: reopened.layout.journal.clone(),
            seq: Some(seq),
            what: format!(
                "after the rollback the state at seq {seq} hashes to {after:016x}, not {hash:016x} as at seq {target}"
            ),
        }));
    }
    write(
        out,
        format!(
            "rolled back: to seq {target} at seq {seq}; the state at seq {seq} hashes to {after:016x}, as at seq {target}"
        ),
    )?;
    Ok(())
}
