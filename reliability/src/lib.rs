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
//! `SOLOSTATE_RELIABILITY_MODE=full cargo test -p solostate-reliability
//! --release` runs the soak and overload tests in their long form instead;
//! the other harnesses' long forms run in the bin (`--full`), and the
//! model test's sizes also come from `SOLOSTATE_MODEL_SESSIONS` and
//! `SOLOSTATE_MODEL_SEED`.
//!
//! The harnesses, by the names the bin's `--only` takes:
//!
//! * `fault_sweep`, [`fault_sweep`]: a failed journal write, a failed flush and a full
//!   disk at every N in a range, each checked for refusals that name the
//!   cause, a published state that stops at the last durable batch, and a
//!   reopen that holds exactly the acked events;
//! * `model_faults`, [`model_faults`]: random sessions of writes, rollbacks, checkpoints,
//!   restarts, injected faults and SIGKILLed child processes, against a
//!   plain model, live and replayed;
//! * `bad_input`, [`bad_input`]: hostile records, checkpoint files and damaged sled
//!   journals through the public decode and open APIs;
//! * `soak` and `soak_durable` (journaling every 100 ms), [`soak`]: memory
//!   under millions of overwrites with a pinned reader;
//! * `overload`, [`overload`]: push-back from the bounded queue, with
//!   producers at ten times what a journal with a slow flush (a
//!   `FaultPlan::flush_delay`) absorbs;
//! * `power_cut`, [`powercut`]: a durable engine with the default settings
//!   on a simulated disk (an in-memory FUSE filesystem that keeps only what
//!   was fsynced), the power cut at random moments, during checkpoints and
//!   during rollbacks, then reopened and checked against a model. Its tests
//!   need FUSE; without it they skip, unless `SOLOSTATE_REQUIRE_FUSE=1`.
//!
//! The fault harnesses drive the engine through `Builder::faults`
//! (solostate's `fault-injection` feature, which this crate turns on) and
//! the events of [`fault_workload`]. [`memory`] reads RSS, [`chart`] draws
//! the report's SVG charts, [`report`] writes it, and [`workload`] holds
//! what the harnesses share (the seedable generator, the runtime, latency
//! summaries) and the soak and overload events.
//!
//! The harnesses live in a library, rather than only in `tests/`, so that
//! the short form that CI runs and the long form whose figures are
//! published are the same code with different sizes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bad_input;
pub mod chart;
pub mod fault_sweep;
pub mod fault_workload;
pub mod memory;
pub mod model_faults;
pub mod overload;
pub mod powercut;
pub mod report;
pub mod soak;
pub mod workload;

/// The allocator of every process this crate is linked into (the bin and
/// its tests): the system allocator, counted by `cap` (its `stats`
/// feature), so that harnesses can report heap use and the bad-input
/// sweep can show that no hostile length is allocated. A crate of its own
/// because an allocator needs `unsafe`, which our crates forbid.
#[global_allocator]
pub static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);
