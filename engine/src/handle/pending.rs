//! [`Pending`], an ack on its way, and how the `_blocking` calls may
//! block the thread they run on ([`Site`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use solostate_commands::Event;
use tokio::sync::oneshot;

use crate::error::AckError;
use crate::message::Ack;

/// An acknowledgement on its way: a future that resolves when the owner has
/// applied (or rejected) the event and published the snapshot that holds
/// it.
///
/// Dropping it does not cancel the event; the ack is simply discarded.
#[must_use = "dropping a Pending discards the ack; the event is still applied"]
pub struct Pending<E: Event> {
    rx: oneshot::Receiver<Result<Ack, AckError<E::Rejection>>>,
}

impl<E: Event> std::fmt::Debug for Pending<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl<E: Event> Future for Pending<E> {
    type Output = Result<Ack, AckError<E::Rejection>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(AckError::Aborted)))
    }
}

impl<E: Event> Pending<E> {
    /// The ack that `rx` will carry.
    pub(super) fn new(rx: oneshot::Receiver<Result<Ack, AckError<E::Rejection>>>) -> Self {
        Pending { rx }
    }

    /// Blocks the current thread until the ack arrives.
    ///
    /// On a thread of a multi-threaded tokio runtime it waits inside
    /// [`tokio::task::block_in_place`], so the runtime's other tasks (the
    /// owner among them) keep running.
    ///
    /// # Errors
    ///
    /// As awaiting the future: see [`AckError`].
    ///
    /// # Panics
    ///
    /// If the ack is not there yet and the thread runs a current-thread
    /// tokio runtime (blocking would stop the owner; tokio panics), or a
    /// `LocalSet` on a multi-threaded runtime's `block_on` thread. Await
    /// the `Pending` there.
    pub fn wait_blocking(self) -> Result<Ack, AckError<E::Rejection>> {
        self.wait_at(blocking_site())
    }

    pub(super) fn wait_at(mut self, site: Site) -> Result<Ack, AckError<E::Rejection>> {
        match self.rx.try_recv() {
            Ok(answer) => return answer,
            Err(oneshot::error::TryRecvError::Closed) => return Err(AckError::Aborted),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        let rx = self.rx;
        site.block(move || rx.blocking_recv())
            .unwrap_or(Err(AckError::Aborted))
    }
}

/// Where a `_blocking` call runs, as far as blocking the thread goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Site {
    /// Outside any tokio runtime: block freely.
    Plain,
    /// Inside a multi-threaded runtime (a worker, its `block_on` thread or
    /// a `spawn_blocking` thread): block inside `block_in_place`, which
    /// hands the worker's other tasks to another thread first.
    InPlace,
    /// Inside a runtime of another flavor: blocking on its own thread
    /// would stop the owner (tokio panics rather than deadlock), and a
    /// `spawn_blocking` thread cannot be told apart from it through
    /// tokio's API, so nothing is queued that would need to wait.
    Refuse,
}

/// Decides, before anything is queued, how a `_blocking` call may wait.
pub(super) fn blocking_site() -> Site {
    match tokio::runtime::Handle::try_current() {
        Err(_) => Site::Plain,
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            Site::InPlace
        }
        Ok(_) => Site::Refuse,
    }
}

impl Site {
    /// Runs `wait`, which blocks, as this site allows. `Refuse` runs it
    /// as it is (tokio then panics where blocking is not allowed).
    pub(super) fn block<T>(self, wait: impl FnOnce() -> T) -> T {
        match self {
            Site::InPlace => tokio::task::block_in_place(wait),
            Site::Plain | Site::Refuse => wait(),
        }
    }
}
