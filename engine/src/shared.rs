//! What the handles and the owner task share: the intake gate, the
//! counters, what opening found, and why the owner stopped. Below the
//! handle, the owner and the threads beside it (flusher, checkpointer),
//! which all hold an `Arc<Shared>`.

use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use solostate_persistence::journal::JournalError;

use crate::error::{AckError, RollbackError};
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::recovery::Recovery;
use crate::stats::Counters;

/// What the handles share with the owner task: no state, only the intake
/// gate, the counters and how the owner ended.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) gate: Gate,
    pub(crate) counters: Counters,
    /// Set by the owner when it returns normally, so that `shutdown` can
    /// tell a clean stop from a task that was torn down.
    pub(crate) clean_exit: AtomicBool,
    /// Why the owner stopped early: a journal write or flush failed.
    pub(crate) failure: OnceLock<JournalFailure>,
    /// What opening found and did.
    pub(crate) recovery: Recovery,
}

impl Shared {
    pub(crate) fn starting_at(last_seq: u64, recovery: Recovery, metrics: Metrics) -> Self {
        Shared {
            gate: Gate::default(),
            counters: Counters::starting_at(last_seq, metrics),
            clean_exit: AtomicBool::new(false),
            failure: OnceLock::new(),
            recovery,
        }
    }
}

/// Why the owner stopped: a journal write or flush failed. Kept so that
/// every later command, and `shutdown`, gets the same answer.
#[derive(Debug, Clone)]
pub(crate) struct JournalFailure {
    /// What was being written (the seqs) and the journal's error (with
    /// its path).
    pub(crate) message: String,
    /// The I/O error's kind, when the failure was one.
    pub(crate) io: Option<std::io::ErrorKind>,
}

impl JournalFailure {
    pub(crate) fn new(what: impl std::fmt::Display, error: &JournalError) -> Self {
        JournalFailure {
            message: format!("{what}: {error}"),
            io: error.io_kind(),
        }
    }

    pub(crate) fn ack_error<R>(&self) -> AckError<R> {
        AckError::Journal {
            message: self.message.clone(),
            io: self.io,
        }
    }

    pub(crate) fn rollback_error(&self) -> RollbackError {
        RollbackError::Journal {
            message: self.message.clone(),
            io: self.io,
        }
    }
}
