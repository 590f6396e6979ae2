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

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use solostate_reliability::report::{Mode, Report, Section, machine_description, today_utc};
use solostate_reliability::{fault_sweep, model_faults};

/// A harness: runs in the given mode and returns its section, or says
/// which promise it found broken.
type Harness = fn(Mode) -> Result<Section, String>;

/// Every harness, in report order.
const HARNESSES: &[(&str, Harness)] = &[
    ("fault-sweep", fault_sweep::harness),
    ("model-faults", model_faults_harness),
];

/// The model harness, whose crash children are this bin.
fn model_faults_harness(mode: Mode) -> Result<Section, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this bin: {e}"))?;
    model_faults::harness(mode, &me)
}

fn main() -> ExitCode {
    // Not for people: the crash child that model-faults runs and kills.
    if std::env::args().nth(1).as_deref() == Some(model_faults::CHILD_COMMAND) {
        return model_faults::child_main(std::env::args().skip(2));
    }
    let mut mode = Mode::Quick;
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../RELIABILITY.md");
    let mut only: Option<String> = None;
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
            "-h" | "--help" => return usage(""),
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let mut report = Report {
        mode,
        date: today_utc(),
        machine: machine_description(),
        sections: Vec::new(),
    };
    let mut failed = false;
    for (name, harness) in HARNESSES {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        eprintln!("== {name} ({})", mode.name());
        let started = std::time::Instant::now();
        match harness(mode) {
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
    if let Err(e) = std::fs::write(&out, report.to_markdown()) {
        eprintln!("cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", out.display());
    ExitCode::SUCCESS
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
