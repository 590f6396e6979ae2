//! The in-memory index: per tree, each live key and where its value sits
//! in the segment files; per segment, its open file, its length and the
//! live bytes it still holds (what compaction weighs).
//!
//! The index is rebuilt by replay at open and updated by `apply` only after
//! the frame's bytes are written, so an entry never points at bytes that
//! are not in the file. Values stay in the files: memory is one entry per
//! key, not the data.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use super::format::INSERT_OVERHEAD;

/// Where a live value sits: `len` bytes at `offset` in segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    /// The segment number.
    pub(super) segment: u64,
    /// The value's first byte in that file.
    pub(super) offset: u64,
    /// The value's length.
    pub(super) len: u32,
}

/// One segment file, open for the log's lifetime.
pub(super) struct Segment {
    /// The file, shared with readers, who read values outside the lock
    /// (a deleted segment's handle stays readable on Unix, so a reader
    /// that located a value just before compaction still reads it).
    pub(super) file: Arc<File>,
    /// Its path, for errors and for deletion.
    pub(super) path: PathBuf,
    /// Its length: header plus every frame written to it.
    pub(super) len: u64,
    /// The bytes of its ops that are still live (an index entry points
    /// into this segment): compaction's measure of what deleting it would
    /// have to copy.
    pub(super) live: u64,
}

/// The index proper.
#[derive(Default)]
pub(super) struct Index {
    /// Per tree, live keys in ascending order.
    pub(super) trees: BTreeMap<u8, BTreeMap<Vec<u8>, Loc>>,
    /// Every segment file, by number, oldest first.
    pub(super) segments: BTreeMap<u64, Segment>,
}

/// The live bytes an entry weighs: its insert op's encoded size.
fn weight(key: &[u8], loc: &Loc) -> u64 {
    INSERT_OVERHEAD + key.len() as u64 + u64::from(loc.len)
}

/// Whether a range with these bounds is empty in a way `BTreeMap::range`
/// would panic on (start after end, or equal and both excluded).
fn degenerate(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

impl Index {
    /// Points `key` in `tree` at `loc`, moving the live bytes of whatever
    /// it replaces out of that value's segment.
    pub(super) fn insert(&mut self, tree: u8, key: Vec<u8>, loc: Loc) {
        let added = weight(&key, &loc);
        let replaced = self.trees.entry(tree).or_default().insert(key.clone(), loc);
        if let Some(old) = replaced {
            self.unweigh(&key, &old);
        }
        if let Some(segment) = self.segments.get_mut(&loc.segment) {
            segment.live += added;
        }
    }

    /// Removes `key` from `tree`, if it is there.
    pub(super) fn remove(&mut self, tree: u8, key: &[u8]) {
        let removed = self.trees.get_mut(&tree).and_then(|keys| keys.remove(key));
        if let Some(old) = removed {
            self.unweigh(key, &old);
        }
        if self.trees.get(&tree).is_some_and(BTreeMap::is_empty) {
            self.trees.remove(&tree);
        }
    }

    /// Takes a replaced or removed entry's bytes off its segment's live
    /// count.
    fn unweigh(&mut self, key: &[u8], old: &Loc) {
        if let Some(segment) = self.segments.get_mut(&old.segment) {
            segment.live = segment.live.saturating_sub(weight(key, old));
        }
    }

    /// Where `key`'s value is, and the file to read it from.
    pub(super) fn locate(&self, tree: u8, key: &[u8]) -> Option<(Loc, Arc<File>)> {
        let loc = *self.trees.get(&tree)?.get(key)?;
        Some((loc, self.file(loc.segment)?))
    }

    /// The open file of segment `number`.
    pub(super) fn file(&self, number: u64) -> Option<Arc<File>> {
        self.segments.get(&number).map(|s| Arc::clone(&s.file))
    }

    /// The first live key of `tree` within the bounds, with its location.
    pub(super) fn next_in(
        &self,
        tree: u8,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Option<(Vec<u8>, Loc, Arc<File>)> {
        if degenerate(from, to) {
            return None;
        }
        let keys = self.trees.get(&tree)?;
        let (key, loc) = keys.range::<[u8], _>((from, to)).next()?;
        Some((key.clone(), *loc, self.file(loc.segment)?))
    }

    /// The live keys of `tree` within the bounds, ascending.
    pub(super) fn keys_in(&self, tree: u8, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Vec<Vec<u8>> {
        if degenerate(from, to) {
            return Vec::new();
        }
        self.trees.get(&tree).map_or_else(Vec::new, |keys| {
            keys.range::<[u8], _>((from, to))
                .map(|(key, _)| key.clone())
                .collect()
        })
    }

    /// The greatest live key of `tree` at or before `key`, with its
    /// location.
    pub(super) fn floor(&self, tree: u8, key: &[u8]) -> Option<(Vec<u8>, Loc, Arc<File>)> {
        let keys = self.trees.get(&tree)?;
        let (key, loc) = keys
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        Some((key.clone(), *loc, self.file(loc.segment)?))
    }

    /// The first or last live key of `tree`, with its location.
    pub(super) fn edge(&self, tree: u8, last: bool) -> Option<(Vec<u8>, Loc, Arc<File>)> {
        let keys = self.trees.get(&tree)?;
        let (key, loc) = if last {
            keys.last_key_value()?
        } else {
            keys.first_key_value()?
        };
        Some((key.clone(), *loc, self.file(loc.segment)?))
    }

    /// Every live entry whose value sits in segment `number`, as (tree,
    /// key, location): what compaction must copy before deleting it.
    pub(super) fn entries_in(&self, number: u64) -> Vec<(u8, Vec<u8>, Loc)> {
        let mut found = Vec::new();
        for (tree, keys) in &self.trees {
            for (key, loc) in keys {
                if loc.segment == number {
                    found.push((*tree, key.clone(), *loc));
                }
            }
        }
        found
    }

    /// Whether no tree holds a live key.
    pub(super) fn is_empty(&self) -> bool {
        self.trees.values().all(BTreeMap::is_empty)
    }

    /// The sum of the segment files' lengths.
    pub(super) fn size_on_disk(&self) -> u64 {
        self.segments.values().map(|s| s.len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_bounds_are_empty_instead_of_a_panic() {
        let mut index = Index::default();
        index.trees.entry(0).or_default().insert(
            b"k".to_vec(),
            Loc {
                segment: 1,
                offset: 0,
                len: 0,
            },
        );
        let k: &[u8] = b"k";
        let z: &[u8] = b"z";
        assert!(
            index
                .next_in(0, Bound::Excluded(k), Bound::Excluded(k))
                .is_none()
        );
        assert!(
            index
                .next_in(0, Bound::Included(z), Bound::Included(k))
                .is_none()
        );
        assert!(
            index
                .keys_in(0, Bound::Excluded(k), Bound::Excluded(k))
                .is_empty()
        );
        assert_eq!(
            index.keys_in(0, Bound::Included(k), Bound::Unbounded),
            vec![k.to_vec()]
        );
    }
}
