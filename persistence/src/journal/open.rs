//! Opening a journal: creating it, or checking an existing one's header
//! and schema (see the `schemas` module for the older ones), on the
//! backend its files are for, with sled's panics caught.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::schemas::{self, Schemas};
use super::store::{Op, Store, Tree};
use super::{Backend, HEADER_KEY, Journal, JournalError, catch_sled, storage};
use crate::codec;

impl Journal {
    /// Opens the journal in `path`, creating it if needed, for events of
    /// `schema` (the event type's name or a fingerprint the user chose).
    /// An existing journal is opened on the backend its files are for; a
    /// new one is created on the default, [`Backend::Segments`].
    /// `cache_bytes` is sled's page cache size, set explicitly because
    /// sled's default (1 GiB) is rarely what an embedded engine wants.
    ///
    /// # Errors
    ///
    /// [`JournalError::AlreadyOpen`] when the directory is locked;
    /// [`JournalError::SchemaMismatch`] or [`JournalError::UnsupportedFormat`]
    /// for a journal of another schema or record format (incompatible);
    /// [`JournalError::BadHeader`] for a damaged header;
    /// [`JournalError::BadSegment`] for a damaged segment file;
    /// [`JournalError::SledPanicked`] when sled panics on its own files
    /// (caught: this never panics); and [`JournalError::Storage`] or
    /// [`JournalError::Io`] for I/O errors (and for the corruption sled
    /// itself reports).
    pub fn open(path: &Path, schema: &str, cache_bytes: u64) -> Result<Journal, JournalError> {
        Self::open_with(path, schema, cache_bytes, Backend::default())
    }

    /// [`Journal::open`], creating a new journal on `backend`. An
    /// existing journal is still opened on the backend its files are for:
    /// the files say what they are, and an engine configured for one
    /// backend keeps reading the journals it wrote on the other.
    ///
    /// # Errors
    ///
    /// Those of [`Journal::open`].
    pub fn open_with(
        path: &Path,
        schema: &str,
        cache_bytes: u64,
        backend: Backend,
    ) -> Result<Journal, JournalError> {
        Self::open_upgrading(path, schema, &[], cache_bytes, backend)
    }

    /// [`Journal::open_with`], also opening a journal whose header names
    /// one of the `older` schemas: its records are read through the
    /// upcasters given to [`Journal::set_upcasters`] (see
    /// [`crate::upcast`]), and records written from now on are in
    /// `schema`. Nothing on disk changes until the first of them: that
    /// write also puts `schema` in the header and the header's old schema,
    /// with the last seq written under it, in the journal's epochs
    /// ([`Journal::epochs`]).
    ///
    /// # Errors
    ///
    /// Those of [`Journal::open`]; [`JournalError::SchemaMismatch`] when
    /// the header's schema is neither `schema` nor in `older`, and
    /// [`JournalError::NoUpcaster`] when an epoch that still holds records
    /// is in a schema not in `older`.
    pub fn open_upgrading(
        path: &Path,
        schema: &str,
        older: &[&str],
        cache_bytes: u64,
        backend: Backend,
    ) -> Result<Journal, JournalError> {
        let backend = Backend::detect(path).unwrap_or(backend);
        Self::open_inner(path, Some(schema), older, cache_bytes, backend, true, false)
    }

    /// Opens the journal in `path` like [`Journal::open`], but never
    /// creates one: for read-only tools pointed at a directory that may
    /// hold nothing, which should say so rather than leave an empty
    /// journal behind.
    ///
    /// # Errors
    ///
    /// [`JournalError::NotFound`] when there is no journal in `path`, and
    /// the errors of [`Journal::open`].
    pub fn open_existing(
        path: &Path,
        schema: &str,
        cache_bytes: u64,
    ) -> Result<Journal, JournalError> {
        let backend = existing_backend(path)?;
        Self::open_inner(path, Some(schema), &[], cache_bytes, backend, false, false)
    }

    /// Opens the existing journal in `path` for inspection: for offline
    /// tools (the `solostate` command-line tool), which must not change a
    /// directory unless told to. On the segment log nothing is created,
    /// cut or removed and the files are opened read-only; a torn tail that
    /// an engine's open would cut is only reported, in
    /// [`Journal::torn_tail`], and the journal reads as ending before it.
    /// The directory's lock is still taken, so a journal an engine holds
    /// is refused ([`JournalError::AlreadyOpen`]), as a second engine
    /// would be. With `schema` `None`, a journal of any schema opens (read
    /// it with [`Journal::schema`]); its records can then only be checked
    /// without decoding events ([`Journal::scan`]) or decoded as a type the
    /// caller knows is right.
    ///
    /// With `schema` `Some`, a journal whose header names one of the
    /// `older` schemas opens too, as in [`Journal::open_upgrading`]: its
    /// records are read through the upcasters (and nothing is written).
    ///
    /// sled has no read-only open: a sled journal opens as through
    /// [`Journal::open_existing`], and sled may write its own files as it
    /// recovers them. Check [`Backend::detect`] first where that matters.
    ///
    /// # Errors
    ///
    /// Those of [`Journal::open_existing`].
    pub fn open_read_only(
        path: &Path,
        schema: Option<&str>,
        older: &[&str],
        cache_bytes: u64,
    ) -> Result<Journal, JournalError> {
        let backend = existing_backend(path)?;
        Self::open_inner(path, schema, older, cache_bytes, backend, false, true)
    }

    /// The schema named in the journal's header: what the engine that
    /// created it was opened with.
    ///
    /// # Errors
    ///
    /// [`JournalError::BadHeader`] for a missing or empty header, and
    /// [`JournalError::Storage`].
    pub fn schema(&self) -> Result<String, JournalError> {
        let found = self.store.get(Tree::Meta, HEADER_KEY)?;
        match found.as_deref().and_then(<[u8]>::split_first) {
            Some((_, schema)) => Ok(String::from_utf8_lossy(schema).into_owned()),
            None => Err(JournalError::BadHeader {
                path: self.path.clone(),
                reason: "missing or empty header".into(),
            }),
        }
    }

    /// Opens the store and checks the header, with sled's panics caught
    /// (see [`JournalError::SledPanicked`]): a damaged journal is an error
    /// to report, never a reason to take the process down.
    fn open_inner(
        path: &Path,
        schema: Option<&str>,
        older: &[&str],
        cache_bytes: u64,
        backend: Backend,
        create: bool,
        read_only: bool,
    ) -> Result<Journal, JournalError> {
        catch_sled(path, "opening the database", || {
            let opened =
                Self::open_unguarded(path, schema, cache_bytes, backend, create, read_only)?;
            opened.with_schemas(schema, older)
        })
    }

    /// `schema` `None` accepts any schema (read-only tools); `create` is
    /// never given with it.
    fn open_unguarded(
        path: &Path,
        schema: Option<&str>,
        cache_bytes: u64,
        backend: Backend,
        create: bool,
        read_only: bool,
    ) -> Result<Journal, JournalError> {
        let path = path.to_path_buf();
        if create {
            // Neither backend syncs the parent of a directory it creates.
            crate::sync::create_dir_all(&path).map_err(|source| JournalError::Sync {
                path: crate::sync::parent_of(&path).to_path_buf(),
                source,
            })?;
        }
        let opened = Store::open_as(&path, backend, cache_bytes, create, read_only)?;
        let store = opened.store;
        let expected = header(schema.unwrap_or(""));
        let mut created = false;
        match store.get(Tree::Meta, HEADER_KEY)? {
            // A backend's files hold data only once something was flushed
            // to them, and the header is flushed as soon as a journal is
            // created; so data but no header is a journal the backend
            // lost (damaged), not a new one, and must not silently become
            // an empty journal.
            None if opened.had_data => {
                return Err(JournalError::BadHeader {
                    path,
                    reason:
                        "the journal's files hold data but no journal header: the backend could \
                             not recover the journal from its files, or this directory is not a \
                             solostate journal"
                            .into(),
                });
            }
            None if create && schema.is_some() => {
                store.apply(&[Op::Insert(Tree::Meta, HEADER_KEY, &expected)])?;
                created = true;
            }
            // An empty database (one whose creation never got as far as
            // its header).
            None => return Err(JournalError::NotFound { path }),
            Some(found) if found.as_ref() == expected.as_slice() => {}
            // Any schema: `with_schemas` decides, knowing the older ones.
            Some(found) if found.first() == Some(&codec::FORMAT_VERSION) => {}
            Some(found) => {
                return Err(header_mismatch(&path, &found, schema.unwrap_or("")));
            }
        }
        let journal = Journal {
            store: Arc::new(store),
            path,
            storage: Arc::new(storage::Os),
            flush_thread: OnceLock::new(),
            torn_tail: opened.torn_tail,
            schemas: Schemas::default(),
        };
        if created {
            // The header reaches the disk before anything relies on it
            // (see `had_data` above).
            journal.flush()?;
        }
        Ok(journal)
    }

    /// Reads the header's schema and the epochs, and decides what
    /// `schema` (the reader's, `None` for any) and `older` make of them:
    /// see [`Journal::open_upgrading`].
    fn with_schemas(
        mut self,
        schema: Option<&str>,
        older: &[&str],
    ) -> Result<Journal, JournalError> {
        let header = self.schema()?;
        let upgrade_to = match schema {
            None => None,
            Some(wanted) if wanted == header => None,
            Some(wanted) if older.contains(&header.as_str()) => Some(wanted.to_owned()),
            Some(wanted) => {
                return Err(JournalError::SchemaMismatch {
                    path: self.path.clone(),
                    found: header,
                    expected: wanted.to_owned(),
                });
            }
        };
        let epochs = self.store.get(Tree::Meta, schemas::EPOCHS_KEY)?;
        self.schemas = Schemas::new(header, epochs.as_deref(), upgrade_to).map_err(|reason| {
            JournalError::BadHeader {
                path: self.path.clone(),
                reason: format!("the schema epochs: {reason}"),
            }
        })?;
        // Refused now rather than at the first read: an older schema whose
        // records are still in the timeline, with nothing to read it.
        if schema.is_some() {
            let first = self.first_seq()?;
            let unread = self
                .epochs()
                .into_iter()
                .find(|epoch| epoch.through >= first && !older.contains(&epoch.schema.as_str()));
            if let Some(epoch) = unread {
                return Err(JournalError::NoUpcaster {
                    path: self.path.clone(),
                    seq: epoch.through,
                    schema: epoch.schema,
                    current: self.current_schema(),
                });
            }
        }
        Ok(self)
    }
}

/// The header bytes: the record format version, then the schema string.
pub(super) fn header(schema: &str) -> Vec<u8> {
    let mut bytes = vec![codec::FORMAT_VERSION];
    bytes.extend_from_slice(schema.as_bytes());
    bytes
}

fn header_mismatch(path: &Path, found: &[u8], schema: &str) -> JournalError {
    let Some((&version, rest)) = found.split_first() else {
        return JournalError::BadHeader {
            path: path.to_path_buf(),
            reason: "empty header".into(),
        };
    };
    if version != codec::FORMAT_VERSION {
        return JournalError::UnsupportedFormat {
            path: path.to_path_buf(),
            found: version,
            expected: codec::FORMAT_VERSION,
        };
    }
    JournalError::SchemaMismatch {
        path: path.to_path_buf(),
        found: String::from_utf8_lossy(rest).into_owned(),
        expected: schema.to_owned(),
    }
}

/// The backend of the journal already in `path`. Without a backend's
/// files, opening would create a database, so their absence (or a sled
/// directory missing `conf` or `db`) is [`JournalError::NotFound`].
fn existing_backend(path: &Path) -> Result<Backend, JournalError> {
    let not_found = || JournalError::NotFound {
        path: path.to_path_buf(),
    };
    let backend = Backend::detect(path).ok_or_else(not_found)?;
    if backend == Backend::Sled && !(path.join("conf").is_file() && path.join("db").is_file()) {
        return Err(not_found());
    }
    Ok(backend)
}
