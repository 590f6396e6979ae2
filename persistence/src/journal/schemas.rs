//! Which schema each seq was written under, and decoding through the
//! upcasters (see [`crate::upcast`]).
//!
//! The header names the schema of every seq after the last *epoch*; each
//! epoch, kept under [`EPOCHS_KEY`] in the meta tree, names an older schema
//! and the last seq written under it. A journal opened under a newer schema
//! ([`Journal::open_upgrading`]) changes nothing on disk until its first
//! new record: that record's write also replaces the header and adds the
//! epoch, in one atomic write, so no crash can leave a record of one schema
//! where the journal says another. Seqs written anew after a quarantine are
//! the new schema's, so quarantine cuts the epochs back in its own write.

use std::sync::RwLock;

use serde::de::DeserializeOwned;

use super::store::{Op, Tree};
use super::{HEADER_KEY, Journal, JournalError};
use crate::codec::{self, Record};
use crate::upcast::{AnyUpcasters, Halves, Upcasters};

/// The meta tree's key of the epochs: for each, the last seq (u64
/// big-endian), the schema's length (u32 big-endian) and the schema.
pub(super) const EPOCHS_KEY: &[u8] = b"schema_epochs";

/// An older schema and the last seq written under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// The older schema.
    pub schema: String,
    /// The last seq written under it (the seqs after the previous epoch's,
    /// through this one, are in `schema`).
    pub through: u64,
}

/// The journal's schemas, shared by its reads and its writes.
#[derive(Debug, Default)]
pub(super) struct Schemas {
    state: RwLock<State>,
    /// The registered upcasters, an `Upcasters<E>` for the reader's `E`.
    upcasters: Option<AnyUpcasters>,
}

#[derive(Debug, Default, Clone)]
struct State {
    /// Oldest first.
    epochs: Vec<Epoch>,
    /// The schema of every seq after the last epoch.
    header: String,
    /// Opened under a newer schema: the header to write, with `header` as
    /// an epoch, beside the first new record.
    upgrade_to: Option<String>,
}

/// The meta writes that switch the journal to its new schema, for the
/// same atomic write as the first record at `first_seq`.
pub(super) struct Upgrade {
    header: Vec<u8>,
    epochs: Vec<u8>,
    /// What the in-memory state becomes once the write went through.
    state: State,
}

impl Upgrade {
    /// The ops to add to the record's write.
    pub(super) fn ops(&self) -> [Op<'_>; 2] {
        [
            Op::Insert(Tree::Meta, HEADER_KEY, &self.header),
            Op::Insert(Tree::Meta, EPOCHS_KEY, &self.epochs),
        ]
    }
}

impl Schemas {
    /// The schemas of a journal whose header names `header`, whose meta
    /// tree holds `epochs` (raw), opened to write `upgrade_to` if newer.
    pub(super) fn new(
        header: String,
        epochs: Option<&[u8]>,
        upgrade_to: Option<String>,
    ) -> Result<Schemas, String> {
        let epochs = match epochs {
            Some(bytes) => decode_epochs(bytes)?,
            None => Vec::new(),
        };
        Ok(Schemas {
            state: RwLock::new(State {
                epochs,
                header,
                upgrade_to,
            }),
            upcasters: None,
        })
    }

    fn read(&self) -> State {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The epochs, oldest first.
    pub(super) fn epochs(&self) -> Vec<Epoch> {
        self.read().epochs
    }

    /// The schema new records are written under.
    pub(super) fn current(&self) -> String {
        let state = self.read();
        state.upgrade_to.unwrap_or(state.header)
    }

    /// Whether every record is in the header's schema and stays so: no
    /// epochs, no upgrade due. Every record read asks, before anything is
    /// cloned.
    fn single(&self) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.epochs.is_empty() && state.upgrade_to.is_none()
    }

    /// The schema the record at `seq` was written under, and whether it is
    /// an older one than [`Schemas::current`].
    fn schema_of(&self, seq: u64) -> (String, bool) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        match state.epochs.iter().find(|epoch| seq <= epoch.through) {
            Some(epoch) => (epoch.schema.clone(), true),
            None => (state.header.clone(), state.upgrade_to.is_some()),
        }
    }

    /// The upgrade to write with a record at `first_seq`, if one is due.
    pub(super) fn upgrade(&self, first_seq: u64) -> Option<Upgrade> {
        // Every append asks: no clone unless an upgrade is due.
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let new = state.upgrade_to.clone()?;
        let mut epochs = state.epochs.clone();
        if first_seq > 1 {
            epochs.push(Epoch {
                schema: state.header.clone(),
                through: first_seq - 1,
            });
        }
        Some(Upgrade {
            header: super::open::header(&new),
            epochs: encode_epochs(&epochs),
            state: State {
                epochs,
                header: new,
                upgrade_to: None,
            },
        })
    }

    /// Records that `upgrade`'s write went through.
    pub(super) fn upgraded(&self, upgrade: Upgrade) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = upgrade.state;
    }

    /// The epochs cut back to end before `seq` (seqs from `seq` on are
    /// written anew, under the current schema): the bytes to store, if
    /// anything changes, and the state to keep once stored.
    pub(super) fn cut_from(&self, seq: u64) -> Option<(Vec<u8>, Vec<Epoch>)> {
        let state = self.read();
        if state.epochs.iter().all(|epoch| epoch.through < seq) {
            return None;
        }
        let mut epochs = Vec::new();
        for epoch in &state.epochs {
            if epoch.through < seq {
                epochs.push(epoch.clone());
                continue;
            }
            // The first epoch reaching `seq` keeps its seqs before it, if
            // it has any; the later ones held only seqs from `seq` on.
            let start = epochs.last().map_or(1, |kept: &Epoch| kept.through + 1);
            if seq > start {
                epochs.push(Epoch {
                    schema: epoch.schema.clone(),
                    through: seq - 1,
                });
            }
            break;
        }
        Some((encode_epochs(&epochs), epochs))
    }

    /// Keeps the epochs a [`Schemas::cut_from`] stored.
    pub(super) fn set_epochs(&self, epochs: Vec<Epoch>) {
        self.state.write().unwrap_or_else(|e| e.into_inner()).epochs = epochs;
    }
}

impl Journal {
    /// Reads records of older schemas through `upcasters`: what
    /// [`Journal::read_from`], [`Journal::read_archive`],
    /// [`Journal::last_seq`] and [`Journal::rollback`] use for the seqs
    /// the journal's epochs (and, when opened by
    /// [`Journal::open_upgrading`], its header) put under a schema older
    /// than the reader's. Only reads with the same `E` use them.
    pub fn set_upcasters<E: 'static>(&mut self, upcasters: std::sync::Arc<Upcasters<E>>) {
        self.schemas.upcasters = Some(upcasters);
    }

    /// The older schemas this journal holds records of, oldest first, each
    /// with the last seq written under it. Empty for a journal that was
    /// always in one schema.
    pub fn epochs(&self) -> Vec<Epoch> {
        self.schemas.epochs()
    }

    /// The schema new records are written under: the header's, or the
    /// newer one [`Journal::open_upgrading`] was given.
    pub fn current_schema(&self) -> String {
        self.schemas.current()
    }

    /// Decodes the record at `seq` as `E`, through the upcaster of its
    /// schema when that is an older one.
    pub(super) fn decode<E: DeserializeOwned + 'static>(
        &self,
        seq: u64,
        record: &[u8],
    ) -> Result<Record<E>, JournalError> {
        let upcasters = self.typed_upcasters::<E>().filter(|ups| !ups.is_empty());
        if upcasters.is_none() && self.schemas.single() {
            return codec::decode_record::<E>(record).map_err(|source| self.corrupt(seq, source));
        }
        let (schema, older) = self.schemas.schema_of(seq);
        let upcast = upcasters.and_then(|upcasters| upcasters.decode(&schema, record));
        match upcast {
            Some(decoded) => decoded,
            None if older => return Err(self.no_upcaster(seq, schema)),
            None => codec::decode_record::<E>(record),
        }
        .map_err(|source| self.corrupt(seq, source))
    }

    /// Splits the batch record at `seq` after its `n`th event, both halves
    /// in the record's own schema. `None`: the record is in today's
    /// schema, for the caller to split as `E`.
    pub(super) fn split_older<E: 'static>(
        &self,
        seq: u64,
        record: &[u8],
        n: usize,
    ) -> Result<Option<Halves>, JournalError> {
        let (schema, older) = self.schemas.schema_of(seq);
        if !older {
            return Ok(None);
        }
        let split = self
            .typed_upcasters::<E>()
            .and_then(|upcasters| upcasters.split(&schema, record, n))
            .ok_or_else(|| self.no_upcaster(seq, schema))?;
        split.map(Some).map_err(|source| self.corrupt(seq, source))
    }

    fn typed_upcasters<E: 'static>(&self) -> Option<&Upcasters<E>> {
        self.schemas
            .upcasters
            .as_ref()?
            .downcast_ref::<Upcasters<E>>()
    }

    fn no_upcaster(&self, seq: u64, schema: String) -> JournalError {
        JournalError::NoUpcaster {
            path: self.path.clone(),
            seq,
            schema,
            current: self.schemas.current(),
        }
    }
}

fn encode_epochs(epochs: &[Epoch]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for epoch in epochs {
        bytes.extend_from_slice(&epoch.through.to_be_bytes());
        let len = u32::try_from(epoch.schema.len()).expect("a schema name under 4 GiB");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(epoch.schema.as_bytes());
    }
    bytes
}

fn decode_epochs(mut bytes: &[u8]) -> Result<Vec<Epoch>, String> {
    let mut epochs = Vec::new();
    while !bytes.is_empty() {
        let (through, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or("an epoch's seq is cut short")?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or("an epoch's schema length is cut short")?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err("an epoch's schema is cut short".into());
        }
        let (schema, rest) = rest.split_at(len);
        let through = u64::from_be_bytes(*through);
        if epochs
            .last()
            .is_some_and(|last: &Epoch| last.through >= through)
        {
            return Err(format!("the epochs are out of order at seq {through}"));
        }
        epochs.push(Epoch {
            schema: String::from_utf8_lossy(schema).into_owned(),
            through,
        });
        bytes = rest;
    }
    Ok(epochs)
}
