//! The power-cut harness, short form (CI): a handful of cycles of a
//! durable engine with the default settings under pipelined load, the
//! power cut at a random moment, during a checkpoint or during a
//! rollback, then remount, reopen and check against a model; then two
//! backup cycles, in which the child also takes online backups
//! (`Engine::backup`) on the mount and the cut falls a few operations
//! after one begins. The long form (510 cuts and 60 backup cycles) is
//! `reliability --full --only power_cut`.
//!
//! `SOLOSTATE_POWERCUT_SEED` reruns a given seed (every report prints
//! its seed), `SOLOSTATE_POWERCUT_CYCLES` changes the count and
//! `SOLOSTATE_POWERCUT_BACKUP_CYCLES` the backup cycles'. Where
//! FUSE is missing the test prints why and passes, unless
//! `SOLOSTATE_REQUIRE_FUSE=1` (CI sets it).
//!
//! **What fails the test.** A lost acked event in any cut mode, a
//! recovered journal that is not its writers' history or a state unlike
//! the model ("other failures" in the table), and an open that fails or
//! panics after any cut; in the backup cycles, a backup that returned
//! `Ok` and is missing, does not open, or holds another seq or a state
//! unlike the model's at its seq ("backups lost"), and an in-flight one
//! whose destination has content but is not whole ("torn").
//!
//! The writer creates its journal on the engine's default backend, the
//! segment log; `SOLOSTATE_POWERCUT_BACKEND=sled` runs the same cuts on
//! sled, whose own recovery sometimes cannot open its log after a
//! random-subset cut (README, Known limitations: sled marks a buffer
//! stable on `sync_file_range`, so a reordered cut can leave a segment
//! gap its recovery refuses), so on sled this test is expected to fail
//! now and then.

use solostate_reliability::powercut::harness::{Config, run};
use solostate_reliability::powercut::section::{
    BACKUP_CYCLES_ENV, CYCLES_ENV, QUICK_BACKUP_CYCLES, SEED, SEED_ENV, backend, env_u64,
};
use solostate_reliability::powercut::{Image, mount_or_skip};

/// Cuts in CI's short form: two of each mode.
const CYCLES: u64 = 6;

/// Skips (or, under `SOLOSTATE_REQUIRE_FUSE=1`, fails) without FUSE.
fn fuse_here() -> bool {
    let probe = tempfile::tempdir().unwrap();
    mount_or_skip(probe.path(), &Image::empty()).is_some()
}

/// The control: with every unsynced write kept (what SIGKILL leaves),
/// the harness must find nothing lost, which shows its checks do not
/// cry wolf. Enforced always: today's engine survives SIGKILL.
#[test]
fn the_harness_finds_nothing_lost_when_the_page_cache_survives() {
    if !fuse_here() {
        return;
    }
    let seed = env_u64(SEED_ENV).unwrap_or(SEED);
    let mut config = Config::new(3, seed, env!("CARGO_BIN_EXE_reliability").into());
    config.control = true;
    let report = run(&config).unwrap_or_else(|e| panic!("the harness could not run: {e}"));
    eprintln!("{}", report.table());
    let total = report.total();
    assert_eq!(total.cycles, 3);
    assert!(
        total.acked > 0,
        "no event was acked: the control proved nothing"
    );
    assert!(
        total.passed(),
        "the control found losses where there were none:\n{}",
        report.failures.join("\n")
    );
    assert!(total.reused > 0, "a recovered directory was reopened");
}

#[test]
fn acked_events_survive_power_cuts_and_the_state_equals_the_model() {
    if !fuse_here() {
        return;
    }
    let seed = env_u64(SEED_ENV).unwrap_or(SEED);
    let cycles = env_u64(CYCLES_ENV).unwrap_or(CYCLES);
    let backup_cycles = env_u64(BACKUP_CYCLES_ENV).unwrap_or(QUICK_BACKUP_CYCLES);
    let mut config = Config::new(cycles, seed, env!("CARGO_BIN_EXE_reliability").into());
    config.backup_cycles = backup_cycles;
    let report = run(&config).unwrap_or_else(|e| panic!("the harness could not run: {e}"));
    eprintln!(
        "power cut, backend {:?}, seed {seed:#x}, {cycles} cycles and {backup_cycles} backup \
         cycles in {:.1} s:\n{}",
        backend(),
        report.elapsed.as_secs_f64(),
        report.table()
    );
    for failure in &report.failures {
        eprintln!("  {failure}");
    }
    let total = report.total();
    assert_eq!(total.cycles, cycles + backup_cycles, "every cycle ran");
    assert!(
        total.acked > 0,
        "no event was acked: the run proved nothing"
    );
    assert_eq!(
        total.backups.cycles, backup_cycles,
        "every backup cycle ran"
    );
    if backup_cycles > 0 {
        assert!(
            total.backups.reported > 0,
            "no backup returned before a cut: the backup cycles proved nothing"
        );
    }
    // Always enforced: nothing acked is lost in any mode, every recovered
    // state is its writers' history and equals the model, and opening
    // never fails or panics after a drop-all or torn-prefix cut.
    let known = "random subset";
    let sled = backend() == solostate::JournalBackend::Sled;
    let mut broken: Vec<String> = Vec::new();
    for (mode, figures) in &report.modes {
        if figures.lost > 0 || figures.other_failures > 0 {
            broken.push(format!(
                "{mode}: {} lost, {} other",
                figures.lost, figures.other_failures
            ));
        }
        let b = &figures.backups;
        if b.lost > 0 || b.torn > 0 {
            broken.push(format!(
                "{mode}: {} of {} returned backups lost, {} in-flight backups torn",
                b.lost, b.reported, b.torn
            ));
        }
        let opens = figures.failed_opens + figures.panicked_opens;
        if opens > 0 && !(sled && *mode == known) {
            broken.push(format!("{mode}: {opens} failed or panicked opens"));
        }
    }
    // The known sled failure (README, Known limitations): after a cut that
    // keeps a random subset of the unsynced writes, sled 0.34.7 sometimes
    // cannot open its log. On sled it is printed, not enforced; on the
    // segment log every failed open fails the test.
    if sled && !total.passed() && broken.is_empty() {
        eprintln!(
            "KNOWN, NOT ENFORCED on sled: sled could not open its log after a {known} cut \
             (README, Known limitations)"
        );
    }
    assert!(
        broken.is_empty(),
        "power cuts broke a promise (backend {:?}, seed {seed:#x}; rerun with SOLOSTATE_POWERCUT_SEED):\n{}\n{}",
        backend(),
        report.table(),
        report.failures.join("\n")
    );
}
