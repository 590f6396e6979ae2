//! What the power-cut harness counts: figures per cut mode, and the
//! report of a run.

use std::time::Duration;

use super::backups::BackupFigures;
use super::check::Verdict;
use super::image::CutStats;

/// What one cycle did.
pub(crate) struct CycleResult {
    /// Steps acked before the cut.
    pub(crate) acked: u64,
    /// Where the cut was meant to fall.
    pub(crate) drawn: CutPoint,
    /// Where it fell (a trigger that never fired makes a random cut).
    pub(crate) point: CutPoint,
    /// Whether the directory was one a previous check recovered.
    pub(crate) reused: bool,
    /// What the cut dropped.
    pub(crate) stats: CutStats,
    /// The judgement.
    pub(crate) verdict: Verdict,
    /// What its backups came to (all zero outside a backup cycle).
    pub(crate) backups: BackupFigures,
}

/// Where in the run a cut fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// At a random moment.
    Random,
    /// While a checkpoint was being written.
    Checkpoint,
    /// While a rollback was being written.
    Rollback,
    /// Around an online backup (a backup cycle).
    Backup,
}

/// The figures of one cut mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModeFigures {
    /// Cycles (cuts) in this mode.
    pub cycles: u64,
    /// Events acknowledged before the cuts (rollbacks included).
    pub acked: u64,
    /// Acknowledged events missing, or different, after the reopen.
    pub lost: u64,
    /// Reopens that returned an error.
    pub failed_opens: u64,
    /// Reopens that panicked.
    pub panicked_opens: u64,
    /// Cycles with another broken promise (a state unlike the model, a
    /// journal that does not read back, a step out of order).
    pub other_failures: u64,
    /// Steps recovered past the last printed ack.
    pub beyond_acked: u64,
    /// Cuts that fell during a checkpoint.
    pub in_checkpoint: u64,
    /// Cuts that fell during a rollback.
    pub in_rollback: u64,
    /// Cycles that reopened a directory a previous check had recovered.
    pub reused: u64,
    /// Unsynced bytes at the cuts.
    pub unsynced_bytes: u64,
    /// Unsynced bytes the cuts dropped.
    pub dropped_bytes: u64,
    /// Cuts that fell a few operations after a backup began.
    pub in_backup: u64,
    /// What the backup cycles' backups came to.
    pub backups: BackupFigures,
}

impl ModeFigures {
    /// Counts one cycle.
    pub(crate) fn add(&mut self, cycle: &CycleResult) {
        let v = &cycle.verdict;
        self.cycles += 1;
        self.acked += cycle.acked;
        self.lost += v.lost;
        self.failed_opens += u64::from(v.failed_open.is_some());
        self.panicked_opens += u64::from(v.panicked_open.is_some());
        self.other_failures += u64::from(
            v.failed_open.is_none() && v.panicked_open.is_none() && !v.problems.is_empty(),
        );
        self.beyond_acked += v.beyond_acked;
        self.in_checkpoint += u64::from(cycle.point == CutPoint::Checkpoint);
        self.in_rollback += u64::from(cycle.point == CutPoint::Rollback);
        self.reused += u64::from(cycle.reused);
        self.unsynced_bytes += cycle.stats.unsynced_bytes;
        self.dropped_bytes += cycle.stats.dropped_bytes;
        self.in_backup += u64::from(cycle.point == CutPoint::Backup);
        self.backups.add(&cycle.backups);
    }

    /// Whether every promise held.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.failed_opens == 0
            && self.panicked_opens == 0
            && self.other_failures == 0
            && self.backups.lost == 0
            && self.backups.torn == 0
    }
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The run's seed.
    pub seed: u64,
    /// Figures per cut mode: drop all, random subset, torn prefix, and the
    /// control (keep all).
    pub modes: Vec<(&'static str, ModeFigures)>,
    /// The first few failures of each kind, each with its seed, cycle,
    /// mode and what broke.
    pub failures: Vec<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Report {
    /// The figures of every mode added up.
    pub fn total(&self) -> ModeFigures {
        let mut t = ModeFigures::default();
        for (_, m) in &self.modes {
            t.cycles += m.cycles;
            t.acked += m.acked;
            t.lost += m.lost;
            t.failed_opens += m.failed_opens;
            t.panicked_opens += m.panicked_opens;
            t.other_failures += m.other_failures;
            t.beyond_acked += m.beyond_acked;
            t.in_checkpoint += m.in_checkpoint;
            t.in_rollback += m.in_rollback;
            t.reused += m.reused;
            t.unsynced_bytes += m.unsynced_bytes;
            t.dropped_bytes += m.dropped_bytes;
            t.in_backup += m.in_backup;
            t.backups.add(&m.backups);
        }
        t
    }

    /// The figures as a markdown table, one row per mode and a total.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| cut mode | cuts | acked events | lost | failed opens | panicked opens | other \
             failures | recovered beyond acked | cuts in a checkpoint | cuts in a rollback | \
             reopened recovered dirs | unsynced MiB dropped | cuts around a backup | backups \
             reported | backups checked | backups lost | in-flight backups (whole, torn) |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let total = self.total();
        for (name, m) in self
            .modes
            .iter()
            .filter(|(_, m)| m.cycles > 0)
            .map(|(n, m)| (*n, m))
            .chain([("all", &total)])
        {
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} of {:.1} | {} | \
                 {} | {} | {} | {} ({}, {}) |\n",
                m.cycles,
                m.acked,
                m.lost,
                m.failed_opens,
                m.panicked_opens,
                m.other_failures,
                m.beyond_acked,
                m.in_checkpoint,
                m.in_rollback,
                m.reused,
                m.dropped_bytes as f64 / (1 << 20) as f64,
                m.unsynced_bytes as f64 / (1 << 20) as f64,
                m.in_backup,
                m.backups.reported,
                m.backups.checked,
                m.backups.lost,
                m.backups.in_flight,
                m.backups.in_flight_whole,
                m.backups.torn,
            ));
        }
        out
    }
}
