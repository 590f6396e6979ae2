//! Catch-up subscriptions: every committed event after a seq, first from
//! the history and then live, with no gap and no duplicate at the switch.
//!
//! The semantics (switch point, rollbacks, lag, errors) are documented
//! on [`CatchUp`], where users see them.

use std::collections::VecDeque;
use std::sync::Arc;

use solostate_commands::Event;
use solostate_queries::{Change, ChangeError, ChangeFeed, Reader};

use crate::history::History;

mod journal;

/// How many events one history read fetches: enough to amortise a journal
/// seek, few enough that catching up from seq 0 does not load the whole
/// journal into memory.
const CHUNK: usize = 1024;

/// Why [`Engine::changes_from`](crate::Engine::changes_from) or
/// [`CatchUp::recv`] gave no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatchUpError {
    /// The seq asked for is after the last committed one. A subscriber's
    /// stored seq never is, unless the engine lost events (opened from an
    /// older copy of its directory): refusing beats waiting for seqs that
    /// would be other events.
    #[error("cannot catch up from seq {seq}: the last committed seq is {last}")]
    NotYet {
        /// The seq asked for.
        seq: u64,
        /// The last committed seq.
        last: u64,
    },
    /// The seq asked for was undone by the rollback at seq `rollback` to
    /// `target`: whatever was derived from it is stale. Rebuild the
    /// derived data from the state at `target` (or from `Engine::as_of`)
    /// and resume from `rollback`.
    #[error(
        "cannot catch up from seq {seq}: the rollback at seq {rollback} undid it (restoring seq {target}); rebuild from seq {target} and resume from seq {rollback}"
    )]
    Undone {
        /// The seq asked for.
        seq: u64,
        /// The rollback step's seq.
        rollback: u64,
        /// The seq whose state that rollback restored.
        target: u64,
    },
    /// An in-memory engine keeps only its as-of window, and the events
    /// after `seq` left it.
    #[error(
        "cannot catch up from seq {seq}: an in-memory engine keeps events only after seq {oldest} (its as-of window); widen it with Builder::as_of_window or open the engine with a path"
    )]
    Forgotten {
        /// The seq asked for.
        seq: u64,
        /// The oldest seq after which the window still holds the events.
        oldest: u64,
    },
    /// The journal before `first` was compacted away
    /// ([`Retention::SinceOldestCheckpoint`](crate::Retention::SinceOldestCheckpoint)).
    #[error("cannot catch up from seq {seq}: the journal was compacted and starts at seq {first}")]
    Pruned {
        /// The seq asked for.
        seq: u64,
        /// The journal's first retained seq.
        first: u64,
    },
    /// Reading the history failed (the message names the journal's path
    /// and seq). The feed stops; resume from the last seq received.
    #[error("catching up failed reading the history at seq {seq}: {message}")]
    History {
        /// The first seq that could not be read.
        seq: u64,
        /// What went wrong.
        message: String,
    },
    /// An in-memory engine's subscriber fell behind the live feed's buffer
    /// and the window no longer holds the events from `next_seq`. (A
    /// durable engine's subscriber catches up from the journal instead.)
    #[error(
        "catch-up feed lagged: the events from seq {next_seq} left both the live buffer and the as-of window; resync with Reader::subscribe"
    )]
    Lagged {
        /// The first seq this subscriber did not receive.
        next_seq: u64,
    },
    /// The engine rolled back to the state at `target` in the step `seq`.
    /// Every event up to `target` that this feed delivered still stands;
    /// any it delivered after `target` was undone. Undo those, then resume
    /// with `changes_from(seq)`. The feed stays in this state.
    #[error(
        "catch-up feed interrupted: the engine rolled back to seq {target} at seq {seq}; undo events after {target}, then resume with changes_from({seq})"
    )]
    RolledBack {
        /// The rollback step's own seq.
        seq: u64,
        /// The seq whose state the rollback restored.
        target: u64,
    },
    /// The engine stopped (and closed its journal) before the events from
    /// `next_seq` were read from it. Reopen it and resume from
    /// `next_seq - 1`.
    #[error(
        "the engine stopped before the events from seq {next_seq} were read from its journal; reopen it and resume from seq {}", next_seq - 1
    )]
    Stopped {
        /// The first seq not delivered.
        next_seq: u64,
    },
    /// The engine has stopped and every committed event was delivered.
    #[error("catch-up feed closed: the engine has stopped")]
    Closed,
    /// The live feed ended for a reason this version does not know.
    #[error("catch-up feed ended: {0}")]
    Live(ChangeError),
}

/// Events read back from the history for a catch-up subscriber: a run
/// starting right after the seq asked for, and the rollback right after
/// the run that ends the subscription, if any (its seq and target).
pub(crate) struct Fetched<E> {
    pub(crate) changes: Vec<Change<E>>,
    pub(crate) rollback: Option<(u64, u64)>,
}

impl<E> Default for Fetched<E> {
    fn default() -> Self {
        Fetched {
            changes: Vec::new(),
            rollback: None,
        }
    }
}

/// A catch-up subscription: every committed event after a seq, in order,
/// first from the history and then live. Made by
/// [`Engine::changes_from`](crate::Engine::changes_from).
///
/// # Catch-up subscriptions (README-ready)
///
/// A subscriber that keeps derived data (a search index, a projection, a
/// cache elsewhere) stores the seq of the last event it applied, and after a
/// restart, its own or the engine's, resumes from it with
/// `engine.changes_from(last).await?`. The feed delivers every committed
/// event after `last`, in order: first from the history (the in-memory
/// as-of window where it reaches, else the journal, read on a blocking
/// thread), then live, with no gap and no duplicate where the one becomes
/// the other. A subscriber that falls behind the live feed's buffer is
/// caught up from the history again on its own, so lag is not an error on a
/// durable engine. A rollback ends the feed with
/// [`CatchUpError::RolledBack`]: undo what you applied after its `target`,
/// then resume with `changes_from(seq)` from the rollback's own seq. An
/// in-memory engine's history is only its as-of window; asking for more
/// is an error ([`CatchUpError::Forgotten`]), never a silent gap.
///
/// ```no_run
/// # async fn follow(engine: solostate::Engine<solostate::StateEvent<String, u64>>, mut last: u64)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use solostate::CatchUpError;
/// let mut feed = engine.changes_from(last).await?;
/// loop {
///     match feed.recv().await {
///         Ok(change) => {
///             // apply change.event() to the derived data, then store the seq
///             last = change.seq();
///         }
///         Err(CatchUpError::RolledBack { seq, target }) => {
///             // undo what was applied after `target`, then go on from `seq`
///             # let _ = target;
///             last = seq;
///             feed = engine.changes_from(last).await?;
///         }
///         Err(CatchUpError::Closed) => return Ok(()), // the engine stopped
///         Err(other) => return Err(other.into()),
///     }
/// }
/// # }
/// ```
///
/// # Why on the engine, not on the reader
///
/// The history beyond the window is the journal, and the read side
/// (`solostate-queries`) knows nothing of persistence, by design. An
/// injected history trait would have to carry the journal's blocking reads,
/// its errors and the rollback bookkeeping into that crate behind a boxed
/// future; [`Engine::changes_from`](crate::Engine::changes_from) has all of
/// them at hand. The feed keeps a [`Reader`] for the live part, and like a
/// reader it does not keep the engine running.
///
/// # Where the switch happens
///
/// Opening subscribes to the live feed *first* and takes the snapshot seq
/// `S` that the live feed continues after (as [`Reader::subscribe`] does);
/// the history then delivers exactly `(seq, S]` and the live feed `S + 1`
/// on. Every batch committed after the subscription is in the live feed,
/// and the live feed skips what `S` already holds, so the two meet without
/// a gap or an overlap; a live event at or below what the history delivered
/// is skipped all the same, as a second guard.
///
/// # Rollbacks
///
/// A rollback at seq `R` to `T` inside the range, in the history or live,
/// ends the feed with [`CatchUpError::RolledBack`]` { seq: R, target: T }`,
/// as [`ChangeError::RolledBack`] ends a live feed, and every later call
/// returns it again. From the history the feed delivers the events up to
/// `T` first and none of the undone ones (they are in the archive, not the
/// timeline); live, it may have delivered undone events before it hears of
/// the rollback. Either way: undo what was applied after `T`, then resume
/// with `changes_from(R)`. A start `seq` that a rollback undid (`T < seq <
/// R`) is refused with [`CatchUpError::Undone`]: what was derived from it
/// is stale. Starting at `R` or at `T` is fine.
///
/// # Lag
///
/// The live subscription is made before the history is read, so a long
/// catch-up (or a slow subscriber later) can overflow its bounded buffer.
/// The feed then subscribes again and reads what it missed from the
/// history, so on a durable engine lag costs a journal read, not an error.
/// On an in-memory engine, whose history is the as-of window, events that
/// also left the window end the feed with [`CatchUpError::Lagged`].
///
/// # Other errors
///
/// A start seq after the last committed one is refused
/// ([`CatchUpError::NotYet`]) rather than waited for: a stored seq ahead of
/// the engine means the engine lost events, and the seqs it writes next
/// would be other events. A seq older than an in-memory engine's window is
/// [`CatchUpError::Forgotten`], one behind a compacted journal
/// [`CatchUpError::Pruned`]. A durable engine that stops while the feed
/// still reads its journal ends it with [`CatchUpError::Stopped`] (the
/// journal's directory lock goes with the engine); resume from the last
/// seq received once it is reopened.
pub struct CatchUp<E: Event> {
    history: Arc<History<E>>,
    reader: Reader<E>,
    /// The live feed, subscribed before the history was read; it starts at
    /// `switch + 1`.
    live: ChangeFeed<E>,
    /// The last seq the history delivers (the live feed's snapshot seq).
    switch: u64,
    /// Events read from the history and not yet delivered.
    buffered: VecDeque<Change<E>>,
    /// A rollback that comes right after `buffered`.
    rollback: Option<(u64, u64)>,
    /// The seq of the next event to deliver.
    next: u64,
    /// Whether the live feed lagged and was subscribed again: an in-memory
    /// engine's window miss is then a lag, not a bad start.
    resumed: bool,
    /// Set once the feed cannot go on; every later call returns it again.
    stuck: Option<CatchUpError>,
}

impl<E: Event> std::fmt::Debug for CatchUp<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchUp")
            .field("next_seq", &self.next)
            .field("switch", &self.switch)
            .finish_non_exhaustive()
    }
}

impl<E: Event> CatchUp<E> {
    /// Subscribes live, then reads the first stretch of history after
    /// `after`, which also checks that `after` can be caught up from.
    pub(crate) async fn start(
        history: Arc<History<E>>,
        reader: Reader<E>,
        after: u64,
    ) -> Result<Self, CatchUpError> {
        // Live first: every batch committed after this is in `live`.
        let (snapshot, live) = reader.subscribe();
        let switch = snapshot.seq();
        if after > switch {
            return Err(CatchUpError::NotYet {
                seq: after,
                last: switch,
            });
        }
        let mut feed = CatchUp {
            history,
            reader,
            live,
            switch,
            buffered: VecDeque::new(),
            rollback: None,
            next: after + 1,
            resumed: false,
            stuck: None,
        };
        if feed.next <= feed.switch {
            feed.fill().await?;
        }
        Ok(feed)
    }

    /// The seq of the next event this feed will deliver.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Waits for the next committed event. Cancel-safe: dropping the
    /// future loses nothing, and the next call carries on.
    ///
    /// # Errors
    ///
    /// [`CatchUpError::RolledBack`] at a rollback, [`CatchUpError::Closed`]
    /// once the engine has stopped and everything was delivered,
    /// [`CatchUpError::Lagged`] when an in-memory engine's subscriber fell
    /// behind both the live buffer and the window,
    /// [`CatchUpError::Stopped`] when the engine stopped before its
    /// journal was read, and [`CatchUpError::History`] when reading it
    /// failed. All but `Closed` stop the feed for good.
    pub async fn recv(&mut self) -> Result<Change<E>, CatchUpError> {
        loop {
            if let Some(error) = &self.stuck {
                return Err(error.clone());
            }
            if let Some(change) = self.buffered.pop_front() {
                self.next = change.seq() + 1;
                return Ok(change);
            }
            if let Some((seq, target)) = self.rollback.take() {
                return Err(self.stop(CatchUpError::RolledBack { seq, target }));
            }
            if self.next <= self.switch {
                if let Err(error) = self.fill().await {
                    return Err(self.stop(error));
                }
                continue;
            }
            match self.live.recv().await {
                // The history delivered it already.
                Ok(change) if change.seq() < self.next => {}
                Ok(change) if change.seq() == self.next => {
                    self.next += 1;
                    return Ok(change);
                }
                // Not reached: the live feed starts right after the
                // history. Were it to skip ahead, the history fills in.
                Ok(_) | Err(ChangeError::Lagged { .. }) => self.resume(),
                Err(ChangeError::RolledBack { seq, target }) => {
                    return Err(self.stop(CatchUpError::RolledBack { seq, target }));
                }
                Err(ChangeError::Closed) => return Err(CatchUpError::Closed),
                Err(other) => return Err(self.stop(CatchUpError::Live(other))),
            }
        }
    }

    /// Reads the next stretch of history, `next..=switch` at most.
    async fn fill(&mut self) -> Result<(), CatchUpError> {
        let after = self.next - 1;
        let fetched = self.fetch(after, self.switch).await?;
        if fetched.changes.is_empty() && fetched.rollback.is_none() {
            return Err(CatchUpError::History {
                seq: self.next,
                message: format!(
                    "the history has no events after seq {after}, though seq {} is committed",
                    self.switch
                ),
            });
        }
        self.buffered.extend(fetched.changes);
        self.rollback = fetched.rollback;
        Ok(())
    }

    /// Events after `after` from the window, else the journal.
    async fn fetch(&self, after: u64, through: u64) -> Result<Fetched<E>, CatchUpError> {
        loop {
            let epoch = self.history.rollback_epoch();
            if epoch % 2 == 1 {
                tokio::task::yield_now().await; // a rollback is rewriting history
                continue;
            }
            let found = match self.history.window_after(after, through, CHUNK).await {
                Some(found) => found,
                None => self.read_journal(after, through).await,
            };
            // A read that overlapped a rollback may have seen the journal
            // half rewritten: read again.
            if self.history.rollback_epoch() == epoch {
                return found;
            }
        }
    }

    /// Events after `after` from the journal, on a blocking thread; for an
    /// in-memory engine, the typed error for a window miss.
    async fn read_journal(&self, after: u64, through: u64) -> Result<Fetched<E>, CatchUpError> {
        let journal = match self.history.journal() {
            None if self.resumed => {
                return Err(CatchUpError::Lagged {
                    next_seq: after + 1,
                });
            }
            None => {
                return Err(CatchUpError::Forgotten {
                    seq: after,
                    oldest: self.history.oldest_kept(),
                });
            }
            Some(None) => {
                return Err(CatchUpError::Stopped {
                    next_seq: after + 1,
                });
            }
            Some(Some(journal)) => journal,
        };
        tokio::task::spawn_blocking(move || journal::read::<E>(&journal, after, through, CHUNK))
            .await
            .unwrap_or_else(|error| {
                Err(CatchUpError::History {
                    seq: after + 1,
                    message: format!("journal read task failed: {error}"),
                })
            })
    }

    /// The live feed lagged: subscribe again, and let the history cover
    /// what the old subscription dropped.
    fn resume(&mut self) {
        let (snapshot, live) = self.reader.subscribe();
        self.switch = snapshot.seq();
        self.live = live;
        self.resumed = true;
    }

    fn stop(&mut self, error: CatchUpError) -> CatchUpError {
        self.stuck = Some(error.clone());
        self.buffered.clear();
        error
    }
}
