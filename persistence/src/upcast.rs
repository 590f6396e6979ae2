//! Upcasters: reading records written under an older schema as today's
//! event type.
//!
//! Events are history, so they are never rewritten: a journal written under
//! `bank-v1` keeps its `bank-v1` records after the application moves to
//! `bank-v2`, and every read of them (recovery, replay, as-of reads, the
//! change feed's catch-up, the `solostate` tool) decodes them as the old
//! type and converts each event with the function the application
//! registered ([`Upcasters::add`]). This is what Akka calls an event
//! adapter and cqrs-es an upcaster.
//!
//! The journal knows which seqs are in which schema: opened under a newer
//! schema than its header's, it writes the new header, together with the
//! last seq of the old one (an *epoch*), in the same atomic write as its
//! first new record (`Journal::open_upgrading`). Until then nothing on disk
//! has changed, so an application that opens a directory under `v2`, reads
//! it and closes it can still go back to `v1`.
//!
//! # What an upcaster can and cannot do
//!
//! * One old event becomes exactly one new event: seqs are dense and never
//!   reused, so an upcaster cannot split or drop events.
//! * Upcasting is infallible. Every event that was journaled applied once;
//!   an old event that has no meaning in the new type is still a fact, and
//!   the new type needs a variant for it.
//! * The state's key and value types, and their encoding, do not change:
//!   checkpoints written under an older schema are loaded as the new
//!   event type's state. The new type's `apply` of an upcast event must
//!   also change the state exactly as the old `apply` did, or the state
//!   rebuilt from the journal would not be the state that was
//!   acknowledged; the determinism guard's recorded state hashes catch a
//!   difference at replay (`ReplayError::Diverged`).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError, Record};

/// Decodes a record of an older schema into today's events.
type Decode<E> = dyn Fn(&[u8]) -> Result<Record<E>, CodecError> + Send + Sync;

/// A batch record cut in two: the events before the cut, and after it.
pub(crate) type Halves = (Vec<u8>, Vec<u8>);

/// Splits a batch record of an older schema after its `n`th event, into
/// two records of that same schema (for a rollback into the batch).
type Split = dyn Fn(&[u8], usize) -> Result<Halves, CodecError> + Send + Sync;

/// One older schema and how to read it.
struct Upcaster<E> {
    schema: String,
    /// The old event type's name, for messages.
    from: &'static str,
    decode: Arc<Decode<E>>,
    split: Arc<Split>,
}

impl<E> Clone for Upcaster<E> {
    fn clone(&self) -> Self {
        Upcaster {
            schema: self.schema.clone(),
            from: self.from,
            decode: Arc::clone(&self.decode),
            split: Arc::clone(&self.split),
        }
    }
}

/// The older schemas an engine reads, each with its conversion to the
/// event type `E`. Register one per older schema, each converting straight
/// to `E` (for `v1` → `v3`, compose the `v1` → `v2` and `v2` → `v3`
/// functions yourself).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use solostate_persistence::upcast::Upcasters;
///
/// #[derive(Serialize, Deserialize)]
/// enum V1 { Put(String, u64) }
/// #[derive(Serialize, Deserialize)]
/// enum V2 { Put { key: String, value: u64, note: Option<String> } }
///
/// let mut upcasters = Upcasters::<V2>::new();
/// upcasters.add("kv-v1", |old: V1| match old {
///     V1::Put(key, value) => V2::Put { key, value, note: None },
/// });
/// assert_eq!(upcasters.schemas().collect::<Vec<_>>(), ["kv-v1"]);
/// ```
pub struct Upcasters<E> {
    list: Vec<Upcaster<E>>,
}

impl<E> Clone for Upcasters<E> {
    fn clone(&self) -> Self {
        Upcasters {
            list: self.list.clone(),
        }
    }
}

impl<E> Default for Upcasters<E> {
    fn default() -> Self {
        Upcasters { list: Vec::new() }
    }
}

impl<E> fmt::Debug for Upcasters<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.list.iter().map(|up| (&up.schema, up.from)))
            .finish()
    }
}

impl<E: 'static> Upcasters<E> {
    /// No upcasters: every record must be in the journal's own schema.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads records of `schema` as events of type `Old`, each converted to
    /// `E` by `upcast`. A second upcaster for the same schema replaces the
    /// first (the engine's builder refuses that instead, as a likely
    /// mistake).
    pub fn add<Old>(
        &mut self,
        schema: impl Into<String>,
        upcast: impl Fn(Old) -> E + Send + Sync + 'static,
    ) -> &mut Self
    where
        Old: Serialize + DeserializeOwned + 'static,
    {
        let schema = schema.into();
        self.list.retain(|up| up.schema != schema);
        let decode = move |record: &[u8]| -> Result<Record<E>, CodecError> {
            Ok(match codec::decode_record::<Old>(record)? {
                Record::Events(events) => Record::Events(events.into_iter().map(&upcast).collect()),
                Record::Rollback { target } => Record::Rollback { target },
            })
        };
        let split = |record: &[u8], n: usize| -> Result<Halves, CodecError> {
            let mut events = codec::decode_batch::<Old>(record)?;
            let suffix = events.split_off(n.min(events.len()));
            Ok((codec::encode_batch(&events)?, codec::encode_batch(&suffix)?))
        };
        self.list.push(Upcaster {
            schema,
            from: std::any::type_name::<Old>(),
            decode: Arc::new(decode),
            split: Arc::new(split),
        });
        self
    }

    /// Adds every upcaster of `other`, each replacing one of the same
    /// schema here.
    pub fn extend(&mut self, other: Upcasters<E>) -> &mut Self {
        for up in other.list {
            self.list.retain(|mine| mine.schema != up.schema);
            self.list.push(up);
        }
        self
    }

    /// The older schemas registered, in the order they were added.
    pub fn schemas(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|up| up.schema.as_str())
    }

    /// Whether `schema` has an upcaster.
    pub fn reads(&self, schema: &str) -> bool {
        self.find(schema).is_some()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Decodes `record`, written under `schema`, as `E`; `None` when
    /// `schema` has no upcaster.
    pub(crate) fn decode(
        &self,
        schema: &str,
        record: &[u8],
    ) -> Option<Result<Record<E>, CodecError>> {
        self.find(schema).map(|up| (up.decode)(record))
    }

    /// Splits a batch record written under `schema` after its `n`th event,
    /// both halves re-encoded in `schema`; `None` when `schema` has no
    /// upcaster.
    pub(crate) fn split(
        &self,
        schema: &str,
        record: &[u8],
        n: usize,
    ) -> Option<Result<Halves, CodecError>> {
        self.find(schema).map(|up| (up.split)(record, n))
    }

    fn find(&self, schema: &str) -> Option<&Upcaster<E>> {
        self.list.iter().find(|up| up.schema == schema)
    }
}

/// The upcasters as the journal holds them: for any event type, since the
/// journal is not generic (the typed reads downcast them).
pub(crate) type AnyUpcasters = Arc<dyn std::any::Any + Send + Sync>;
