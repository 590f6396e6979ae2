//! The bank's invariants under concurrency, on a multi-thread runtime.
//!
//! Writers pipeline random transfers (some overdraw and are rejected) while
//! readers check every snapshot they load: the total balance never changes
//! and sequence numbers never go backwards. Afterwards the engine's
//! counters must match what the writers were told, the acked sequence
//! numbers must be dense, and replaying the change feed must rebuild the
//! final snapshot.
//!
//! Readers are guaranteed to check snapshots taken *while* writes are in
//! progress: the writers pause at a barrier half-way until every reader has
//! loaded a snapshot that holds some transfers. No check depends on timing.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::VecDeque;
use std::sync::Arc;

use solostate::{AckError, Engine, Event, Pending, Stats};
use solostate_examples::{AccountId, Balance, Bank, BankRejection, SplitMix64, total_balance};
use tokio::sync::Barrier;

const ACCOUNTS: AccountId = 32;
const OPENING_BALANCE: Balance = 500;
const DEPOSITS: u64 = ACCOUNTS as u64;
const TOTAL: u128 = ACCOUNTS as u128 * OPENING_BALANCE as u128;
const WRITERS: u64 = 4;
const TRANSFERS_PER_WRITER: u64 = 10_000;
const IN_FLIGHT: usize = 128;
const READERS: usize = 4;

/// What one writer was told.
#[derive(Debug, Default)]
struct WriterTally {
    /// The seqs of its applied transfers.
    acked: Vec<u64>,
    /// Its transfers rejected as overdrafts.
    overdrafts: u64,
    /// Any other answer or failure, described. Recorded rather than
    /// panicked on, so that a writer always reaches the barrier.
    unexpected: Vec<String>,
}

impl WriterTally {
    fn record(&mut self, answer: Result<solostate::Ack, AckError<BankRejection>>) {
        match answer {
            Ok(ack) => self.acked.push(ack.seq),
            Err(AckError::Rejected(BankRejection::Overdraft { .. })) => self.overdrafts += 1,
            Err(other) => self.unexpected.push(other.to_string()),
        }
    }
}

/// What one reader checked.
#[derive(Debug, Default)]
struct ReaderTally {
    /// The seq of the snapshot it checked while the writers were paused.
    mid_run_seq: u64,
    /// Snapshots checked in all.
    snapshots: u64,
    /// The seq of the last snapshot it checked (after the engine stopped).
    last_seq: u64,
}

/// Everything a run leaves behind for the tests to assert on.
struct Outcome {
    writers: Vec<WriterTally>,
    readers: Vec<ReaderTally>,
    stats: Stats,
    final_map: solostate::State<Bank>,
    final_seq: u64,
    /// Every committed event from the change feed, with its seq.
    feed: Vec<(u64, Bank)>,
}

async fn send_transfers(
    engine: &Engine<Bank>,
    rng: &mut SplitMix64,
    count: u64,
    tally: &mut WriterTally,
) {
    let mut in_flight: VecDeque<Pending<Bank>> = VecDeque::with_capacity(IN_FLIGHT);
    for _ in 0..count {
        let from = rng.below(u64::from(ACCOUNTS)) as AccountId;
        let to = (from + 1 + rng.below(u64::from(ACCOUNTS) - 1) as AccountId) % ACCOUNTS;
        let amount = 1 + rng.below(OPENING_BALANCE);
        if in_flight.len() == IN_FLIGHT
            && let Some(oldest) = in_flight.pop_front()
        {
            tally.record(oldest.await);
        }
        match engine.send(Bank::transfer(from, to, amount)).await {
            Ok(pending) => in_flight.push_back(pending),
            Err(error) => tally.unexpected.push(error.to_string()),
        }
    }
    for pending in in_flight {
        tally.record(pending.await);
    }
}

async fn writer(engine: Engine<Bank>, seed: u64, barrier: Arc<Barrier>) -> WriterTally {
    let mut rng = SplitMix64::new(seed);
    let mut tally = WriterTally::default();
    let half = TRANSFERS_PER_WRITER / 2;
    send_transfers(&engine, &mut rng, half, &mut tally).await;
    // Every reader checks a mid-run snapshot before the second half starts.
    barrier.wait().await;
    send_transfers(&engine, &mut rng, TRANSFERS_PER_WRITER - half, &mut tally).await;
    tally
}

fn assert_consistent(seq: u64, last_seq: u64, total: u128) {
    assert!(
        seq >= last_seq,
        "seq went backwards from {last_seq} to {seq}"
    );
    assert_eq!(total, TOTAL, "snapshot at seq {seq} has the wrong total");
}

async fn reader(reader: solostate::Reader<Bank>, barrier: Arc<Barrier>) -> ReaderTally {
    // The first transfer the engine takes finds every account full and is
    // applied, so seq DEPOSITS + 1 is always reached during the first half.
    let mid_run = reader.wait_for(DEPOSITS + 1).await;
    // Arrive before asserting, so that a failure cannot leave the writers
    // waiting at the barrier forever.
    barrier.wait().await;
    let mid_run = mid_run.expect("the engine runs until the writers are done");
    assert_consistent(mid_run.seq(), DEPOSITS + 1, total_balance(&mid_run.view()));
    let mut tally = ReaderTally {
        mid_run_seq: mid_run.seq(),
        snapshots: 1,
        last_seq: mid_run.seq(),
    };
    loop {
        let stopped = reader.is_stopped();
        let snapshot = reader.snapshot();
        assert_consistent(
            snapshot.seq(),
            tally.last_seq,
            total_balance(&snapshot.view()),
        );
        tally.last_seq = snapshot.seq();
        tally.snapshots += 1;
        if stopped {
            return tally;
        }
        tokio::task::yield_now().await;
    }
}

async fn run() -> Outcome {
    let engine = Engine::<Bank>::builder()
        .channel_capacity(1024)
        .max_batch(256)
        // The feed collector must never lag: room for every batch.
        .change_capacity(((DEPOSITS + WRITERS * TRANSFERS_PER_WRITER) as usize).max(1))
        .open()
        .await
        .expect("the engine opens");
    let mut feed = engine.reader().changes();
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        loop {
            match feed.recv().await {
                Ok(change) => events.push((change.seq(), *change.event())),
                Err(solostate::ChangeError::Closed) => return events,
                Err(error) => panic!("change feed failed: {error}"),
            }
        }
    });

    for account in 0..ACCOUNTS {
        engine
            .submit(Bank::deposit(account, OPENING_BALANCE))
            .await
            .expect("a deposit into a fresh account applies");
    }

    let barrier = Arc::new(Barrier::new(WRITERS as usize + READERS));
    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(reader(engine.reader(), Arc::clone(&barrier))))
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|seed| tokio::spawn(writer(engine.clone(), seed, Arc::clone(&barrier))))
        .collect();

    let mut writer_tallies = Vec::new();
    for handle in writers {
        writer_tallies.push(handle.await.expect("writer task"));
    }
    engine.shutdown().await.expect("clean shutdown");
    let mut reader_tallies = Vec::new();
    for handle in readers {
        // A failed reader assertion surfaces here as a panic.
        reader_tallies.push(handle.await.expect("reader task"));
    }
    let feed = collector.await.expect("feed collector task");
    let snapshot = engine.reader().snapshot();
    Outcome {
        writers: writer_tallies,
        readers: reader_tallies,
        stats: engine.stats(),
        final_map: snapshot.to_map(),
        final_seq: snapshot.seq(),
        feed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_snapshot_keeps_the_total_and_seqs_never_go_back() {
    // The readers assert both on every snapshot they load; `run` panics if
    // any of them failed.
    let outcome = run().await;
    assert_eq!(outcome.readers.len(), READERS);
    for tally in &outcome.readers {
        // Each reader checked a snapshot taken while writers were paused
        // half-way, and the final one after the engine stopped.
        assert!(tally.mid_run_seq > DEPOSITS);
        assert!(tally.snapshots >= 2);
        assert_eq!(tally.last_seq, outcome.final_seq);
    }
    assert_eq!(total_balance(&outcome.final_map), TOTAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn final_counts_match_what_writers_were_told() {
    let outcome = run().await;
    for tally in &outcome.writers {
        assert!(tally.unexpected.is_empty(), "{:?}", tally.unexpected);
        assert_eq!(
            tally.acked.len() as u64 + tally.overdrafts,
            TRANSFERS_PER_WRITER,
            "every transfer got exactly one answer"
        );
    }
    let applied: u64 = outcome.writers.iter().map(|t| t.acked.len() as u64).sum();
    let overdrafts: u64 = outcome.writers.iter().map(|t| t.overdrafts).sum();
    assert!(
        overdrafts > 0,
        "the workload is meant to overdraw sometimes"
    );
    assert_eq!(outcome.stats.applied, DEPOSITS + applied);
    assert_eq!(outcome.stats.rejected, overdrafts);
    assert_eq!(outcome.stats.panicked, 0);
    assert_eq!(outcome.stats.diverged, 0);
    assert_eq!(outcome.stats.last_seq, outcome.stats.applied);
    assert_eq!(outcome.final_seq, outcome.stats.applied);

    // Sequence numbers are dense: the transfers' acks are exactly the seqs
    // after the deposits, each handed out once.
    let mut seqs: Vec<u64> = outcome
        .writers
        .iter()
        .flat_map(|t| t.acked.iter().copied())
        .collect();
    seqs.sort_unstable();
    let expected: Vec<u64> = (DEPOSITS + 1..=outcome.stats.applied).collect();
    assert_eq!(seqs, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_feed_replay_rebuilds_the_final_snapshot() {
    let outcome = run().await;
    let seqs: Vec<u64> = outcome.feed.iter().map(|(seq, _)| *seq).collect();
    let expected: Vec<u64> = (1..=outcome.final_seq).collect();
    assert_eq!(seqs, expected, "the feed delivers every seq once, in order");

    let mut replayed = solostate::State::<Bank>::new();
    for (seq, event) in &outcome.feed {
        event
            .apply_to(&mut replayed)
            .unwrap_or_else(|error| panic!("committed event {seq} failed on replay: {error}"));
    }
    assert_eq!(replayed, outcome.final_map);
}
