//! What opening decided, for [`Engine::recovery`](crate::Engine::recovery),
//! and the choice a caller makes about a damaged journal.

use std::path::PathBuf;

use solostate_persistence::journal::{Epoch, TornTail};

use crate::error::OpenCause;

/// What opening a persistent engine found and did, from
/// [`Engine::recovery`](crate::Engine::recovery).
///
/// Everything the engine decided on its own while opening is here, not
/// only in `tracing` (where it is logged too, as warnings and errors for
/// anything cut, skipped, moved or removed): a torn tail cut, checkpoints
/// passed over or set aside, a quarantine, a journal moved aside, stray
/// files and state hashes removed. [`Recovery::is_clean`] says whether
/// there was anything to decide. Nothing opening sets aside is deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The seq of the checkpoint the state was loaded from, if any.
    pub checkpoint: Option<u64>,
    /// Journal steps replayed after the checkpoint.
    pub replayed: u64,
    /// The seq the engine resumed from.
    pub last_seq: u64,
    /// The first seq of a torn last record that was removed: a write cut
    /// short by a crash, never acknowledged under `Durability::Always`.
    pub torn_tail: Option<u64>,
    /// What the segment log cut off the end of its last segment: bytes
    /// after the last whole, verifying frame, that is, a write that never
    /// finished syncing (a crash or power cut in the middle of it), so
    /// nothing in it was acknowledged under `Durability::Always`. Always
    /// `None` on [`JournalBackend::Sled`](crate::JournalBackend::Sled).
    pub cut_segment_tail: Option<TornTail>,
    /// Checkpoints that failed to verify and were passed over (newest
    /// first), with why. They stay where they are, unless they are also
    /// in [`Recovery::checkpoints_set_aside`].
    pub skipped_checkpoints: Vec<SkippedCheckpoint>,
    /// When [`Builder::recover_to_prefix`](crate::Builder::recover_to_prefix)
    /// was set and the journal had a damaged record: its seq. Every record
    /// from it on was moved to the journal's quarantine tree, and the engine
    /// resumed from the seq before it.
    pub quarantined_from: Option<u64>,
    /// When [`Builder::on_damaged_journal`](crate::Builder::on_damaged_journal)
    /// was [`DamagedJournal::MoveAside`] and the journal could not be used:
    /// where it went, why, and the checkpoint the engine resumed from.
    pub journal_moved_aside: Option<MovedJournal>,
    /// Checkpoints renamed out of use (kept beside the others, under a
    /// name `ckpt-….ckpt.{why}-{time}`) because they lie after the seq the
    /// journal resumes from, whose seqs are about to be written anew.
    pub checkpoints_set_aside: Vec<SetAsideCheckpoint>,
    /// Unfinished checkpoint files (`ckpt-*.tmp`: a crash while one was
    /// written, never renamed into place, so never a checkpoint) that were
    /// removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Determinism-guard state hashes recorded for seqs after the
    /// journal's end (their events were lost with a torn or unflushed
    /// tail) that were removed, so that the events written at those seqs
    /// next are not checked against them.
    pub removed_state_hashes: u64,
    /// The older schemas whose records (and checkpoints) were read through
    /// the upcasters registered with
    /// [`Builder::upcast_from`](crate::Builder::upcast_from), oldest
    /// first, each with the last seq written under it. When the journal's
    /// header still names the last of them, the switch to this engine's
    /// schema is written with the first new record (see
    /// `solostate_persistence::upcast`). The caller's choice, not a
    /// decision, so it leaves [`Recovery::is_clean`] true.
    pub upcast: Vec<Epoch>,
}

impl Recovery {
    /// Whether opening had nothing to decide: no torn tail or cut segment
    /// tail, no checkpoint
    /// passed over or set aside, no quarantine, no journal moved aside, no
    /// stray file or state hash removed. A monitoring hook can alert on
    /// `!is_clean()`.
    pub fn is_clean(&self) -> bool {
        self.torn_tail.is_none()
            && self.cut_segment_tail.is_none()
            && self.skipped_checkpoints.is_empty()
            && self.quarantined_from.is_none()
            && self.journal_moved_aside.is_none()
            && self.checkpoints_set_aside.is_empty()
            && self.removed_temp_files.is_empty()
            && self.removed_state_hashes == 0
    }
}

/// A checkpoint that opening passed over because it did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedCheckpoint {
    /// Its seq (from its file name).
    pub seq: u64,
    /// Its file.
    pub path: PathBuf,
    /// [`OpenCause::Damaged`] when its bytes changed,
    /// [`OpenCause::Incompatible`] when it is intact but in a format or
    /// encoding this build cannot read, [`OpenCause::Io`] when it could
    /// not be read.
    pub cause: OpenCause,
    /// What failed, with the path.
    pub message: String,
}

/// Where a journal that could not be used went, and what the engine did
/// instead: [`Recovery::journal_moved_aside`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MovedJournal {
    /// The journal's directory now: `journal.{damaged|behind-checkpoint}-{unix
    /// seconds}` beside where it was. Everything in it is as it was found.
    pub to: PathBuf,
    /// The checkpoint the engine resumed from. A fresh journal continues
    /// after it: the next event takes `checkpoint + 1`, and reading the
    /// journal before that reports the seqs as pruned (their state is the
    /// checkpoint's; their events are in the journal moved aside, which
    /// the fresh journal names for good:
    /// [`Journal::resumed`](solostate_persistence::journal::Journal::resumed)).
    pub checkpoint: u64,
    /// Why the journal could not be used.
    pub why: JournalUnusable,
}

/// Why a journal was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalUnusable {
    /// It could not be opened or its end could not be read: sled failed
    /// or panicked on its files, its header is damaged, or its last
    /// record is.
    Unreadable {
        /// What kind of failure (always [`OpenCause::Damaged`] or an I/O
        /// error reading damaged files).
        cause: OpenCause,
        /// The journal's error, with the path.
        message: String,
    },
    /// It ended before the checkpoint: it lost events it had flushed.
    Behind {
        /// The journal's last seq.
        journal_last: u64,
    },
}

/// A checkpoint that opening renamed out of use:
/// [`Recovery::checkpoints_set_aside`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetAsideCheckpoint {
    /// Its seq.
    pub seq: u64,
    /// The file now.
    pub to: PathBuf,
    /// Why.
    pub why: SetAsideWhy,
}

/// Why a checkpoint was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetAsideWhy {
    /// It lies after the seq the journal resumes from (it did not verify,
    /// or it is newer than a journal that was moved aside), so the seqs it
    /// describes are written anew and it must never be loaded for them.
    AfterJournalEnd {
        /// The seq the journal resumes from.
        resume_from: u64,
    },
    /// A quarantine from seq `from` took the seqs it describes out of the
    /// timeline.
    AfterQuarantine {
        /// The first quarantined seq.
        from: u64,
    },
}

/// What [`Builder::open`](crate::Builder::open) does when the journal
/// cannot be used but a checkpoint verifies: set with
/// [`Builder::on_damaged_journal`](crate::Builder::on_damaged_journal).
///
/// "Cannot be used" means one of: sled fails or panics opening it, its
/// header is damaged, its last record is damaged (so where it ends is
/// unknown), or it ends before the newest checkpoint that verifies
/// ([`OpenError::JournalBehind`](crate::OpenError::JournalBehind)). An
/// incompatible journal (another schema or format), one another process
/// holds, or an I/O error such as a full disk or a permission is never
/// moved aside: its data is fine. Damage in the middle of a journal whose
/// end reads is [`Builder::recover_to_prefix`](crate::Builder::recover_to_prefix)'s
/// business, which keeps more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamagedJournal {
    /// Fail the open with [`OpenError::Journal`](crate::OpenError::Journal)
    /// (cause [`OpenCause::Damaged`]) or
    /// [`OpenError::JournalBehind`](crate::OpenError::JournalBehind), each
    /// naming the path and saying this option exists. Nothing is changed.
    /// The default: only the application knows whether resuming from a
    /// checkpoint (and so losing the events after it) is acceptable.
    #[default]
    Fail,
    /// Move the journal aside (renamed to `journal.damaged-{time}` or
    /// `journal.behind-checkpoint-{time}`, kept, never deleted, the rename
    /// made durable), start a fresh journal that continues after the
    /// newest checkpoint that verifies, open from that checkpoint, and
    /// report it in [`Recovery::journal_moved_aside`]. The events after
    /// the checkpoint that the journal held, if any could be read, are
    /// not in the state; they are in the journal moved aside. With no
    /// checkpoint that verifies, the open fails as with `Fail`.
    MoveAside,
}
