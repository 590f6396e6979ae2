//! The [`Event`] trait: one deterministic transition of the state map.

use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The state an engine owns for events of type `E`: a persistent hash map.
///
/// It is an [`imbl::HashMap`] because cloning it is O(1) and later writes
/// copy only the paths they touch. That is what makes immutable snapshots,
/// panic isolation and rollback cheap.
pub type State<E> = imbl::HashMap<<E as Event>::Key, <E as Event>::Value>;

/// A command that changes the state: a deterministic transition of the map
/// that either applies or rejects with a reason.
///
/// Implement it for your own domain event enum, or use the built-in
/// key-value vocabulary [`StateEvent`](crate::StateEvent).
///
/// # Contract
///
/// * **Deterministic.** Given the same map, `apply` must make the same
///   change and give the same answer, every time and on every machine. The
///   journal is replayed through `apply` to rebuild state, so hidden inputs
///   (clocks, random numbers, environment, iteration order of a
///   `std::collections::HashMap`) would make the replayed state differ from
///   the live one. Put such inputs into the event itself.
/// * **Reject by returning `Err`.** A rejected event is answered with its
///   reason and is never applied nor journaled. You need not undo partial
///   writes before returning `Err` (or panicking): the engine keeps the
///   previous version of the persistent map and discards whatever a failed
///   `apply` did. Checking before writing is still the cheaper habit.
/// * **Panics are contained.** A panicking `apply` rejects only its own
///   command; the engine keeps serving.
///
/// # Example: bank accounts
///
/// A domain event where an overdraft is rejected. The total balance is an
/// invariant that every applied event keeps.
///
/// ```
/// use imbl::HashMap;
/// use serde::{Deserialize, Serialize};
/// use solostate_commands::Event;
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
/// fn take(map: &mut HashMap<u32, u64>, account: u32, amount: u64) -> Result<(), BankError> {
///     let balance = map.get(&account).copied().unwrap_or(0);
///     let rest = balance
///         .checked_sub(amount)
///         .ok_or(BankError::Overdraft { account, balance, amount })?;
///     map.insert(account, rest);
///     Ok(())
/// }
///
/// impl Event for Bank {
///     type Key = u32;
///     type Value = u64;
///     type Rejection = BankError;
///
///     fn apply(&self, map: &mut HashMap<u32, u64>) -> Result<(), BankError> {
///         match *self {
///             Bank::Deposit { account, amount } => {
///                 *map.entry(account).or_insert(0) += amount;
///             }
///             Bank::Withdraw { account, amount } => take(map, account, amount)?,
///             Bank::Transfer { from, to, amount } => {
///                 take(map, from, amount)?;
///                 *map.entry(to).or_insert(0) += amount;
///             }
///         }
///         Ok(())
///     }
/// }
///
/// let mut map = HashMap::new();
/// Bank::Deposit { account: 1, amount: 100 }.apply(&mut map).unwrap();
/// Bank::Transfer { from: 1, to: 2, amount: 30 }.apply(&mut map).unwrap();
/// let overdraft = Bank::Withdraw { account: 2, amount: 31 }.apply(&mut map);
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

    /// Applies the event to `state`, or rejects it.
    ///
    /// # Errors
    ///
    /// Returns the rejection reason when the event does not apply to the
    /// current state (an overdraft, a compare-and-swap mismatch, ...). The
    /// engine then discards any writes this call made.
    fn apply(
        &self,
        state: &mut imbl::HashMap<Self::Key, Self::Value>,
    ) -> Result<(), Self::Rejection>;
}
