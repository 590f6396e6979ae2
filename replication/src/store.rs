//! [`LogStore`]: openraft's log storage over sled 0.34.7, made durable by
//! our own syncs.

use std::fmt::Debug;
use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, StorageError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::LogStoreError;
use crate::types::TypeConfig;
// Values use the wire's bincode configuration: the same 64 MiB decode
// limit, so a corrupt length can never make the store allocate more. The
// crc framing below is the store's own.
use crate::wire::config;

/// The tree of log entries, keyed by the big-endian log index.
const LOG_TREE: &str = "raft_log";
/// The tree of the vote, the committed log id and the last purged log id.
const META_TREE: &str = "raft_meta";
const VOTE_KEY: &str = "vote";
const COMMITTED_KEY: &str = "committed";
const PURGED_KEY: &str = "last_purged";

/// Frames `value`: crc32 of the payload (4 bytes, little-endian), then the
/// bincode payload.
fn encode<T: Serialize>(
    value: &T,
    tree: &'static str,
    key: &str,
) -> Result<Vec<u8>, LogStoreError> {
    let payload =
        bincode::serde::encode_to_vec(value, config()).map_err(|source| LogStoreError::Encode {
            tree,
            key: key.to_string(),
            source,
        })?;
    let mut framed = Vec::with_capacity(payload.len() + 4);
    framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    framed.extend_from_slice(&payload);
    Ok(framed)
}

/// Checks the crc of a framed value and decodes it; a mismatch or a bad
/// payload is [`LogStoreError::Corrupt`] naming `tree` and `key`.
fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    tree: &'static str,
    key: &str,
) -> Result<T, LogStoreError> {
    let corrupt = |reason: String| LogStoreError::Corrupt {
        tree,
        key: key.to_string(),
        reason,
    };
    if bytes.len() < 4 {
        return Err(corrupt(format!(
            "{} bytes, shorter than the crc",
            bytes.len()
        )));
    }
    let (crc, payload) = bytes.split_at(4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32fast::hash(payload);
    if stored != actual {
        return Err(corrupt(format!(
            "crc mismatch: stored {stored:#010x}, computed {actual:#010x}"
        )));
    }
    let (value, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| corrupt(format!("decode: {e}")))?;
    if used != payload.len() {
        return Err(corrupt(format!("{} trailing bytes", payload.len() - used)));
    }
    Ok(value)
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// What the store and its readers share.
#[derive(Debug)]
struct Inner {
    /// The directory sled lives in, for syncing it and for error messages.
    dir: PathBuf,
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    /// sled's log file `db`, opened by us: `fdatasync` on it is what makes
    /// sled's flush durable (sled's flush is only `sync_file_range`).
    db_file: File,
}

/// The Raft log of one node: entries, vote, committed and last purged log
/// ids, in two trees of one sled database.
///
/// Cloning is cheap and gives another handle on the same store (openraft's
/// log reader is such a clone). Everything a method reports as done is
/// durable through a power cut: `append`'s callback, `save_vote`,
/// `truncate` and `purge` run sled's flush, then `fdatasync` sled's log
/// file and `fsync` any blob file and the blob directory.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl LogStore {
    /// Opens (or creates) the log store in directory `dir`, and makes what
    /// sled created there durable (its files and their names).
    ///
    /// # Errors
    ///
    /// [`LogStoreError::Sled`] if sled cannot open the directory (including
    /// when another handle holds it), [`LogStoreError::Sync`] if a sync
    /// fails, [`LogStoreError::Corrupt`] if the last purged log id does not
    /// decode.
    pub fn open(dir: impl AsRef<Path>) -> Result<LogStore, LogStoreError> {
        let dir = dir.as_ref().to_path_buf();
        // Each new directory's name made durable in its parent: without it
        // a power cut soon after takes back the directory and every synced
        // entry below it (the cluster power-cut test lost whole logs so).
        solostate::persistence::sync::create_dir_all(&dir).map_err(|source| {
            LogStoreError::Sync {
                path: dir.clone(),
                source,
            }
        })?;
        let db = open_db(&dir)?;
        let sled_err = |tree| move |source| LogStoreError::Sled { tree, source };
        let log = db.open_tree(LOG_TREE).map_err(sled_err(LOG_TREE))?;
        let meta = db.open_tree(META_TREE).map_err(sled_err(META_TREE))?;
        let db_path = dir.join("db");
        let db_file = File::open(&db_path).map_err(|source| LogStoreError::Sync {
            path: db_path.clone(),
            source,
        })?;
        let store = LogStore {
            inner: Arc::new(Inner {
                dir,
                db,
                log,
                meta,
                db_file,
            }),
        };
        // A purge writes the last purged id first and removes entries
        // after: finish one a crash interrupted.
        if let Some(purged) = store.last_purged()? {
            store.remove_through(purged.index)?;
        }
        store.flush()?;
        let conf = store.inner.dir.join("conf");
        sync_path(&conf, false)?;
        sync_path(&store.inner.dir, true)?;
        Ok(store)
    }

    /// The entry at `index`, checked, or `None` if there is none. This is
    /// the typed face of what openraft's reader does.
    ///
    /// # Errors
    ///
    /// [`LogStoreError::Corrupt`] naming the tree and index if the stored
    /// value fails its crc or does not decode; [`LogStoreError::Sled`].
    pub fn entry(&self, index: u64) -> Result<Option<Entry<TypeConfig>>, LogStoreError> {
        let bytes = self.inner.log.get(index_key(index)).map_err(log_error)?;
        bytes
            .map(|b| decode(&b, LOG_TREE, &format!("index {index}")))
            .transpose()
    }

    /// Stores `entries` (replacing any at the same indexes) and makes them
    /// durable before it returns: what openraft's `append` does before it
    /// calls its `LogFlushed` callback.
    ///
    /// # Errors
    ///
    /// [`LogStoreError::Encode`] for an entry over the size limit (nothing
    /// is written then), [`LogStoreError::Sled`] or [`LogStoreError::Sync`].
    pub fn append_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<(), LogStoreError> {
        self.write_entries(entries)?;
        self.flush()
    }

    /// Stores `entries` in the log tree, not yet flushed.
    fn write_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<(), LogStoreError> {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let index = entry.get_log_id().index;
            let bytes = encode(&entry, LOG_TREE, &format!("index {index}"))?;
            batch.insert(&index_key(index), bytes);
        }
        self.apply_log(batch)
    }

    /// [`flush`](Self::flush) on a blocking thread: sled's flush and the
    /// fdatasyncs wait on the disk, and on a tokio worker they would hold
    /// up every other task of the node (heartbeats among them) meanwhile.
    pub(crate) async fn flush_blocking(&self) -> Result<(), LogStoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| LogStoreError::Sync {
                path: self.inner.dir.clone(),
                source: std::io::Error::other(format!("the flush thread failed: {e}")),
            })?
    }

    /// The entries with indexes in `range`, in order, checked.
    fn entries(
        &self,
        range: impl RangeBounds<u64>,
    ) -> Result<Vec<Entry<TypeConfig>>, LogStoreError> {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in self.inner.log.range::<[u8; 8], _>((start, end)) {
            let (key, value) = item.map_err(log_error)?;
            let name = match key_index(&key) {
                Some(i) => format!("index {i}"),
                None => format!("{key:?}"),
            };
            out.push(decode(&value, LOG_TREE, &name)?);
        }
        Ok(out)
    }

    fn meta_get<T: DeserializeOwned>(&self, key: &'static str) -> Result<Option<T>, LogStoreError> {
        let bytes = self
            .inner
            .meta
            .get(key)
            .map_err(|source| LogStoreError::Sled {
                tree: META_TREE,
                source,
            })?;
        bytes.map(|b| decode(&b, META_TREE, key)).transpose()
    }

    fn meta_put<T: Serialize>(&self, key: &'static str, value: &T) -> Result<(), LogStoreError> {
        let bytes = encode(value, META_TREE, key)?;
        self.inner
            .meta
            .insert(key, bytes)
            .map_err(|source| LogStoreError::Sled {
                tree: META_TREE,
                source,
            })?;
        Ok(())
    }

    /// Reads a value the state machine keeps in the meta tree (its applied
    /// point, a pending snapshot install). Keeping them in the log's
    /// database means the log's every durable write also makes them
    /// durable.
    pub(crate) fn machine_get<T: DeserializeOwned>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, LogStoreError> {
        self.meta_get(key)
    }

    /// Writes a state machine value (durable with the next flush).
    pub(crate) fn machine_put<T: Serialize>(
        &self,
        key: &'static str,
        value: &T,
    ) -> Result<(), LogStoreError> {
        self.meta_put(key, value)
    }

    /// Removes a state machine value (durable with the next flush).
    pub(crate) fn machine_remove(&self, key: &'static str) -> Result<(), LogStoreError> {
        self.inner
            .meta
            .remove(key)
            .map(drop)
            .map_err(|source| LogStoreError::Sled {
                tree: META_TREE,
                source,
            })
    }

    fn last_purged(&self) -> Result<Option<LogId<u64>>, LogStoreError> {
        self.meta_get(PURGED_KEY)
    }

    /// Removes every entry with index `<= index`.
    fn remove_through(&self, index: u64) -> Result<(), LogStoreError> {
        self.remove_keys(..=index_key(index))
    }

    /// Removes the entries whose keys are in `range`, in one batch.
    fn remove_keys(&self, range: impl RangeBounds<[u8; 8]>) -> Result<(), LogStoreError> {
        let mut batch = sled::Batch::default();
        for key in self.inner.log.range(range).keys() {
            batch.remove(key.map_err(log_error)?);
        }
        self.apply_log(batch)
    }

    /// Applies `batch` to the log tree (not flushed).
    fn apply_log(&self, batch: sled::Batch) -> Result<(), LogStoreError> {
        self.inner.log.apply_batch(batch).map_err(log_error)
    }

    /// sled's flush, then the syncs that make it durable: `fdatasync` of
    /// sled's log file `db`, then of every blob file and the blob
    /// directory, if sled wrote any (values over about 131 KB).
    fn flush(&self) -> Result<(), LogStoreError> {
        self.inner.db.flush().map_err(log_error)?;
        self.inner
            .db_file
            .sync_data()
            .map_err(|source| LogStoreError::Sync {
                path: self.inner.dir.join("db"),
                source,
            })?;
        let blobs = self.inner.dir.join("blobs");
        let listing = match std::fs::read_dir(&blobs) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(LogStoreError::Sync {
                    path: blobs,
                    source,
                });
            }
        };
        let mut any = false;
        for entry in listing {
            let entry = entry.map_err(|source| LogStoreError::Sync {
                path: blobs.clone(),
                source,
            })?;
            sync_path(&entry.path(), false)?;
            any = true;
        }
        if any {
            sync_path(&blobs, true)?;
        }
        Ok(())
    }
}

/// `fdatasync` of a file, or `fsync` of a directory.
fn sync_path(path: &Path, dir: bool) -> Result<(), LogStoreError> {
    let synced = File::open(path).and_then(|f| if dir { f.sync_all() } else { f.sync_data() });
    synced.map_err(|source| LogStoreError::Sync {
        path: path.to_path_buf(),
        source,
    })
}

/// Opens sled in `dir`. A just-dropped handle can hold the directory lock
/// for a few milliseconds (sled's I/O threads finish queued writes), so a
/// locked directory is retried for up to 300 ms.
fn open_db(dir: &Path) -> Result<sled::Db, LogStoreError> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(16 << 20)
            // We flush when openraft needs durability, never on a timer.
            .flush_every_ms(None)
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < std::time::Duration::from_millis(300) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => {
                return other.map_err(|source| LogStoreError::Sled {
                    tree: "(open)",
                    source,
                });
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        self.entries(range)
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let read = |e: LogStoreError| e.into_storage(ErrorSubject::Logs, ErrorVerb::Read);
        let last_purged_log_id = self.last_purged().map_err(read)?;
        let last = self
            .inner
            .log
            .last()
            .map_err(|source| read(log_error(source)))?;
        let last_log_id = match last {
            Some((key, value)) => {
                let name = format!("index {}", key_index(&key).unwrap_or(u64::MAX));
                let entry: Entry<TypeConfig> = decode(&value, LOG_TREE, &name).map_err(read)?;
                Some(*entry.get_log_id())
            }
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let write = |e: LogStoreError| e.into_storage(ErrorSubject::Vote, ErrorVerb::Write);
        self.meta_put(VOTE_KEY, vote).map_err(write)?;
        self.flush_blocking().await.map_err(write)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.meta_get(VOTE_KEY)
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Read))
    }

    /// Stored, not flushed on its own: the next append, vote or purge
    /// flushes it. openraft does not need it durable (a lost committed id
    /// is learned again from the leader).
    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.meta_put(COMMITTED_KEY, &committed)
            .map_err(|e| e.into_storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        self.meta_get::<Option<LogId<u64>>>(COMMITTED_KEY)
            .map(Option::flatten)
            .map_err(|e| e.into_storage(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // The callback only once the entries are durable.
        let appended = match self.write_entries(entries) {
            Ok(()) => self.flush_blocking().await,
            Err(e) => Err(e),
        };
        match appended {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e.into_storage(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let write = |e: LogStoreError| e.into_storage(ErrorSubject::Logs, ErrorVerb::Delete);
        self.remove_keys(index_key(log_id.index)..).map_err(write)?;
        self.flush_blocking().await.map_err(write)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let write = |e: LogStoreError| e.into_storage(ErrorSubject::Logs, ErrorVerb::Delete);
        // The id first, so a crash between the two leaves entries that
        // `open` removes, never a purge that forgot its id.
        self.meta_put(PURGED_KEY, &log_id).map_err(write)?;
        self.remove_through(log_id.index).map_err(write)?;
        self.flush_blocking().await.map_err(write)
    }
}

/// A sled error on the log tree.
fn log_error(source: sled::Error) -> LogStoreError {
    LogStoreError::Sled {
        tree: LOG_TREE,
        source,
    }
}
