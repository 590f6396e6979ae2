//! Error types, one per operation.
//!
//! Every error that stands for an event the engine did not take hands that
//! event back, so the caller can retry or log it. Messages are lowercase
//! and say what happened and what to do.

use std::fmt;

use solostate_commands::Event;

mod backup;

pub use backup::BackupError;

/// Why an acknowledgement did not come: the answer to a [`Pending`] ack.
///
/// [`Pending`]: crate::Pending
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError<R> {
    /// The event's `apply` rejected it. It was not applied, not journaled,
    /// and took no sequence number.
    #[error("event rejected: {0}")]
    Rejected(R),
    /// The event's `apply` panicked. The state is as it was before the
    /// event (its writes were undone from its write set), and the engine
    /// keeps serving.
    ///
    /// Also, rarely, the answer to events that applied but were not yet
    /// committed when restoring the state after a later event in their
    /// batch panicked (a `Hash`, `Eq`, `Clone` or `Drop` of the key or
    /// value type panicking while its write set was undone or dropped):
    /// the engine then goes back to the last published state, and the
    /// message says "not applied". Nothing of theirs was published.
    #[error("event rejected: apply panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The event applied once, but when the engine re-applied it to the
    /// same state it was rejected or panicked: `apply` is not
    /// deterministic, and the event was not applied.
    ///
    /// The engine no longer produces it. It used to re-apply a batch's
    /// accepted events to undo a later failure, and this is what a second
    /// run that failed gave; a failure is now undone from its own write set
    /// and nothing is re-applied. The variant stays so that matching on it
    /// keeps compiling.
    #[error(
        "event rejected: apply is not deterministic (it applied once, then failed on the same state: {message})"
    )]
    Diverged {
        /// What the second `apply` did.
        message: String,
    },
    /// Writing the event's batch to the journal failed, so the event was
    /// not acknowledged and the published state did not advance. The engine
    /// stops after such a failure. It takes the batch's record back out of
    /// the journal, so after a failed write or flush the event does not
    /// come back on restart; only if that removal fails too (sled refuses
    /// writes after a real I/O error) may part of a flush that failed
    /// midway have reached the disk, and the event reappear.
    #[error(
        "journal write failed, event not acknowledged (it may or may not survive a restart): {message}"
    )]
    Journal {
        /// The journal's error, with the batch's seqs and the path.
        message: String,
        /// The kind of the I/O error underneath, when it was one: for
        /// example [`std::io::ErrorKind::StorageFull`] for a full disk.
        io: Option<std::io::ErrorKind>,
    },
    /// The engine stopped before it answered, because its runtime shut
    /// down or the owner task failed. Whether the event applied is unknown;
    /// check a snapshot.
    #[error("engine stopped before answering; the event's outcome is unknown")]
    Aborted,
}

/// Why an event was refused before it was queued. The event took no seq,
/// nothing about it reached the owner, and the engine keeps serving; the
/// error that carries this hands the event back.
///
/// A durable engine ([`Builder::path`](crate::Builder::path)) encodes each
/// event on the submitter's side, as the journal will store it, and
/// decodes the bytes back, so that no event is acknowledged that the
/// journal cannot store or a restart could not read. (The bytes go to the
/// owner with the event, which builds the batch's record from them.) An
/// in-memory engine journals nothing and checks nothing.
///
/// The journal's codec is bincode 2 through serde. It is not
/// self-describing, so event types must not need `deserialize_any`: no
/// `#[serde(tag = "..")]` (internally or adjacently tagged enums), no
/// `#[serde(untagged)]`, no `#[serde(flatten)]`, and no self-describing
/// values such as `serde_json::Value`. Serde's default, externally tagged
/// enums are fine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The event's `Serialize` failed (serde's message), or asked for
    /// something bincode cannot write: a sequence or map of unknown
    /// length, which is what `#[serde(flatten)]` writes.
    #[error("it could not be encoded for the journal: {message}")]
    Encode {
        /// What serde or bincode said.
        message: String,
    },
    /// The event encodes to more than `limit` bytes, the most one journal
    /// record can hold: [`Engine::MAX_EVENT_BYTES`](crate::Engine::MAX_EVENT_BYTES),
    /// 256 MiB less 10 bytes of framing.
    #[error("it encodes to {size} bytes, over the {limit}-byte limit of one journal record")]
    TooLarge {
        /// The event's encoded size in bytes.
        size: usize,
        /// The most bytes one event may encode to.
        limit: usize,
    },
    /// The event encodes, but the bytes do not decode back as its type, so
    /// a restart could not read the journal: usually the type needs
    /// `deserialize_any` (see above), or its `Serialize` and `Deserialize`
    /// disagree.
    #[error("it encodes, but does not decode back, so a restart could not read it: {message}")]
    Unreadable {
        /// bincode's description, with the likely cause.
        message: String,
    },
    /// A `_blocking` method ([`Engine::submit_blocking`](crate::Engine::submit_blocking),
    /// [`Engine::send_blocking`](crate::Engine::send_blocking)) was called
    /// on a thread inside a tokio runtime that is not multi-threaded, where
    /// blocking would panic or deadlock the owner.
    #[error(
        "a blocking submit cannot wait on a thread of a current-thread tokio runtime; await submit or send there, or call from a plain thread"
    )]
    BlockingInRuntime,
}

impl Refusal {
    /// The refusal of an event that the journal's codec found unfit.
    pub(crate) fn from_codec(error: solostate_persistence::codec::EventEncodeError) -> Self {
        use solostate_persistence::codec::EventEncodeError as Codec;
        match error {
            Codec::TooLarge { size, limit } => Refusal::TooLarge { size, limit },
            Codec::Unreadable { message } => Refusal::Unreadable { message },
            Codec::Serialize { message } => Refusal::Encode { message },
            other => Refusal::Encode {
                message: other.to_string(),
            },
        }
    }
}

/// The error of [`Engine::send`](crate::Engine::send) and
/// [`Engine::send_blocking`](crate::Engine::send_blocking). The event is
/// handed back either way.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<E> {
    /// The engine no longer accepts events.
    #[error("engine closed: it no longer accepts events")]
    Closed(E),
    /// The event was refused before it was queued; see [`Refusal`].
    #[error("event refused before it was queued: {reason}")]
    Refused {
        /// The event, handed back.
        event: E,
        /// Why.
        reason: Refusal,
    },
}

impl<E> SendError<E> {
    /// The event that was not taken.
    pub fn into_inner(self) -> E {
        match self {
            SendError::Closed(event) | SendError::Refused { event, .. } => event,
        }
    }
}

impl<E> fmt::Debug for SendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Refused { reason, .. } => refused(f, reason),
        }
    }
}

/// The `Debug` of a `Refused` variant, which leaves out the event (`E`
/// need not be `Debug`).
fn refused(f: &mut fmt::Formatter<'_>, reason: &Refusal) -> fmt::Result {
    f.debug_struct("Refused")
        .field("reason", reason)
        .finish_non_exhaustive()
}

/// The error of [`Engine::try_submit`](crate::Engine::try_submit). The
/// event is handed back either way.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySubmitError<E> {
    /// The command queue is full: the engine is behind. Back off, or use
    /// [`Engine::send`](crate::Engine::send) to wait for room.
    #[error("engine queue full: retry later or await send")]
    Full(E),
    /// The engine no longer accepts events.
    #[error("engine closed: it no longer accepts events")]
    Closed(E),
    /// The event was refused before it was queued; see [`Refusal`].
    #[error("event refused before it was queued: {reason}")]
    Refused {
        /// The event, handed back.
        event: E,
        /// Why.
        reason: Refusal,
    },
}

impl<E> TrySubmitError<E> {
    /// The event that was not taken.
    pub fn into_inner(self) -> E {
        match self {
            TrySubmitError::Full(event)
            | TrySubmitError::Closed(event)
            | TrySubmitError::Refused { event, .. } => event,
        }
    }
}

impl<E> fmt::Debug for TrySubmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str("Full(..)"),
            TrySubmitError::Closed(_) => f.write_str("Closed(..)"),
            TrySubmitError::Refused { reason, .. } => refused(f, reason),
        }
    }
}

/// The error of [`Engine::submit`](crate::Engine::submit): the event was not
/// taken, or it was taken and not applied.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError<E: Event> {
    /// The engine no longer accepts events; the event is handed back.
    #[error("engine closed: it no longer accepts events")]
    Closed(E),
    /// The event was refused before it was queued (see [`Refusal`]); the
    /// event is handed back and the engine keeps serving.
    #[error("event refused before it was queued: {reason}")]
    Refused {
        /// The event, handed back.
        event: E,
        /// Why.
        reason: Refusal,
    },
    /// The event's `apply` rejected it; see [`AckError::Rejected`].
    #[error("event rejected: {0}")]
    Rejected(E::Rejection),
    /// The event's `apply` panicked; see [`AckError::Panicked`].
    #[error("event rejected: apply panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// `apply` is not deterministic; see [`AckError::Diverged`].
    #[error(
        "event rejected: apply is not deterministic (it applied once, then failed on the same state: {message})"
    )]
    Diverged {
        /// What the second `apply` did.
        message: String,
    },
    /// The journal write failed; see [`AckError::Journal`].
    #[error(
        "journal write failed, event not acknowledged (it may or may not survive a restart): {message}"
    )]
    Journal {
        /// The journal's error, with the batch's seqs and the path.
        message: String,
        /// The kind of the I/O error underneath, when it was one.
        io: Option<std::io::ErrorKind>,
    },
    /// The engine stopped before answering; see [`AckError::Aborted`].
    #[error("engine stopped before answering; the event's outcome is unknown")]
    Aborted,
}

impl<E: Event> fmt::Debug for SubmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::Closed(_) => f.write_str("Closed(..)"),
            SubmitError::Refused { reason, .. } => refused(f, reason),
            SubmitError::Rejected(reason) => f.debug_tuple("Rejected").field(reason).finish(),
            SubmitError::Panicked { message } => f
                .debug_struct("Panicked")
                .field("message", message)
                .finish(),
            SubmitError::Diverged { message } => f
                .debug_struct("Diverged")
                .field("message", message)
                .finish(),
            SubmitError::Journal { message, io } => f
                .debug_struct("Journal")
                .field("message", message)
                .field("io", io)
                .finish(),
            SubmitError::Aborted => f.write_str("Aborted"),
        }
    }
}

impl<E: Event> From<AckError<E::Rejection>> for SubmitError<E> {
    fn from(error: AckError<E::Rejection>) -> Self {
        match error {
            AckError::Rejected(reason) => SubmitError::Rejected(reason),
            AckError::Panicked { message } => SubmitError::Panicked { message },
            AckError::Diverged { message } => SubmitError::Diverged { message },
            AckError::Journal { message, io } => SubmitError::Journal { message, io },
            AckError::Aborted => SubmitError::Aborted,
        }
    }
}

impl<E: Event> From<SendError<E>> for SubmitError<E> {
    fn from(error: SendError<E>) -> Self {
        match error {
            SendError::Closed(event) => SubmitError::Closed(event),
            SendError::Refused { event, reason } => SubmitError::Refused { event, reason },
        }
    }
}

/// What kind of failure an [`OpenError::Journal`] or
/// [`OpenError::Checkpoint`] is, so that a caller can decide what to do
/// without parsing the message: wait for another process
/// ([`AlreadyOpen`](Self::AlreadyOpen)), use the right build or event type
/// ([`Incompatible`](Self::Incompatible)), restore from a backup or let
/// recovery work around the damage ([`Damaged`](Self::Damaged), see
/// [`Builder::on_damaged_journal`](crate::Builder::on_damaged_journal) and
/// [`Builder::recover_to_prefix`](crate::Builder::recover_to_prefix)), or
/// fix the disk ([`Io`](Self::Io)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenCause {
    /// Another process (or another engine in this one) has the journal
    /// open.
    AlreadyOpen,
    /// The data is intact, but this build or this event type cannot read
    /// it: another schema, another format version, an event or state
    /// encoding that no longer decodes. Nothing is damaged; nothing should
    /// be moved aside or cut.
    Incompatible,
    /// The bytes on disk are not what was written, or are missing: a
    /// record or header that fails its checks, records that do not follow
    /// each other, a log sled cannot recover (an error or a panic in
    /// sled's own recovery). `seq` is the first damaged seq, when one is
    /// known.
    Damaged {
        /// The first damaged (or missing) seq, if known.
        seq: Option<u64>,
    },
    /// An I/O error of this kind: for example
    /// [`std::io::ErrorKind::PermissionDenied`] or
    /// [`std::io::ErrorKind::StorageFull`].
    Io(std::io::ErrorKind),
    /// Recovery did not finish: its blocking task panicked (a bug, or a
    /// user type's `Deserialize` panicking) or was cancelled because the
    /// runtime shut down.
    Aborted,
    /// Anything else; the message says what.
    Other,
}

/// The error of [`Builder::open`](crate::Builder::open).
///
/// Opening never panics on what it finds on disk, sled's own panics
/// included: everything is one of these. [`OpenError::cause`] says what
/// kind of journal or checkpoint failure it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A builder setting is out of range.
    #[error("invalid setting {setting}: {reason}")]
    InvalidConfig {
        /// The builder method's name.
        setting: &'static str,
        /// What is wrong with the value.
        reason: &'static str,
    },
    /// The journal could not be opened or recovered: locked by another
    /// process, written for another schema or format (incompatible),
    /// damaged (including sled failing or panicking on its own files), or
    /// an I/O error; `cause` says which. The message names the path and,
    /// for a bad record, the seq. When the journal is damaged and a
    /// checkpoint verifies, the message also says that
    /// [`Builder::on_damaged_journal`](crate::Builder::on_damaged_journal)
    /// would open from that checkpoint.
    #[error("cannot open journal: {message}")]
    Journal {
        /// The journal's error, with its path.
        message: String,
        /// What kind of failure it is.
        cause: OpenCause,
    },
    /// The checkpoint directory could not be read or written, or its
    /// checkpoints are for another schema (a damaged checkpoint is not
    /// this: opening passes over it, reports it in
    /// [`Recovery::skipped_checkpoints`](crate::Recovery::skipped_checkpoints),
    /// and falls back to an older one or the journal).
    #[error("cannot open checkpoints: {message}")]
    Checkpoint {
        /// The checkpoint store's error, with its path.
        message: String,
        /// What kind of failure it is.
        cause: OpenCause,
    },
    /// The journal ends before the newest checkpoint that verifies: it
    /// lost events that were flushed before that checkpoint was written
    /// (a journal deleted, replaced by an older copy, or cut short by a
    /// power cut). No checkpoint is deleted or changed for this (a missing
    /// journal is created anew, empty, and stays behind). [`Builder::on_damaged_journal`](crate::Builder::on_damaged_journal)
    /// with [`DamagedJournal::MoveAside`](crate::DamagedJournal::MoveAside)
    /// opens from the checkpoint instead, keeping the journal aside.
    #[error(
        "journal {} ends at seq {journal_last}, before the checkpoint at seq {checkpoint}: it lost events it had flushed; nothing was deleted. Builder::on_damaged_journal(DamagedJournal::MoveAside) opens from the checkpoint and keeps this journal aside",
        path.display()
    )]
    JournalBehind {
        /// The journal's directory.
        path: std::path::PathBuf,
        /// The journal's last seq.
        journal_last: u64,
        /// The seq of the newest checkpoint that verifies.
        checkpoint: u64,
    },
    /// A journaled event did not re-apply during recovery: `apply` is not
    /// deterministic, or the event type's rules changed.
    #[error("recovery failed: journaled event at seq {seq} did not re-apply: {message}")]
    Replay {
        /// The event's sequence number.
        seq: u64,
        /// Why it failed.
        message: String,
    },
    /// The determinism guard tripped during recovery: the state replayed
    /// up to `seq` does not hash to what the engine recorded when it was
    /// live at that seq. The events are the same, so `apply` is not
    /// deterministic or its rules changed since they were journaled (see
    /// [`Builder::state_hash_every`](crate::Builder::state_hash_every)).
    /// `seq` is the first checked seq that differs; the divergence began
    /// after the previous check.
    #[error(
        "recovery failed: the replayed state at seq {seq} hashes to {actual:#018x}, but the journal recorded {expected:#018x} (apply is not deterministic, or its rules changed)"
    )]
    Diverged {
        /// The first checked seq whose hashes differ.
        seq: u64,
        /// The hash recorded while the engine was live.
        expected: u64,
        /// The hash of the replayed state.
        actual: u64,
    },
    /// `open` was called outside a tokio runtime, so there is nowhere to
    /// run the owner task.
    #[error("no tokio runtime: call open from inside a tokio runtime")]
    NoRuntime,
}

impl OpenError {
    /// What kind of journal or checkpoint failure this is:
    /// `Some` for [`OpenError::Journal`] and [`OpenError::Checkpoint`],
    /// [`OpenCause::Damaged`] at the first seq the journal lost for
    /// [`OpenError::JournalBehind`], and `None` for the rest.
    pub fn cause(&self) -> Option<OpenCause> {
        match self {
            OpenError::Journal { cause, .. } | OpenError::Checkpoint { cause, .. } => Some(*cause),
            OpenError::JournalBehind { journal_last, .. } => Some(OpenCause::Damaged {
                seq: Some(journal_last + 1),
            }),
            _ => None,
        }
    }
}

/// The error of [`Engine::shutdown`](crate::Engine::shutdown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The owner task ended without finishing its work: its runtime shut
    /// down or it failed outside any `apply`. Events whose acks are pending
    /// get [`AckError::Aborted`].
    #[error("owner task ended abnormally (runtime shut down or internal failure)")]
    OwnerFailed,
    /// A journal write or flush failed and the engine stopped; events not
    /// yet acknowledged got [`AckError::Journal`].
    #[error("engine stopped after a journal failure: {message}")]
    Journal {
        /// The journal's error, with the seqs being written and the path.
        message: String,
        /// The kind of the I/O error underneath, when it was one: for
        /// example [`std::io::ErrorKind::StorageFull`] for a full disk.
        io: Option<std::io::ErrorKind>,
    },
}

/// Why [`Engine::as_of`](crate::Engine::as_of) could not produce the state
/// at a seq.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AsOfError {
    /// The seq has not been published yet.
    #[error("no state at seq {seq} yet: the last published seq is {last}")]
    NotYet {
        /// The seq asked for.
        seq: u64,
        /// The last published seq.
        last: u64,
    },
    /// The seq was undone by a rollback: its events were moved to the
    /// journal's archive and are no longer part of the history.
    #[error("seq {seq} was rolled back; its events are in the journal's archive")]
    RolledBack {
        /// The seq asked for.
        seq: u64,
    },
    /// An in-memory engine keeps only its as-of window, and the seq is
    /// older than it.
    #[error(
        "seq {seq} is older than the as-of window (oldest kept: {oldest}); widen it with Builder::as_of_window or open the engine with a path"
    )]
    Forgotten {
        /// The seq asked for.
        seq: u64,
        /// The oldest seq the window still holds.
        oldest: u64,
    },
    /// The journal before `first` was pruned (compaction behind the oldest
    /// kept checkpoint, [`Retention::SinceOldestCheckpoint`]), and no kept
    /// checkpoint holds the state at `seq`.
    ///
    /// [`Retention::SinceOldestCheckpoint`]: crate::Retention::SinceOldestCheckpoint
    #[error(
        "seq {seq} is before the journal's first retained seq {first} (compacted) and no checkpoint holds it"
    )]
    Pruned {
        /// The seq asked for.
        seq: u64,
        /// The journal's first retained seq.
        first: u64,
    },
    /// Rebuilding the state from checkpoints and the journal failed (the
    /// message names the seq and the path), re-applying a journaled event
    /// failed, or the rebuilt state failed the determinism guard's check
    /// (see [`Builder::state_hash_every`](crate::Builder::state_hash_every)).
    #[error("rebuilding the state at seq {seq} failed: {message}")]
    Rebuild {
        /// The seq asked for.
        seq: u64,
        /// What went wrong.
        message: String,
    },
    /// The engine has stopped and closed its journal.
    #[error("the engine has stopped; its history is closed")]
    Closed,
}

/// Why [`Engine::rollback_to`](crate::Engine::rollback_to) did not roll
/// back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// The state at the target seq is not available; nothing changed.
    #[error("cannot roll back: {0}")]
    Unavailable(AsOfError),
    /// Writing the rollback to the journal or the checkpoints failed. The
    /// engine stops, as after any journal failure; on reopen the journal
    /// shows either the whole rollback or none of it.
    #[error("rollback failed to reach the journal: {message}")]
    Journal {
        /// The storage error, with the rollback's target and the path.
        message: String,
        /// The kind of the I/O error underneath, when it was one.
        io: Option<std::io::ErrorKind>,
    },
    /// The engine no longer accepts commands.
    #[error("engine closed: it no longer accepts commands")]
    Closed,
}
