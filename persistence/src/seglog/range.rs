//! Iterating a tree: each step re-locates the next key under a short
//! read lock and reads its value outside it, so no lock is held between
//! steps and the caller may write while iterating.

use std::ops::Bound;

use super::{Entry, SegError, SegLog};

/// The entries of one tree within bounds, ascending; see
/// [`SegLog::range`].
pub struct Range<'a> {
    /// The log.
    pub(super) log: &'a SegLog,
    /// The tree.
    pub(super) tree: u8,
    /// The lower bound: after the first step, just past the key last
    /// returned.
    pub(super) from: Bound<Vec<u8>>,
    /// The upper bound.
    pub(super) to: Bound<Vec<u8>>,
    /// Set at the end, or after an error.
    pub(super) done: bool,
}

impl Iterator for Range<'_> {
    type Item = Result<Entry, SegError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let found = self.log.read_index().next_in(
            self.tree,
            self.from.as_ref().map(Vec::as_slice),
            self.to.as_ref().map(Vec::as_slice),
        );
        let Some((key, loc, file)) = found else {
            self.done = true;
            return None;
        };
        self.from = Bound::Excluded(key.clone());
        match self.log.read_value(&file, loc) {
            Ok(value) => Some(Ok((key, value))),
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}
