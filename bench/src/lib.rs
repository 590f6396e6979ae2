//! solostate's comparison benchmark: the engine beside the shared maps,
//! embedded stores and servers people would otherwise keep their state
//! in, run side by side in one process per comparison set on the same
//! keys, values and op sequences, and written up as `BENCHMARKS.md` with
//! ratios rather than lone numbers.
//!
//! The binary (`cargo run --release -p solostate-bench -- --quick`) is the
//! way to use it; the library exists so that its parts can be tested.
//!
//! * [`workload`]: values, the zipf generator, per-thread op sequences.
//! * [`adapters`]: one [`Contender`](adapters::Contender) per store, by
//!   family.
//! * [`driver`]: closed-loop throughput and open-loop, fixed-rate latency.
//! * [`metrics`]: histograms, `/proc` memory, the machine's description.
//! * [`sets`]: which contenders and workloads run together; memory in
//!   child processes.
//! * [`recovery`]: replay, open from a checkpoint, journal bytes.
//! * [`report`] and [`chart`]: the markdown and the SVG.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adapters;
pub mod chart;
pub mod driver;
pub mod metrics;
pub mod recovery;
pub mod report;
pub mod sets;
pub mod workload;
