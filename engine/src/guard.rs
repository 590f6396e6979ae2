//! The owner's side of the determinism guard: the state's hash, kept up to
//! date from each accepted event's write set, and journaled with the
//! batches that cross a multiple of the guard's interval (by default every
//! batch), in the batch's own atomic write, so that replay and recovery
//! can tell a diverging `apply` from a faithful one.
//!
//! Why incremental: the state hash is a sum over entries
//! ([`StateHasher`]), so an event changes it by what it wrote: the entries
//! its write set replaced leave the sum, the entries it left join it. That
//! costs two entry encodings per write, on the owner, instead of a whole
//! state's worth per check, so every batch can be checked: before, the
//! default was one full hash every 2^18 events, and an engine smaller than
//! that recorded none. Replay follows the same sum
//! (`persistence::recovery`), so a check costs it O(1) too.

use solostate_commands::{Event, Store, Write};
use solostate_persistence::codec::CodecError;
use solostate_persistence::hash::StateHasher;

/// The hash of the working state and of the last published one.
pub(crate) struct Digest {
    /// Every accepted event so far, the current batch's included.
    working: StateHasher,
    /// Through the last published seq: what the working state goes back
    /// to when a batch is refused.
    published: StateHasher,
    /// Scratch space for entry encodings, reused.
    buf: Vec<u8>,
}

impl Digest {
    /// The digest of a state whose full hash is `hasher`.
    pub(crate) fn new(hasher: StateHasher) -> Self {
        Digest {
            working: hasher.clone(),
            published: hasher,
            buf: Vec::new(),
        }
    }

    /// Follows one accepted event: `writes` is its write set and `store`
    /// the state after it.
    ///
    /// # Errors
    ///
    /// An entry that cannot be encoded; the digest then no longer
    /// describes the state, and the caller drops it.
    pub(crate) fn fold<E: Event>(
        &mut self,
        store: &dyn Store<E::Key, E::Value>,
        writes: &[Write<E::Key, E::Value>],
    ) -> Result<(), CodecError> {
        self.working.fold_writes(store, writes, &mut self.buf)
    }

    /// The batch so far is published: its hash is the published one.
    pub(crate) fn publish(&mut self) {
        self.published.clone_from(&self.working);
    }

    /// The working state went back to the published one.
    pub(crate) fn reset(&mut self) {
        self.working.clone_from(&self.published);
    }

    /// The state was replaced (a rollback): `hasher` is its full hash.
    pub(crate) fn replace(&mut self, hasher: StateHasher) {
        self.working.clone_from(&hasher);
        self.published = hasher;
    }

    /// The hash of the working state: the batch's, before it is journaled.
    pub(crate) fn working_hash(&self) -> u64 {
        self.working.finish()
    }
}

/// When hashes are recorded. It lives inside the owner's working state,
/// and only when the engine has a journal and the guard is on.
pub(crate) struct HashGuard {
    /// A hash is recorded when a batch crosses a multiple of this seq.
    every: u64,
}

impl HashGuard {
    /// A guard recording every `every` events; `None` when `every` is 0.
    pub(crate) fn new(every: u64) -> Option<Self> {
        (every > 0).then_some(HashGuard { every })
    }

    /// Whether the batch `first..=last` crosses a multiple of `every`,
    /// and so goes into the journal with its state hash.
    pub(crate) fn due(&self, first: u64, last: u64) -> bool {
        last / self.every != (first - 1) / self.every
    }
}
