//! The power-cut harness: N cycles of write, cut, remount, reopen, check.
//!
//! Each cycle:
//!
//! 1. mounts the simulator, empty or (every other cycle, after a cycle
//!    that passed) with the image the previous cycle's check left, so that
//!    recovering a recovered directory is tested too;
//! 2. starts the writer child ([`super::child`]) on `data/engine` under
//!    the mount (the harness makes and syncs `data/` itself; everything
//!    below it is the engine's to make durable), with the default settings,
//!    checkpoints every few thousand events, the retention alternating
//!    between `FullHistory` and `SinceOldestCheckpoint`;
//! 3. cuts the power at a random moment, or a few operations after a
//!    checkpoint's temporary file appears, or a few operations after the
//!    child says it is sending a rollback; the [`CutMode`] rotates. The
//!    last [`Config::backup_cycles`] cycles are backup cycles: the child
//!    also backs the engine up again and again, and the power is cut a
//!    few operations after it says a backup begins ([`super::backups`]);
//! 4. SIGKILLs the child and reads everything it printed (an ack printed
//!    after the cut is still real: its `fsync` returned before), unmounts,
//!    and mounts the cut image;
//! 5. reopens in the check child and judges the result
//!    ([`super::check::judge`]); in a backup cycle, also opens every
//!    backup the child started and judges each against the model's state
//!    at its seq ([`super::backups::judge`]).
//!
//! Everything random comes from the run's seed, printed with every
//! failure, so `SOLOSTATE_POWERCUT_SEED` reruns it (the cut moments are
//! wall-clock, so a rerun repeats the workload and the choices, not the
//! exact interleaving).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use solostate::Retention;

use super::backups::{self, BackupFigures, Started};
use super::check::{AckedStep, Expected, Verdict, judge_at};
use super::child::{CHILD_COMMAND, Line, Settings};
use super::figures::CycleResult;
pub use super::figures::{CutPoint, ModeFigures, Report};
use super::fs::Simulator;
use super::image::{CutMode, CutStats, Image};
use super::model::Trigger;
use super::workload::PcModel;
use crate::workload::Rng;
use children::{check, copy_tree, drain, tail};

mod children;

/// How long a run is and what it runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cycles (cuts) to run.
    pub cycles: u64,
    /// The seed of everything random.
    pub seed: u64,
    /// The `reliability` bin, run with [`CHILD_COMMAND`].
    pub child: PathBuf,
    /// Checkpoint every this many events.
    pub every_events: u64,
    /// Events each writer keeps in flight.
    pub depth: usize,
    /// The longest a random cut waits after the engine opened.
    pub max_delay: Duration,
    /// Every cut is [`CutMode::KeepAll`] (a process crash, not a power
    /// cut): the control run, in which nothing may be found lost.
    pub control: bool,
    /// Backup cycles run after the `cycles` others (their cut modes
    /// rotating the same way): the writer also takes online backups, and
    /// the cut is aimed at them.
    pub backup_cycles: u64,
}

impl Config {
    /// A run of `cycles` cycles with the usual sizes.
    pub fn new(cycles: u64, seed: u64, child: PathBuf) -> Self {
        Config {
            cycles,
            seed,
            child,
            every_events: 2_000,
            depth: 512,
            max_delay: Duration::from_millis(1_200),
            control: false,
            backup_cycles: 0,
        }
    }
}

/// How many failure texts a report keeps of each kind (lost acks, failed
/// opens, panicked opens, other), so that one kind does not crowd out the
/// first text of another.
const FAILURES_KEPT: usize = 3;

/// When set to a directory, every failing cycle leaves there, under
/// `cycle-N/` (`control-cycle-N/` in a control run), a copy of its cut image's engine directory as the check
/// child found it (before the reopen touched it: `engine/`) and the lines
/// the writer printed (`writer.txt`), so that the journal can be
/// inspected with `Replay` afterwards. A debugging aid; unset, nothing is
/// copied.
pub const DUMP_ENV: &str = "SOLOSTATE_POWERCUT_DUMP";

/// What a passing cycle leaves for the next one on the same directory.
struct Carry {
    image: Image,
    seq: u64,
    model: PcModel,
}

/// Runs `config.cycles` cycles. `Err` only when the harness itself could
/// not run (no mount, a child that would not start); broken promises,
/// a writer that fails before the cut included, are counted in the
/// [`Report`].
///
/// # Errors
///
/// As above, naming the seed and cycle.
pub fn run(config: &Config) -> Result<Report, String> {
    let started = Instant::now();
    let scratch = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let mut report = Report {
        seed: config.seed,
        modes: vec![
            (CutMode::DropAll.name(), ModeFigures::default()),
            (
                CutMode::RandomSubset { seed: 0 }.name(),
                ModeFigures::default(),
            ),
            (
                CutMode::TornPrefix { seed: 0 }.name(),
                ModeFigures::default(),
            ),
            (CutMode::KeepAll.name(), ModeFigures::default()),
        ],
        ..Report::default()
    };
    let mut carry: Option<Carry> = None;
    let mut kept = [0usize; 4];
    for n in 0..config.cycles + config.backup_cycles {
        let mut rng = Rng::new(config.seed ^ (n + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        let (row, mode) = match n % 3 {
            _ if config.control => (3, CutMode::KeepAll),
            0 => (0, CutMode::DropAll),
            1 => (1, CutMode::RandomSubset { seed: rng.bits() }),
            _ => (2, CutMode::TornPrefix { seed: rng.bits() }),
        };
        let reuse = if n % 2 == 1 { carry.take() } else { None };
        let settings = Settings {
            retention: if n % 4 < 2 {
                Retention::FullHistory
            } else {
                Retention::SinceOldestCheckpoint
            },
            every_events: config.every_events,
            backups: n >= config.cycles,
        };
        let where_ = format!("seed {:#x}, cycle {n} ({})", config.seed, mode.name());
        let dump = std::env::var_os(DUMP_ENV).map(|d| {
            let kind = if config.control { "control-" } else { "" };
            PathBuf::from(d).join(format!("{kind}cycle-{n}"))
        });
        let (result, next) = cycle(
            config,
            scratch.path(),
            &mut rng,
            mode,
            settings,
            reuse,
            dump,
        )
        .map_err(|e| format!("{where_}: {e}"))?;
        let v = &result.verdict;
        let kind = if v.panicked_open.is_some() {
            2
        } else if v.failed_open.is_some() {
            1
        } else if v.lost > 0 {
            0
        } else {
            3
        };
        if !v.passed() && kept[kind] < FAILURES_KEPT {
            kept[kind] += 1;
            let mut what = Vec::new();
            if v.lost > 0 {
                what.push(format!(
                    "{} acked events lost (recovered seq {:?})",
                    v.lost, v.recovered
                ));
            }
            if let Some(e) = &v.failed_open {
                what.push(format!("open failed: {e}"));
            }
            if let Some(p) = &v.panicked_open {
                what.push(format!("open panicked: {p}"));
            }
            what.extend(v.problems.iter().take(3).cloned());
            report
                .failures
                .push(format!("{where_}: {}", what.join("; ")));
        }
        eprintln!(
            "power cut {where_}: {:?} cut{}, {} acked, recovered {:?}, {}",
            result.point,
            if result.drawn == result.point {
                String::new()
            } else {
                format!(" (meant as {:?})", result.drawn)
            },
            result.acked,
            v.recovered,
            if v.passed() { "ok" } else { "BROKEN" }
        );
        report.modes[row].1.add(&result);
        carry = next;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The engine's directory under a mount.
fn engine_dir(mount: &Path) -> PathBuf {
    mount.join("data").join("engine")
}

fn cycle(
    config: &Config,
    scratch: &Path,
    rng: &mut Rng,
    mode: CutMode,
    settings: Settings,
    reuse: Option<Carry>,
    dump: Option<PathBuf>,
) -> Result<(CycleResult, Option<Carry>), String> {
    let mount = scratch.join("mnt");
    std::fs::create_dir_all(&mount).map_err(|e| format!("{}: {e}", mount.display()))?;
    let reused = reuse.is_some();
    let (image, start_seq, base) = match reuse {
        Some(c) => (c.image, Some(c.seq), c.model),
        None => (Image::empty(), None, PcModel::new()),
    };
    let sim = Simulator::mount(&mount, &image).map_err(|e| e.to_string())?;
    if !reused {
        // The user's part: a synced, existing parent directory.
        let data = mount.join("data");
        std::fs::create_dir(&data)
            .and_then(|()| solostate::persistence::sync::sync_dir(&mount))
            .map_err(|e| format!("{}: {e}", data.display()))?;
    }
    let seed = rng.bits();
    let dir = engine_dir(&mount);
    let mut writer = Command::new(&config.child)
        .arg(CHILD_COMMAND)
        .arg("write")
        .arg(&dir)
        .arg(seed.to_string())
        .arg(settings.retention_arg())
        .arg(settings.every_events.to_string())
        .arg(config.depth.to_string())
        .args(settings.backups.then_some("backups"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", config.child.display()))?;
    let (lines_tx, lines) = mpsc::channel();
    let stdout = writer.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(parsed) = Line::parse(&line) {
                let _ = lines_tx.send(parsed.clone()); // the cutter may have stopped listening
                all.push(parsed);
            }
        }
        all
    });
    let stderr = drain(writer.stderr.take().expect("piped"));
    let point = match cut_when(config, rng, &sim, &lines, &mut writer, settings.backups) {
        Ok(point) => point,
        Err(e) => {
            // The writer failed on its own, before any cut: the engine
            // could not open (a directory it, or a check, had recovered),
            // or stopped under load. A broken promise of this cycle, not
            // of the harness.
            let _ = writer.kill();
            let _ = writer.wait();
            let stderr = stderr.join().unwrap_or_default();
            let printed = reader.join().map_err(|_| "the line reader panicked")?;
            let what = format!("{e}; its stderr: {}", tail(&stderr));
            let opened = printed.iter().any(|l| matches!(l, Line::Open(_)));
            let verdict = Verdict {
                failed_open: (!opened).then(|| format!("the writer's open: {what}")),
                problems: if opened { vec![what] } else { Vec::new() },
                ..Verdict::default()
            };
            sim.unmount().map_err(|e| e.to_string())?;
            let result = CycleResult {
                acked: acked_steps(&printed).map_or(0, |(_, a)| a.len() as u64),
                drawn: CutPoint::Random,
                point: CutPoint::Random,
                reused,
                stats: CutStats::default(),
                verdict,
                backups: BackupFigures::default(),
            };
            return Ok((result, None));
        }
    };
    let fired = sim.model().trigger_fired();
    let (cut_image, stats) = sim.cut(mode);
    let _ = writer.kill(); // it may have stopped on its own after the cut
    let _ = writer.wait();
    let printed = reader.join().map_err(|_| "the line reader panicked")?;
    drop(stderr);
    sim.unmount().map_err(|e| e.to_string())?;
    let drawn = point;
    let point = if fired { point } else { CutPoint::Random };

    let (start, acked) = acked_steps(&printed)?;
    let sim = Simulator::mount(&mount, &cut_image).map_err(|e| e.to_string())?;
    if let Some(dump) = &dump {
        let _ = std::fs::remove_dir_all(dump); // an earlier run's
        copy_tree(&dir, &dump.join("engine"))
            .and_then(|()| {
                let text: String = printed.iter().map(|l| format!("{l:?}\n")).collect();
                std::fs::write(dump.join("writer.txt"), text)
            })
            .map_err(|e| format!("dump to {}: {e}", dump.display()))?;
    }
    let mut figures = BackupFigures::default();
    let mut verdict = match start_seq {
        Some(carried) if carried != start => Verdict {
            problems: vec![format!(
                "the writer opened the recovered directory at seq {start}, where the check had \
                 recovered {carried}"
            )],
            ..Verdict::default()
        },
        _ => {
            let outcome = check(config, scratch, &dir, settings, start)?;
            let started = Started::of(&printed);
            let dests: Vec<PathBuf> = (started.started.iter())
                .map(|&i| backups::dest(&dir, seed, i))
                .collect();
            let found = match settings.backups {
                true => backups::look_at(&config.child, scratch, settings, &dests)?,
                false => Vec::new(),
            };
            let expected = Expected {
                seed,
                start,
                base: &base,
                acked: &acked,
            };
            let mut verdict = judge_at(&expected, outcome, &backups::seqs(&found));
            if settings.backups {
                let known = verdict.model.is_some();
                let (f, problems) = backups::judge(&started, &found, &verdict.states, known);
                figures = f;
                figures.temporaries = backups::temporaries(&mount.join("data"), seed);
                verdict.problems.extend(problems);
            }
            verdict
        }
    };
    let after = sim.unmount().map_err(|e| e.to_string())?;
    if let Some(dump) = &dump {
        if verdict.passed() {
            let _ = std::fs::remove_dir_all(dump); // only failures are kept
        } else {
            eprintln!("power cut: the cut image is in {}", dump.display());
        }
    }
    let next = match (verdict.passed(), verdict.recovered, verdict.model.take()) {
        (true, Some(seq), Some(model)) => Some(Carry {
            image: after,
            seq,
            model,
        }),
        _ => None,
    };
    let result = CycleResult {
        acked: acked.len() as u64,
        drawn,
        point,
        reused,
        stats,
        verdict,
        backups: figures,
    };
    Ok((result, next))
}

/// Waits for the moment to cut, per a drawn [`CutPoint`]: for the random
/// kind a random delay after the open; for the others, arms a trigger and
/// waits for it (up to a limit, then it is a random cut after all). A
/// backup cycle's cut is always [`CutPoint::Backup`].
fn cut_when(
    config: &Config,
    rng: &mut Rng,
    sim: &Simulator,
    lines: &mpsc::Receiver<Line>,
    writer: &mut Child,
    backups: bool,
) -> Result<CutPoint, String> {
    let opened = wait_for(lines, writer, Duration::from_secs(120), |l| {
        matches!(l, Line::Open(_))
    })?;
    if !opened {
        return Err("the writer did not open the engine in 120 s".into());
    }
    let point = match rng.bits() % 4 {
        _ if backups => CutPoint::Backup,
        0 | 1 => CutPoint::Random,
        2 => CutPoint::Checkpoint,
        _ => CutPoint::Rollback,
    };
    match point {
        CutPoint::Random => std::thread::sleep(random_delay(rng, config.max_delay)),
        CutPoint::Checkpoint => {
            // Not always the first checkpoint: start watching a while in.
            std::thread::sleep(random_delay(rng, config.max_delay / 2));
            sim.arm(Trigger::AfterCreate {
                prefix: "ckpt-".into(),
                suffix: ".tmp".into(),
                then: rng.range(0, 6),
            });
            wait_frozen(sim, Duration::from_secs(10));
        }
        CutPoint::Rollback => {
            std::thread::sleep(random_delay(rng, config.max_delay / 2));
            let rolling = wait_for(lines, writer, Duration::from_secs(5), |l| {
                matches!(l, Line::RollingBack(_))
            })?;
            if rolling {
                sim.arm(Trigger::AfterOps(rng.range(0, 40)));
                wait_frozen(sim, Duration::from_secs(5));
            }
        }
        CutPoint::Backup => {
            // Several backups return first; then the lines so far are
            // dropped, so that the `BK` waited for is a backup beginning
            // now, not one long done.
            std::thread::sleep(random_delay(rng, config.max_delay / 2));
            while lines.try_recv().is_ok() {}
            let backing_up = wait_for(lines, writer, Duration::from_secs(5), |l| {
                matches!(l, Line::BackingUp(_))
            })?;
            if backing_up {
                sim.arm(Trigger::AfterOps(rng.range(0, BACKUP_OPS)));
                wait_frozen(sim, Duration::from_secs(5));
            }
        }
    }
    Ok(point)
}

/// A backup cycle's cut falls within this many mutating operations after
/// a backup begins: a backup's own (its temporary directory, the journal
/// and checkpoint files, a sync of each, the rename, the parent's sync)
/// number a few tens, and the writers' journal appends and syncs go on
/// meanwhile, so this reaches from the backup's first operation to past
/// its last one.
const BACKUP_OPS: u64 = 160;

/// A delay between 10 ms and `max` (at least 10 ms).
fn random_delay(rng: &mut Rng, max: Duration) -> Duration {
    Duration::from_millis(rng.range(10, (max.as_millis() as u64).max(10)))
}

/// Waits up to `limit` for a line matching `want`; false on timeout.
/// Fails if the writer exits first.
fn wait_for(
    lines: &mpsc::Receiver<Line>,
    writer: &mut Child,
    limit: Duration,
    want: impl Fn(&Line) -> bool,
) -> Result<bool, String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(20)) {
            Ok(line) if want(&line) => return Ok(true),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = writer.try_wait() {
                    return Err(format!("the writer exited before the cut: {status}"));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the writer closed its output before the cut".into());
            }
        }
    }
    Ok(false)
}

fn wait_frozen(sim: &Simulator, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !sim.is_frozen() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The writer's start seq and its acked steps by seq.
fn acked_steps(lines: &[Line]) -> Result<(u64, BTreeMap<u64, AckedStep>), String> {
    let mut start = None;
    let mut acked = BTreeMap::new();
    for line in lines {
        let (seq, step) = match *line {
            Line::Open(seq) => {
                start = Some(seq);
                continue;
            }
            Line::Ack { seq, writer, index } => (seq, AckedStep::Event { writer, index }),
            Line::RolledBack { seq, target } => (seq, AckedStep::Rollback(target)),
            Line::RollingBack(_)
            | Line::RollbackRefused(_)
            | Line::BackingUp(_)
            | Line::BackedUp { .. } => continue,
        };
        if acked.insert(seq, step).is_some() {
            return Err(format!("the writer acked seq {seq} twice"));
        }
    }
    Ok((start.ok_or("the writer never said where it opened")?, acked))
}
