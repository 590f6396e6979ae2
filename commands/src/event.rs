//! The [`Event`] trait: one deterministic transition of the state map.

use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Txn;

/// The state an engine owns for events of type `E`: a persistent hash map.
///
/// It is an [`imbl::HashMap`] because cloning it is O(1) and later writes
/// copy only the paths they touch. That is what makes immutable snapshots
/// and rollback cheap. Events write it through a [`Txn`], which undoes a
/// failed event's writes.
pub type State<E> = imbl::HashMap<<E as Event>::Key, <E as Event>::Value>;

/// A command that changes the state: a deterministic transition of the map
/// that either applies or rejects with a reason.
///
/// Implement it for your own domain event enum, or use the built-in
/// key-value vocabulary [`StateEvent`](crate::StateEvent).
///
/// `apply` reads and writes the state through a [`Txn`], not the map
/// itself. The transaction records every write with the value it replaced
/// (its write set), which is how a failed event is undone, and it hides
/// which store holds the state, so the same `apply` runs on any of them.
///
/// # Contract
///
/// * **Deterministic.** Given the same state, `apply` must make the same
///   writes and give the same answer, every time and on every machine. The
///   journal is replayed through `apply` to rebuild state, so hidden inputs
///   (clocks, random numbers, environment, iteration order of a
///   `std::collections::HashMap` or of [`Txn::iter`]) would make the
///   replayed state differ from the live one. Put such inputs into the
///   event itself.
/// * **Reject by returning `Err`.** A rejected event is answered with its
///   reason and is never applied nor journaled. You need not undo partial
///   writes before returning `Err` (or panicking): the engine undoes every
///   write the event made from the transaction's write set, newest first,
///   so the state is exactly as before the event. Checking before writing
///   is still the cheaper habit.
/// * **Panics are contained.** A panicking `apply` rejects only its own
///   command: the engine catches the panic, undoes the writes recorded
///   before it, and keeps serving.
///
/// # Example: bank accounts
///
/// A domain event where an overdraft is rejected. The total balance is an
/// invariant that every applied event keeps.
///
/// ```
/// use imbl::HashMap;
/// use serde::{Deserialize, Serialize};
/// use solostate_commands::{Event, Txn};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// enum Bank {
///     Deposit { account: u32, amount: u64 },
///     Withdraw { account: u32, amount: u64 },
///     Transfer { from: u32, to: u32, amount: u64 },
/// }
///
/// #[derive(Debug, thiserror::Error, PartialEq)]
/// enum BankError {
///     #[error("account {account} holds {balance}, cannot take {amount}")]
///     Overdraft { account: u32, balance: u64, amount: u64 },
/// }
///
/// fn take(tx: &mut Txn<'_, u32, u64>, account: u32, amount: u64) -> Result<(), BankError> {
///     let balance = tx.get(&account).copied().unwrap_or(0);
///     let rest = balance
///         .checked_sub(amount)
///         .ok_or(BankError::Overdraft { account, balance, amount })?;
///     tx.insert(account, rest);
///     Ok(())
/// }
///
/// fn credit(tx: &mut Txn<'_, u32, u64>, account: u32, amount: u64) {
///     tx.update(account, |balance| Some(balance.copied().unwrap_or(0) + amount));
/// }
///
/// impl Event for Bank {
///     type Key = u32;
///     type Value = u64;
///     type Rejection = BankError;
///
///     fn apply(&self, tx: &mut Txn<'_, u32, u64>) -> Result<(), BankError> {
///         match *self {
///             Bank::Deposit { account, amount } => credit(tx, account, amount),
///             Bank::Withdraw { account, amount } => take(tx, account, amount)?,
///             Bank::Transfer { from, to, amount } => {
///                 take(tx, from, amount)?;
///                 credit(tx, to, amount);
///             }
///         }
///         Ok(())
///     }
/// }
///
/// let mut map = HashMap::new();
/// Bank::Deposit { account: 1, amount: 100 }.apply_to(&mut map).unwrap();
/// Bank::Transfer { from: 1, to: 2, amount: 30 }.apply_to(&mut map).unwrap();
/// let overdraft = Bank::Withdraw { account: 2, amount: 31 }.apply_to(&mut map);
/// assert_eq!(overdraft, Err(BankError::Overdraft { account: 2, balance: 30, amount: 31 }));
/// assert_eq!(map.values().sum::<u64>(), 100);
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The map's key type. `Debug` so that errors can name the key.
    type Key: Hash + Eq + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The map's value type. Clones should be cheap (a write copies the
    /// map node holding the entry, values included); wrap large values in an
    /// `Arc`.
    type Value: Clone + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Why an event was rejected. Returned to the submitter unchanged.
    type Rejection: std::error::Error + Send + Sync + 'static;

    /// Applies the event through `tx`, or rejects it.
    ///
    /// # Errors
    ///
    /// Returns the rejection reason when the event does not apply to the
    /// current state (an overdraft, a compare-and-swap mismatch, ...). The
    /// caller then undoes this call's writes from `tx`'s write set (the
    /// engine and [`apply_to`](Self::apply_to) do).
    fn apply(&self, tx: &mut Txn<'_, Self::Key, Self::Value>) -> Result<(), Self::Rejection>;

    /// Applies the event straight to a map, all or nothing: through a
    /// [`Txn`] over `map`, whose writes are undone if `apply` rejects, so a
    /// rejected event leaves `map` unchanged. For replay, tests, models and
    /// anything else that applies events outside an engine.
    ///
    /// It does not catch panics: a panicking `apply` unwinds out of this
    /// call and may leave `map` part-written. The engine catches them (and
    /// undoes); a caller that must survive a panic wraps this in
    /// [`std::panic::catch_unwind`] and throws `map` away after one.
    ///
    /// # Errors
    ///
    /// The event's rejection, with `map` as it was before the call.
    fn apply_to(&self, map: &mut State<Self>) -> Result<(), Self::Rejection>
    where
        Self: Sized,
    {
        let mut writes = Vec::new();
        let mut tx = Txn::new(map, &mut writes);
        let applied = self.apply(&mut tx);
        if applied.is_err() {
            tx.undo();
        }
        applied
    }
}
