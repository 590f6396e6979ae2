//! The determinism guard's shared types and its local half: the hash of a
//! node's state at one exact seq ([`state_hash_at`]), what a node answers
//! when it cannot give it ([`Unavailable`]), and what comparing nodes
//! reports ([`GuardReport`], [`Divergence`], [`GuardError`]).
//!
//! Why a module of its own: the client route (`client.rs`) computes the
//! local hash for a peer, and the comparison (`compare.rs`) calls that
//! route; both import this low module, and neither imports the other's
//! half of the work.
//!
//! Why the guard exists: every node applies the same log in the same
//! order, so with a deterministic `Event::apply` every node's state at a
//! given seq is the same map. A non-deterministic `apply` (a clock, a
//! random number, an iteration order) breaks that silently; comparing the
//! order-independent state hash at one seq across nodes finds it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use solostate::persistence::hash::hasher_of;
use solostate::{AsOfError, Event, SnapshotOf};

use crate::logged::Logged;
use crate::machine::Shared;

/// The state hash of one node at one exact seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateHash {
    /// The engine seq the hash is of: the state after exactly the events
    /// with seq `<= seq`.
    pub seq: u64,
    /// The order-independent hash of every entry
    /// (`solostate::persistence::hash::entries_hash`), so two nodes whose
    /// maps hold the same entries agree however the maps iterate.
    pub hash: u64,
    /// How many entries the state holds: a cheap second witness, and a
    /// hint for a human reading a divergence.
    pub entries: u64,
}

/// Why a node cannot give its state hash at a seq. This is an answer, not
/// a failure of the node: a node that lags or has a shorter history
/// simply does not hold that state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// The node has not applied that seq yet (it lags, or the seq was
    /// never written).
    #[error("not available: seq {seq} is not applied yet (last applied seq {last})")]
    NotApplied {
        /// The seq asked for.
        seq: u64,
        /// The node's last applied seq.
        last: u64,
    },
    /// The seq is older than the history the node still holds: outside
    /// its engine's as-of window (in memory) and journal (on disk), for
    /// example behind an installed Raft snapshot.
    #[error("not available: seq {seq} is outside the window (oldest held: {oldest:?})")]
    OutsideWindow {
        /// The seq asked for.
        seq: u64,
        /// The engine's hint of the oldest seq it still holds, when it
        /// gave one.
        oldest: Option<u64>,
    },
    /// The node holds the seq but could not produce or hash its state
    /// (a disk error while rebuilding, a value that does not encode, a
    /// stopped engine); the text says what.
    #[error("not available: the state at seq {seq} could not be hashed: {reason}")]
    Failed {
        /// The seq asked for.
        seq: u64,
        /// What failed.
        reason: String,
    },
}

/// What `POST /client/state_hash` answers, wire-encoded.
pub(crate) type HashAnswer = Result<StateHash, Unavailable>;

/// Two nodes whose states differ, and where they began to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The first seq found at which the two states differ.
    pub seq: u64,
    /// The asking node's hash there.
    pub reference: StateHash,
    /// The other node's id.
    pub node: u64,
    /// The other node's hash there.
    pub other: StateHash,
    /// `true` when both nodes held the state at `seq - 1` and agreed on
    /// it, so `seq` is where the states came apart (or `seq` is 0).
    /// `false` when `seq` is the oldest seq both nodes still hold: the
    /// divergence may be older than their common history.
    pub exact: bool,
}

/// What comparing the nodes' state hashes at one seq found.
///
/// Every node asked appears in exactly one of `hashes`, `unavailable` and
/// `unreachable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardReport {
    /// The seq compared.
    pub seq: u64,
    /// The node that asked, whose hash the others are compared with.
    pub reference: u64,
    /// Each node that answered, with its hash at `seq`.
    pub hashes: BTreeMap<u64, StateHash>,
    /// Each node that does not hold the state at `seq`, and why.
    pub unavailable: BTreeMap<u64, Unavailable>,
    /// Each node that could not be asked (transport failure or an answer
    /// that did not decode), with the reason as text.
    pub unreachable: BTreeMap<u64, String>,
    /// One entry per node whose hash differs from the reference's, with
    /// the first divergent seq found by bisection. Bisection assumes
    /// that states which differ keep differing; if they came apart and
    /// converged again, it finds one seq where they agree before and
    /// differ at, not necessarily the earliest.
    pub divergences: Vec<Divergence>,
}

impl GuardReport {
    /// `true` when every node asked answered and every hash equals the
    /// reference's. A node that was unavailable or unreachable makes this
    /// `false` even without a divergence: it was not checked.
    pub fn agreed(&self) -> bool {
        self.divergences.is_empty() && self.unavailable.is_empty() && self.unreachable.is_empty()
    }
}

/// Why the guard could not give a hash or a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The node does not hold the state at the seq (see [`Unavailable`]).
    #[error("node {node}: {reason}")]
    Unavailable {
        /// The node that could not answer.
        node: u64,
        /// Why.
        #[source]
        reason: Unavailable,
    },
    /// A peer could not be asked while bisecting a divergence (transport
    /// failure, an answer that did not decode, or a seq the peer reported
    /// at first and then no longer held).
    #[error("node {node} failed while bisecting a divergence: {reason}")]
    Peer {
        /// The peer.
        node: u64,
        /// What failed.
        reason: String,
    },
}

/// The hash of the local engine's state at exactly `seq`: from the current
/// snapshot when its seq is `seq`, else from the engine's history
/// (`Engine::as_of`). The hashing runs on a blocking thread, since it
/// visits every entry of the map.
pub(crate) async fn state_hash_at<E: Event>(shared: &Shared<E>, seq: u64) -> HashAnswer {
    let engine = shared.engine();
    let current = engine.reader().snapshot();
    let snapshot = if current.seq() == seq {
        current
    } else if seq > current.seq() {
        return Err(Unavailable::NotApplied {
            seq,
            last: current.seq(),
        });
    } else {
        engine.as_of(seq).await.map_err(|e| unavailable(seq, e))?
    };
    hash_of::<E>(snapshot).await
}

async fn hash_of<E: Event>(snapshot: Arc<SnapshotOf<Logged<E>>>) -> HashAnswer {
    let seq = snapshot.seq();
    let failed = |reason: String| Unavailable::Failed { seq, reason };
    tokio::task::spawn_blocking(move || {
        let hasher = hasher_of::<Logged<E>>(snapshot.view().iter()).map_err(|e| e.to_string())?;
        Ok(StateHash {
            seq,
            hash: hasher.finish(),
            entries: hasher.entries(),
        })
    })
    .await
    .map_err(|e| failed(format!("the hashing task failed: {e}")))?
    .map_err(failed)
}

fn unavailable(seq: u64, error: AsOfError) -> Unavailable {
    match error {
        AsOfError::NotYet { last, .. } => Unavailable::NotApplied { seq, last },
        AsOfError::Forgotten { oldest, .. } => Unavailable::OutsideWindow {
            seq,
            oldest: Some(oldest),
        },
        AsOfError::Pruned { first, .. } => Unavailable::OutsideWindow {
            seq,
            oldest: Some(first),
        },
        other => Unavailable::Failed {
            seq,
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_refusals_map_to_what_the_node_does_not_hold() {
        assert_eq!(
            unavailable(9, AsOfError::NotYet { seq: 9, last: 4 }),
            Unavailable::NotApplied { seq: 9, last: 4 }
        );
        assert_eq!(
            unavailable(2, AsOfError::Pruned { seq: 2, first: 30 }),
            Unavailable::OutsideWindow {
                seq: 2,
                oldest: Some(30)
            }
        );
        assert!(matches!(
            unavailable(3, AsOfError::RolledBack { seq: 3 }),
            Unavailable::Failed { seq: 3, .. }
        ));
    }

    #[test]
    fn an_unavailable_answer_round_trips_the_wire_with_its_reason() {
        let answer: HashAnswer = Err(Unavailable::OutsideWindow {
            seq: 5,
            oldest: Some(31),
        });
        let back: HashAnswer = crate::wire::decode(&crate::wire::encode(&answer).unwrap()).unwrap();
        assert_eq!(back, answer);
        let text = back.unwrap_err().to_string();
        assert!(
            text.starts_with("not available: seq 5 is outside the window"),
            "{text}"
        );
    }
}
