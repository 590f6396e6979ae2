//! Shared pieces of the solostate examples: the [`Bank`] domain event and
//! a small seeded generator for workloads.
//!
//! The runnable programs live next to this crate's manifest and run from
//! the workspace root:
//!
//! * `cargo run --release --example quickstart`: writers pipeline bank
//!   transfers while readers check on every snapshot that the total
//!   balance never changes.
//! * `cargo run --release --example service`: the engine as the state actor
//!   inside an inventory service, with read-your-writes, an audit log fed
//!   by the change feed, and a graceful shutdown.
//! * `cargo run --release --example many_readers`: many tasks and threads
//!   reading snapshots while a writer pipelines puts.
//! * `cargo run --release --example metrics -- 30`: a durable engine
//!   under bank transfers, its metrics (the engine's `metrics` feature)
//!   served as Prometheus text at `http://127.0.0.1:9899/metrics`.
//!
//! # Architecture
//!
//! This crate is a leaf of the workspace: it depends on `solostate` like
//! any user would, through its public API only. [`bank`] is an example of
//! writing your own [`Event`](solostate::Event); the
//! `tests/bank_invariant.rs` integration test runs it under concurrency.
//!
//! # Trade-offs
//!
//! The bank event is deliberately small (three variants, `u32` keys, `u64`
//! balances) so that the examples measure the engine rather than the
//! domain logic.
//!
//! # Example
//!
//! ```
//! use solostate::{Engine, SubmitError};
//! use solostate_examples::{Bank, BankRejection, total_balance};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let engine = Engine::<Bank>::builder().open().await?;
//!     engine.submit(Bank::deposit(1, 100)).await?;
//!     engine.submit(Bank::deposit(2, 0)).await?;
//!     let ack = engine.submit(Bank::transfer(1, 2, 30)).await?;
//!
//!     let overdraft = engine.submit(Bank::transfer(2, 1, 31)).await;
//!     assert!(matches!(
//!         overdraft,
//!         Err(SubmitError::Rejected(BankRejection::Overdraft { account: 2, .. }))
//!     ));
//!
//!     let snapshot = engine.reader().wait_for(ack.seq).await?;
//!     assert_eq!(snapshot.get(&2).as_deref(), Some(&30));
//!     assert_eq!(total_balance(&snapshot.view()), 100);
//!     engine.shutdown().await?;
//!     Ok(())
//! }
//! ```
//!
//! # Crate features
//!
//! None.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bank;
pub mod bank_v2;
pub mod rng;

pub use bank::{AccountId, Balance, Bank, BankRejection, total_balance};
pub use bank_v2::{BANK_V1_SCHEMA, BANK_V2_SCHEMA, BankV2};
pub use rng::SplitMix64;
