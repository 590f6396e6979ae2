//! The versioned store: MVCC over papaya's lock-free hash map.
//!
//! Each key maps to its newest version, which links to the versions it
//! replaced. The owner writes new versions stamped with the batch's first
//! seq, and publishes a batch by handing out a [`Pinned`] view at
//! the batch's last seq: a reader of that view sees, for each key, the
//! newest version at or below it. Versions written after it are skipped,
//! so the view never changes, however long it is held.
//!
//! Reclamation. A write that replaces a version links to it, and records
//! the new version in the batch's retire list. Once every pinned view is
//! at or above the batch (the as-of window and a checkpoint in progress
//! hold views too), the owner cuts those links and drops the keys whose
//! newest version is a removal. So each key costs one version, and a held
//! view costs memory only in proportion to the writes made while it is
//! held. Cutting happens after each publish; an engine that stops writing
//! keeps what the last batches retired until its next batch.

mod pinned;
mod version;
mod writing;

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::{Arc, Weak};

use solostate_commands::Store;

pub use pinned::{Iter, Pinned, PinnedView};
pub(crate) use version::Version;
use writing::Writing;

/// Pins kept before the first sweep of dead ones behind a live one.
const PINS_SWEPT_FROM: usize = 1024;

/// The concurrent map under a versioned store.
type Map<K, V> = papaya::HashMap<K, Arc<Version<V>>>;

/// The token that pins a published seq: every [`Pinned`] view holds one,
/// and the owner sees, through a `Weak`, whether any still does.
#[derive(Debug)]
struct Pin;

/// Work left for when every view is past a batch: the versions it wrote
/// that link to older ones, and the keys it removed.
enum Retired<K, V> {
    /// Cut this version's link to older versions.
    Link(Arc<Version<V>>),
    /// Drop `key` if this removal is still its newest version, and cut the
    /// removal's link either way.
    Removal(K, Arc<Version<V>>),
}

/// The owner's side of a versioned store: the only writer.
pub struct Versioned<K, V> {
    map: Arc<Map<K, V>>,
    /// The last published seq. A version above it is the current batch's,
    /// seen by nobody but the owner, and a later write in the batch
    /// replaces it instead of linking to it.
    published: u64,
    /// How many keys hold a value now, the current batch's writes included.
    len: usize,
    /// The pin of every published view that may still be held, oldest
    /// first; the front's seq, once the dead ones are popped, is the floor
    /// below which no reader can look.
    pins: VecDeque<(u64, Weak<Pin>)>,
    /// The length at which `pins` is next swept of dead pins behind a
    /// live one: without it, one view held for hours would keep a pin
    /// entry for every batch published since.
    sweep_pins_at: usize,
    /// What the current batch retired.
    retiring: Vec<Retired<K, V>>,
    /// What published batches retired, each with the seq from which no
    /// view can need what it retired, in that order.
    retired: VecDeque<(u64, Vec<Retired<K, V>>)>,
}

impl<K, V> std::fmt::Debug for Versioned<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versioned")
            .field("published", &self.published)
            .field("len", &self.len)
            .field("pins", &self.pins.len())
            .field("retired_batches", &self.retired.len())
            .finish_non_exhaustive()
    }
}

impl<K, V> Versioned<K, V>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// A store holding `entries`, as of `seq` (the seq of the state they
    /// are: 0 for a new engine, the recovered seq after open).
    pub fn from_entries(seq: u64, entries: impl IntoIterator<Item = (K, V)>) -> Self {
        let map = Map::new();
        let mut len = 0;
        {
            let guard = map.guard();
            for (key, value) in entries {
                if map
                    .insert(key, Version::new(seq, Some(value), None), &guard)
                    .is_none()
                {
                    len += 1;
                }
            }
        }
        Versioned {
            map: Arc::new(map),
            published: seq,
            len,
            pins: VecDeque::new(),
            sweep_pins_at: PINS_SWEPT_FROM,
            retiring: Vec::new(),
            retired: VecDeque::new(),
        }
    }

    /// Runs `f` with the store as the next batch's events write it: reads
    /// see every write so far, this batch's included.
    ///
    /// Every write until the next publish is stamped with the seq after
    /// the published one, the batch's first, whichever event made it. A
    /// per-event stamp would be wrong for a rejected event: its undo
    /// writes the old values back, and stamped with a seq that no accepted
    /// event reached, they would be hidden from the very view published
    /// next. With one stamp per batch, every write of the batch is at or
    /// below any seq the batch is published at.
    pub fn write<R>(&mut self, f: impl FnOnce(&mut dyn Store<K, V>) -> R) -> R {
        let guard = self.map.guard();
        let mut writing = Writing {
            map: &self.map,
            guard: &guard,
            stamp: self.published + 1,
            len: &mut self.len,
            retiring: &mut self.retiring,
        };
        f(&mut writing)
    }

    /// Publishes every write so far as the view at `seq`, then reclaims
    /// what no view can need any more.
    ///
    /// The view's pin is taken before reclaiming, so `seq` itself is
    /// always kept: call this once the view of the previous batch is
    /// replaced (the engine publishes first), or it stays pinned a batch
    /// longer than it needs to.
    ///
    /// # Panics
    ///
    /// If `seq` is below the last published seq.
    pub fn publish(&mut self, seq: u64) -> Pinned<K, V> {
        assert!(
            seq >= self.published,
            "versioned store: publishing seq {seq} below the published seq {}",
            self.published
        );
        if !self.retiring.is_empty() {
            // Reclaimed once every view is at or above the batch's stamp,
            // which is above `seq` only when no event of the batch was
            // accepted (it published nothing new).
            let retired = std::mem::take(&mut self.retiring);
            self.retired
                .push_back((seq.max(self.published + 1), retired));
        }
        self.published = seq;
        let pin = Arc::new(Pin);
        self.pins.push_back((seq, Arc::downgrade(&pin)));
        if self.pins.len() >= self.sweep_pins_at {
            // Amortised O(1): the next sweep waits until the live ones
            // have doubled.
            self.pins.retain(|(_, pin)| pin.strong_count() > 0);
            self.sweep_pins_at = (2 * self.pins.len()).max(PINS_SWEPT_FROM);
        }
        Pinned::new(Arc::clone(&self.map), seq, self.len, pin)
    }

    /// Cuts what every view is past: the links and removals of each batch
    /// at or below the oldest seq still pinned. Returns how many batches
    /// were reclaimed.
    pub fn reclaim(&mut self) -> usize {
        while self
            .pins
            .front()
            .is_some_and(|(_, pin)| pin.strong_count() == 0)
        {
            self.pins.pop_front();
        }
        let floor = self.pins.front().map_or(self.published, |(seq, _)| *seq);
        let mut batches = 0;
        let guard = self.map.guard();
        while self.retired.front().is_some_and(|(seq, _)| *seq <= floor) {
            let Some((_, retired)) = self.retired.pop_front() else {
                break;
            };
            for entry in retired {
                match entry {
                    Retired::Link(version) => version.cut(),
                    Retired::Removal(key, removal) => {
                        removal.cut();
                        // A later write may have replaced the removal; then
                        // the key stays. (The closure cannot panic.)
                        let _ = self.map.remove_if(
                            &key,
                            |_, newest| Arc::ptr_eq(newest, &removal),
                            &guard,
                        );
                    }
                }
            }
            batches += 1;
        }
        batches
    }

    /// The last published seq.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// How many keys hold a value now, unpublished writes included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key holds a value now.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many writes wait for views to move on before their older
    /// versions can be freed: what held views cost, in versions.
    pub fn retained(&self) -> usize {
        self.retiring.len() + self.retired.iter().map(|(_, r)| r.len()).sum::<usize>()
    }

    /// How many published views the owner still tracks as possibly held.
    pub fn pins(&self) -> usize {
        self.pins.len()
    }

    /// How many versions the map holds beyond one per key, counted by a
    /// walk over every key (for tests and diagnostics: O(keys)).
    pub fn older_versions(&self) -> usize {
        let guard = self.map.guard();
        self.map
            .iter(&guard)
            .map(|(_, newest)| {
                let mut count = 0;
                let mut next = newest.older();
                while let Some(version) = next {
                    count += 1;
                    next = version.older();
                }
                count
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
