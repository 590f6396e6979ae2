//! The power-cut harness as a section of `RELIABILITY.md`.

use std::path::Path;
use std::time::Duration;

use super::harness::{Config, Report, run};
use crate::report::{Mode, Section};

/// Overrides the number of cuts of either form.
pub const CYCLES_ENV: &str = "SOLOSTATE_POWERCUT_CYCLES";

/// Overrides the number of backup cycles of either form (cuts aimed at
/// online backups, run after the others: see [`super::backups`]).
pub const BACKUP_CYCLES_ENV: &str = "SOLOSTATE_POWERCUT_BACKUP_CYCLES";

/// Overrides the run's seed.
pub const SEED_ENV: &str = "SOLOSTATE_POWERCUT_SEED";

/// Chooses the journal backend the writer creates: `sled` or `segments`
/// (unset: the engine's default). The children inherit it from the harness,
/// so one variable switches a whole run.
pub const BACKEND_ENV: &str = "SOLOSTATE_POWERCUT_BACKEND";

/// The backend [`BACKEND_ENV`] names, or the engine's default.
///
/// # Panics
///
/// On a value that names neither, so a typo never silently tests the
/// default.
pub fn backend() -> solostate::JournalBackend {
    match std::env::var(BACKEND_ENV).as_deref() {
        Err(_) => solostate::JournalBackend::default(),
        Ok("segments") => solostate::JournalBackend::Segments,
        Ok("sled") => solostate::JournalBackend::Sled,
        Ok(other) => panic!("{BACKEND_ENV}={other:?}: expected \"sled\" or \"segments\""),
    }
}

/// Chooses the store the writer and the checker open with: `persistent`
/// or `versioned` (unset: the engine's default). Inherited like
/// [`BACKEND_ENV`].
pub const STORE_ENV: &str = "SOLOSTATE_POWERCUT_STORE";

/// The store [`STORE_ENV`] names, or the engine's default.
///
/// # Panics
///
/// On a value that names neither.
pub fn store() -> solostate::StoreKind {
    match std::env::var(STORE_ENV).as_deref() {
        Err(_) => solostate::StoreKind::default(),
        Ok("persistent") => solostate::StoreKind::Persistent,
        Ok("versioned") => solostate::StoreKind::Versioned,
        Ok(other) => panic!("{STORE_ENV}={other:?}: expected \"persistent\" or \"versioned\""),
    }
}

/// The seed of the published run.
pub const SEED: u64 = 0x5EED_C0DE;

/// Cuts in the quick form (the bin's `--quick`; CI's test has its own
/// count).
pub const QUICK_CYCLES: u64 = 6;

/// Cuts in the long form: 170 per cut mode.
pub const FULL_CYCLES: u64 = 510;

/// Backup cycles in the quick form (and CI's test): one each of two cut
/// modes, a few seconds.
pub const QUICK_BACKUP_CYCLES: u64 = 2;

/// Backup cycles in the long form: 20 per cut mode.
pub const FULL_BACKUP_CYCLES: u64 = 60;

/// A `u64` from the environment, decimal or `0x` hex.
pub fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// Runs the harness in `mode` with the crash children from `child` (the
/// `reliability` bin) and returns its section, or, when a promise broke,
/// the figures and the first failures as the error.
///
/// # Errors
///
/// When the harness cannot run (no FUSE, a child that does not start),
/// or when any acked event was lost, any reopen failed or panicked, or a
/// state differed from the model.
pub fn section(mode: Mode, child: &Path) -> Result<Section, String> {
    let cycles = env_u64(CYCLES_ENV).unwrap_or(match mode {
        Mode::Quick => QUICK_CYCLES,
        Mode::Full => FULL_CYCLES,
    });
    let seed = env_u64(SEED_ENV).unwrap_or(SEED);
    let mut config = Config::new(cycles, seed, child.to_owned());
    config.backup_cycles = env_u64(BACKUP_CYCLES_ENV).unwrap_or(match mode {
        Mode::Quick => QUICK_BACKUP_CYCLES,
        Mode::Full => FULL_BACKUP_CYCLES,
    });
    if mode == Mode::Full {
        // Longer runs too: a journal of a few hundred thousand events.
        config.max_delay = Duration::from_secs(2);
    }
    let report = run(&config)?;
    let total = report.total();
    if !total.passed() {
        return Err(format!(
            "power cuts broke a promise (seed {seed:#x}):\n{}\n{}",
            report.table(),
            report.failures.join("\n")
        ));
    }
    Ok(to_section(&report))
}

fn to_section(report: &Report) -> Section {
    let total = report.total();
    let mut section = Section::new(
        "Acknowledged events survive a power cut",
        "With the default settings (`Durability::Always`, `max_batch` 4096), every acknowledged \
         event is still there after the power is cut at any moment (under pipelined writes, \
         during a checkpoint, during a rollback, around an online backup), on a simulated disk \
         that keeps only what was fsynced, or that and a random subset or a torn prefix of the \
         rest; the directory always reopens, without an error or a panic, and its state equals a \
         plain model's at the recovered seq. Every backup that returned `Ok` before the cut \
         opens at its seq with the model's state there, and a backup in flight left its \
         destination absent, empty or whole.",
    )
    .checked_by("reliability/src/powercut/harness.rs")
    .checked_by("reliability/src/powercut/backups.rs")
    .checked_by("reliability/tests/power_cut.rs")
    .checked_by("reliability/tests/power_cut_fs.rs");
    section.figure(
        format!("power cuts (seed {:#x})", report.seed),
        total.cycles,
    );
    section.figure("acked events before the cuts", total.acked);
    section.figure("acked events lost", total.lost);
    section.figure("failed opens", total.failed_opens);
    section.figure("panicked opens", total.panicked_opens);
    section.figure("states unlike the model", total.other_failures);
    section.figure("cuts during a checkpoint", total.in_checkpoint);
    section.figure("cuts during a rollback", total.in_rollback);
    section.figure("cuts around a backup", total.in_backup);
    section.figure("backups returned before the cuts", total.backups.reported);
    section.figure(
        "of them, opened at their seq with the model's state",
        total.backups.checked,
    );
    section.figure("backups lost", total.backups.lost);
    section.figure(
        "in-flight backups (whole, torn)",
        format!(
            "{} ({}, {})",
            total.backups.in_flight, total.backups.in_flight_whole, total.backups.torn
        ),
    );
    section.figure(
        "backups not compared (state undetermined)",
        total.backups.unchecked,
    );
    section.figure("reopens of a directory recovered before", total.reused);
    section.figure(
        "steps recovered beyond the last printed ack",
        total.beyond_acked,
    );
    section.figure(
        "unsynced data dropped by the cuts",
        format!("{:.0} MiB", total.dropped_bytes as f64 / f64::from(1 << 20)),
    );
    section.note(format!("By cut mode:\n\n{}", report.table()));
    section.note(
        "The simulator (`reliability/src/powercut/`) is an in-memory FUSE filesystem: a file's \
         data is durable only after `fsync`/`fdatasync` of it, a name only after `fsync` of its \
         directory. *Drop all* keeps nothing else; *random subset* keeps each unsynced write \
         with probability 1/2, in order; *torn prefix* keeps a prefix of each file's unsynced \
         writes, the last one cut at a random byte. Unsynced names are lost in every mode. It \
         does not model disks that lie about `fsync`, corrupt synced bytes, or tear a write \
         into sectors in the middle.",
    );
    section
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powercut::figures::ModeFigures;

    #[test]
    fn the_section_reports_cuts_acks_and_losses_by_mode() {
        let mode = |cycles, acked| ModeFigures {
            cycles,
            acked,
            in_checkpoint: 1,
            ..ModeFigures::default()
        };
        let report = Report {
            seed: SEED,
            modes: vec![
                ("drop all", mode(2, 100)),
                ("random subset", mode(2, 50)),
                ("torn prefix", mode(1, 7)),
            ],
            failures: Vec::new(),
            elapsed: Duration::from_secs(3),
        };
        let section = to_section(&report);
        let figure = |name: &str| {
            section
                .figures
                .iter()
                .find(|(m, _)| m.starts_with(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(figure("power cuts (seed 0x5eedc0de)").as_deref(), Some("5"));
        assert_eq!(figure("acked events before").as_deref(), Some("157"));
        assert_eq!(figure("acked events lost").as_deref(), Some("0"));
        assert_eq!(figure("cuts during a checkpoint").as_deref(), Some("3"));
        let table = &section.notes[0];
        assert!(table.contains("| torn prefix | 1 | 7 | 0 |"), "{table}");
        assert!(table.contains("| all | 5 | 157 | 0 |"), "{table}");
    }
}
