//! Reliability harnesses for solostate, and the report they feed.
//!
//! solostate promises that **an acknowledged event is never lost, no reader
//! ever sees state that is later taken back, and bad input gets a clear
//! error**. Each module here is a harness that checks one part of that
//! promise and returns its figures as a [`report::Section`]. The crate's
//! tests run every harness in its short form (CI); the `reliability` bin
//! runs them in their long form and writes `RELIABILITY.md`:
//!
//! ```sh
//! cargo run --release -p solostate-reliability --bin reliability -- --full
//! ```
//!
//! The harnesses so far:
//!
//! * [`fault_sweep`]: a failed journal write, a failed flush and a full
//!   disk at every N in a range, each checked for refusals that name the
//!   cause, a published state that stops at the last durable batch, and a
//!   reopen that holds exactly the acked events;
//! * [`model_faults`]: random sessions of writes, rollbacks, checkpoints,
//!   restarts, injected faults and SIGKILLed child processes, against a
//!   plain model, live and replayed.
//!
//! Both drive the engine through `Builder::faults` (solostate's
//! `fault-injection` feature, which this crate turns on) and the event
//! workload in [`workload`].
//!
//! The harnesses live in a library, rather than only in `tests/`, so that
//! the short form that CI runs and the long form whose figures are
//! published are the same code with different sizes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fault_sweep;
pub mod model_faults;
pub mod report;
pub mod workload;
