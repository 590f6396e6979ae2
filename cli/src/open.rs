//! Opening an engine's directory for the tool: read-only, refused while
//! an engine holds it.
//!
//! An engine holds its journal's lock for as long as it is open (the
//! segment log's `journal/lock`, taken with an exclusive `flock`; sled's
//! own lock on its directory), and that lock is how a second engine on
//! the same path is refused with "already open". The tool takes the same
//! lock through [`Journal::open_read_only`], so a directory an engine
//! holds is refused the same way ([`CliError::Locked`]), and no engine can
//! open the directory while the tool reads it.

use std::path::{Path, PathBuf};

use solostate::persistence::checkpoint::Checkpoints;
use solostate::persistence::journal::{Backend, Journal, JournalError};
use solostate::persistence::replay::Layout;

use crate::error::{CliError, Failure, journal_failure};
use crate::typed::Typed;

/// sled's page cache for a sled journal the tool opens: small, since the
/// tool reads each record once.
const SLED_CACHE_BYTES: u64 = 16 << 20;

/// An engine's directory, opened read-only.
pub(crate) struct Opened {
    /// The directory given.
    pub(crate) root: PathBuf,
    /// Where its journal and checkpoints are.
    pub(crate) layout: Layout,
    /// The journal, opened read-only (lock held).
    pub(crate) journal: Journal,
    /// The schema in the journal's header.
    pub(crate) schema: String,
    /// The checkpoint directory, if there is one.
    pub(crate) checkpoints: Option<Checkpoints>,
}

/// Opens `root` read-only. `allow_sled_writes` is the operator's consent
/// to open a sled journal, which sled cannot do without writing. With
/// `typed`, its upcasters read the older schemas' records and checkpoints.
///
/// # Errors
///
/// [`Failure::Damage`] when the journal is too damaged to open (a bad
/// segment or header: named by path); [`Failure::Error`] with
/// [`CliError::Locked`], [`CliError::NotFound`],
/// [`CliError::SledNeedsConsent`], or the journal's error.
pub(crate) fn open(
    root: &Path,
    allow_sled_writes: bool,
    typed: Option<&dyn Typed>,
) -> Result<Opened, Failure> {
    let layout = Layout::new(root);
    let not_found = || CliError::NotFound {
        path: root.to_path_buf(),
        journal: layout.journal.clone(),
    };
    match Backend::detect(&layout.journal) {
        None => return Err(not_found().into()),
        Some(Backend::Sled) if !allow_sled_writes => {
            return Err(CliError::SledNeedsConsent {
                path: layout.journal.clone(),
            }
            .into());
        }
        Some(_) => {}
    }
    let journal = match Journal::open_read_only(&layout.journal, None, &[], SLED_CACHE_BYTES) {
        Ok(journal) => journal,
        Err(JournalError::AlreadyOpen { .. }) => {
            return Err(CliError::Locked {
                path: root.to_path_buf(),
            }
            .into());
        }
        Err(JournalError::NotFound { .. }) => return Err(not_found().into()),
        Err(error) => return Err(journal_failure(error, &layout.journal)),
    };
    let schema = journal
        .schema()
        .map_err(|error| journal_failure(error, &layout.journal))?;
    let checkpoints = if layout.checkpoints.is_dir() {
        Some(Checkpoints::open_read_only(&layout.checkpoints, &schema)?)
    } else {
        None
    };
    let mut opened = Opened {
        root: root.to_path_buf(),
        layout,
        journal,
        schema,
        checkpoints,
    };
    if let Some(typed) = typed {
        typed.attach(&mut opened);
    }
    Ok(opened)
}

/// What recovery set aside beside the journal and checkpoints, kept and
/// never deleted: journals moved aside (`journal.damaged-*`,
/// `journal.behind-checkpoint-*`), and checkpoint files renamed out of use
/// (anything in `checkpoints/` that starts like a checkpoint but is not
/// one or an unfinished `.tmp`). Sorted.
pub(crate) fn set_aside(opened: &Opened) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&opened.root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("journal.") {
            found.push(entry.path());
        }
    }
    if opened.layout.checkpoints.is_dir() {
        for entry in std::fs::read_dir(&opened.layout.checkpoints)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let checkpoint = name.ends_with(".ckpt") || name.ends_with(".tmp");
            if name.starts_with("ckpt-") && !checkpoint {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}
