//! Admission control: how `shutdown` stops intake without losing an event.
//!
//! A flume channel cannot be closed from the receiving side while senders
//! still exist, and an event pushed just before the receiver is dropped
//! would sit in the channel unanswered. So every send passes through this
//! gate: it counts itself in, checks the closed flag, and counts itself out
//! when the send is done. After `close`, the owner waits until the count is
//! zero; from then on no event can enter, and one last drain empties the
//! channel for good.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The closed flag and the count of sends in progress.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    closed: AtomicBool,
    in_flight: AtomicUsize,
}

/// A send in progress; counted out when dropped, even if the send future
/// is cancelled.
#[derive(Debug)]
pub(crate) struct Pass<'a>(&'a Gate);

impl Gate {
    /// Admits a send, or returns `None` once the gate is closed.
    pub(crate) fn enter(&self) -> Option<Pass<'_>> {
        // SeqCst pairs with `close` + `is_drained`: either this send sees
        // the flag, or the owner sees this send in the count.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Pass(self))
    }

    /// Stops admitting sends. Idempotent.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Whether `close` has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Whether the gate is closed and no admitted send is still running:
    /// from then on, nothing new can reach the channel.
    pub(crate) fn is_drained(&self) -> bool {
        self.is_closed() && self.in_flight.load(Ordering::SeqCst) == 0
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_gate_refuses_and_drains_after_passes_end() {
        let gate = Gate::default();
        let pass = gate.enter().expect("open gate admits");
        gate.close();
        assert!(gate.enter().is_none());
        assert!(!gate.is_drained(), "a send is still in progress");
        drop(pass);
        assert!(gate.is_drained());
    }
}
