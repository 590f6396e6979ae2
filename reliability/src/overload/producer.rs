//! The overload's producers: `try_submit` on a schedule or `send` as fast
//! as it returns, each taking its acks without waiting for them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use solostate::{Engine, Pending, StateEvent, TrySubmitError};

use super::OverloadConfig;
use crate::workload::{KvEvent, latency_histogram};

/// Counters the producers share.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) attempts: AtomicU64,
    pub(super) full: AtomicU64,
    pub(super) sends: AtomicU64,
    /// Time the waiting producers spent in `send` during the overload.
    pub(super) blocked_nanos: AtomicU64,
    /// Time the waiting producers spent in all, over the same turns.
    pub(super) running_nanos: AtomicU64,
}

/// One producer's identity and what it shares with the others.
pub(super) struct Producer {
    index: usize,
    engine: Engine<KvEvent>,
    keys: u64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    overloading: Arc<AtomicBool>,
}

/// What a producer did: how many events it had admitted (its counters
/// `0..admitted`, each acked) and how long its `send`s waited.
pub(super) struct Produced {
    pub(super) index: usize,
    pub(super) admitted: u64,
    pub(super) send_wait: Histogram<u64>,
}

impl Producer {
    pub(super) fn new(
        index: usize,
        engine: &Engine<KvEvent>,
        config: &OverloadConfig,
        tally: &Arc<Tally>,
        stop: &Arc<AtomicBool>,
        overloading: &Arc<AtomicBool>,
    ) -> Self {
        Producer {
            index,
            engine: engine.clone(),
            keys: config.keys_per_producer,
            tally: Arc::clone(tally),
            stop: Arc::clone(stop),
            overloading: Arc::clone(overloading),
        }
    }

    /// The event for this producer's `counter`th admitted event.
    fn event(&self, counter: u64) -> KvEvent {
        let key = self.index as u64 * self.keys + counter % self.keys;
        StateEvent::put(key, [counter, self.index as u64, 0, 0])
    }

    /// Calls `send` in a loop, timing how long each waits for room.
    pub(super) async fn waiting(self) -> Result<Produced, String> {
        let mut acks = Acks::new(self.index);
        let mut send_wait = latency_histogram();
        let mut admitted = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let asked = Instant::now();
            let pending = self
                .engine
                .send(self.event(admitted))
                .await
                .map_err(|_| format!("engine closed under producer {}", self.index))?;
            let blocked = asked.elapsed();
            acks.push(admitted, pending);
            acks.take_ready()?;
            admitted += 1;
            if self.overloading.load(Ordering::Relaxed) {
                send_wait.saturating_record(blocked.as_micros().max(1) as u64);
                self.tally.sends.fetch_add(1, Ordering::Relaxed);
                let nanos = |d: Duration| d.as_nanos() as u64;
                self.tally
                    .blocked_nanos
                    .fetch_add(nanos(blocked), Ordering::Relaxed);
                self.tally
                    .running_nanos
                    .fetch_add(nanos(asked.elapsed()), Ordering::Relaxed);
            }
        }
        self.done(acks, admitted, send_wait).await
    }

    /// Calls `try_submit` on a schedule at the rate `rate` holds (events
    /// per second, which the driver adjusts as it goes), dropping what
    /// comes back `Full`. When it falls behind the schedule it catches up
    /// in bursts of at most 10 ms of events and forgets the rest.
    pub(super) async fn shedding(self, rate: Arc<AtomicU64>) -> Result<Produced, String> {
        let mut acks = Acks::new(self.index);
        let (mut due, mut admitted) = (0.0f64, 0u64);
        let mut last = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let per_second = rate.load(Ordering::Relaxed) as f64;
            let burst = (per_second / 100.0).max(1.0);
            due = (due + per_second * last.elapsed().as_secs_f64()).min(burst);
            last = Instant::now();
            let now = due as u64;
            for _ in 0..now {
                match self.engine.try_submit(self.event(admitted)) {
                    Ok(pending) => {
                        acks.push(admitted, pending);
                        admitted += 1;
                    }
                    Err(TrySubmitError::Full(_)) => {
                        self.tally.full.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return Err(format!("producer {}: {e}", self.index)),
                }
            }
            due -= now as f64;
            self.tally.attempts.fetch_add(now, Ordering::Relaxed);
            acks.take_ready()?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.done(acks, admitted, latency_histogram()).await
    }

    /// Awaits the remaining acks and checks that every admitted event was
    /// acked.
    async fn done(
        self,
        acks: Acks,
        admitted: u64,
        send_wait: Histogram<u64>,
    ) -> Result<Produced, String> {
        let acked = acks.finish().await?;
        if acked != admitted {
            return Err(format!(
                "producer {}: {admitted} events admitted, {acked} acked",
                self.index
            ));
        }
        Ok(Produced {
            index: self.index,
            admitted,
            send_wait,
        })
    }
}

/// A producer's admitted events whose acks it has not taken yet, oldest
/// first. The producer takes the acks that have arrived after every send
/// or burst, without waiting, so it never waits for the journal and holds
/// only what the engine has admitted and not yet answered, which its
/// queue bounds. (A first version awaited acks on a separate task per
/// producer; under overload those tasks fell behind the producers and
/// their channels held millions of answered acks, so memory grew in the
/// harness instead of the engine.)
struct Acks {
    index: usize,
    waiting: std::collections::VecDeque<(u64, Pending<KvEvent>)>,
    acked: u64,
    last_seq: u64,
}

impl Acks {
    fn new(index: usize) -> Self {
        Acks {
            index,
            waiting: std::collections::VecDeque::new(),
            acked: 0,
            last_seq: 0,
        }
    }

    /// Remembers an admitted event's pending ack.
    fn push(&mut self, counter: u64, pending: Pending<KvEvent>) {
        self.waiting.push_back((counter, pending));
    }

    /// Takes the acks that have already arrived, oldest first, and stops
    /// at the first that has not. The polls are `unconstrained`: tokio's
    /// cooperative budget would otherwise answer `Pending` for ready acks
    /// once a producer had run a while without yielding (a `send` that
    /// finds room does not yield), and the backlog would grow.
    fn take_ready(&mut self) -> Result<(), String> {
        let mut cx = Context::from_waker(Waker::noop());
        while let Some((_, pending)) = self.waiting.front_mut() {
            let mut ready = tokio::task::unconstrained(pending);
            let Poll::Ready(answer) = Pin::new(&mut ready).poll(&mut cx) else {
                return Ok(());
            };
            let (counter, _) = self.waiting.pop_front().expect("front exists");
            self.check(counter, answer)?;
        }
        Ok(())
    }

    /// Awaits every remaining ack.
    async fn finish(mut self) -> Result<u64, String> {
        while let Some((counter, pending)) = self.waiting.pop_front() {
            let answer = pending.await;
            self.check(counter, answer)?;
        }
        Ok(self.acked)
    }

    /// Checks that the ack of the `counter`th admitted event is a success
    /// and comes in order.
    fn check(
        &mut self,
        counter: u64,
        answer: Result<solostate::Ack, solostate::AckError<solostate::StateRejection<u64>>>,
    ) -> Result<(), String> {
        let index = self.index;
        let ack = answer.map_err(|e| {
            format!("producer {index}: admitted event {counter} was not acked: {e}")
        })?;
        if ack.seq <= self.last_seq || counter != self.acked {
            return Err(format!(
                "producer {index}: event {counter} acked with seq {} after seq {}",
                ack.seq, self.last_seq
            ));
        }
        self.acked += 1;
        self.last_seq = ack.seq;
        Ok(())
    }
}
