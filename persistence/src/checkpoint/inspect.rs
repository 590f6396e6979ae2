//! Looking at a checkpoint directory without changing it or knowing the
//! event type: for offline tools (the `solostate` command-line tool).

use std::fs;
use std::path::{Path, PathBuf};

use super::{CheckpointError, Checkpoints, PREFIX, TMP_SUFFIX, format, io_error};

/// What a checkpoint file's header says, once its framing verified (magic,
/// header crc, version, payload length and crc), with no entry decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// The seq whose state the file holds (its name and header agree).
    pub seq: u64,
    /// The entry count its header records.
    pub entries: u64,
    /// The state hash its header records.
    pub state_hash: u64,
    /// The schema it was written for.
    pub schema: String,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The file.
    pub path: PathBuf,
}

impl Checkpoints {
    /// Opens the checkpoint directory `dir` for `schema` without changing
    /// anything: unlike [`Checkpoints::open`] it creates nothing and
    /// removes no unfinished `ckpt-*.tmp` file (see
    /// [`Checkpoints::unfinished`]). Loads and listings work as usual;
    /// do not write through it.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when `dir` is not a readable directory.
    pub fn open_read_only(dir: &Path, schema: &str) -> Result<Checkpoints, CheckpointError> {
        fs::read_dir(dir).map_err(io_error(dir))?;
        Ok(Checkpoints {
            dir: dir.to_owned(),
            schema: schema.to_owned(),
            older: Vec::new(),
            removed_at_open: Vec::new(),
            #[cfg(feature = "fault-injection")]
            faults: None,
        })
    }

    /// The unfinished checkpoint files (`ckpt-*.tmp`, left by a crash
    /// mid-write) in the directory now, sorted: what the next
    /// [`Checkpoints::open`] will remove.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when the directory cannot be read.
    pub fn unfinished(&self) -> Result<Vec<PathBuf>, CheckpointError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let entry = entry.map_err(io_error(&self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(PREFIX) && name.ends_with(TMP_SUFFIX) {
                found.push(entry.path());
            }
        }
        found.sort();
        Ok(found)
    }

    /// Verifies the framing of the checkpoint at `seq` (magic, header
    /// crc, version, that its header's seq is the one its name says,
    /// payload length and crc) without decoding an entry or comparing
    /// its schema with this store's, so it needs no event type:
    /// [`Checkpoints::load`] also decodes every entry and checks the
    /// entry count and the state hash.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when the file cannot be read,
    /// [`CheckpointError::UnsupportedVersion`], and
    /// [`CheckpointError::Corrupt`] for damage.
    pub fn verify_file(&self, seq: u64) -> Result<CheckpointSummary, CheckpointError> {
        let path = self.path_of(seq);
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let (header, _) = format::verify(&bytes, &path, seq)?;
        if header.seq != seq {
            return Err(CheckpointError::Corrupt {
                path,
                seq,
                reason: format!("file holds seq {}, its name says {seq}", header.seq),
            });
        }
        Ok(CheckpointSummary {
            seq,
            entries: header.entries,
            state_hash: header.state_hash,
            schema: header.schema.to_owned(),
            bytes: bytes.len() as u64,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use solostate_commands::{State, StateEvent};

    type Ev = StateEvent<String, u64>;

    #[test]
    fn a_read_only_store_lists_unfinished_files_without_removing_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Checkpoints::open(dir.path(), "kv-v1").unwrap();
        let mut state = State::<Ev>::new();
        state.insert("a".to_owned(), 1);
        let written = store.write::<Ev>(7, &state).unwrap();
        let tmp = dir.path().join("ckpt-00000000000000000009.tmp");
        fs::write(&tmp, b"half a checkpoint").unwrap();

        let read_only = Checkpoints::open_read_only(dir.path(), "kv-v1").unwrap();
        assert_eq!(read_only.unfinished().unwrap(), std::slice::from_ref(&tmp));
        assert!(tmp.exists(), "nothing removed");
        let summary = read_only.verify_file(7).unwrap();
        assert_eq!(
            (
                summary.seq,
                summary.entries,
                summary.state_hash,
                summary.bytes
            ),
            (7, 1, written.state_hash, written.bytes)
        );
        assert_eq!(summary.schema, "kv-v1");
        assert_eq!(summary.path, written.path);
    }

    #[test]
    fn verify_file_names_the_seq_and_path_of_a_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = Checkpoints::open(dir.path(), "kv-v1").unwrap();
        let mut state = State::<Ev>::new();
        state.insert("a".to_owned(), 1);
        let written = store.write::<Ev>(7, &state).unwrap();
        let mut bytes = fs::read(&written.path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&written.path, &bytes).unwrap();
        let error = store.verify_file(7).unwrap_err();
        assert!(
            matches!(&error, CheckpointError::Corrupt { seq: 7, path, .. } if *path == written.path),
            "{error}"
        );
    }

    #[test]
    fn a_read_only_open_of_a_missing_directory_fails_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("checkpoints");
        assert!(Checkpoints::open_read_only(&missing, "kv-v1").is_err());
        assert!(!missing.exists());
    }
}
