//! The durability primitives every writer in this crate shares: make a
//! file's bytes, or a directory's entries, survive a power cut.
//!
//! A write is durable only when every byte it depends on has been through
//! `fsync` or `fdatasync`, and every name it created, renamed or removed
//! has had its directory fsynced. `sync_file_range` (all that sled 0.34.7's
//! own `flush` does) commits neither a grown file's size nor the device's
//! cache, so it is not enough. These functions are the one place that
//! knows how, so that the journal, the checkpoints and recovery do it the
//! same way.

use std::fs::File;
use std::io;
use std::path::Path;

/// Makes the entries of directory `dir` durable: names created, renamed
/// into or out of, or removed from it. Only Unix can open a directory for
/// this; elsewhere it does nothing (Windows makes metadata durable with
/// the file).
///
/// # Errors
///
/// The operating system's error opening or syncing `dir`.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Makes the data of the file at `path` durable (`fdatasync`: its bytes
/// and the size needed to read them back, not its timestamps).
///
/// # Errors
///
/// The operating system's error opening or syncing the file.
pub fn sync_file_data(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_data()
}
