//! The power-cut simulator, and the harness that judges a durable engine
//! with it.
//!
//! # The simulator
//!
//! A FUSE filesystem held in memory, modelled on LazyFS ([`fs`] mounts
//! it, [`model`] is the filesystem itself, [`image`] is what a cut
//! leaves). Every inode has a *current* state, which running programs
//! read back, and a *durable* state, which is all that a cut keeps:
//!
//! * a file's data and size become durable on `fsync` or `fdatasync` of
//!   that file. `sync_file_range` never reaches a FUSE daemon, and `close`
//!   does not count;
//! * a directory's names (created, renamed in or out, unlinked; `mkdir`,
//!   `rmdir`) become durable on `fsync` of that directory. A file whose
//!   data was synced but whose name never was is gone after a cut, and so
//!   is everything under a directory whose own name was never synced.
//!
//! [`Simulator::cut`] freezes the filesystem in one step (from then on
//! every operation fails with `EIO`: the power is off) and returns the
//! [`Image`] of the disk. [`CutMode`] says which unsynced writes survive:
//! none, a random subset (disks reorder), or a torn prefix. Unsynced
//! *names* are dropped in every mode. [`Simulator::mount`] mounts an image
//! as a fresh filesystem whose current and durable states are both the
//! image. A [`Trigger`] cuts from inside an operation, at an exact point
//! (after a checkpoint's temporary file is created, or a few operations
//! after a rollback began).
//!
//! # What it does not model
//!
//! It is stricter than most real filesystems in some ways and laxer in
//! others; a program that survives it may still meet these on a real
//! disk:
//!
//! * metadata other than names and sizes (permissions, timestamps) is kept
//!   as of the cut, synced or not;
//! * names are durable only through the directory's `fsync`. ext4 and XFS
//!   also commit a new file's name with an `fsync` of the file, so real
//!   disks lose less here; the simulator checks the portable rule;
//! * a lost write loses whole operations (or a byte-exact tail of one, in
//!   [`CutMode::TornPrefix`]). It never tears a write into sectors in the
//!   middle, never corrupts bytes that were synced, never returns stale
//!   data for a synced read, and never reports an `fsync` failure: a disk
//!   that lies about `fsync`, or flips bits, is not modelled;
//! * a size change survives or not as one operation, without the
//!   "size grew but the data is zeros" outcome of some filesystems
//!   (although [`CutMode::RandomSubset`] can keep a later write past a
//!   dropped earlier one, which leaves zeros in between);
//! * hard links, symlinks, special files, extended attributes and POSIX
//!   locks are not implemented (the kernel handles `flock` itself);
//! * one FUSE thread serves all requests, so nothing runs truly in
//!   parallel inside the filesystem.
//!
//! # The harness
//!
//! [`harness`] runs a durable engine with the default settings in a child
//! process on the mount, under pipelined load from several writers, cuts
//! the power at a random moment (or during a checkpoint or a rollback),
//! remounts the image, reopens it in another child process, and checks
//! that every acknowledged event is there and the state equals a model.
//! [`workload`] makes the writers' events, [`child`] is the child
//! processes, [`check`] judges what the reopen found.
//!
//! Its backup cycles ([`backups`]) test `Engine::backup` the same way:
//! the writer child also backs the engine up to new destinations on the
//! mount, again and again under the same load, and reports each backup
//! that returned `Ok` (its destination and seq) as it reports acks; the
//! power is cut a few operations after a backup begins. After the
//! remount every reported backup must open (same schema) at its seq with
//! the model's state there, and an in-flight one must have left its
//! destination absent, empty, or whole at some seq of the history.
//! Leftover temporary directories are allowed, and counted.
//!
//! # Where FUSE is missing
//!
//! [`mount_or_skip`] mounts, or says why it cannot and lets a test pass
//! as skipped, unless [`REQUIRE_FUSE_ENV`] is `1` (CI sets it, because the
//! machines it runs on have FUSE), in which case a failed mount fails.

pub mod backups;
pub mod check;
pub mod child;
pub mod figures;
pub mod fs;
pub mod harness;
pub mod image;
pub mod model;
pub mod section;
pub mod workload;

use std::path::Path;

pub use fs::{MountError, Simulator};
pub use image::{CutMode, CutStats, Image, ImageNode};
pub use model::{FsError, Model, Trigger};

/// When `1`, not being able to mount the simulator is a failure rather
/// than a skip. `.ci/run` sets it.
pub const REQUIRE_FUSE_ENV: &str = "SOLOSTATE_REQUIRE_FUSE";

/// Whether [`REQUIRE_FUSE_ENV`] demands a real mount.
pub fn fuse_required() -> bool {
    std::env::var(REQUIRE_FUSE_ENV).as_deref() == Ok("1")
}

/// Mounts `image` at `path`, or prints why it cannot and returns `None`
/// so that the caller can skip.
///
/// # Panics
///
/// When the mount fails and [`REQUIRE_FUSE_ENV`] is `1`.
pub fn mount_or_skip(path: &Path, image: &Image) -> Option<Simulator> {
    match Simulator::mount(path, image) {
        Ok(sim) => Some(sim),
        Err(error) if fuse_required() => {
            panic!("{error}, and {REQUIRE_FUSE_ENV}=1 requires the simulator")
        }
        Err(error) => {
            eprintln!("skipped: {error} (set {REQUIRE_FUSE_ENV}=1 to make this a failure)");
            None
        }
    }
}
