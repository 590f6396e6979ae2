//! Backup cycles: online backups taken under load, with the power cut
//! around them.
//!
//! In a backup cycle the writer child runs one more task beside its
//! writers and its rollbacks: every few tens of milliseconds it calls
//! `Engine::backup` to a new destination on the mount, [`dest`] `i` beside
//! the engine's directory, printing `BK i` before the call and
//! `BKOK i seq` when it returned `Ok` (see [`super::child::Line`]). The
//! harness cuts the power a few operations after a `BK` line, so that
//! the cut falls during a backup (or just after one) while earlier
//! backups have returned.
//!
//! `backup`'s promise is what the check holds it to:
//!
//! * a backup that returned `Ok` (reported) survives the cut: its `dest`
//!   opens with the engine (same schema) at exactly its seq `S`, and its
//!   state equals the model's at `S`. Missing, failing to open, another
//!   seq or another state is a *lost backup*;
//! * a backup that had not returned (in flight) left `dest` absent or
//!   empty, or whole: if `dest` has content, it opens at some seq `S'` of
//!   the cycle's history and its state equals the model's at `S'`.
//!   Anything else is a *torn backup*.
//!
//! Temporary `.{name}.backup-*.tmp` directories may remain; they are
//! counted, never opened. Where the history leaves the model's state at a
//! seq undetermined (unseen seqs that several writers could hold, see
//! [`super::check`]), a backup at it is counted as unchecked rather than
//! passed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use solostate::Engine;

use super::child::{CHILD_COMMAND, Line, MAX_OUTCOME, Opened, Settings, panic_text, reopen, say};
use super::workload::{PcEvent, PcModel, diff};
use crate::workload::Rng;

/// The `index`-th backup destination of a cycle seeded `seed` whose
/// engine is in `engine_dir`: beside it, in the directory the harness
/// made and synced, and named by the seed so that a later cycle on the
/// same image never reuses a name.
pub fn dest(engine_dir: &Path, seed: u64, index: u64) -> PathBuf {
    engine_dir.with_file_name(format!("backup-{seed:016x}-{index}"))
}

/// The start of the temporary directory names the cycle's backups use
/// (`.{name}.backup-{pid}-{n}.tmp`, see `persistence/src/backup.rs`).
fn temporary_prefix(seed: u64) -> String {
    format!(".backup-{seed:016x}-")
}

/// The writer child's backup task: backs the engine up again and again,
/// each to a new [`dest`], until the cut makes a backup fail (the parent
/// has killed the child by then, or kills it next).
///
/// # Errors
///
/// A failed backup, or stdout gone.
pub(super) async fn back_up_now_and_then(
    engine: Engine<PcEvent>,
    dir: PathBuf,
    seed: u64,
) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0xBAC0_0B0B);
    for index in 0.. {
        tokio::time::sleep(Duration::from_millis(rng.range(10, 80))).await;
        say(format_args!("BK {index}"))?;
        let report = engine
            .backup(dest(&dir, seed, index))
            .await
            .map_err(|e| format!("backup {index}: {e}"))?;
        say(format_args!("BKOK {index} {}", report.seq))?;
    }
    Ok(())
}

/// What a backup destination held after the cut.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Found {
    /// No such name.
    Absent,
    /// An empty directory.
    Empty,
    /// It opened as an engine, at this seq and state.
    Opened(Opened),
    /// It has content but the open (or reading it) failed.
    Failed(String),
    /// The open panicked.
    Panicked(String),
}

/// The check child's `backups RETENTION EVERY_EVENTS OUT DEST...`: looks
/// at each destination and writes the [`Found`]s to `OUT`.
///
/// # Errors
///
/// Bad arguments, or `OUT` not written.
pub(super) fn check_main(args: &[String]) -> Result<(), String> {
    let [retention, every, out, dests @ ..] = args else {
        return Err("backups needs RETENTION EVERY_EVENTS OUT DEST...".into());
    };
    let settings = Settings::parse(retention, every).ok_or("bad RETENTION or EVERY_EVENTS")?;
    let found: Vec<Found> = dests.iter().map(|d| look(Path::new(d), settings)).collect();
    let config = bincode::config::standard().with_limit::<MAX_OUTCOME>();
    let bytes = bincode::serde::encode_to_vec(&found, config).map_err(|e| e.to_string())?;
    std::fs::write(out, bytes).map_err(|e| format!("{out}: {e}"))
}

fn look(dest: &Path, settings: Settings) -> Found {
    match std::fs::read_dir(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Found::Absent,
        Err(e) => Found::Failed(format!("read {}: {e}", dest.display())),
        Ok(mut entries) => match entries.next() {
            None => Found::Empty,
            Some(_) => opened_or_why(dest, settings),
        },
    }
}

/// Opens a destination with content, catching a panic.
fn opened_or_why(dest: &Path, settings: Settings) -> Found {
    match std::panic::catch_unwind(|| reopen(dest, settings)) {
        Ok(Ok(opened)) => Found::Opened(opened),
        Ok(Err(e)) => Found::Failed(e),
        Err(panic) => Found::Panicked(panic_text(&*panic)),
    }
}

/// The backups a writer started and those it reported, from its lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    /// Every backup index it printed `BK` for.
    pub started: BTreeSet<u64>,
    /// The seq of each that returned `Ok`, by index.
    pub reported: BTreeMap<u64, u64>,
}

impl Started {
    /// Collects them from the writer's lines.
    pub fn of(lines: &[Line]) -> Self {
        let mut this = Started::default();
        for line in lines {
            match *line {
                Line::BackingUp(index) => {
                    this.started.insert(index);
                }
                Line::BackedUp { index, seq } => {
                    this.started.insert(index);
                    this.reported.insert(index, seq);
                }
                _ => {}
            }
        }
        this
    }
}

/// Runs the check child's `backups` on every started destination. A
/// child that dies or hangs (5 minutes) makes every destination a
/// [`Found::Panicked`] with what it left on stderr.
///
/// # Errors
///
/// When the child cannot be started, or its output is unreadable.
pub(super) fn look_at(
    child: &Path,
    scratch: &Path,
    settings: Settings,
    dests: &[PathBuf],
) -> Result<Vec<Found>, String> {
    let out = scratch.join("backups.bin");
    let err = scratch.join("backups-stderr.txt");
    let _ = std::fs::remove_file(&out); // a previous cycle's
    let stderr = std::fs::File::create(&err).map_err(|e| format!("{}: {e}", err.display()))?;
    let mut process = Command::new(child)
        .arg(CHILD_COMMAND)
        .arg("backups")
        .arg(settings.retention_arg())
        .arg(settings.every_events.to_string())
        .arg(&out)
        .args(dests)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", child.display()))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        match process.try_wait().map_err(|e| format!("wait: {e}"))? {
            Some(status) => break status.to_string(),
            None if Instant::now() > deadline => {
                let _ = process.kill();
                let _ = process.wait();
                break "hung for 5 minutes".to_owned();
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    match std::fs::read(&out) {
        Ok(bytes) => {
            let config = bincode::config::standard().with_limit::<MAX_OUTCOME>();
            bincode::serde::decode_from_slice(&bytes, config)
                .map(|(found, _)| found)
                .map_err(|e| format!("the backups' outcome is unreadable: {e}"))
        }
        Err(_) => {
            let text = std::fs::read_to_string(&err).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(6)..].join(" | ");
            let why = format!("the backup check process died ({status}): {tail}");
            Ok(dests.iter().map(|_| Found::Panicked(why.clone())).collect())
        }
    }
}

/// The seqs the opened destinations hold: the states the check must know.
pub fn seqs(found: &[Found]) -> BTreeSet<u64> {
    found
        .iter()
        .filter_map(|f| match f {
            Found::Opened(opened) => Some(opened.seq),
            _ => None,
        })
        .collect()
}

/// The leftover temporary directories of a cycle's backups in `parent`.
pub fn temporaries(parent: &Path, seed: u64) -> u64 {
    let prefix = temporary_prefix(seed);
    std::fs::read_dir(parent).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count() as u64
    })
}

/// What a cycle's backups came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupFigures {
    /// Cycles that took backups.
    pub cycles: u64,
    /// Backups that returned `Ok` before the cut.
    pub reported: u64,
    /// Reported backups that opened at their seq with the model's state.
    pub checked: u64,
    /// Reported backups missing, failing to open, or holding another seq
    /// or state.
    pub lost: u64,
    /// Backups in flight at the cut (started, not reported).
    pub in_flight: u64,
    /// In-flight backups whose destination was whole (it opened, at a seq
    /// of the history, with the model's state there).
    pub in_flight_whole: u64,
    /// In-flight backups whose destination had content but did not open,
    /// or opened to a state unlike the model's.
    pub torn: u64,
    /// Opened backups at a seq whose model state the history does not
    /// determine, so not compared.
    pub unchecked: u64,
    /// Temporary directories left by the cut.
    pub temporaries: u64,
}

impl BackupFigures {
    /// Adds another cycle's.
    pub fn add(&mut self, other: &BackupFigures) {
        self.cycles += other.cycles;
        self.reported += other.reported;
        self.checked += other.checked;
        self.lost += other.lost;
        self.in_flight += other.in_flight;
        self.in_flight_whole += other.in_flight_whole;
        self.torn += other.torn;
        self.unchecked += other.unchecked;
        self.temporaries += other.temporaries;
    }
}

/// Judges a cycle's backups: `found[k]` is what the `k`-th of
/// `started.started` (in order) held, and `states` the model's state at
/// the seqs the check was asked for ([`super::check::Verdict::states`];
/// empty when the history did not check out, which has failed the cycle
/// already). Returns the figures and the broken promises.
pub fn judge(
    started: &Started,
    found: &[Found],
    states: &BTreeMap<u64, Option<PcModel>>,
    history_known: bool,
) -> (BackupFigures, Vec<String>) {
    let mut figures = BackupFigures {
        cycles: 1,
        reported: started.reported.len() as u64,
        ..BackupFigures::default()
    };
    let mut problems = Vec::new();
    for (&index, found) in started.started.iter().zip(found) {
        let reported = started.reported.get(&index).copied();
        let what = match reported {
            Some(seq) => format!("backup {index} (reported at seq {seq})"),
            None => format!("in-flight backup {index}"),
        };
        // `Ok(true)`: equals the model; `Ok(false)`: not determined; `Err`: why not.
        let compare = |opened: &Opened| -> Result<bool, String> {
            if let Some(e) = &opened.shutdown {
                return Err(format!("its shutdown failed: {e}"));
            }
            match states.get(&opened.seq) {
                Some(Some(model)) => {
                    let state: PcModel = opened.state.iter().cloned().collect();
                    if &state == model {
                        Ok(true)
                    } else {
                        Err(format!(
                            "its state at seq {} is not the model's: {}",
                            opened.seq,
                            diff(&state, model)
                        ))
                    }
                }
                Some(None) => Ok(false),
                None if history_known => Err(format!(
                    "it opened at seq {}, outside the history the source recovered",
                    opened.seq
                )),
                None => Ok(false),
            }
        };
        let outcome: Result<bool, String> = match (found, reported) {
            (Found::Absent | Found::Empty, Some(_)) => Err("it is missing after the cut".into()),
            (Found::Absent | Found::Empty, None) => {
                figures.in_flight += 1;
                continue;
            }
            (Found::Failed(e), _) => Err(format!("it does not open: {e}")),
            (Found::Panicked(p), _) => Err(format!("its open panicked: {p}")),
            (Found::Opened(opened), Some(seq)) if opened.seq != seq => {
                Err(format!("it opened at seq {}", opened.seq))
            }
            (Found::Opened(opened), _) => compare(opened),
        };
        match (outcome, reported.is_some()) {
            (Ok(true), true) => figures.checked += 1,
            (Ok(true), false) => {
                figures.in_flight += 1;
                figures.in_flight_whole += 1;
            }
            (Ok(false), reported) => {
                figures.unchecked += 1;
                figures.in_flight += u64::from(!reported);
            }
            (Err(why), true) => {
                figures.lost += 1;
                problems.push(format!("{what}: {why}"));
            }
            (Err(why), false) => {
                figures.in_flight += 1;
                figures.torn += 1;
                problems.push(format!("{what}: {why}"));
            }
        }
    }
    if found.len() != started.started.len() {
        problems.push(format!(
            "the backup check looked at {} destinations of {}",
            found.len(),
            started.started.len()
        ));
    }
    (figures, problems)
}

#[cfg(test)]
mod tests;
