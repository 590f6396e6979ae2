//! Schema evolution: a `bank-v1` directory opens as [`BankV2`] through
//! its upcaster, on both stores and both retention settings. The state,
//! the journaled history (replay, as-of reads, catch-up) and the
//! determinism guard's recorded hashes all carry over; the switch to
//! `bank-v2` is written with the first new event, after which neither the
//! old schema nor an engine without the upcaster opens the directory.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::Path;

use solostate::persistence::hash::state_hash;
use solostate::persistence::replay::Replay;
use solostate::persistence::upcast::Upcasters;
use solostate::{
    Builder, CheckpointPolicy, Engine, Event, OpenCause, OpenError, Retention, StoreKind,
    SubmitError,
};
use solostate_examples::{
    AccountId, BANK_V1_SCHEMA, BANK_V2_SCHEMA, Bank, BankV2, SplitMix64, total_balance,
};

const ACCOUNTS: AccountId = 8;

/// Every setting the upgrade must hold under: the versioned store, and a
/// journal pruned behind its checkpoints (so the state comes from a
/// `bank-v1` checkpoint, not from replaying every event).
const SETTINGS: [(StoreKind, Retention); 3] = [
    (StoreKind::Persistent, Retention::FullHistory),
    (StoreKind::Versioned, Retention::FullHistory),
    (StoreKind::Persistent, Retention::SinceOldestCheckpoint),
];

/// The settings both versions open with.
fn settings<E: Event>(builder: Builder<E>, store: StoreKind, retention: Retention) -> Builder<E> {
    builder
        .store(store)
        .retention(retention)
        .checkpoints(CheckpointPolicy::default().every_events(300).keep(2))
        .state_hash_every(50)
}

async fn open_v1(dir: &Path, store: StoreKind, retention: Retention) -> Engine<Bank> {
    let builder = Engine::<Bank>::builder().path(dir).schema(BANK_V1_SCHEMA);
    settings(builder, store, retention).open().await.unwrap()
}

async fn open_v2(dir: &Path, store: StoreKind, retention: Retention) -> Engine<BankV2> {
    let builder = Engine::<BankV2>::builder()
        .path(dir)
        .schema(BANK_V2_SCHEMA)
        .upcast_from(BANK_V1_SCHEMA, BankV2::from_v1);
    settings(builder, store, retention).open().await.unwrap()
}

/// Random transfers (some overdraw and are rejected).
fn transfers(rng: &mut SplitMix64, count: usize) -> Vec<(AccountId, AccountId, u64)> {
    (0..count)
        .map(|_| {
            let from = rng.below(ACCOUNTS.into()) as AccountId;
            let to = rng.below(ACCOUNTS.into()) as AccountId;
            (from, to, rng.below(600))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_bank_directory_upgrades_to_v2() {
    for (store, retention) in SETTINGS {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = SplitMix64::new(11);

        // Version 1: deposits, then transfers; a rollback too.
        let v1 = open_v1(dir.path(), store, retention).await;
        for account in 0..ACCOUNTS {
            v1.submit(Bank::deposit(account, 1_000)).await.unwrap();
        }
        let mut acked_v1 = 0;
        for (from, to, amount) in transfers(&mut rng, 1_000) {
            match v1.submit(Bank::transfer(from, to, amount)).await {
                Ok(_) => acked_v1 += 1,
                Err(SubmitError::Rejected(_)) => {}
                Err(error) => panic!("unexpected: {error}"),
            }
        }
        let before_rollback = v1.reader().seq();
        v1.submit(Bank::deposit(0, 5)).await.unwrap();
        v1.rollback_to(before_rollback).await.unwrap();
        let v1_last = v1.reader().seq();
        let v1_middle = v1_last - 100;
        let v1_hash = state_hash::<Bank>(&v1.reader().snapshot().to_map()).unwrap();
        let v1_middle_hash =
            state_hash::<Bank>(&v1.as_of(v1_middle).await.unwrap().to_map()).unwrap();
        v1.shutdown().await.unwrap();
        assert!(acked_v1 > 100, "too few transfers applied: {acked_v1}");

        // Version 2 opens it: the same state, and the history reads as v2.
        let v2 = open_v2(dir.path(), store, retention).await;
        let upcast = &v2.recovery().upcast;
        assert_eq!(upcast.len(), 1, "{store:?} {retention:?}: {upcast:?}");
        assert_eq!(
            (upcast[0].schema.as_str(), upcast[0].through),
            (BANK_V1_SCHEMA, v1_last)
        );
        assert!(v2.recovery().is_clean(), "{:?}", v2.recovery());
        assert_eq!(v2.reader().seq(), v1_last);
        let v2_state = v2.reader().snapshot().to_map();
        assert_eq!(state_hash::<BankV2>(&v2_state).unwrap(), v1_hash);
        assert_eq!(total_balance(&v2_state), u128::from(ACCOUNTS) * 1_000);
        if retention == Retention::FullHistory {
            // As-of reads replay the upcast journal.
            let middle = v2.as_of(v1_middle).await.unwrap().to_map();
            assert_eq!(state_hash::<BankV2>(&middle).unwrap(), v1_middle_hash);
            // Catch-up delivers the old events as v2, then the new ones.
            let mut feed = v2.changes_from(0).await.unwrap();
            let first = feed.recv().await.unwrap();
            assert_eq!(
                (first.seq(), first.event()),
                (
                    1,
                    &BankV2::Deposit {
                        account: 0,
                        amount: 1_000
                    }
                )
            );
        }

        // New events, with references; a rollback into the v1 history.
        let referenced = BankV2::Transfer {
            from: 1,
            to: 2,
            amount: 1,
            reference: Some("invoice 7".into()),
        };
        let first_v2 = v2.submit(referenced.clone()).await.unwrap().seq;
        assert_eq!(first_v2, v1_last + 1);
        for (from, to, amount) in transfers(&mut rng, 400) {
            let event = BankV2::Transfer {
                from,
                to,
                amount,
                reference: Some(format!("r{amount}")),
            };
            let _ = v2.submit(event).await;
        }
        let v2_last = v2.reader().seq();
        let v2_hash = state_hash::<BankV2>(&v2.reader().snapshot().to_map()).unwrap();
        v2.shutdown().await.unwrap();

        // Switched: the old schema, and v2 without its upcaster, are
        // refused as incompatible (never as damage).
        let old = Engine::<Bank>::builder()
            .path(dir.path())
            .schema(BANK_V1_SCHEMA)
            .open()
            .await
            .unwrap_err();
        assert_eq!(old.cause(), Some(OpenCause::Incompatible), "{old}");
        if retention == Retention::FullHistory {
            let bare = Engine::<BankV2>::builder()
                .path(dir.path())
                .schema(BANK_V2_SCHEMA)
                .open()
                .await
                .unwrap_err();
            assert_eq!(bare.cause(), Some(OpenCause::Incompatible), "{bare}");
            assert!(bare.to_string().contains(BANK_V1_SCHEMA), "{bare}");
        }

        // Reopened with it: the whole history, both schemas, replays.
        let v2 = open_v2(dir.path(), store, retention).await;
        assert_eq!(v2.reader().seq(), v2_last);
        assert_eq!(
            state_hash::<BankV2>(&v2.reader().snapshot().to_map()).unwrap(),
            v2_hash
        );
        v2.shutdown().await.unwrap();

        let mut upcasters = Upcasters::new();
        upcasters.add(BANK_V1_SCHEMA, BankV2::from_v1);
        let replay =
            Replay::<BankV2>::open_upcasting(dir.path(), BANK_V2_SCHEMA, upcasters).unwrap();
        assert_eq!(replay.last_seq().unwrap(), v2_last);
        let replayed = replay.state_at(v2_last).unwrap();
        assert_eq!(state_hash::<BankV2>(&replayed).unwrap(), v2_hash);
        let new_first = replay.steps(first_v2..=first_v2).next().unwrap().unwrap();
        assert_eq!(new_first.event(), Some(&referenced));
        if retention == Retention::FullHistory {
            let old_first = replay.steps(1..=1).next().unwrap().unwrap();
            assert_eq!(
                old_first.event(),
                Some(&BankV2::Deposit {
                    account: 0,
                    amount: 1_000
                })
            );
        }
    }
}

#[tokio::test]
async fn an_upcaster_for_the_engines_own_schema_or_twice_is_a_bad_setting() {
    let dir = tempfile::tempdir().unwrap();
    let own = Engine::<BankV2>::builder()
        .path(dir.path())
        .schema(BANK_V2_SCHEMA)
        .upcast_from(BANK_V2_SCHEMA, BankV2::from_v1)
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(
            own,
            OpenError::InvalidConfig {
                setting: "upcast_from",
                ..
            }
        ),
        "{own}"
    );
    let twice = Engine::<BankV2>::builder()
        .path(dir.path())
        .schema(BANK_V2_SCHEMA)
        .upcast_from(BANK_V1_SCHEMA, BankV2::from_v1)
        .upcast_from(BANK_V1_SCHEMA, BankV2::from_v1)
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(
            twice,
            OpenError::InvalidConfig {
                setting: "upcast_from",
                ..
            }
        ),
        "{twice}"
    );
}
