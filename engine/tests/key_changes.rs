//! Key-level changes (`Builder::key_changes`, `Engine::changes_between`):
//! a change-feed subscriber that stopped at a random seq (mid-batch too)
//! catches up from the coalesced changes since then, and then follows a
//! new feed, and must end with exactly the live state, on either store.
//! Random `StateEvent`s (puts, deletes, compare-and-swaps, clears, atomic
//! batches; some reject) go in with small random batches. The refusals
//! are checked too: off, backward, not yet, forgotten, rolled back.

mod common;

use std::collections::HashMap;

use common::model::{Kv, kv};
use proptest::prelude::*;
use solostate::{ChangesError, Engine, StoreKind};

fn live(engine: &Engine<Kv>) -> HashMap<u8, u8> {
    let snapshot = engine.reader().snapshot();
    let view = snapshot.view();
    view.iter().map(|(k, v)| (*k, *v)).collect()
}

fn run(events: Vec<Kv>, stop_at: usize, max_batch: usize, store: StoreKind) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let engine = Engine::<Kv>::builder()
            .key_changes(true)
            .store(store)
            .max_batch(max_batch)
            .channel_capacity(16)
            .open()
            .await
            .expect("open");
        // The subscriber: a copy of the state, kept from the feed until it
        // stops at `mine`.
        let mut feed = engine.reader().changes();
        let mut copy = solostate::State::<Kv>::new();
        let mut pending = Vec::new();
        for event in events {
            pending.push(engine.send(event).await.expect("open"));
        }
        for ack in pending {
            let _ = ack.await; // some reject; that is part of the test
        }
        let last = engine.reader().seq();
        let mine = (stop_at as u64).min(last);
        while feed.next_seq() <= mine {
            let change = feed.try_recv().expect("no lag").expect("committed");
            solostate::Event::apply_to(change.event(), &mut copy)
                .expect("committed events re-apply");
        }
        // Resync: a new feed first, then the gap up to where it starts.
        let mut rest = engine.reader().changes();
        let gap = engine
            .changes_between(mine, rest.next_seq() - 1)
            .await
            .expect("the gap is in the window");
        for (key, value) in gap {
            match value {
                Some(value) => copy.insert(key, value),
                None => copy.remove(&key),
            };
        }
        let copy: HashMap<u8, u8> = copy.into_iter().collect();
        assert_eq!(
            copy,
            live(&engine),
            "{store:?}: caught up at seq {}",
            rest.next_seq() - 1
        );
        // The new feed continues exactly after the gap.
        let more = engine
            .send(Kv::put(9, 9))
            .await
            .expect("open")
            .await
            .expect("put");
        let change = rest.recv().await.expect("the next event");
        assert_eq!(change.seq(), more.seq);
        engine.shutdown().await.expect("shutdown");
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn a_subscriber_catches_up_from_coalesced_key_changes(
        events in proptest::collection::vec(kv(), 0..80),
        stop_at in 0usize..80,
        max_batch in 1usize..9,
        versioned in any::<bool>(),
    ) {
        let store = if versioned { StoreKind::Versioned } else { StoreKind::Persistent };
        run(events, stop_at, max_batch, store);
    }
}

#[tokio::test]
async fn refusals_name_why() {
    let off = Engine::<Kv>::builder().open().await.unwrap();
    off.submit(Kv::put(1, 1)).await.unwrap();
    assert_eq!(off.changes_between(0, 1).await, Err(ChangesError::Off));
    off.shutdown().await.unwrap();

    let engine = Engine::<Kv>::builder()
        .key_changes(true)
        .as_of_window(4)
        .max_batch(1)
        .open()
        .await
        .unwrap();
    for value in 0..10 {
        engine.submit(Kv::put(1, value)).await.unwrap();
    }
    assert_eq!(
        engine.changes_between(5, 3).await,
        Err(ChangesError::Backward {
            after: 5,
            through: 3
        })
    );
    assert_eq!(
        engine.changes_between(5, 11).await,
        Err(ChangesError::NotYet {
            through: 11,
            last: 10
        })
    );
    assert!(matches!(
        engine.changes_between(0, 10).await,
        Err(ChangesError::Forgotten { after: 0, .. })
    ));
    assert_eq!(
        engine.changes_between(8, 10).await,
        Ok(HashMap::from([(1, Some(9))]))
    );
    let rollback = engine.rollback_to(8).await.unwrap();
    assert_eq!(
        engine.changes_between(9, rollback.seq).await,
        Err(ChangesError::RolledBack {
            seq: rollback.seq,
            target: 8
        })
    );
    engine.submit(Kv::delete(1)).await.unwrap();
    assert_eq!(
        engine.changes_between(rollback.seq, rollback.seq + 1).await,
        Ok(HashMap::from([(1, None)]))
    );
    engine.shutdown().await.unwrap();
}
