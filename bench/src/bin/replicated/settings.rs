//! The benchmark's settings (flags or `RBENCH_*` variables) and its
//! contenders.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The run's settings, from flags or `RBENCH_*` variables.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Measured seconds per run.
    pub(crate) secs: f64,
    /// Seconds per run before measuring starts (the cluster's first
    /// entries, sled's first pages, the page cache).
    pub(crate) warmup: f64,
    /// Rounds: each contender runs this many times per submitter count.
    pub(crate) rounds: usize,
    /// Submitter task counts to run.
    pub(crate) submitters: Vec<usize>,
    /// Distinct keys the puts cycle over.
    pub(crate) keys: u64,
    /// Parent of the data directories.
    pub(crate) dir: PathBuf,
    /// Tokio worker threads (`None`: tokio's default, one per core). A
    /// diagnostic knob: the cluster's nodes, their servers and the
    /// submitters all share this one runtime.
    pub(crate) workers: Option<usize>,
}

impl Settings {
    pub(crate) fn parse() -> Result<Settings, String> {
        let mut flags: BTreeMap<String, String> = BTreeMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(USAGE.to_owned());
            }
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}\n{USAGE}"));
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => (
                    name.to_owned(),
                    args.next()
                        .ok_or_else(|| format!("--{name} needs a value\n{USAGE}"))?,
                ),
            };
            flags.insert(name, value);
        }
        let mut get = |name: &str| {
            flags
                .remove(name)
                .or_else(|| std::env::var(format!("RBENCH_{}", name.to_uppercase())).ok())
        };
        let num = |name: &str, value: Option<String>, default: f64| -> Result<f64, String> {
            value.map_or(Ok(default), |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| format!("--{name}: not a number >= 0: {v:?}"))
            })
        };
        let secs = num("secs", get("secs"), 5.0)?;
        let warmup = num("warmup", get("warmup"), 0.5)?;
        let rounds = num("rounds", get("rounds"), 3.0)? as usize;
        let keys = num("keys", get("keys"), 10_000.0)? as u64;
        let submitters = match get("submitters") {
            None => vec![1, 16, 64],
            Some(list) => list
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|c| *c > 0)
                        .ok_or_else(|| format!("--submitters: not a count > 0: {c:?}"))
                })
                .collect::<Result<_, _>>()?,
        };
        let dir = get("dir").map_or_else(std::env::temp_dir, PathBuf::from);
        let workers = match get("workers") {
            None => None,
            Some(w) => Some(
                w.parse::<usize>()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| format!("--workers: not a count > 0: {w:?}"))?,
            ),
        };
        if let Some(unknown) = flags.keys().next() {
            return Err(format!("unknown flag --{unknown}\n{USAGE}"));
        }
        if rounds == 0 || keys == 0 || secs == 0.0 {
            return Err("--rounds, --keys and --secs must be > 0".to_owned());
        }
        Ok(Settings {
            secs,
            warmup,
            rounds,
            submitters,
            keys,
            dir,
            workers,
        })
    }
}

const USAGE: &str = "usage: replicated [--secs 5] [--warmup 0.5] [--rounds 3] \
[--submitters 1,16,64] [--keys 10000] [--dir <parent of data dirs>] [--workers <tokio threads>] \
(or RBENCH_SECS, RBENCH_WARMUP, ...)";

/// The three contenders, in their base order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Contender {
    Single,
    ViaLeader,
    ViaFollower,
}

pub(crate) const CONTENDERS: [Contender; 3] = [
    Contender::Single,
    Contender::ViaLeader,
    Contender::ViaFollower,
];

impl Contender {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Contender::Single => "single engine",
            Contender::ViaLeader => "replicated, via leader",
            Contender::ViaFollower => "replicated, via follower",
        }
    }
}
