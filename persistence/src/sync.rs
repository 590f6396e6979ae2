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

/// Creates directory `dir` and any missing ancestors, like
/// [`std::fs::create_dir_all`], and makes each new name durable by
/// syncing the directory it was created in. Without that, a power cut
/// soon after can take back a directory (and everything written below it,
/// however well synced) because its own entry never reached the disk.
/// Directories that already existed are left alone.
///
/// # Errors
///
/// The operating system's error creating a directory or syncing a parent.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(at) = cursor {
        if at.as_os_str().is_empty() || at.is_dir() {
            break;
        }
        missing.push(at);
        cursor = at.parent();
    }
    for created in missing.iter().rev() {
        match std::fs::create_dir(created) {
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && created.is_dir() => {}
            other => other?,
        }
    }
    for created in missing.iter().rev() {
        sync_dir(parent_of(created))?;
    }
    Ok(())
}

/// The directory holding `path`: its parent, or the current directory for
/// a bare relative name.
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dir_all_creates_every_missing_level_and_leaves_existing_ones() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a").join("b").join("c");
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        std::fs::write(deep.join("kept"), b"x").unwrap();
        create_dir_all(&deep).unwrap();
        assert!(
            deep.join("kept").is_file(),
            "an existing directory was touched"
        );
    }

    #[test]
    fn create_dir_all_refuses_a_path_through_a_file() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("file"), b"x").unwrap();
        let error = create_dir_all(&root.path().join("file").join("sub")).unwrap_err();
        assert_ne!(error.kind(), io::ErrorKind::NotFound, "{error}");
    }

    #[test]
    fn parent_of_a_bare_name_is_the_current_directory() {
        assert_eq!(parent_of(Path::new("journal")), Path::new("."));
        assert_eq!(parent_of(Path::new("a/journal")), Path::new("a"));
    }
}
