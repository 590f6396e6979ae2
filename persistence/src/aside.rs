//! Setting a file or directory aside instead of deleting it: what recovery
//! does with anything it cannot use but must not destroy (a journal sled
//! cannot open, a checkpoint describing seqs the journal no longer has).
//!
//! The new name says what and when: the old name, then `.{tag}-{t}`, with
//! `t` the time of the move in seconds since the Unix epoch (so a
//! directory listing sorts the moves in the order they happened), and
//! `.2`, `.3`, ... after it should that name be taken. The rename is
//! followed by a sync of the parent directory, so the move survives a
//! power cut: after it, the old name is free and the data is under the
//! new one, or neither happened.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sync::sync_dir;

/// Renames `path` (a file or a directory) to a free name beside it,
/// `{name}.{tag}-{unix seconds}[.{n}]`, syncs the parent directory, and
/// returns the new path. Nothing is deleted or overwritten.
///
/// # Errors
///
/// The operating system's error: `path` has no parent or no file name
/// ([`io::ErrorKind::InvalidInput`]), or the rename or the directory sync
/// failed. If the sync fails the rename may or may not survive a power
/// cut; either way nothing is lost.
pub fn move_aside(path: &Path, tag: &str) -> io::Result<PathBuf> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} has no parent directory to move it aside in",
                path.display()
            ),
        ));
    };
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut base = OsString::from(name);
    base.push(format!(".{tag}-{seconds}"));
    let mut target = parent.join(&base);
    let mut n = 1;
    // `rename` would replace a file silently, so look first. Only the
    // engine's owner moves things aside in its directory, so nothing else
    // races for the name.
    while target.symlink_metadata().is_ok() {
        n += 1;
        let mut numbered = base.clone();
        numbered.push(format!(".{n}"));
        target = parent.join(numbered);
    }
    std::fs::rename(path, &target)?;
    // `parent` of a bare relative name is "", which is the current directory.
    let dir = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    sync_dir(dir)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_aside_twice_keeps_both_and_says_what() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("thing");
        std::fs::write(&file, b"first").unwrap();
        let first = move_aside(&file, "damaged").unwrap();
        std::fs::write(&file, b"second").unwrap();
        let second = move_aside(&file, "damaged").unwrap();
        assert_ne!(first, second);
        assert!(!file.exists());
        assert_eq!(std::fs::read(&first).unwrap(), b"first");
        assert_eq!(std::fs::read(&second).unwrap(), b"second");
        for moved in [&first, &second] {
            let name = moved.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("thing.damaged-"), "{name}");
        }
    }
}
