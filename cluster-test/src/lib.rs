//! The cluster test harness for solostate's replication.
//!
//! Issue 14 replicates solostate on openraft and tests the cluster as real
//! processes on 127.0.0.1: failover (the leader SIGKILLed or SIGSTOPped),
//! linearizability of a compare-and-swap workload, partitions and
//! catch-up. This crate holds that harness:
//!
//! * [`linearizability`]: a Porcupine-style checker (Wing & Gong's search
//!   with Lowe's just-in-time linearization and memoization) for client
//!   histories, with timed-out operations treated as possibly applied at
//!   any time after their call, a step budget or timeout that answers
//!   "unknown" instead of hanging, and counterexamples that name the key,
//!   the longest linearizable prefix and the operations that could not be
//!   placed. [`model`] holds its [`model::Model`] trait and the key-value
//!   map of compare-and-swap registers, with `StateEvent`'s semantics,
//!   checked one key at a time.
//! * [`proxy`]: a loopback TCP proxy per directed link between two nodes,
//!   switchable at run time between passing, delaying, resetting and
//!   silently swallowing traffic, and [`proxy::Network`], which puts one
//!   proxy on every link of a cluster and partitions it: isolate a node,
//!   or split `{a} | {b, c}`.
//! * [`cluster`]: a cluster of `cluster-node` processes (this crate's
//!   binary: a `ReplicatedEngine` of `StateEvent<String, u64>` with a
//!   plain-text test API) on 127.0.0.1, each Raft link through a
//!   [`proxy::Network`] proxy; SIGKILL, SIGSTOP/SIGCONT, restart from disk,
//!   restart with a wiped disk; and [`cluster::ClusterClient`], whose
//!   writes end as acknowledged, rejected, refused (certainly not applied)
//!   or unknown.
//! * [`writers`]: client tasks that write unique keys through chosen
//!   nodes while a test injects faults, recording every outcome, so that
//!   "no acknowledged write lost" is a set check.
//!
//! The tests (`tests/`): `failover.rs` (the leader SIGKILLed or paused,
//! alternately; `SOLOSTATE_FAILOVER_CYCLES` for the long form),
//! `partition.rs`, `linearizable.rs` (`SOLOSTATE_LINEARIZABLE_ROUNDS`) and
//! `catch_up.rs`. This crate is `publish = false`: it is test equipment.
//!
//! # How the pieces are used
//!
//! A cluster test starts each node as a process listening on its own
//! port, starts a [`proxy::Network`] over those ports, and gives every node
//! its own table of peer addresses from [`proxy::Network::peers_of`], so
//! that all Raft traffic from node `a` to node `b` crosses the proxy for
//! the link `a -> b`. Client tasks run a random workload of reads, puts,
//! deletes and compare-and-swaps against the cluster, each recording an
//! [`linearizability::Operation`] with its call and return times (a
//! request that timed out or failed ambiguously is recorded as
//! [`linearizability::Completion::Unknown`]), while the test partitions,
//! heals and kills nodes. At the end [`linearizability::check_kv`] must
//! answer [`linearizability::Verdict::Linearizable`].
//!
//! # Example
//!
//! A stale read: the write of 2 finished before the read began, so the
//! read may not see 1.
//!
//! ```
//! use solostate_cluster_test::linearizability::{Limits, Operation, Verdict, check_kv};
//! use solostate_cluster_test::model::{KvInput, KvOutput};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let put = |value| KvInput::Put { key: "x", value };
//! let history = vec![
//!     Operation::returned(1, put(1), 0, 10, KvOutput::Ok),
//!     Operation::returned(1, put(2), 20, 30, KvOutput::Ok),
//!     Operation::returned(2, KvInput::Read { key: "x" }, 40, 50, KvOutput::Value(Some(1))),
//! ];
//! match check_kv(&history, &Limits::default())? {
//!     Verdict::NotLinearizable(why) => {
//!         assert_eq!(why.partition.as_deref(), Some("\"x\""));
//!         assert_eq!(why.stuck, 2);
//!         println!("{why}");
//!     }
//!     other => panic!("expected a stale read to be caught, got {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cluster;
pub mod linearizability;
pub mod model;
pub mod proxy;
pub mod writers;
