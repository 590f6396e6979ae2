//! `solostate-bench`: runs the comparison and writes `BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p solostate-bench -- --quick        # under 3 minutes on 2 cores
//! cargo run --release -p solostate-bench -- --full         # the whole matrix, ~20 minutes
//!     [--out DIR]                 # where BENCHMARKS.md and the charts go (default: the workspace root)
//!     [--only in-memory,durable,memory,recovery]           # some parts only
//!     [--contenders 'solostate,RwLock<HashMap>']            # some contenders only (for profiling)
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use solostate_bench::metrics::Machine;
use solostate_bench::report::Report;
use solostate_bench::sets::{self, BIG, Mode, Set};
use solostate_bench::workload::Dist;
use solostate_bench::{adapters, chart, recovery};

const PARTS: [&str; 4] = ["in-memory", "durable", "memory", "recovery"];

struct Args {
    mode: Mode,
    out: PathBuf,
    parts: Vec<String>,
    /// Only these contenders, when set.
    contenders: Option<Vec<String>>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        mode: Mode::Quick,
        out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
        parts: PARTS.iter().map(|p| p.to_string()).collect(),
        contenders: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => parsed.mode = Mode::Quick,
            "--full" => parsed.mode = Mode::Full,
            "--out" => parsed.out = args.next().ok_or("--out needs a directory")?.into(),
            "--only" => {
                let list = args.next().ok_or("--only needs a list")?;
                parsed.parts = list.split(',').map(str::to_string).collect();
                if let Some(bad) = parsed.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
                    return Err(format!("--only: unknown part {bad:?} (parts: {PARTS:?})"));
                }
            }
            "--contenders" => {
                let list = args.next().ok_or("--contenders needs a list")?;
                let names: Vec<String> = list.split(',').map(str::to_string).collect();
                let known = || adapters::MAPS.iter().chain(adapters::DURABLE);
                if let Some(bad) = names.iter().find(|n| !known().any(|k| k == n)) {
                    let known: Vec<_> = known().collect();
                    return Err(format!("--contenders: unknown {bad:?} (known: {known:?})"));
                }
                parsed.contenders = Some(names);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(sets::MEMORY_CHILD) {
        return memory_child(&args[1..]);
    }
    let args = match parse(&args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("solostate-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(markdown) => {
            println!("{markdown}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("solostate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn memory_child(args: &[String]) -> ExitCode {
    let [name, keys] = args else {
        eprintln!("usage: {} NAME KEYS", sets::MEMORY_CHILD);
        return ExitCode::from(2);
    };
    let Ok(keys) = keys.parse() else {
        eprintln!("{}: keys {keys:?} is not a number", sets::MEMORY_CHILD);
        return ExitCode::from(2);
    };
    match sets::memory_child(name, keys) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<String, String> {
    let started = Instant::now();
    let wants = |part: &str| args.parts.iter().any(|p| p == part);
    let mut report = Report {
        machine: Machine::describe(),
        mode: args.mode.name(),
        command: format!(
            "cargo run --release -p solostate-bench -- --{}",
            args.mode.name()
        ),
        sets: Vec::new(),
        memory: Vec::new(),
        recovery: None,
        notes: Vec::new(),
        elapsed: Default::default(),
        charts: Vec::new(),
    };
    eprintln!("machine: {:?}", report.machine);
    let picked = |mut set: Set| {
        if let Some(names) = &args.contenders {
            set.contenders.retain(|c| names.iter().any(|n| n == c));
        }
        set
    };
    if wants("in-memory") {
        let set = picked(Set::maps(args.mode));
        report.sets.push(sets::run(&set, args.mode));
    }
    if wants("durable") {
        let set = picked(Set::durable(args.mode));
        report.sets.push(sets::run(&set, args.mode));
    }
    if wants("memory") {
        let set = picked(Set::maps(args.mode));
        let (rows, notes) = sets::memory(&set.contenders, BIG);
        report.memory = rows;
        report.notes.extend(notes);
    }
    eprintln!("[{:.1?}] sets and memory done", started.elapsed());
    if wants("recovery") {
        match recovery::run(BIG) {
            Ok(r) => report.recovery = Some(r),
            Err(e) => report.notes.push(format!("recovery: {e}")),
        }
    }
    let charts = args.out.join("bench/results");
    std::fs::create_dir_all(&charts).map_err(|e| format!("create {}: {e}", charts.display()))?;
    for set in &report.sets {
        let keys = set.rows.iter().map(|r| r.config.keys).max().unwrap_or(BIG);
        let file = format!("bench/results/throughput-{}.svg", set.name);
        let title = format!(
            "{} set: ops/s by mix, {} keys, uniform, 2 threads",
            set.name,
            solostate_bench::workload::keys_label(keys)
        );
        let picked = |c: &solostate_bench::workload::Config| {
            c.keys == keys && c.dist == Dist::Uniform && c.threads == 2
        };
        match chart::throughput(&args.out.join(&file), &title, set, picked) {
            Ok(()) => report.charts.push((file, title)),
            Err(e) => report.notes.push(e),
        }
    }
    if args.mode == Mode::Quick {
        report.notes.push(
            "quick mode: short runs (0.5 s per cell, 1 s per latency run) of the headline \
             workloads only, and the durable set at 1e5 keys; `--full` runs the whole matrix"
                .to_string(),
        );
    }
    report.elapsed = started.elapsed();
    let mut markdown = report.markdown();
    let path = args.out.join("BENCHMARKS.md");
    // The replication section comes from the `replicated` binary's own
    // run; keep it rather than delete it with the rest.
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(kept) =
        solostate_bench::report::kept_section(&old, solostate_bench::report::REPLICATION_HEADING)
    {
        markdown = format!("{}\n\n{kept}\n", markdown.trim_end());
    }
    std::fs::write(&path, &markdown).map_err(|e| format!("write {}: {e}", path.display()))?;
    eprintln!("wrote {} in {:.0?}", path.display(), report.elapsed);
    Ok(markdown)
}
