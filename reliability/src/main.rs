//! `reliability`: runs every reliability harness and writes `RELIABILITY.md`.
//!
//! ```sh
//! cargo run --release -p solostate-reliability --bin reliability -- --full
//! cargo run --release -p solostate-reliability --bin reliability -- --quick --out /tmp/R.md
//! ```
//!
//! `--quick` (the default) runs the short forms, as CI's tests do; `--full`
//! runs the long forms, under 30 minutes on 2 cores. The report goes to
//! `RELIABILITY.md` at the workspace root unless `--out` says otherwise.
//!
//! Each harness runs in a child process of its own (this binary again,
//! with `--child-section`), because the memory harnesses read the
//! process's RSS: in one process, a harness would start from the heap
//! that the previous one grew and the allocator kept.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use solostate::{Durability, StoreKind};
use solostate_reliability::report::{Chart, Mode, Report, Section, machine_description, today_utc};
use solostate_reliability::{fault_sweep, model_faults, overload, powercut, soak};

/// A harness: runs in the given mode and returns its section, or says
/// which promise it found broken.
type Harness = fn(Mode) -> Result<Section, String>;

/// Every harness, in report order.
const HARNESSES: &[(&str, Harness)] = &[
    ("soak", |mode| {
        soak::section(mode, None, StoreKind::Persistent)
    }),
    ("soak_versioned", |mode| {
        soak::section(mode, None, StoreKind::Versioned)
    }),
    ("soak_durable", |mode| {
        soak::section(
            mode,
            Some(Durability::Every(Duration::from_millis(100))),
            StoreKind::Persistent,
        )
    }),
    ("overload", overload::section),
    ("bad_input", solostate_reliability::bad_input::run),
    ("fault_sweep", fault_sweep::harness),
    ("model_faults", model_faults_harness),
    ("power_cut", power_cut_harness),
];

/// What a child process hands back: its section, or the broken promise.
type Outcome = Result<Section, String>;

/// The largest outcome a child may hand back (sections are a few KiB,
/// charts a few tens).
const MAX_OUTCOME: usize = 16 << 20;

/// The model harness, whose crash children are this bin.
fn model_faults_harness(mode: Mode) -> Result<Section, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this bin: {e}"))?;
    model_faults::harness(mode, &me)
}

/// The power-cut harness, whose writer and checker children are this bin.
fn power_cut_harness(mode: Mode) -> Result<Section, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this bin: {e}"))?;
    powercut::section::section(mode, &me)
}

fn main() -> ExitCode {
    // Not for people: the crash child that model_faults runs and kills.
    if std::env::args().nth(1).as_deref() == Some(model_faults::CHILD_COMMAND) {
        return model_faults::child_main(std::env::args().skip(2));
    }
    // Not for people either: the power-cut harness's writer and checker.
    if std::env::args().nth(1).as_deref() == Some(powercut::child::CHILD_COMMAND) {
        return powercut::child::child_main(std::env::args().skip(2));
    }
    let mut mode = Mode::Quick;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../RELIABILITY.md");
    let mut only: Option<String> = None;
    let mut child_section: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--full" => mode = Mode::Full,
            "--quick" => mode = Mode::Quick,
            "--out" => match args.next() {
                Some(path) => out = PathBuf::from(path),
                None => return usage("--out needs a path"),
            },
            "--only" => match args.next() {
                Some(name) => only = Some(name),
                None => return usage("--only needs a harness name"),
            },
            "--child-section" => match args.next() {
                Some(path) => child_section = Some(PathBuf::from(path)),
                None => return usage("--child-section needs a path"),
            },
            "-h" | "--help" => return usage(""),
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    if let Some(name) = &only
        && !HARNESSES.iter().any(|(n, _)| n == name)
    {
        return usage(&format!("no harness is called {name:?}"));
    }
    if let Some(path) = child_section {
        return run_child(mode, only.as_deref(), &path);
    }
    let mut report = Report {
        mode,
        date: today_utc(),
        machine: machine_description(),
        sections: Vec::new(),
    };
    let mut failed = false;
    for (name, _) in HARNESSES {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        eprintln!("== {name} ({})", mode.name());
        let started = Instant::now();
        match run_in_child(mode, name) {
            Ok(mut section) => {
                section.elapsed = started.elapsed();
                eprintln!("   ok in {:.1} s", section.elapsed.as_secs_f64());
                report.sections.push(section);
            }
            Err(broken) => {
                eprintln!("   BROKEN: {broken}");
                failed = true;
            }
        }
    }
    if failed {
        eprintln!("a promise was broken; {} is left unchanged", out.display());
        return ExitCode::FAILURE;
    }
    match write_report(&report, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("{problem}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the harness `name` in a child process and returns what it found.
fn run_in_child(mode: Mode, name: &str) -> Outcome {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let path = dir.path().join("section.bin");
    let status = Command::new(&exe)
        .arg(format!("--{}", mode.name()))
        .args(["--only", name, "--child-section"])
        .arg(&path)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "the harness process ({status}) left no outcome in {}: {e}",
            path.display()
        )
    })?;
    let config = bincode::config::standard().with_limit::<MAX_OUTCOME>();
    let (outcome, _): (Outcome, usize) = bincode::serde::decode_from_slice(&bytes, config)
        .map_err(|e| {
            format!(
                "the harness's outcome in {} is unreadable: {e}",
                path.display()
            )
        })?;
    outcome
}

/// The child's side: runs one harness and writes its outcome to `path`.
fn run_child(mode: Mode, only: Option<&str>, path: &Path) -> ExitCode {
    let Some((_, harness)) = HARNESSES.iter().find(|(n, _)| Some(*n) == only) else {
        return usage("--child-section needs --only");
    };
    let outcome: Outcome = harness(mode);
    let config = bincode::config::standard().with_limit::<MAX_OUTCOME>();
    let written = bincode::serde::encode_to_vec(&outcome, config)
        .map_err(|e| e.to_string())
        .and_then(|bytes| std::fs::write(path, bytes).map_err(|e| e.to_string()));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the outcome to {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes the report to `out` and its charts to `reliability/results/`
/// beside it.
fn write_report(report: &Report, out: &Path) -> Result<(), String> {
    std::fs::write(out, report.to_markdown())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    let charts = out.parent().unwrap_or(Path::new(".")).join(Chart::DIR);
    for chart in report.sections.iter().flat_map(|s| &s.charts) {
        let path = charts.join(&chart.file);
        std::fs::create_dir_all(&charts)
            .and_then(|()| std::fs::write(&path, &chart.svg))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn usage(problem: &str) -> ExitCode {
    if !problem.is_empty() {
        eprintln!("error: {problem}");
    }
    let names: Vec<&str> = HARNESSES.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "usage: reliability [--quick | --full] [--out PATH] [--only HARNESS]\nharnesses: {}",
        names.join(", ")
    );
    if problem.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
