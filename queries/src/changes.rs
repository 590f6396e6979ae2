//! The change feed: committed events, in order, for subscribers.

use std::sync::Arc;

use tokio::sync::broadcast;

/// The events of one committed batch, shared by every subscriber.
///
/// The owner publishes one of these per batch (not per event), so a
/// subscriber costs one broadcast slot per batch and no event is copied.
///
/// A rollback is a step of its own: one sequence number, no events, and
/// [`CommittedBatch::rollback_target`] saying which earlier state it
/// restored.
#[derive(Debug)]
pub struct CommittedBatch<E> {
    first_seq: u64,
    events: Vec<E>,
    rollback_target: Option<u64>,
}

impl<E> CommittedBatch<E> {
    /// Wraps `events`, whose sequence numbers are `first_seq`,
    /// `first_seq + 1`, and so on.
    pub fn new(first_seq: u64, events: Vec<E>) -> Self {
        CommittedBatch {
            first_seq,
            events,
            rollback_target: None,
        }
    }

    /// The rollback committed at `seq`, which restored the state at
    /// `target`.
    pub fn rollback(seq: u64, target: u64) -> Self {
        CommittedBatch {
            first_seq: seq,
            events: Vec::new(),
            rollback_target: Some(target),
        }
    }

    /// The sequence number of the first event (of the rollback step, for a
    /// rollback).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The sequence number of the last step in this batch.
    pub fn last_seq(&self) -> u64 {
        match self.rollback_target {
            Some(_) => self.first_seq,
            None => (self.first_seq + self.events.len() as u64).saturating_sub(1),
        }
    }

    /// The events in sequence order (none for a rollback).
    pub fn events(&self) -> &[E] {
        &self.events
    }

    /// For a rollback step, the seq whose state it restored.
    pub fn rollback_target(&self) -> Option<u64> {
        self.rollback_target
    }
}

/// One committed event as seen by a change-feed subscriber.
///
/// It points into a shared [`CommittedBatch`], so receiving it copies
/// nothing; clone the event out if you need to keep it apart.
#[derive(Debug)]
pub struct Change<E> {
    batch: Arc<CommittedBatch<E>>,
    index: usize,
}

impl<E> Change<E> {
    /// The event at `index` in `batch`, or `None` past its end (and for a
    /// rollback, which has no events). The engine builds these for
    /// events it reads back from its history (catch-up subscriptions), so
    /// that a subscriber handles historical and live events alike.
    pub fn at(batch: Arc<CommittedBatch<E>>, index: usize) -> Option<Self> {
        (index < batch.events.len()).then_some(Change { batch, index })
    }

    /// The event's sequence number.
    pub fn seq(&self) -> u64 {
        self.batch.first_seq + self.index as u64
    }

    /// The committed event.
    pub fn event(&self) -> &E {
        &self.batch.events[self.index]
    }
}

impl<E> Clone for Change<E> {
    fn clone(&self) -> Self {
        Change {
            batch: Arc::clone(&self.batch),
            index: self.index,
        }
    }
}

/// Why [`ChangeFeed::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// The subscriber fell further behind than the feed's buffer, and the
    /// events from `next_seq` on were dropped for it. The feed stays in this
    /// state; nothing is skipped silently. To resync, call
    /// `Reader::subscribe` for a fresh snapshot and a feed that continues
    /// exactly after it.
    #[error(
        "change feed lagged: events from seq {next_seq} were dropped for this subscriber; \
         resync with Reader::subscribe (a snapshot plus a feed that continues after it)"
    )]
    Lagged {
        /// The first sequence number this subscriber did not receive.
        next_seq: u64,
    },
    /// The engine rolled back to the state at `target`, in a step with
    /// sequence number `seq`. Events this subscriber received with seqs
    /// after `target` were undone, so anything derived from them is stale.
    /// The feed stays in this state; resync with `Reader::subscribe`.
    #[error(
        "change feed interrupted: the engine rolled back to seq {target} at seq {seq}; \
         events after {target} were undone; resync with Reader::subscribe"
    )]
    RolledBack {
        /// The rollback step's own sequence number.
        seq: u64,
        /// The seq whose state the rollback restored.
        target: u64,
    },
    /// The engine has stopped and every committed event has been delivered.
    #[error("change feed closed: the engine has stopped")]
    Closed,
}

/// A subscription to committed events `(seq, event)`, in sequence order,
/// without gaps.
///
/// Created by `Reader::changes` or `Reader::subscribe`. It starts with the
/// first event after the snapshot current at subscription time.
#[derive(Debug)]
pub struct ChangeFeed<E> {
    rx: Option<broadcast::Receiver<Arc<CommittedBatch<E>>>>,
    current: Option<Arc<CommittedBatch<E>>>,
    index: usize,
    next_seq: u64,
    /// Set once the feed cannot go on (a lag or a rollback); every later
    /// call returns it again, so nothing passes silently.
    stuck: Option<ChangeError>,
}

impl<E> ChangeFeed<E> {
    /// A feed that delivers events from `next_seq` on. Batches that end
    /// before `next_seq` (committed before the subscriber's snapshot) are
    /// skipped, because the snapshot already reflects them. `rx: None`
    /// makes a feed that is already closed.
    pub(crate) fn new(
        rx: Option<broadcast::Receiver<Arc<CommittedBatch<E>>>>,
        next_seq: u64,
    ) -> Self {
        ChangeFeed {
            rx,
            current: None,
            index: 0,
            next_seq,
            stuck: None,
        }
    }

    /// The sequence number of the next event this feed will deliver.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Waits for the next committed event.
    ///
    /// # Errors
    ///
    /// [`ChangeError::Lagged`] when this subscriber fell behind the feed's
    /// buffer, [`ChangeError::RolledBack`] after a rollback (either one
    /// then on every later call too), and [`ChangeError::Closed`]
    /// once the engine has stopped and everything was delivered.
    pub async fn recv(&mut self) -> Result<Change<E>, ChangeError> {
        loop {
            if let Some(change) = self.next_buffered()? {
                return Ok(change);
            }
            let Some(rx) = self.rx.as_mut() else {
                return Err(ChangeError::Closed);
            };
            match rx.recv().await {
                Ok(batch) => self.accept(batch)?,
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(self.lag()),
                Err(broadcast::error::RecvError::Closed) => {
                    self.rx = None;
                    return Err(ChangeError::Closed);
                }
            }
        }
    }

    /// Returns the next event if one is already committed, without waiting.
    ///
    /// # Errors
    ///
    /// As [`ChangeFeed::recv`].
    pub fn try_recv(&mut self) -> Result<Option<Change<E>>, ChangeError> {
        loop {
            if let Some(change) = self.next_buffered()? {
                return Ok(Some(change));
            }
            let Some(rx) = self.rx.as_mut() else {
                return Err(ChangeError::Closed);
            };
            match rx.try_recv() {
                Ok(batch) => self.accept(batch)?,
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Lagged(_)) => return Err(self.lag()),
                Err(broadcast::error::TryRecvError::Closed) => {
                    self.rx = None;
                    return Err(ChangeError::Closed);
                }
            }
        }
    }

    fn next_buffered(&mut self) -> Result<Option<Change<E>>, ChangeError> {
        if let Some(error) = self.stuck {
            return Err(error);
        }
        let Some(batch) = &self.current else {
            return Ok(None);
        };
        if self.index >= batch.events.len() {
            self.current = None;
            return Ok(None);
        }
        let change = Change {
            batch: Arc::clone(batch),
            index: self.index,
        };
        self.index += 1;
        self.next_seq += 1;
        Ok(Some(change))
    }

    /// Positions the feed at `next_seq` within a newly received batch.
    fn accept(&mut self, batch: Arc<CommittedBatch<E>>) -> Result<(), ChangeError> {
        if batch.last_seq() < self.next_seq {
            return Ok(()); // already reflected by the subscriber's snapshot
        }
        if batch.first_seq > self.next_seq {
            // A gap: events between were never delivered. Only a lag can
            // cause it, and it must not pass silently.
            return Err(self.lag());
        }
        if let Some(target) = batch.rollback_target {
            return Err(self.stop(ChangeError::RolledBack {
                seq: batch.first_seq,
                target,
            }));
        }
        self.index = (self.next_seq - batch.first_seq) as usize;
        self.current = Some(batch);
        Ok(())
    }

    fn lag(&mut self) -> ChangeError {
        self.stop(ChangeError::Lagged {
            next_seq: self.next_seq,
        })
    }

    fn stop(&mut self, error: ChangeError) -> ChangeError {
        self.stuck = Some(error);
        self.current = None;
        self.rx = None;
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first_seq: u64, events: &[&'static str]) -> Arc<CommittedBatch<&'static str>> {
        Arc::new(CommittedBatch::new(first_seq, events.to_vec()))
    }

    fn drain(feed: &mut ChangeFeed<&'static str>) -> Vec<(u64, &'static str)> {
        let mut out = Vec::new();
        while let Ok(Some(change)) = feed.try_recv() {
            out.push((change.seq(), *change.event()));
        }
        out
    }

    #[test]
    fn delivers_events_in_order_and_skips_what_the_snapshot_has() {
        let (tx, rx) = broadcast::channel(8);
        let mut feed = ChangeFeed::new(Some(rx), 3);
        tx.send(batch(1, &["a", "b"])).unwrap(); // before the snapshot
        tx.send(batch(3, &["c", "d"])).unwrap();
        tx.send(batch(5, &["e"])).unwrap();
        assert_eq!(drain(&mut feed), vec![(3, "c"), (4, "d"), (5, "e")]);
        assert_eq!(feed.next_seq(), 6);
    }

    #[test]
    fn starts_mid_batch_when_the_snapshot_cut_it() {
        let (tx, rx) = broadcast::channel(8);
        let mut feed = ChangeFeed::new(Some(rx), 2);
        tx.send(batch(1, &["a", "b", "c"])).unwrap();
        assert_eq!(drain(&mut feed), vec![(2, "b"), (3, "c")]);
    }

    #[test]
    fn a_gap_is_reported_as_lag() {
        let (tx, rx) = broadcast::channel(8);
        let mut feed = ChangeFeed::new(Some(rx), 1);
        tx.send(batch(3, &["c"])).unwrap();
        assert_eq!(
            feed.try_recv().unwrap_err(),
            ChangeError::Lagged { next_seq: 1 }
        );
    }

    #[test]
    fn overflow_is_lagged_and_stays_lagged() {
        let (tx, rx) = broadcast::channel(2);
        let mut feed = ChangeFeed::new(Some(rx), 1);
        for seq in 1..=5 {
            tx.send(batch(seq, &["x"])).unwrap();
        }
        let lagged = ChangeError::Lagged { next_seq: 1 };
        assert_eq!(feed.try_recv().unwrap_err(), lagged);
        assert_eq!(feed.try_recv().unwrap_err(), lagged);
    }

    #[test]
    fn a_rollback_stops_the_feed_after_what_came_before_it() {
        let (tx, rx) = broadcast::channel(8);
        let mut feed = ChangeFeed::new(Some(rx), 1);
        tx.send(batch(1, &["a", "b"])).unwrap();
        tx.send(Arc::new(CommittedBatch::rollback(3, 1))).unwrap();
        tx.send(batch(4, &["c"])).unwrap();
        assert_eq!(drain(&mut feed), vec![(1, "a"), (2, "b")]);
        let rolled_back = ChangeError::RolledBack { seq: 3, target: 1 };
        assert_eq!(feed.try_recv().unwrap_err(), rolled_back);
        assert_eq!(feed.try_recv().unwrap_err(), rolled_back);
    }

    #[test]
    fn a_rollback_before_the_subscribers_snapshot_is_skipped() {
        let (tx, rx) = broadcast::channel(8);
        let mut feed = ChangeFeed::new(Some(rx), 4);
        tx.send(Arc::new(CommittedBatch::rollback(3, 1))).unwrap();
        tx.send(batch(4, &["c"])).unwrap();
        assert_eq!(drain(&mut feed), vec![(4, "c")]);
    }

    #[test]
    fn a_change_at_an_index_of_a_batch_and_none_past_its_end() {
        let events = batch(7, &["a", "b"]);
        let second = Change::at(Arc::clone(&events), 1).unwrap();
        assert_eq!((second.seq(), *second.event()), (8, "b"));
        assert!(Change::at(events, 2).is_none());
        assert!(Change::at(Arc::new(CommittedBatch::<&str>::rollback(3, 1)), 0).is_none());
    }

    #[tokio::test]
    async fn closed_after_delivering_everything() {
        let (tx, rx) = broadcast::channel(8);
        let mut feed = ChangeFeed::new(Some(rx), 1);
        tx.send(batch(1, &["a"])).unwrap();
        drop(tx);
        assert_eq!(feed.recv().await.unwrap().seq(), 1);
        assert_eq!(feed.recv().await.unwrap_err(), ChangeError::Closed);
        assert_eq!(feed.recv().await.unwrap_err(), ChangeError::Closed);
    }
}
