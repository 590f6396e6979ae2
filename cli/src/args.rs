//! The command line, with clap's derive API.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Inspect, verify, dump and replay a solostate engine's directory,
/// offline. Nothing here changes the directory; a directory that a
/// running engine holds is refused.
#[derive(Debug, Parser)]
#[command(name = "solostate", version)]
pub struct Cli {
    /// Open a journal on the sled backend even though sled writes to its
    /// own files as it opens them (the segment log is opened read-only).
    #[arg(long, global = true)]
    pub allow_sled_writes: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// The schema, format, seq range, checkpoints (each verified), journal
    /// size and backend, and anything archived, quarantined or set aside.
    Info {
        /// The engine's directory (the one given to `Builder::path`).
        dir: PathBuf,
    },
    /// Verify every journal record's framing and crc and every
    /// checkpoint; with the event type, also decode and replay every
    /// event and check every recorded state hash. Exit code 0: no damage;
    /// 2: damage found (each named by path and seq); 1: could not run.
    Verify {
        /// The engine's directory.
        dir: PathBuf,
    },
    /// The journaled events with seqs in FROM..=TO as JSON lines
    /// (`{"seq":..,"event":..}`, or `{"seq":..,"rollback_to":..}` for a
    /// rollback marker). Needs the event type.
    Dump {
        /// The engine's directory.
        dir: PathBuf,
        /// The first seq to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// The last seq to print (default: the journal's last).
        #[arg(long)]
        to: Option<u64>,
        /// Print the archive (the events rollbacks undid) instead of the
        /// timeline.
        #[arg(long)]
        archive: bool,
    },
    /// The state at a seq as JSON lines: first
    /// `{"seq":..,"entries":..,"state_hash":".."}`, then one
    /// `{"key":..,"value":..}` per entry, sorted. Needs the event type.
    State {
        /// The engine's directory.
        dir: PathBuf,
        /// The seq (default: the journal's last).
        #[arg(long)]
        at: Option<u64>,
    },
    /// Roll the directory back to the state at a seq, as the engine's
    /// `rollback_to` does: a new step at the next seq, the undone events
    /// moved to the archive (kept), later checkpoints deleted. This
    /// changes the directory unless --dry-run is given. Needs the event
    /// type.
    Rollback {
        /// The engine's directory.
        dir: PathBuf,
        /// The seq whose state to restore.
        #[arg(long)]
        to: u64,
        /// Print the plan (and check that the state at the target can be
        /// rebuilt) without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write a consistent, openable copy of the directory's state at its
    /// last seq into DEST (a new or empty directory), as the engine's
    /// online `Engine::backup` does: a checkpoint at that seq and an empty
    /// journal that continues after it. The history is not copied. The
    /// source is only read. Needs the event type.
    Backup {
        /// The engine's directory.
        dir: PathBuf,
        /// Where to write the backup: a new or empty directory.
        dest: PathBuf,
    },
    /// The records that recovery to a prefix set aside.
    Quarantine {
        /// What to do with them.
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Prune the journal behind its oldest checkpoint that loads in full,
    /// as `Retention::SinceOldestCheckpoint` does. Seqs before that
    /// checkpoint can then no longer be rebuilt. This changes the
    /// directory unless --dry-run is given. Needs the event type.
    Compact {
        /// The engine's directory.
        dir: PathBuf,
        /// Print the plan without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What `quarantine` does.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum QuarantineAction {
    /// Each quarantined record (the quarantine it belongs to, its first
    /// seq, its size) and whether it verifies. Read-only.
    List {
        /// The engine's directory.
        dir: PathBuf,
    },
    /// Put the records of the chosen quarantines back into the timeline,
    /// in one atomic write, flushed: only records that verify, and only
    /// when they continue the journal from its last seq (the engine has
    /// not written those seqs again since). This changes the directory
    /// unless --dry-run is given. With the event type, the restored
    /// events are then replayed.
    Restore {
        /// The engine's directory.
        dir: PathBuf,
        /// A quarantine to restore (its id, as `quarantine list` shows);
        /// repeat for several.
        #[arg(long = "id", required = true)]
        ids: Vec<u64>,
        /// Print what would be restored without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
}
