use std::collections::HashMap as StdMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;
use crate::{Event, StateEvent, StateRejection};

type Map = imbl::HashMap<u8, u16>;

/// One write a transaction can make, for the model tests.
#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u16),
    Remove(u8),
    Update(u8, Option<u16>),
    Increment(u8),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    // Keys from a small range so that writes hit present keys, the same
    // key twice, and removed keys again.
    prop_oneof![
        4 => (0u8..24, any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (0u8..24).prop_map(Op::Remove),
        3 => (0u8..24, proptest::option::of(any::<u16>())).prop_map(|(k, v)| Op::Update(k, v)),
        2 => (0u8..24).prop_map(Op::Increment),
        1 => Just(Op::Clear),
    ]
}

fn run(tx: &mut Txn<'_, u8, u16>, model: &mut StdMap<u8, u16>, op: &Op) {
    match *op {
        Op::Insert(k, v) => {
            tx.insert(k, v);
            model.insert(k, v);
        }
        Op::Remove(k) => {
            assert_eq!(tx.remove(&k), model.remove(&k).is_some());
        }
        Op::Update(k, v) => {
            tx.update(k, |_| v);
            match v {
                Some(v) => model.insert(k, v),
                None => model.remove(&k),
            };
        }
        Op::Increment(k) => {
            tx.update(k, |old| Some(old.map_or(0, |v| v.wrapping_add(1))));
            let slot = model.entry(k).or_insert(u16::MAX);
            *slot = slot.wrapping_add(1);
        }
        Op::Clear => {
            tx.clear();
            model.clear();
        }
    }
}

fn sorted(map: &Map) -> Vec<(u8, u16)> {
    let mut entries: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
    entries.sort_unstable();
    entries
}

proptest! {
    #[test]
    fn undo_restores_the_map_exactly(
        initial in proptest::collection::hash_map(0u8..24, any::<u16>(), 0..24),
        ops in proptest::collection::vec(op(), 0..64),
    ) {
        let original: Map = initial.iter().map(|(k, v)| (*k, *v)).collect();
        let mut map = original.clone();
        let mut model = initial.clone();
        let mut writes = Vec::new();
        let mut tx = Txn::new(&mut map, &mut writes);
        for op in &ops {
            run(&mut tx, &mut model, op);
            // Reads see the transaction's own writes.
            prop_assert_eq!(tx.len(), model.len());
            for key in 0u8..24 {
                prop_assert_eq!(tx.get(&key), model.get(&key));
                prop_assert_eq!(tx.contains_key(&key), model.contains_key(&key));
            }
        }
        tx.undo();
        prop_assert!(writes.is_empty(), "undo drains the write set");
        prop_assert_eq!(sorted(&map), sorted(&original));
        prop_assert_eq!(map, original);
    }

    #[test]
    fn undo_leaves_what_the_buffer_held_before_the_transaction(
        ops in proptest::collection::vec(op(), 0..32),
    ) {
        // An earlier transaction's writes stay in the buffer, and only the
        // second transaction's are undone.
        let mut map = Map::new();
        let mut writes = Vec::new();
        let mut model = StdMap::new();
        let mut first = Txn::new(&mut map, &mut writes);
        run(&mut first, &mut model, &Op::Insert(1, 1));
        run(&mut first, &mut model, &Op::Insert(2, 2));
        let after_first = map.clone();
        let earlier = writes.clone();

        let mut second = Txn::new(&mut map, &mut writes);
        prop_assert!(second.writes().is_empty());
        for op in &ops {
            run(&mut second, &mut model, op);
        }
        second.undo();
        prop_assert_eq!(&writes, &earlier);
        prop_assert_eq!(map, after_first);
    }
}

#[test]
fn writes_record_each_key_and_the_value_it_replaced_in_order() {
    let mut map: Map = [(1, 10), (2, 20)].into_iter().collect();
    let mut writes = Vec::new();
    let mut tx = Txn::new(&mut map, &mut writes);
    tx.insert(1, 11);
    tx.insert(3, 30);
    assert!(tx.remove(&2));
    assert!(!tx.remove(&9), "a missing key is not removed");
    tx.update(1, |old| old.map(|v| v + 1));
    tx.update(8, |_| None); // absent, stays absent: nothing written
    let seen: Vec<_> = tx
        .writes()
        .iter()
        .map(|w| (*w.key(), w.old().copied()))
        .collect();
    assert_eq!(
        seen,
        vec![(1, Some(10)), (3, None), (2, Some(20)), (1, Some(11))]
    );
    assert_eq!(writes[1].clone().into_parts(), (3, None));
}

/// An event that writes, then iterates, and records what it saw.
#[derive(Debug, Serialize, Deserialize)]
struct SumAfterWrite {
    key: u8,
    value: u16,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("sum is {0}")]
struct Sum(u64);

impl Event for SumAfterWrite {
    type Key = u8;
    type Value = u16;
    type Rejection = Sum;

    /// Writes, then rejects with the sum of every value it iterates over:
    /// the test reads the sum from the rejection.
    fn apply(&self, tx: &mut Txn<'_, u8, u16>) -> Result<(), Sum> {
        tx.insert(self.key, self.value);
        tx.remove(&0);
        let sum = tx.iter().map(|(_, v)| u64::from(*v)).sum();
        assert_eq!(tx.iter().count(), tx.len());
        Err(Sum(sum))
    }
}

#[test]
fn iteration_inside_apply_sees_the_events_own_writes() {
    let mut map: Map = [(0, 1000), (1, 1), (2, 2)].into_iter().collect();
    let before = map.clone();
    // 1 + 2 + 40, with key 0 removed and key 3 added by the event.
    let seen = SumAfterWrite { key: 3, value: 40 }.apply_to(&mut map);
    assert_eq!(seen, Err(Sum(43)));
    assert_eq!(map, before, "the rejection undid both writes");
}

#[test]
fn apply_to_a_batch_with_a_failing_member_leaves_the_map_unchanged() {
    let mut map: Map = [(1, 1), (2, 2)].into_iter().collect();
    let before = map.clone();
    let event = StateEvent::batch([
        StateEvent::put(1, 100),
        StateEvent::delete(2),
        StateEvent::put(5, 5),
        StateEvent::Clear,
        StateEvent::put(6, 6),
        StateEvent::insert(6, 7), // present now: rejected
    ]);
    let rejected = event.apply_to(&mut map);
    assert_eq!(
        rejected,
        Err(StateRejection::InBatch {
            index: 5,
            cause: Box::new(StateRejection::AlreadyExists { key: 6 }),
        })
    );
    assert_eq!(map, before);
}

/// A transfer that credits first and debits second, so that an overdraft
/// is found after a write: the order a careless `apply` might use.
#[derive(Debug, Serialize, Deserialize)]
struct CreditThenDebit {
    from: u8,
    to: u8,
    amount: u16,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("account {account} holds {balance}, cannot take {amount}")]
struct Overdraft {
    account: u8,
    balance: u16,
    amount: u16,
}

impl Event for CreditThenDebit {
    type Key = u8;
    type Value = u16;
    type Rejection = Overdraft;

    fn apply(&self, tx: &mut Txn<'_, u8, u16>) -> Result<(), Overdraft> {
        let amount = self.amount;
        tx.update(self.to, |old| Some(old.copied().unwrap_or(0) + amount));
        let balance = tx.get(&self.from).copied().unwrap_or(0);
        let rest = balance.checked_sub(amount).ok_or(Overdraft {
            account: self.from,
            balance,
            amount,
        })?;
        tx.insert(self.from, rest);
        Ok(())
    }
}

#[test]
fn apply_to_an_overdraft_after_a_credit_leaves_the_map_unchanged() {
    let mut map: Map = [(1, 50), (2, 5)].into_iter().collect();
    let before = map.clone();
    let overdraft = CreditThenDebit {
        from: 1,
        to: 2,
        amount: 60,
    }
    .apply_to(&mut map);
    assert_eq!(
        overdraft,
        Err(Overdraft {
            account: 1,
            balance: 50,
            amount: 60
        })
    );
    assert_eq!(map, before);

    CreditThenDebit {
        from: 1,
        to: 3,
        amount: 50,
    }
    .apply_to(&mut map)
    .unwrap();
    assert_eq!(sorted(&map), vec![(1, 0), (2, 5), (3, 50)]);
}

#[test]
fn a_panic_inside_update_writes_nothing() {
    let mut map: Map = [(1, 1)].into_iter().collect();
    let mut writes = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut tx = Txn::new(&mut map, &mut writes);
        tx.insert(2, 2);
        tx.update(1, |_| panic!("on purpose"));
    }));
    assert!(outcome.is_err());
    // The write before the panic is recorded; the panicking one made none.
    assert_eq!(writes.len(), 1);
    undo_writes(&mut map, &mut writes);
    assert_eq!(sorted(&map), vec![(1, 1)]);
}

#[test]
fn store_for_imbl_returns_replaced_values() {
    let mut map = Map::new();
    let store: &mut dyn Store<u8, u16> = &mut map;
    assert!(store.is_empty());
    assert_eq!(store.insert(1, 1), None);
    assert_eq!(store.insert(1, 2), Some(1));
    assert_eq!(store.get(&1), Some(&2));
    assert_eq!(store.len(), 1);
    assert_eq!(store.iter().collect::<Vec<_>>(), vec![(&1, &2)]);
    assert_eq!(store.remove(&1), Some(2));
    assert_eq!(store.remove(&1), None);
}
