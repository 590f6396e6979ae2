//! `solostate`: the command-line tool for an engine's directory, offline.
//!
//! # Operations: the solostate tool
//!
//! The tool reads a directory an engine wrote (the path given to
//! `Builder::path`) while no engine has it open. Nothing changes the
//! directory but `rollback`, `compact` and `quarantine restore` without
//! `--dry-run` (`backup`
//! writes only its destination): every
//! other command opens the segment log read-only (a torn tail that an
//! engine's open would cut is reported, not cut; an unfinished checkpoint
//! is listed, not removed), and a journal on sled, which cannot be opened
//! without writing, is refused unless `--allow-sled-writes` is given. It
//! takes the journal's lock, the same one a second engine on the path
//! meets, so a directory that a running engine holds is refused with a
//! message saying so, and no engine can open it while the tool runs.
//!
//! ```text
//! solostate info DIR                     # schema, format, seqs, checkpoints, size, archive, quarantine
//! solostate verify DIR                   # framing + crc of every record and checkpoint
//! solostate --types bank verify DIR      # ... and decode, replay, check every state hash
//! solostate --types string-u64 dump DIR --from 1 --to 100   # events as JSON lines
//! solostate --types string-u64 state DIR --at 100           # the state at seq 100, and its hash
//! solostate --types string-u64 rollback DIR --to 100 --dry-run  # the plan; without --dry-run, do it
//! solostate --types string-u64 compact DIR --dry-run             # likewise
//! solostate --types string-u64 backup DIR DEST               # an openable copy at the last seq
//! solostate quarantine list DIR          # what recovery to a prefix set aside
//! solostate quarantine restore DIR --id 7 --dry-run  # what would go back; without --dry-run, put it back
//! ```
//!
//! * `info DIR`: the schema in the journal's header, the record format,
//!   the journal's backend, size on disk and seq range, the recorded state
//!   hashes, each checkpoint (seq, size, whether it verified), and
//!   anything set aside: the archive of rolled-back events, quarantined
//!   records, a torn tail, journals and checkpoints recovery moved aside,
//!   unfinished checkpoint files. It exits 2 when something it lists is
//!   damaged (a torn tail, a checkpoint that does not verify), as
//!   `verify` does.
//! * `verify DIR`: every journal record's framing and crc and the order of
//!   the timeline, the archive, the recorded state hashes, and every
//!   checkpoint's framing and crc. With the event type it also decodes
//!   every checkpoint in full and replays every event from the start (or
//!   from the oldest checkpoint, if the journal was pruned), checking
//!   every recorded state hash and reproducing every checkpoint's state
//!   hash. Exit code 0: no damage found; 2: damage found, each problem on
//!   a line `damaged: PATH (seq N): what`; 1: the tool could not run (the
//!   directory is held by an engine, holds no journal, or is of another
//!   format), or found no damage but could not verify something (a
//!   checkpoint of another schema).
//! * `dump DIR [--from A] [--to B] [--archive]`: the journaled steps as
//!   JSON lines, `{"seq":7,"event":{...}}`, and `{"seq":9,"rollback_to":5}`
//!   for a rollback marker.
//! * `state DIR [--at SEQ]`: the state at a seq (default the last) as JSON
//!   lines: `{"seq":..,"entries":..,"state_hash":".."}` first, the same
//!   hash as `solostate::persistence::hash::state_hash` and the
//!   determinism guard's, then one `{"key":..,"value":..}` per entry,
//!   sorted.
//! * `rollback DIR --to SEQ [--dry-run]`: the engine's own rollback
//!   (`Engine::rollback_to`), run offline: a new step at the next seq
//!   whose state is the target's, the undone events moved to the
//!   journal's archive (kept; `dump --archive` prints them), checkpoints
//!   after the target deleted. The tool first plans it read-only (it
//!   rebuilds and hashes the state at the target, which proves it can be
//!   done), and `--dry-run` stops there; after the rollback it rebuilds
//!   the state at the new seq from disk and checks its hash against the
//!   target's. It refuses a directory with a torn tail (run
//!   `verify`), which an engine's open would otherwise cut on the way.
//! * `compact DIR [--dry-run]`: prunes the journal behind its oldest
//!   checkpoint that loads in full, as `Retention::SinceOldestCheckpoint`
//!   does after each checkpoint, for a directory kept with full history;
//!   seqs before that checkpoint can then no longer be rebuilt, rolled
//!   back to or dumped. The archive and quarantine are kept. On the
//!   segment log the bytes come back only once old segments are mostly
//!   pruned records, so the size on disk may not shrink at once. Changes
//!   the directory only without `--dry-run`, and refuses a torn tail.
//!
//! * `backup DIR DEST`: an openable copy of the state at the
//!   directory's last seq `S` in `DEST` (a new or empty directory; one
//!   that holds anything is refused, exit 1), written by the same code as
//!   the engine's online `Engine::backup`: a checkpoint at `S` and an
//!   empty journal that continues after it, on the source's backend,
//!   renamed into place only once durable. It prints the seq, the bytes,
//!   the path and the state hash. The state at `S` is rebuilt from the
//!   directory, so it needs the event type; the source is only read. The
//!   history before `S` is not copied, so as-of reads before `S` need the
//!   source.
//!
//! Long work (the record scan, checkpoint checks, the replay) draws a
//! progress bar on stderr when stderr is a terminal, and nothing
//! otherwise, so scripts and logs get only the results on stdout.
//!
//! The commands that decode events need the event type. The shipped
//! binary serves the built-in `StateEvent<K, V>` for a few key and value
//! types and the examples' `Bank`, chosen with `--types` (`string-u64`,
//! `string-string`, `u64-u64`, `u64-string`, `bank`, and `bank-v2`, which
//! reads `bank-v1` directories through the examples' upcaster). For your
//! own event type, build a binary of your own in a few lines:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     solostate_cli::run::<solostate::StateEvent<String, u64>>()
//! }
//! ```
//!
//! When your type has older schemas, give their upcasters (as for the
//! engine's `Builder::upcast_from`) and the type's own schema, which a
//! rollback writes under:
//! [`run_upcasting`]`::<YourEvent>("yours-v2", upcasters)`.
//!
//! * `quarantine list DIR`: each record an engine opened with
//!   `recover_to_prefix(true)` set aside (the quarantine it belongs to,
//!   its first seq, its size) and whether it verifies. Read-only.
//!
//! * `quarantine restore DIR --id N [--id M ...] [--dry-run]`: puts the
//!   records of the chosen quarantines back into the timeline
//!   (`Journal::restore_quarantined`: one atomic write, flushed). The
//!   seqs a quarantine held are written anew once the engine resumes, so
//!   a restore would have to decide which history wins; it does not, and
//!   restores only while the timeline has not moved on: every record
//!   must verify, and together they must continue the journal from its
//!   last seq + 1. Otherwise it refuses (exit 1) naming the quarantine
//!   and the seq (for a seq the engine wrote again: dump or export the
//!   quarantined records instead). With the event type it then replays
//!   to the new last seq and prints its state hash. Changes the directory
//!   only without `--dry-run`, and refuses a torn tail.
//!
//! Not built yet: a `backup --with-history` that would copy the journal
//! too.
//!
//! # Architecture
//!
//! The tool sits on top of the engine crate and reaches the journal and
//! checkpoints through `solostate::persistence`: the read-only opens
//! (`Journal::open_read_only`, `Checkpoints::open_read_only`), the untyped
//! checks (`Journal::scan`, `Checkpoints::verify_file`) and, with the
//! event type, `recovery::replay_range_hashed` and `replay::state_at`.
//! What needs the type is behind one object-safe trait, so each command is
//! written once for the typed and untyped cases.
//!
//! # Trade-offs
//!
//! The read-only open still reads every segment to build the journal's
//! index, as an engine's open does, so `info` takes time in proportion to
//! the journal. `state` sorts its lines by their JSON text, which holds
//! the whole state's lines in memory.
//!
//! # Example
//!
//! The binary runs `execute` on the parsed command line; a test or another
//! tool can do the same:
//!
//! ```no_run
//! use clap::Parser;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cli = solostate_cli::Cli::try_parse_from(["solostate", "verify", "data/accounts"])?;
//! let code = solostate_cli::execute::<solostate::StateEvent<String, u64>>(&cli);
//! # let _ = code;
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! None.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use solostate::Event;

mod args;
mod backup;
mod compact;
mod error;
mod info;
mod open;
mod progress;
mod quarantine;
mod rollback;
mod typed;
mod verify;

pub use args::{Cli, Command, QuarantineAction};
pub use error::{CliError, Damage};

use error::Failure;
use solostate::persistence::upcast::Upcasters;
use typed::{For, Typed};

/// Exit code: the command ran and found nothing wrong.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command could not run (or could not verify something).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: damage was found.
pub const EXIT_DAMAGE: u8 = 2;

/// Parses the process's command line and runs it for events of type `E`:
/// the whole `main` of a tool for your own event type.
pub fn run<E: Event>() -> ExitCode {
    execute::<E>(&Cli::parse())
}

/// Runs a parsed command line for events of type `E`.
pub fn execute<E: Event>(cli: &Cli) -> ExitCode {
    execute_with(cli, Some(&For::<E>::new()))
}

/// [`run`] for an event type whose directories may hold records of older
/// schemas: `schema` is the one `E` is journaled under, and `upcasters`
/// read the older ones (as `solostate::Builder::upcast_from` does for an
/// engine). A directory still in an older schema is read as `E`; a
/// rollback writes its marker under `schema`, upgrading it.
pub fn run_upcasting<E: Event>(schema: &str, upcasters: Upcasters<E>) -> ExitCode {
    execute_upcasting(&Cli::parse(), schema, upcasters)
}

/// [`execute`] with upcasters: see [`run_upcasting`].
pub fn execute_upcasting<E: Event>(cli: &Cli, schema: &str, upcasters: Upcasters<E>) -> ExitCode {
    execute_with(
        cli,
        Some(&For::upcasting(Some(schema.to_owned()), upcasters)),
    )
}

/// Runs a parsed command line without an event type: `info` and `verify`
/// check everything that needs no decoding; `dump` and `state` fail with
/// [`CliError::NeedsType`].
pub fn execute_untyped(cli: &Cli) -> ExitCode {
    execute_with(cli, None)
}

fn execute_with(cli: &Cli, typed: Option<&dyn Typed>) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = dispatch(cli, typed, &mut out);
    let flushed = out.flush();
    let code = match result {
        Ok(Outcome::Clean) => EXIT_OK,
        Ok(Outcome::Unverified) => EXIT_ERROR,
        Ok(Outcome::Damaged) => EXIT_DAMAGE,
        Err(Failure::Damage(found)) => {
            eprintln!("solostate: {found}");
            EXIT_DAMAGE
        }
        Err(Failure::Error(error)) => {
            eprintln!("solostate: error: {error}");
            EXIT_ERROR
        }
    };
    if let Err(error) = flushed {
        eprintln!("solostate: error: writing the output: {error}");
        return ExitCode::from(EXIT_ERROR.max(code));
    }
    ExitCode::from(code)
}

/// How a command that ran ended.
enum Outcome {
    Clean,
    Unverified,
    Damaged,
}

fn dispatch(cli: &Cli, typed: Option<&dyn Typed>, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let allow = cli.allow_sled_writes;
    match &cli.command {
        Command::Info { dir } => {
            let damage = info::info(dir, allow, typed, out)?;
            Ok(if damage.is_empty() {
                Outcome::Clean
            } else {
                Outcome::Damaged
            })
        }
        Command::Verify { dir } => {
            let verdict = verify::verify(dir, allow, typed, out)?;
            Ok(
                match (verdict.damage.is_empty(), verdict.unverified.is_empty()) {
                    (false, _) => Outcome::Damaged,
                    (true, false) => Outcome::Unverified,
                    (true, true) => Outcome::Clean,
                },
            )
        }
        Command::Dump {
            dir,
            from,
            to,
            archive,
        } => {
            let typed = typed.ok_or(CliError::NeedsType { command: "dump" })?;
            let opened = open::open(dir, allow, Some(typed))?;
            warn_torn_tail(&opened);
            let to = to.unwrap_or(u64::MAX);
            if *from > to {
                return Err(CliError::BadSeq {
                    path: opened.layout.journal.clone(),
                    reason: format!("--from {from} is after --to {to}"),
                }
                .into());
            }
            typed.dump(&opened, *from, to, *archive, out)?;
            Ok(Outcome::Clean)
        }
        Command::State { dir, at } => {
            let typed = typed.ok_or(CliError::NeedsType { command: "state" })?;
            let opened = open::open(dir, allow, Some(typed))?;
            warn_torn_tail(&opened);
            let seq = match at {
                Some(seq) => *seq,
                None => {
                    opened
                        .journal
                        .scan_last()
                        .map_err(|error| error::journal_failure(error, &opened.layout.journal))?
                        .1
                }
            };
            typed.state(&opened, seq, out)?;
            Ok(Outcome::Clean)
        }
        Command::Rollback { dir, to, dry_run } => {
            let typed = typed.ok_or(CliError::NeedsType {
                command: "rollback",
            })?;
            rollback::rollback(dir, allow, typed, *to, *dry_run, out)?;
            Ok(Outcome::Clean)
        }
        Command::Backup { dir, dest } => {
            let typed = typed.ok_or(CliError::NeedsType { command: "backup" })?;
            backup::backup(dir, allow, typed, dest, out)?;
            Ok(Outcome::Clean)
        }
        Command::Quarantine {
            action: QuarantineAction::List { dir },
        } => {
            quarantine::list(dir, allow, out)?;
            Ok(Outcome::Clean)
        }
        Command::Quarantine {
            action: QuarantineAction::Restore { dir, ids, dry_run },
        } => {
            quarantine::restore(dir, allow, typed, ids, *dry_run, out)?;
            Ok(Outcome::Clean)
        }
        Command::Compact { dir, dry_run } => {
            let typed = typed.ok_or(CliError::NeedsType { command: "compact" })?;
            compact::compact(dir, allow, typed, *dry_run, out)?;
            Ok(Outcome::Clean)
        }
    }
}

/// Says on stderr that the journal reads as ending before a torn tail:
/// `dump` and `state` read only what verifies, and must not pass the rest
/// over in silence.
fn warn_torn_tail(opened: &open::Opened) {
    if let Some(found) = info::torn_tail(opened) {
        eprintln!("solostate: warning: the journal ends early: {found}");
    }
}
