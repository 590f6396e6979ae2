//! [`Bank`]: a domain event where money moves between accounts and an
//! overdraft is rejected.
//!
//! The state is a map from account id to balance. Every [`Bank::Transfer`]
//! keeps the total balance constant, which is what the quickstart and the
//! `bank_invariant` test check on every snapshot they read.

use serde::{Deserialize, Serialize};
use solostate::{Event, Txn};

/// An account number: the key of the map.
pub type AccountId = u32;

/// A balance in the smallest unit of the currency: the value of the map.
pub type Balance = u64;

/// A bank command. Each variant applies fully or is rejected and changes
/// nothing.
///
/// An account exists once money has been deposited into it; withdrawing
/// from or transferring to an account that never received a deposit is
/// rejected with [`BankRejection::UnknownAccount`], so a typo in an account
/// number cannot make money vanish into a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bank {
    /// Add `amount` to `account`, opening it if it does not exist yet.
    Deposit {
        /// The account credited (and opened if new).
        account: AccountId,
        /// How much to add.
        amount: Balance,
    },
    /// Take `amount` out of `account`.
    Withdraw {
        /// The account debited. It must exist.
        account: AccountId,
        /// How much to take; more than the balance is an overdraft.
        amount: Balance,
    },
    /// Move `amount` from `from` to `to`, atomically.
    Transfer {
        /// The account debited. It must exist and hold at least `amount`.
        from: AccountId,
        /// The account credited. It must exist and differ from `from`.
        to: AccountId,
        /// How much to move.
        amount: Balance,
    },
}

/// Why a [`Bank`] event was rejected. Each variant names the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BankRejection {
    /// The account holds less than the amount asked for.
    #[error("overdraft: account {account} holds {balance}, cannot take {amount}")]
    Overdraft {
        /// The account that would go negative.
        account: AccountId,
        /// Its balance at the time.
        balance: Balance,
        /// The amount asked for.
        amount: Balance,
    },
    /// No money was ever deposited into the account.
    #[error("unknown account {account}: deposit into it first to open it")]
    UnknownAccount {
        /// The account that does not exist.
        account: AccountId,
    },
    /// A transfer named the same account on both sides.
    #[error("transfer from account {account} to itself")]
    SelfTransfer {
        /// The account named twice.
        account: AccountId,
    },
    /// The credit would push the balance past [`Balance::MAX`].
    #[error("balance overflow: account {account} holds {balance}, cannot add {amount}")]
    Overflow {
        /// The account credited.
        account: AccountId,
        /// Its balance at the time.
        balance: Balance,
        /// The amount that did not fit.
        amount: Balance,
    },
}

impl Bank {
    /// Shorthand for [`Bank::Deposit`].
    pub fn deposit(account: AccountId, amount: Balance) -> Self {
        Bank::Deposit { account, amount }
    }

    /// Shorthand for [`Bank::Withdraw`].
    pub fn withdraw(account: AccountId, amount: Balance) -> Self {
        Bank::Withdraw { account, amount }
    }

    /// Shorthand for [`Bank::Transfer`].
    pub fn transfer(from: AccountId, to: AccountId, amount: Balance) -> Self {
        Bank::Transfer { from, to, amount }
    }
}

/// The balance of an existing account.
fn balance(tx: &Txn<'_, AccountId, Balance>, account: AccountId) -> Result<Balance, BankRejection> {
    tx.get(&account)
        .copied()
        .ok_or(BankRejection::UnknownAccount { account })
}

/// `balance - amount`, or the overdraft that forbids it.
fn debit(account: AccountId, balance: Balance, amount: Balance) -> Result<Balance, BankRejection> {
    balance.checked_sub(amount).ok_or(BankRejection::Overdraft {
        account,
        balance,
        amount,
    })
}

/// `balance + amount`, or the overflow that forbids it.
fn credit(account: AccountId, balance: Balance, amount: Balance) -> Result<Balance, BankRejection> {
    balance.checked_add(amount).ok_or(BankRejection::Overflow {
        account,
        balance,
        amount,
    })
}

impl Event for Bank {
    type Key = AccountId;
    type Value = Balance;
    type Rejection = BankRejection;

    /// Checks everything first and writes only when the whole event is
    /// valid. A rejection after a write would be undone anyway (by the
    /// engine, or by [`Event::apply_to`] on a bare map, as in the tests),
    /// but checking first is the cheaper habit.
    fn apply(&self, tx: &mut Txn<'_, AccountId, Balance>) -> Result<(), BankRejection> {
        match *self {
            Bank::Deposit { account, amount } => {
                let current = tx.get(&account).copied().unwrap_or(0);
                tx.insert(account, credit(account, current, amount)?);
            }
            Bank::Withdraw { account, amount } => {
                let current = balance(tx, account)?;
                tx.insert(account, debit(account, current, amount)?);
            }
            Bank::Transfer { from, to, amount } => {
                if from == to {
                    return Err(BankRejection::SelfTransfer { account: from });
                }
                let from_balance = balance(tx, from)?;
                let to_balance = balance(tx, to)?;
                let from_after = debit(from, from_balance, amount)?;
                let to_after = credit(to, to_balance, amount)?;
                tx.insert(from, from_after);
                tx.insert(to, to_after);
            }
        }
        Ok(())
    }
}

/// The sum of all balances, as a `u128` so that it cannot overflow
/// whatever the balances are.
///
/// Takes anything that iterates over `(&account, &balance)`: a
/// [`Snapshot`](solostate::Snapshot) by reference, or a [`State<Bank>`](solostate::State).
pub fn total_balance<'a>(
    balances: impl IntoIterator<Item = (&'a AccountId, impl std::ops::Deref<Target = Balance>)>,
) -> u128 {
    balances
        .into_iter()
        .map(|(_, balance)| u128::from(*balance))
        .sum()
}

#[cfg(test)]
mod tests {
    use solostate::State;

    use super::*;

    fn map_of(pairs: &[(AccountId, Balance)]) -> State<Bank> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn deposit_opens_an_account_and_adds_to_it() {
        let mut map = State::<Bank>::new();
        Bank::deposit(7, 100).apply_to(&mut map).unwrap();
        Bank::deposit(7, 50).apply_to(&mut map).unwrap();
        assert_eq!(map, map_of(&[(7, 150)]));
    }

    #[test]
    fn withdraw_takes_up_to_the_whole_balance() {
        let mut map = map_of(&[(1, 100)]);
        Bank::withdraw(1, 60).apply_to(&mut map).unwrap();
        Bank::withdraw(1, 40).apply_to(&mut map).unwrap();
        assert_eq!(map, map_of(&[(1, 0)]));
    }

    #[test]
    fn overdraft_is_rejected_and_changes_nothing() {
        let mut map = map_of(&[(1, 100), (2, 5)]);
        let before = map.clone();
        assert_eq!(
            Bank::withdraw(1, 101).apply_to(&mut map),
            Err(BankRejection::Overdraft {
                account: 1,
                balance: 100,
                amount: 101
            })
        );
        assert_eq!(
            Bank::transfer(2, 1, 6).apply_to(&mut map),
            Err(BankRejection::Overdraft {
                account: 2,
                balance: 5,
                amount: 6
            })
        );
        assert_eq!(map, before);
    }

    #[test]
    fn transfer_moves_money_and_keeps_the_total() {
        let mut map = map_of(&[(1, 100), (2, 30), (3, 0)]);
        Bank::transfer(1, 2, 70).apply_to(&mut map).unwrap();
        Bank::transfer(2, 3, 100).apply_to(&mut map).unwrap();
        assert_eq!(map, map_of(&[(1, 30), (2, 0), (3, 100)]));
        assert_eq!(total_balance(&map), 130);
    }

    #[test]
    fn transfer_to_self_is_rejected() {
        let mut map = map_of(&[(4, 10)]);
        assert_eq!(
            Bank::transfer(4, 4, 1).apply_to(&mut map),
            Err(BankRejection::SelfTransfer { account: 4 })
        );
        assert_eq!(map, map_of(&[(4, 10)]));
    }

    #[test]
    fn unknown_accounts_are_rejected_on_either_side() {
        let mut map = map_of(&[(1, 10)]);
        assert_eq!(
            Bank::withdraw(9, 1).apply_to(&mut map),
            Err(BankRejection::UnknownAccount { account: 9 })
        );
        assert_eq!(
            Bank::transfer(9, 1, 1).apply_to(&mut map),
            Err(BankRejection::UnknownAccount { account: 9 })
        );
        assert_eq!(
            Bank::transfer(1, 9, 1).apply_to(&mut map),
            Err(BankRejection::UnknownAccount { account: 9 })
        );
        assert_eq!(map, map_of(&[(1, 10)]));
    }

    #[test]
    fn overflowing_credit_is_rejected_and_changes_nothing() {
        let mut map = map_of(&[(1, Balance::MAX), (2, 1)]);
        let before = map.clone();
        assert_eq!(
            Bank::deposit(1, 1).apply_to(&mut map),
            Err(BankRejection::Overflow {
                account: 1,
                balance: Balance::MAX,
                amount: 1
            })
        );
        assert_eq!(
            Bank::transfer(2, 1, 1).apply_to(&mut map),
            Err(BankRejection::Overflow {
                account: 1,
                balance: Balance::MAX,
                amount: 1
            })
        );
        assert_eq!(map, before);
        assert_eq!(total_balance(&map), u128::from(Balance::MAX) + 1);
    }

    #[test]
    fn rejection_messages_are_lowercase_and_name_the_account() {
        let messages = [
            BankRejection::Overdraft {
                account: 3,
                balance: 1,
                amount: 2,
            }
            .to_string(),
            BankRejection::UnknownAccount { account: 3 }.to_string(),
            BankRejection::SelfTransfer { account: 3 }.to_string(),
            BankRejection::Overflow {
                account: 3,
                balance: 1,
                amount: 2,
            }
            .to_string(),
        ];
        for message in messages {
            assert!(message.starts_with(char::is_lowercase), "{message}");
            assert!(message.contains("account 3"), "{message}");
        }
    }
}
