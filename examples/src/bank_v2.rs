//! [`BankV2`]: the second version of [`Bank`]'s events, and the upcaster
//! that reads a `bank-v1` directory as `bank-v2`.
//!
//! Version 2 adds a payment reference to transfers. The accounts and
//! balances (the state) are as before, and every command applies exactly
//! as its version-1 form did, which is what lets an engine open a
//! directory written under [`BANK_V1_SCHEMA`] with
//! `Builder::upcast_from(BANK_V1_SCHEMA, BankV2::from_v1)`: the old records
//! stay as they were written and are converted as they are read.

use serde::{Deserialize, Serialize};
use solostate::{Event, Txn};

use crate::bank::{AccountId, Balance, Bank, BankRejection};

/// The schema name of [`Bank`]'s journals.
pub const BANK_V1_SCHEMA: &str = "bank-v1";

/// The schema name of [`BankV2`]'s journals.
pub const BANK_V2_SCHEMA: &str = "bank-v2";

/// A bank command, version 2: [`Bank`] with a payment reference on
/// transfers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankV2 {
    /// Add `amount` to `account`, opening it if it does not exist yet.
    Deposit {
        /// The account credited (and opened if new).
        account: AccountId,
        /// The amount added.
        amount: Balance,
    },
    /// Take `amount` from `account`.
    Withdraw {
        /// The account debited.
        account: AccountId,
        /// The amount taken.
        amount: Balance,
    },
    /// Move `amount` from `from` to `to`.
    Transfer {
        /// The account debited.
        from: AccountId,
        /// The account credited.
        to: AccountId,
        /// The amount moved.
        amount: Balance,
        /// What the payment is for; `None` for every transfer recorded
        /// under version 1, which had no reference.
        reference: Option<String>,
    },
}

impl From<Bank> for BankV2 {
    fn from(old: Bank) -> BankV2 {
        BankV2::from_v1(old)
    }
}

impl BankV2 {
    /// The upcaster: a version-1 command as version 2. (A plain function,
    /// where `BankV2::from` would leave the old type to infer.)
    pub fn from_v1(old: Bank) -> BankV2 {
        match old {
            Bank::Deposit { account, amount } => BankV2::Deposit { account, amount },
            Bank::Withdraw { account, amount } => BankV2::Withdraw { account, amount },
            Bank::Transfer { from, to, amount } => BankV2::Transfer {
                from,
                to,
                amount,
                reference: None,
            },
        }
    }

    /// The version-1 command this one applies as: the reference changes
    /// nothing in the state, so both versions share one `apply`, and an
    /// upcast event cannot apply differently from the event it was.
    fn as_v1(&self) -> Bank {
        match *self {
            BankV2::Deposit { account, amount } => Bank::Deposit { account, amount },
            BankV2::Withdraw { account, amount } => Bank::Withdraw { account, amount },
            BankV2::Transfer {
                from, to, amount, ..
            } => Bank::Transfer { from, to, amount },
        }
    }
}

impl Event for BankV2 {
    type Key = AccountId;
    type Value = Balance;
    type Rejection = BankRejection;

    fn apply(&self, tx: &mut Txn<'_, AccountId, Balance>) -> Result<(), BankRejection> {
        self.as_v1().apply(tx)
    }
}

#[cfg(test)]
mod tests {
    use solostate::State;

    use super::*;

    #[test]
    fn an_upcast_command_applies_as_the_old_one() {
        let old = [
            Bank::deposit(1, 100),
            Bank::transfer(1, 2, 30),
            Bank::withdraw(2, 31),
            Bank::transfer(2, 2, 1),
        ];
        let (mut v1, mut v2) = (State::<Bank>::new(), State::<BankV2>::new());
        for event in old {
            let before = v1.clone();
            assert_eq!(
                event.apply_to(&mut v1),
                BankV2::from(event).apply_to(&mut v2)
            );
            assert_eq!(v1, v2, "after {event:?} from {before:?}");
        }
    }
}
