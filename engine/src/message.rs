//! The messages between the handles and the owner task: what a handle
//! sends ([`Command`]) and what the owner answers ([`Ack`], on a
//! [`Reply`]). They sit below both, so that the handle, the owner and the
//! batch import them and not each other.

use std::sync::Arc;

use solostate_commands::Event;
use solostate_persistence::codec::EncodedEvent;
use solostate_persistence::journal::Journal;
use solostate_queries::SnapshotOf;
use tokio::sync::oneshot;

use crate::error::{AckError, BackupError, RollbackError};
use crate::metrics::Stamp;

/// The acknowledgement of an applied event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct Ack {
    /// The event's sequence number: dense, starting at 1, one per applied
    /// event. Pass it to [`Reader::wait_for`](solostate_queries::Reader::wait_for) to read your own write.
    pub seq: u64,
}

/// Where the owner sends an event's outcome. The submitter may have
/// dropped its receiver; that is normal, so send results are ignored.
pub(crate) type Reply<E> = oneshot::Sender<Result<Ack, AckError<<E as Event>::Rejection>>>;

/// An event on its way to the owner, with where to answer it.
pub(crate) struct Submission<E: Event> {
    pub(crate) event: E,
    /// A durable engine's handle sends the event's journal bytes too,
    /// checked and encoded on the submitter's thread (`None` in memory),
    /// and the owner builds the batch's record from them.
    pub(crate) encoded: Option<EncodedEvent>,
    pub(crate) reply: Reply<E>,
    /// When the handle queued it: where the ack latency starts (feature
    /// `metrics`; nothing without it).
    pub(crate) submitted: Stamp,
}

/// A message to the owner task.
pub(crate) enum Command<E: Event> {
    /// Apply the event and answer on its reply.
    Submit(Submission<E>),
    /// Restore the state at `target` as a new step, and answer on `reply`.
    Rollback {
        target: u64,
        reply: oneshot::Sender<Result<Ack, RollbackError>>,
    },
    /// Hand over what a backup copies: the published snapshot once
    /// everything queued before this command is committed, and the
    /// journal to flush through its seq.
    Backup {
        reply: oneshot::Sender<Result<BackupSource<E>, BackupError>>,
    },
    /// Wake up: the gate is closed, finish and stop. The gate's flag is the
    /// real signal; this only interrupts the wait for the next command.
    Wake,
}

impl<E: Event> Command<E> {
    /// The event inside a command that could not be sent.
    pub(crate) fn into_event(self) -> E {
        match self {
            Command::Submit(submission) => submission.event,
            Command::Wake | Command::Rollback { .. } | Command::Backup { .. } => {
                unreachable!("only Submit commands carry events back")
            }
        }
    }
}

/// What the owner hands a backup: an immutable snapshot, which no later
/// event, rollback or prune can change, and the journal, held only long
/// enough to flush it through the snapshot's seq.
pub(crate) struct BackupSource<E: Event> {
    pub(crate) snapshot: Arc<SnapshotOf<E>>,
    pub(crate) journal: Arc<Journal>,
}
