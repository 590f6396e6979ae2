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
//! --release` runs the tests in the long form instead.
//!
//! The harnesses so far: [`soak`] (memory under millions of overwrites
//! with a pinned reader) and [`overload`] (push-back from the bounded
//! queue). [`memory`] reads RSS, [`chart`] draws the report's SVG charts,
//! and [`workload`] holds what the harnesses share.
//!
//! The harnesses live in a library, rather than only in `tests/`, so that
//! the short form that CI runs and the long form whose figures are
//! published are the same code with different sizes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bad_input;
pub mod chart;
pub mod memory;
pub mod overload;
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
