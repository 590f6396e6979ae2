//! The periodic flush of [`Durability::Every`](crate::Durability::Every).
//!
//! It runs on a thread of its own rather than as a tokio task on a tokio
//! timer: a runtime built without timers (`enable_time` off) would
//! otherwise accept the engine, panic in the flush task, and never flush
//! an acknowledged event. A plain thread needs nothing from the runtime,
//! and the flush it makes is a blocking one anyway.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use solostate_persistence::journal::Journal;

use crate::metrics::Stamp;
use crate::shared::JournalFailure;
use crate::shared::Shared;

/// The running flusher. Dropping it stops the thread at once (it is
/// waiting on the other end of `stop`), so an engine with a long interval
/// leaves no thread behind when it closes.
#[derive(Debug)]
pub(crate) struct Flusher {
    /// Never sent on: its drop is the signal.
    _stop: mpsc::Sender<()>,
}

/// Starts flushing `journal` every `interval`, until the returned
/// [`Flusher`] is dropped or the journal is gone. A failed flush records
/// the engine's failure and closes its intake, as a failed batch does.
///
/// # Errors
///
/// The operating system's error when the thread cannot be started.
pub(crate) fn spawn(
    journal: Weak<Journal>,
    interval: Duration,
    shared: Arc<Shared>,
) -> std::io::Result<Flusher> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("solostate-flusher".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let Some(journal) = journal.upgrade() else {
                    return;
                };
                let flushing = Stamp::now();
                if let Err(error) = journal.flush() {
                    tracing::error!(%error, "periodic journal flush failed; closing the engine");
                    let _ = shared
                        .failure
                        .set(JournalFailure::new("periodic journal flush", &error));
                    shared.gate.close();
                    return;
                }
                shared.counters.metrics.flushed(flushing);
            }
        })?;
    Ok(Flusher { _stop: stop })
}
