//! Raw access to a journal's trees for the tests that plant damage or
//! look at what was stored, on either backend, with sled-like calls.

use sled::IVec;

use super::store::{Op, Tree};
use super::{Journal, JournalError};

/// One tree of a journal, for tests.
pub(super) struct RawTree<'a> {
    journal: &'a Journal,
    tree: Tree,
}

impl Journal {
    /// The tree `tree`, raw.
    pub(super) fn raw(&self, tree: Tree) -> RawTree<'_> {
        RawTree {
            journal: self,
            tree,
        }
    }
}

impl RawTree<'_> {
    pub(super) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, JournalError> {
        self.journal.store.get(self.tree, key.as_ref())
    }

    pub(super) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), JournalError> {
        self.journal
            .store
            .apply(&[Op::Insert(self.tree, key.as_ref(), value.as_ref())])
    }

    pub(super) fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), JournalError> {
        self.journal
            .store
            .apply(&[Op::Remove(self.tree, key.as_ref())])
    }

    /// Every entry, in key order.
    pub(super) fn entries(&self) -> Vec<(IVec, IVec)> {
        self.journal
            .store
            .iter(self.tree)
            .collect::<Result<_, _>>()
            .unwrap()
    }
}
