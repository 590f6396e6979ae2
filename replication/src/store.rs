//! [`LogStore`]: openraft's log storage on the segment log
//! (`solostate::persistence::seglog`), whose every `fdatasync` is ours.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, StorageError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use solostate::persistence::seglog::{Op, Options, SegError, SegLog, TailCut};

use crate::LogStoreError;
use crate::types::TypeConfig;
// Values use the wire's bincode configuration: the same 64 MiB decode
// limit, so a corrupt length can never make the store allocate more. The
// crc framing below is the store's own: the segment log checks its frames
// when it opens, this catches a value that rots on disk afterwards.
use crate::wire::config;

/// The tree of log entries, keyed by the big-endian log index.
const LOG_TREE: u8 = 1;
/// [`LOG_TREE`]'s name, in errors.
const LOG_TREE_NAME: &str = "raft_log";
/// The tree of the vote, the committed log id, the last purged log id and
/// the state machine's values.
const META_TREE: u8 = 2;
/// [`META_TREE`]'s name, in errors.
const META_TREE_NAME: &str = "raft_meta";
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

/// The readable name of a log tree key, for errors.
fn index_name(key: &[u8]) -> String {
    match key_index(key) {
        Some(i) => format!("index {i}"),
        None => format!("{key:?}"),
    }
}

/// A bound on log indexes as a bound on their keys.
fn key_bound(bound: Bound<&u64>) -> Bound<[u8; 8]> {
    bound.map(|index| index_key(*index))
}

/// The segment log's layout for a Raft log: segments of 16 MiB, so that
/// the prefix a purge removes becomes a whole dead segment soon and
/// compaction deletes it without copying anything.
const SEGMENTS: Options = Options {
    segment_bytes: 16 << 20,
    preallocate_bytes: 1 << 20,
};

/// What the store and its readers share.
#[derive(Debug)]
struct Inner {
    /// The segment log's directory, for error messages.
    dir: PathBuf,
    log: SegLog,
    /// What open cut off the log's torn tail, reported in the replica's
    /// recovery.
    tail: Option<TailCut>,
}

/// The Raft log of one node: entries, vote, committed and last purged log
/// ids, and the state machine's applied point, in two trees of one
/// segment log (`solostate::persistence::seglog`, the journal's own
/// store).
///
/// Cloning is cheap and gives another handle on the same store (openraft's
/// log reader is such a clone). Everything a method reports as done is
/// durable through a power cut: `append`'s callback, `save_vote`,
/// `truncate` and `purge` return only after the segment log's `fdatasync`
/// (and a rollover to a new segment syncs the old one and the directory
/// first). The segment log's open yields a prefix of what was written that
/// holds everything synced; its module docs give the argument, and the
/// cluster power-cut test checks it.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl LogStore {
    /// Opens (or creates) the log store in directory `dir`, and makes the
    /// directory and its name durable.
    ///
    /// # Errors
    ///
    /// [`LogStoreError::Log`] if the segment log cannot open the directory
    /// (another handle holds it, damage before its tail, an I/O error),
    /// [`LogStoreError::Sync`] if making the directory durable fails,
    /// [`LogStoreError::Corrupt`] if the last purged log id does not
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
        let opened = SegLog::open(&dir, true, SEGMENTS).map_err(|source| LogStoreError::Log {
            tree: "(open)",
            source,
        })?;
        if let Some(tail) = &opened.tail {
            tracing::warn!(
                segment = %tail.segment.display(),
                offset = tail.offset,
                dropped_bytes = tail.dropped_bytes,
                "the Raft log's torn tail was cut at open"
            );
        }
        let store = LogStore {
            inner: Arc::new(Inner {
                dir,
                log: opened.log,
                tail: opened.tail,
            }),
        };
        // A purge writes the last purged id first and removes entries
        // after: finish one a crash interrupted.
        if let Some(purged) = store.last_purged()? {
            store.remove_through(purged.index)?;
            store.flush()?;
        }
        Ok(store)
    }

    /// What open cut off the end of the log's last segment: writes a
    /// power cut tore, never one a sync had returned for.
    pub fn tail_cut(&self) -> Option<&TailCut> {
        self.inner.tail.as_ref()
    }

    /// The entry at `index`, checked, or `None` if there is none. This is
    /// the typed face of what openraft's reader does.
    ///
    /// # Errors
    ///
    /// [`LogStoreError::Corrupt`] naming the tree and index if the stored
    /// value fails its crc or does not decode; [`LogStoreError::Log`].
    pub fn entry(&self, index: u64) -> Result<Option<Entry<TypeConfig>>, LogStoreError> {
        let bytes = self
            .inner
            .log
            .get(LOG_TREE, &index_key(index))
            .map_err(log_error)?;
        bytes
            .map(|b| decode(&b, LOG_TREE_NAME, &format!("index {index}")))
            .transpose()
    }

    /// Stores `entries` (replacing any at the same indexes) and makes them
    /// durable before it returns: what openraft's `append` does before it
    /// calls its `LogFlushed` callback.
    ///
    /// # Errors
    ///
    /// [`LogStoreError::Encode`] for an entry over the size limit (nothing
    /// is written then), [`LogStoreError::Log`].
    pub fn append_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<(), LogStoreError> {
        self.write_entries(entries)?;
        self.flush()
    }

    /// Stores `entries` in the log tree as one frame, not yet synced.
    fn write_entries(
        &self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<(), LogStoreError> {
        let mut framed = Vec::new();
        for entry in entries {
            let index = entry.get_log_id().index;
            let bytes = encode(&entry, LOG_TREE_NAME, &format!("index {index}"))?;
            framed.push((index_key(index), bytes));
        }
        let ops: Vec<Op<'_>> = framed
            .iter()
            .map(|(key, value)| Op::Insert {
                tree: LOG_TREE,
                key,
                value,
            })
            .collect();
        self.apply(LOG_TREE_NAME, &ops)
    }

    /// [`flush`](Self::flush) on a blocking thread: the `fdatasync` waits
    /// on the disk, and on a tokio worker it would hold up every other
    /// task of the node (heartbeats among them) meanwhile.
    pub(crate) async fn flush_blocking(&self) -> Result<(), LogStoreError> {
        self.blocking(Self::flush).await
    }

    /// Runs `work` on a clone of the store on a blocking thread.
    async fn blocking(
        &self,
        work: fn(&LogStore) -> Result<(), LogStoreError>,
    ) -> Result<(), LogStoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
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
        let from = key_bound(range.start_bound()).map(Vec::from);
        let to = key_bound(range.end_bound()).map(Vec::from);
        let mut out = Vec::new();
        for item in self.inner.log.range(LOG_TREE, from, to) {
            let (key, value) = item.map_err(log_error)?;
            out.push(decode(&value, LOG_TREE_NAME, &index_name(&key))?);
        }
        Ok(out)
    }

    fn meta_get<T: DeserializeOwned>(&self, key: &'static str) -> Result<Option<T>, LogStoreError> {
        let bytes = self
            .inner
            .log
            .get(META_TREE, key.as_bytes())
            .map_err(|source| LogStoreError::Log {
                tree: META_TREE_NAME,
                source,
            })?;
        bytes.map(|b| decode(&b, META_TREE_NAME, key)).transpose()
    }

    fn meta_put<T: Serialize>(&self, key: &'static str, value: &T) -> Result<(), LogStoreError> {
        let bytes = encode(value, META_TREE_NAME, key)?;
        self.apply(
            META_TREE_NAME,
            &[Op::Insert {
                tree: META_TREE,
                key: key.as_bytes(),
                value: &bytes,
            }],
        )
    }

    /// Reads a value the state machine keeps in the meta tree (its applied
    /// point, a pending snapshot install). Keeping them in the log's
    /// store means the log's every durable write also makes them durable.
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
        self.apply(
            META_TREE_NAME,
            &[Op::Remove {
                tree: META_TREE,
                key: key.as_bytes(),
            }],
        )
    }

    fn last_purged(&self) -> Result<Option<LogId<u64>>, LogStoreError> {
        self.meta_get(PURGED_KEY)
    }

    /// Removes every entry with index `<= index`.
    fn remove_through(&self, index: u64) -> Result<(), LogStoreError> {
        self.remove_indexes(..=index)
    }

    /// Removes the entries whose indexes are in `range`, in one frame.
    fn remove_indexes(&self, range: impl RangeBounds<u64>) -> Result<(), LogStoreError> {
        let from = key_bound(range.start_bound());
        let to = key_bound(range.end_bound());
        let keys = self.inner.log.keys(
            LOG_TREE,
            from.as_ref().map(|k| &k[..]),
            to.as_ref().map(|k| &k[..]),
        );
        if keys.is_empty() {
            return Ok(());
        }
        let ops: Vec<Op<'_>> = keys
            .iter()
            .map(|key| Op::Remove {
                tree: LOG_TREE,
                key,
            })
            .collect();
        self.apply(LOG_TREE_NAME, &ops)
    }

    /// Applies `ops` as one frame (not synced).
    fn apply(&self, tree: &'static str, ops: &[Op<'_>]) -> Result<(), LogStoreError> {
        self.inner
            .log
            .apply(ops)
            .map_err(|source| LogStoreError::Log { tree, source })
    }

    /// Makes every frame applied so far durable: the segment log's
    /// `fdatasync` of its active segment (earlier segments were synced
    /// when it rolled over from them).
    fn flush(&self) -> Result<(), LogStoreError> {
        self.inner.log.sync().map_err(log_error)
    }

    /// [`flush`](Self::flush), then compaction: after a purge the oldest
    /// segments hold little or nothing live, and compaction deletes them
    /// (copying forward what is still live, synced before the delete).
    fn flush_and_compact(&self) -> Result<(), LogStoreError> {
        self.flush()?;
        self.inner.log.compact().map(drop).map_err(log_error)
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
            .last(LOG_TREE)
            .map_err(|source| read(log_error(source)))?;
        let last_log_id = match last {
            Some((key, value)) => {
                let entry: Entry<TypeConfig> =
                    decode(&value, LOG_TREE_NAME, &index_name(&key)).map_err(read)?;
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
        self.remove_indexes(log_id.index..).map_err(write)?;
        self.flush_blocking().await.map_err(write)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let write = |e: LogStoreError| e.into_storage(ErrorSubject::Logs, ErrorVerb::Delete);
        // The id first, so a crash between the two leaves entries that
        // `open` removes, never a purge that forgot its id.
        self.meta_put(PURGED_KEY, &log_id).map_err(write)?;
        self.remove_through(log_id.index).map_err(write)?;
        self.blocking(Self::flush_and_compact).await.map_err(write)
    }
}

/// A segment log error on the log tree.
fn log_error(source: SegError) -> LogStoreError {
    LogStoreError::Log {
        tree: LOG_TREE_NAME,
        source,
    }
}
