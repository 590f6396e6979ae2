//! Records too large for one sled value, stored in chunks, so that sled
//! never writes a blob file.
//!
//! # Why
//!
//! sled 0.34.7 writes any page fragment whose serialized size plus its
//! 32-byte message header exceeds a quarter of a segment, less the
//! segment header, to a file of its own under `blobs/`
//! (`pagecache/logger.rs::reserve_inner`: with the default 512 KiB
//! segment, fragments over `131072 - 20 - 32 = 131,020` bytes), and
//! nothing ever fsyncs that file or its directory (`blob_io::write_blob`).
//! After a power cut the log can point into an empty blob, and sled's
//! recovery then fails or panics.
//!
//! A fragment is either one update (an insert carries its value) or a
//! whole leaf node, written when sled consolidates the node's updates
//! (every 10), splits it, merges into it or relocates it while cleaning a
//! segment. So the bound that matters is a leaf's size: how many values
//! it can hold times their size. sled splits a leaf when an operation
//! finds it holding more than 16 items (`node.rs::should_split`, checked
//! before the operation applies), so inserts leave at most 17; a merge
//! adds a sibling of fewer than 4 items to its left neighbour
//! (`should_merge`), so at most 20, a few more in the rare case of
//! merges in a row before the neighbour is visited again. Records of
//! about 14 KB already made sled write blobs (issue 11): ten of them
//! outgrow the threshold.
//!
//! # The limit
//!
//! Every value the journal stores is at most [`CHUNK_BYTES`] = 4 KiB, so
//! even a leaf of 31 values stays under the threshold, half again the
//! 20 that splitting and merging allow. Measured with the stress test
//! `values_at_the_limit_never_make_sled_write_a_blob_file` (values at
//! the limit, pruned, rolled back and quarantined): sled writes blobs
//! with an 8 KiB limit (17 values fill a leaf) and none with 6 KiB. A record longer than that is
//! stored as a [`ChunkHead`] under the record's key and
//! its bytes in `ceil(len / CHUNK_BYTES)` chunks in the chunks tree,
//! keyed by the head's id (fresh from sled's id generator, never reused)
//! and the chunk's index, both big-endian so a record's chunks sort
//! together and in order. Head and chunks are written in one sled
//! transaction, so a crash keeps all of them or none. Records that fit
//! are stored exactly as before, so existing journals read as they did.
//!
//! Moving a chunked record (rollback to the archive, quarantine) moves
//! only its head: the chunks are found by id wherever the head is.
//! Removing one (pruning, discarding, repairing a torn tail, the split
//! of a rolled-back batch) removes its chunks in the same transaction.
//! Reading one reassembles the chunks and checks them against the head
//! (each chunk there once and in order, the total length, the event
//! count) before the record's own framing (its crc) is verified.

use std::borrow::Cow;

use sled::IVec;

use super::store::{Op, Tree};
use super::{Journal, JournalError};
use crate::codec::{self, ChunkHead, ChunkProblem, CodecError, RecordKind};

/// The largest value the journal stores in sled, and the size of every
/// chunk but a record's last: 4 KiB. See the module docs for why this
/// keeps sled from writing blob files. (The segment log stores every
/// record whole.)
pub const CHUNK_BYTES: usize = 4096;

/// A record ready to be written: as it is, or as a head and its chunks.
pub(super) enum Stored<'a> {
    /// A record that fits in one value.
    Whole(&'a [u8]),
    /// A record stored in chunks.
    Chunked {
        /// The encoded [`ChunkHead`].
        head: Vec<u8>,
        /// The chunks' keys and bytes, [`CHUNK_BYTES`] at a time.
        chunks: Vec<([u8; 12], &'a [u8])>,
    },
}

impl Stored<'_> {
    /// The writes that put the record at `key` of `tree` (and its chunks
    /// in the chunks tree), for one atomic batch.
    pub(super) fn ops<'k>(&'k self, tree: Tree, key: &'k [u8]) -> Vec<Op<'k>> {
        match self {
            Stored::Whole(record) => vec![Op::Insert(tree, key, record)],
            Stored::Chunked { head, chunks } => chunks
                .iter()
                .map(|(chunk_key, part)| Op::Insert(Tree::Chunks, chunk_key, part))
                .chain([Op::Insert(tree, key, head)])
                .collect(),
        }
    }
}

/// A chunk's key: the head's id, then the chunk's index.
fn chunk_key(id: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

impl Journal {
    /// How the record `record` at key `seq` is to be stored: whole if it
    /// fits in [`CHUNK_BYTES`], otherwise as a head (with a fresh id) and
    /// chunks. A record to chunk is verified first (its event count goes
    /// in the head).
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] for a record over the limit that does not
    /// verify or is not a batch of events, and [`JournalError::Storage`]
    /// when sled cannot give an id.
    pub(super) fn to_store<'a>(
        &self,
        seq: u64,
        record: &'a [u8],
    ) -> Result<Stored<'a>, JournalError> {
        if record.len() <= self.store.chunk_limit() {
            return Ok(Stored::Whole(record));
        }
        let count = match codec::peek(record).map_err(|source| self.corrupt(seq, source))? {
            RecordKind::Events { count } => count,
            RecordKind::Rollback { .. } => {
                return Err(self.corrupt(
                    seq,
                    CodecError::WrongKind {
                        expected: "batch of events",
                        found: "rollback marker",
                    },
                ));
            }
        };
        self.to_store_counted(record, count)
    }

    /// [`Journal::to_store`] for a record of `count` events that this
    /// build just framed: it need not be verified again to learn the
    /// count (a crc over the whole record, on the owner's path).
    pub(super) fn to_store_counted<'a>(
        &self,
        record: &'a [u8],
        count: u64,
    ) -> Result<Stored<'a>, JournalError> {
        if record.len() <= self.store.chunk_limit() {
            return Ok(Stored::Whole(record));
        }
        let id = self.store.generate_id()?;
        let chunks: Vec<([u8; 12], &[u8])> = (0u32..)
            .zip(record.chunks(CHUNK_BYTES))
            .map(|(index, part)| (chunk_key(id, index), part))
            .collect();
        let head = ChunkHead {
            id,
            chunks: u32::try_from(chunks.len()).expect("a record is at most 256 MiB"),
            len: record.len() as u64,
            count,
        };
        Ok(Stored::Chunked {
            head: codec::encode_chunk_head(&head),
            chunks,
        })
    }

    /// The record stored in `value` at key `seq`: `value` itself, or the
    /// record its chunks reassemble to if it is a chunked head.
    ///
    /// # Errors
    ///
    /// [`JournalError::Corrupt`] naming `seq` for a head that does not
    /// verify, or chunks that do not reassemble
    /// ([`CodecError::Chunks`]) into a record that verifies and holds the
    /// head's event count; [`JournalError::Storage`].
    pub(super) fn resolve<'v>(
        &self,
        seq: u64,
        value: &'v [u8],
    ) -> Result<Cow<'v, [u8]>, JournalError> {
        match codec::chunk_head(value).map_err(|source| self.corrupt(seq, source))? {
            None => Ok(Cow::Borrowed(value)),
            Some(head) => self.reassemble(seq, &head).map(Cow::Owned),
        }
    }

    /// The record whose chunks `head` (at key `seq`) describes, checked.
    pub(super) fn reassemble(&self, seq: u64, head: &ChunkHead) -> Result<Vec<u8>, JournalError> {
        let damaged = |problem| self.corrupt(seq, CodecError::Chunks { problem });
        let capacity = usize::try_from(head.len)
            .ok()
            .filter(|&len| len <= codec::HEADER_LEN + codec::MAX_PAYLOAD)
            .ok_or_else(|| {
                self.corrupt(
                    seq,
                    CodecError::TooLarge {
                        len: usize::try_from(head.len).unwrap_or(usize::MAX),
                        limit: codec::MAX_PAYLOAD,
                    },
                )
            })?;
        let mut record = Vec::with_capacity(capacity);
        let mut next = 0u32;
        let prefix = head.id.to_be_bytes();
        for item in self.store.scan_prefix(Tree::Chunks, &prefix) {
            let (key, part) = item?;
            let index = key
                .get(8..)
                .and_then(|index| <[u8; 4]>::try_from(index).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| JournalError::BadKey {
                    path: self.path.clone(),
                    len: key.len(),
                })?;
            if index >= head.chunks {
                return Err(damaged(ChunkProblem::Extra {
                    index,
                    chunks: head.chunks,
                }));
            }
            if index != next {
                return Err(damaged(ChunkProblem::Missing {
                    index: next,
                    chunks: head.chunks,
                }));
            }
            record.extend_from_slice(&part);
            next += 1;
        }
        if next != head.chunks {
            return Err(damaged(ChunkProblem::Missing {
                index: next,
                chunks: head.chunks,
            }));
        }
        if record.len() as u64 != head.len {
            return Err(damaged(ChunkProblem::Length {
                len: record.len() as u64,
                expected: head.len,
            }));
        }
        match codec::peek(&record).map_err(|source| self.corrupt(seq, source))? {
            RecordKind::Events { count } if count == head.count => Ok(record),
            RecordKind::Events { count } => Err(damaged(ChunkProblem::Count {
                count,
                expected: head.count,
            })),
            RecordKind::Rollback { .. } => Err(self.corrupt(
                seq,
                CodecError::WrongKind {
                    expected: "batch of events",
                    found: "rollback marker",
                },
            )),
        }
    }

    /// The keys of the chunks of `value` if it is a chunked head (any
    /// that exist, whether or not they reassemble); none otherwise, and
    /// none for a head that does not verify (its id is not to be trusted).
    pub(super) fn chunk_keys(&self, value: &[u8]) -> Result<Vec<IVec>, JournalError> {
        let Ok(Some(head)) = codec::chunk_head(value) else {
            return Ok(Vec::new());
        };
        let prefix = head.id.to_be_bytes();
        self.store
            .scan_prefix(Tree::Chunks, &prefix)
            .map(|item| item.map(|(key, _)| key))
            .collect()
    }
}

impl Journal {
    /// Removes the record at `key` of the timeline and the chunks with
    /// `chunk_keys`, in one atomic batch.
    pub(super) fn remove_with_chunks(
        &self,
        key: &[u8],
        chunk_keys: &[IVec],
    ) -> Result<(), JournalError> {
        let ops: Vec<Op<'_>> = chunk_keys
            .iter()
            .map(|chunk| Op::Remove(Tree::Chunks, chunk))
            .chain([Op::Remove(Tree::Records, key)])
            .collect();
        self.store.apply(&ops)
    }
}
