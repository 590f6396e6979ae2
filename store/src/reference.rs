//! [`Ref`]: a value read from a snapshot.

use std::sync::Arc;

use crate::versioned::Version;

/// A value read from a [`Snapshot`](crate::Snapshot): a plain reference
/// into the persistent map, or into the versioned store's version that
/// holds it. Dereference it to use the value; `Option::as_deref` turns an
/// `Option<Ref<V>>` into an `Option<&V>`.
///
/// A value the versioned store keeps only in an older version (a reader
/// behind a newer write), or one read without a guard
/// ([`Snapshot::get`](crate::Snapshot::get)), holds that version by
/// reference count, so the `Ref` outlives any guard.
pub struct Ref<'a, V>(Inner<'a, V>);

enum Inner<'a, V> {
    Borrowed(&'a V),
    /// Always a version with a value: only [`Ref::version`] builds one.
    Version(Arc<Version<V>>),
}

impl<'a, V> Ref<'a, V> {
    pub(crate) fn borrowed(value: &'a V) -> Self {
        Ref(Inner::Borrowed(value))
    }

    /// A `Ref` to the value of `version`, which must hold one.
    pub(crate) fn version(version: Arc<Version<V>>) -> Self {
        debug_assert!(version.value.is_some());
        Ref(Inner::Version(version))
    }
}

impl<V> std::ops::Deref for Ref<'_, V> {
    type Target = V;

    fn deref(&self) -> &V {
        match &self.0 {
            Inner::Borrowed(value) => value,
            Inner::Version(version) => version
                .value
                .as_ref()
                .expect("a Ref holds only a version with a value"),
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Ref<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        V::fmt(self, f)
    }
}

impl<V: PartialEq> PartialEq for Ref<'_, V> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<V: Eq> Eq for Ref<'_, V> {}
