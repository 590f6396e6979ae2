//! Replaying a bank's event log: a live journaled run and the read-only
//! replay of its directory give the same state hash, at the end and at
//! past seqs, and the replayed events are the ones the writer was acked.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use solostate::persistence::hash::state_hash;
use solostate::persistence::replay::Replay;
use solostate::{AckError, CheckpointPolicy, Engine};
use solostate_examples::{AccountId, Bank, SplitMix64, total_balance};

const ACCOUNTS: AccountId = 16;

#[tokio::test]
async fn replay_gives_the_live_runs_state_hash() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::<Bank>::builder()
        .path(dir.path())
        .schema("bank-v1")
        .journal_cache_bytes(4 << 20)
        .checkpoints(CheckpointPolicy::default().every_events(700).keep(3))
        .open()
        .await
        .unwrap();
    for account in 0..ACCOUNTS {
        engine.submit(Bank::deposit(account, 1_000)).await.unwrap();
    }
    let mut rng = SplitMix64::new(7);
    let mut pending = Vec::new();
    for _ in 0..3_000 {
        let from = rng.below(ACCOUNTS.into()) as AccountId;
        let to = rng.below(ACCOUNTS.into()) as AccountId;
        let amount = rng.below(400);
        pending.push(engine.send(Bank::transfer(from, to, amount)).await.unwrap());
    }
    let mut acked = Vec::new();
    for ack in pending {
        match ack.await {
            Ok(ack) => acked.push(ack.seq),
            Err(AckError::Rejected(_)) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    let last = engine.reader().seq();
    let middle = last / 2;
    let live_middle = state_hash::<Bank>(&engine.as_of(middle).await.unwrap().to_map()).unwrap();
    let live_last = state_hash::<Bank>(&engine.reader().snapshot().to_map()).unwrap();
    engine.shutdown().await.unwrap();

    let replay = Replay::<Bank>::open(dir.path(), "bank-v1").unwrap();
    assert_eq!(replay.last_seq().unwrap(), last);
    let state = replay.state_at(last).unwrap();
    assert_eq!(state_hash::<Bank>(&state).unwrap(), live_last);
    assert_eq!(total_balance(&state), u128::from(ACCOUNTS) * 1_000);
    let state = replay.state_at(middle).unwrap();
    assert_eq!(state_hash::<Bank>(&state).unwrap(), live_middle);

    let transfers: Vec<u64> = replay
        .steps(u64::from(ACCOUNTS) + 1..)
        .map(|entry| entry.unwrap().seq)
        .collect();
    assert_eq!(
        transfers, acked,
        "the journal holds exactly the acked events"
    );
}
