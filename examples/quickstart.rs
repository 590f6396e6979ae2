//! Quickstart: solostate embedded as the state actor of a small bank.
//!
//! What it shows:
//!
//! * opening an [`Engine`] for your own event type ([`Bank`]) with the
//!   builder;
//! * several writer tasks **pipelining** transfers with [`Engine::send`],
//!   keeping hundreds of [`Pending`] acks in flight, and counting the
//!   overdrafts the engine rejects with a typed [`BankRejection`];
//! * several reader tasks loading snapshots with [`Reader::snapshot`] while
//!   the writers run, and checking on **every** snapshot that the total
//!   balance is exactly what was deposited and that sequence numbers never
//!   go backwards: a snapshot is one consistent version of the state, never
//!   half a transfer;
//! * durability: the state lives in a data directory (by default
//!   `target/solostate-quickstart`, or the first argument), every batch is
//!   journaled and flushed before its acks (`Durability::Always`), and a
//!   second run resumes where the first stopped, from the checkpoint the
//!   shutdown wrote;
//! * an as-of read ([`Engine::as_of`]) of a state from the middle of the
//!   run, which must hold the same total;
//! * a graceful [`Engine::shutdown`], after which the counters the engine
//!   kept ([`Engine::stats`]) must match what the writers were told.
//!
//! It runs for a few seconds and exits with an error if any check failed.
//! Delete the data directory to start over.
//!
//! Run it from the workspace root:
//!
//! ```text
//! cargo run --release --example quickstart [DATA_DIR]
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::VecDeque;
use std::time::Instant;

use solostate::{Ack, AckError, Engine, Pending, Reader};
use solostate_examples::{AccountId, Balance, Bank, BankRejection, SplitMix64, total_balance};

/// Errors that cross task boundaries in this example.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How many accounts the bank has.
const ACCOUNTS: AccountId = 64;
/// What each account starts with. Transfers draw amounts up to this, so an
/// account that has paid out a few times overdraws and is rejected.
const OPENING_BALANCE: Balance = 1_000;
/// Writer tasks, each with its own seeded stream of transfers.
const WRITERS: u64 = 4;
/// Transfers each writer submits.
const TRANSFERS_PER_WRITER: u64 = 250_000;
/// Where the state lives unless the first argument names another place.
const DEFAULT_DATA_DIR: &str = "target/solostate-quickstart";
/// Acks each writer keeps in flight before it awaits the oldest.
const IN_FLIGHT: usize = 512;
/// Reader tasks checking snapshots.
const READERS: usize = 4;

/// What one writer was told by the engine.
#[derive(Debug, Default)]
struct WriterTally {
    /// Transfers acknowledged as applied.
    applied: u64,
    /// Transfers rejected as overdrafts.
    overdrafts: u64,
}

impl WriterTally {
    /// Counts one answer. Anything other than an ack or an overdraft means
    /// the example itself is wrong (it never sends a self-transfer or names
    /// an unknown account), so it is passed up as an error.
    fn record(&mut self, answer: Result<Ack, AckError<BankRejection>>) -> Result<(), BoxError> {
        match answer {
            Ok(_ack) => self.applied += 1,
            Err(AckError::Rejected(BankRejection::Overdraft { .. })) => self.overdrafts += 1,
            Err(other) => return Err(format!("unexpected answer to a transfer: {other}").into()),
        }
        Ok(())
    }
}

/// Submits `TRANSFERS_PER_WRITER` random transfers between distinct
/// accounts, pipelined: `send` only waits for room in the queue, and the
/// oldest ack is awaited once `IN_FLIGHT` are outstanding.
async fn writer(engine: Engine<Bank>, seed: u64) -> Result<WriterTally, BoxError> {
    let mut rng = SplitMix64::new(seed);
    let mut in_flight: VecDeque<Pending<Bank>> = VecDeque::with_capacity(IN_FLIGHT);
    let mut tally = WriterTally::default();
    for _ in 0..TRANSFERS_PER_WRITER {
        let from = rng.below(u64::from(ACCOUNTS)) as AccountId;
        // Any account but `from`: an offset of 1..ACCOUNTS, wrapped.
        let to = (from + 1 + rng.below(u64::from(ACCOUNTS) - 1) as AccountId) % ACCOUNTS;
        let amount = 1 + rng.below(OPENING_BALANCE);
        if in_flight.len() == IN_FLIGHT
            && let Some(oldest) = in_flight.pop_front()
        {
            tally.record(oldest.await)?;
        }
        in_flight.push_back(engine.send(Bank::transfer(from, to, amount)).await?);
    }
    for pending in in_flight {
        tally.record(pending.await)?;
    }
    Ok(tally)
}

/// What one reader saw.
#[derive(Debug, Default)]
struct ReaderTally {
    /// Snapshots loaded and checked.
    snapshots: u64,
    /// Distinct versions among them (a new seq since the previous load).
    versions: u64,
    /// Snapshots that broke an invariant.
    violations: u64,
    /// The first violation, described.
    first_violation: Option<String>,
}

/// Loads snapshots until the engine stops, checking each one: the total
/// balance equals `expected_total`, and the seq is not below the previous
/// one. The last load happens after the engine stopped, so the final
/// snapshot is checked too.
async fn reader(reader: Reader<Bank>, expected_total: u128) -> ReaderTally {
    let mut tally = ReaderTally::default();
    let mut last_seq = 0;
    loop {
        // Ask before loading: if the engine had already stopped, this load
        // sees its final snapshot and the loop may end.
        let stopped = reader.is_stopped();
        let snapshot = reader.snapshot();
        tally.snapshots += 1;
        if snapshot.seq() != last_seq {
            tally.versions += 1;
        }
        let total = total_balance(&snapshot.view());
        let problem = if snapshot.seq() < last_seq {
            Some(format!(
                "seq went backwards from {last_seq} to {}",
                snapshot.seq()
            ))
        } else if total != expected_total {
            Some(format!(
                "snapshot at seq {} holds a total of {total}, expected {expected_total}",
                snapshot.seq()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            tally.violations += 1;
            tally.first_violation.get_or_insert(problem);
        }
        last_seq = last_seq.max(snapshot.seq());
        if stopped {
            return tally;
        }
        // Let writers and the owner task run; readers never block them.
        tokio::task::yield_now().await;
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let data_dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
    let engine = Engine::<Bank>::builder()
        .path(&data_dir)
        .schema("bank-v1")
        .channel_capacity(8192)
        .max_batch(1024)
        .open()
        .await?;
    let recovery = engine.recovery().clone();
    let start_seq = recovery.last_seq;
    println!(
        "data directory:  {data_dir} (resumed at seq {start_seq}: checkpoint {}, {} journal events replayed)",
        recovery
            .checkpoint
            .map_or_else(|| "none".to_owned(), |seq| format!("at seq {seq}")),
        recovery.replayed,
    );
    let start_stats = engine.stats();

    // Open the accounts on the first run; a later run finds them
    // recovered. The deposits are pipelined too; once every ack is in,
    // every snapshot loaded from now on holds all of them.
    let expected_total = u128::from(ACCOUNTS) * u128::from(OPENING_BALANCE);
    let mut deposits = Vec::with_capacity(ACCOUNTS as usize);
    if engine.reader().snapshot().is_empty() {
        for account in 0..ACCOUNTS {
            deposits.push(engine.send(Bank::deposit(account, OPENING_BALANCE)).await?);
        }
    }
    let deposits_made = deposits.len() as u64;
    for pending in deposits {
        pending.await?;
    }
    let opened = engine.reader().snapshot();
    if total_balance(&opened.view()) != expected_total {
        return Err(format!(
            "after opening, the total is {} instead of {expected_total}",
            total_balance(&opened.view())
        )
        .into());
    }

    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(reader(engine.reader(), expected_total)))
        .collect();

    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|seed| tokio::spawn(writer(engine.clone(), seed)))
        .collect();
    let mut applied = 0;
    let mut overdrafts = 0;
    for handle in writers {
        let tally = handle.await??;
        applied += tally.applied;
        overdrafts += tally.overdrafts;
    }
    let elapsed = started.elapsed();

    // The state as of a seq from the middle of this run: rebuilt exactly,
    // so it holds the same total.
    let middle = opened.seq() + (engine.reader().seq() - opened.seq()) / 2;
    let past = engine.as_of(middle).await?;
    if past.seq() != middle || total_balance(&past.view()) != expected_total {
        return Err(format!("the state as of seq {middle} does not hold the total").into());
    }

    // Every ack is in; stop the engine. Readers see it stop, check the
    // final snapshot, and return.
    engine.shutdown().await?;
    let mut snapshots = 0;
    let mut versions = 0;
    let mut violations = 0;
    let mut first_violation = None;
    for handle in readers {
        let tally = handle.await?;
        snapshots += tally.snapshots;
        versions = versions.max(tally.versions);
        violations += tally.violations;
        first_violation = first_violation.or(tally.first_violation);
    }

    let stats = engine.stats();
    let submitted = WRITERS * TRANSFERS_PER_WRITER;
    let final_snapshot = engine.reader().snapshot();
    let run_applied = stats.applied - start_stats.applied;
    let counts_agree = run_applied == deposits_made + applied
        && stats.rejected - start_stats.rejected == overdrafts
        && applied + overdrafts == submitted
        && final_snapshot.seq() == start_seq + run_applied
        && total_balance(&final_snapshot.view()) == expected_total;

    println!(
        "solostate quickstart: {WRITERS} writers, {READERS} readers, {ACCOUNTS} accounts of {OPENING_BALANCE}"
    );
    println!(
        "events applied:  {run_applied} ({deposits_made} deposits + {applied} transfers), now at seq {}",
        final_snapshot.seq()
    );
    println!("events rejected: {overdrafts} (overdrafts)");
    println!(
        "snapshots read:  {snapshots} (every one checked; up to {versions} versions seen by one reader)"
    );
    println!(
        "throughput:      {:.0} events/s, durable ({submitted} transfers in {:.2} s, {} batches, largest {})",
        submitted as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        stats.batches - start_stats.batches,
        stats.largest_batch,
    );
    println!("as-of read:      seq {middle} rebuilt, total {expected_total}");

    if let Some(problem) = first_violation {
        println!("invariant held:  NO, {violations} bad snapshots; first: {problem}");
        return Err(format!("invariant broken: {problem}").into());
    }
    if !counts_agree {
        println!("invariant held:  NO, the engine's counters disagree with the acks");
        return Err(format!(
            "counters disagree: stats {stats:?}, writers saw {applied} applied and \
             {overdrafts} overdrafts of {submitted}, final seq {}",
            final_snapshot.seq()
        )
        .into());
    }
    println!(
        "invariant held:  yes, total balance {expected_total} in every snapshot, seqs never went back, counters match the acks"
    );
    println!("run it again to resume from seq {}", final_snapshot.seq());
    Ok(())
}
