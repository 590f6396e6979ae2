//! The determinism guard's methods of [`ReplicatedEngine`]: the local
//! state hash and the comparison across nodes (`crate::compare`).

use std::collections::BTreeMap;

use solostate::Event;

use super::ReplicatedEngine;
use crate::compare::Local;
use crate::guard::{GuardError, GuardReport, StateHash};

impl<E: Event> ReplicatedEngine<E> {
    /// The hash of this node's state at exactly `seq` (the determinism
    /// guard's local half): from the current snapshot if it is at `seq`,
    /// else from the engine's history (its as-of window in memory, else
    /// rebuilt from its journal). Every node that applied the same log
    /// has the same hash at the same seq.
    ///
    /// # Errors
    ///
    /// [`GuardError::Unavailable`] naming this node, when it has not
    /// applied `seq` yet, no longer holds it, or could not hash it.
    pub async fn state_hash(&self, seq: u64) -> Result<StateHash, GuardError> {
        self.local().hash(seq).await
    }

    /// The determinism guard across the cluster:
    /// [`compare_with`](Self::compare_with) every node in the membership
    /// (voters and learners), each at its [`ReplicaBuilder::peer_address`]
    /// or else its membership address.
    ///
    /// # Errors
    ///
    /// As [`compare_with`](Self::compare_with).
    pub async fn compare_replicas(&self, seq: u64) -> Result<GuardReport, GuardError> {
        let peers = self
            .metrics()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| {
                let addr = self.peers.get(id).unwrap_or(&node.addr);
                (*id, addr.clone())
            })
            .collect();
        self.compare_with(&peers, seq).await
    }

    /// Compares this node's state hash at `seq` with that of each node in
    /// `peers` (id to address; any node serving this crate's routes, in
    /// this cluster or not) and bisects each disagreement. A peer that
    /// does not hold `seq` or cannot be reached is listed as such in the
    /// report, not an error: the guard checks what it can.
    ///
    /// Bisection probes both nodes at about log2(`seq`) seqs; a divergence
    /// older than their common history is reported at its oldest seq with
    /// `exact: false`.
    ///
    /// # Errors
    ///
    /// [`GuardError::Unavailable`] when this node has no hash at `seq`
    /// (or at a seq bisection needs), [`GuardError::Peer`] when a peer
    /// fails in the middle of a bisection.
    pub async fn compare_with(
        &self,
        peers: &BTreeMap<u64, String>,
        seq: u64,
    ) -> Result<GuardReport, GuardError> {
        self.local().compare(peers, seq).await
    }

    fn local(&self) -> Local<'_, E> {
        Local {
            id: self.id,
            shared: &self.shared,
            client: &self.client,
        }
    }
}
