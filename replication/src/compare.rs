//! The determinism guard's comparison: ask other nodes for their state
//! hash at a seq over `/client/state_hash`, compare each with this
//! node's, and bisect each disagreement down to its first divergent seq.

use std::collections::BTreeMap;

use solostate::Event;

use crate::client::{self, CallError, STATE_HASH_PATH};
use crate::guard::{
    Divergence, GuardError, GuardReport, HashAnswer, StateHash, Unavailable, state_hash_at,
};
use crate::machine::Shared;
use crate::wire;

/// The asking node: its id, its engine, and the HTTP client for peers.
pub(crate) struct Local<'a, E: Event> {
    pub(crate) id: u64,
    pub(crate) shared: &'a Shared<E>,
    pub(crate) client: &'a reqwest::Client,
}

/// What one probe of a seq found for the pair.
enum Probe {
    Agree,
    Differ(StateHash, StateHash),
    /// One of the two no longer holds the seq (older than its history).
    Below,
}

impl<E: Event> Local<'_, E> {
    /// This node's hash at `seq`, as the guard's error when it has none.
    pub(crate) async fn hash(&self, seq: u64) -> Result<StateHash, GuardError> {
        state_hash_at(self.shared, seq)
            .await
            .map_err(|reason| GuardError::Unavailable {
                node: self.id,
                reason,
            })
    }

    /// Compares this node's hash at `seq` with each of `peers` (id to
    /// address; this node's own id, if present, is skipped) and bisects
    /// every disagreement.
    pub(crate) async fn compare(
        &self,
        peers: &BTreeMap<u64, String>,
        seq: u64,
    ) -> Result<GuardReport, GuardError> {
        let mine = self.hash(seq).await?;
        // All peers at once, so one slow peer costs one timeout, not one
        // each.
        let asks: Vec<_> = peers
            .iter()
            .filter(|(node, _)| **node != self.id)
            .map(|(&node, addr)| {
                let (client, addr) = (self.client.clone(), addr.clone());
                (
                    node,
                    tokio::spawn(async move { ask(&client, &addr, seq).await }),
                )
            })
            .collect();
        let mut report = GuardReport {
            seq,
            reference: self.id,
            hashes: BTreeMap::from([(self.id, mine)]),
            unavailable: BTreeMap::new(),
            unreachable: BTreeMap::new(),
            divergences: Vec::new(),
        };
        for (node, asking) in asks {
            let answer = asking
                .await
                .unwrap_or_else(|e| Err(format!("the task asking node {node} failed: {e}")));
            match answer {
                Ok(Ok(hash)) => {
                    report.hashes.insert(node, hash);
                }
                Ok(Err(unavailable)) => {
                    report.unavailable.insert(node, unavailable);
                }
                Err(reason) => {
                    report.unreachable.insert(node, reason);
                }
            }
        }
        for (&node, &theirs) in &report.hashes {
            if node != self.id && theirs.hash != mine.hash {
                let divergence = self.bisect(node, &peers[&node], mine, theirs).await?;
                report.divergences.push(divergence);
            }
        }
        Ok(report)
    }

    /// Finds the first seq at which this node and `node` differ, given
    /// that they differ at `mine.seq`: a binary search over the seqs both
    /// still hold, with one probe of each node per step.
    async fn bisect(
        &self,
        node: u64,
        addr: &str,
        mine: StateHash,
        theirs: StateHash,
    ) -> Result<Divergence, GuardError> {
        // They differ at `hi`. `lo` is the largest seq below it known not
        // to differ, and whether both held it and agreed there.
        let (mut hi, mut pair) = (mine.seq, (mine, theirs));
        let mut lo: Option<(u64, bool)> = None;
        loop {
            let start = lo.map_or(0, |(seq, _)| seq + 1);
            if start == hi {
                break;
            }
            let mid = start + (hi - start) / 2;
            match self.probe(node, addr, mid).await? {
                Probe::Differ(a, b) => (hi, pair) = (mid, (a, b)),
                Probe::Agree => lo = Some((mid, true)),
                Probe::Below => lo = Some((mid, false)),
            }
        }
        Ok(Divergence {
            seq: hi,
            reference: pair.0,
            node,
            other: pair.1,
            // With nothing below `hi` probed, `hi` is 0: no earlier state.
            exact: lo.is_none_or(|(_, agreed)| agreed),
        })
    }

    async fn probe(&self, node: u64, addr: &str, seq: u64) -> Result<Probe, GuardError> {
        let mine = match state_hash_at(self.shared, seq).await {
            Ok(hash) => hash,
            Err(Unavailable::OutsideWindow { .. }) => return Ok(Probe::Below),
            Err(reason) => {
                return Err(GuardError::Unavailable {
                    node: self.id,
                    reason,
                });
            }
        };
        let theirs = match ask(self.client, addr, seq).await {
            Ok(Ok(hash)) => hash,
            Ok(Err(Unavailable::OutsideWindow { .. })) => return Ok(Probe::Below),
            Ok(Err(unavailable)) => {
                return Err(GuardError::Peer {
                    node,
                    reason: unavailable.to_string(),
                });
            }
            Err(reason) => return Err(GuardError::Peer { node, reason }),
        };
        Ok(if mine.hash == theirs.hash {
            Probe::Agree
        } else {
            Probe::Differ(mine, theirs)
        })
    }
}

/// Asks the node at `addr` for its hash at `seq`; the outer error is a
/// transport failure, as text.
async fn ask(client: &reqwest::Client, addr: &str, seq: u64) -> Result<HashAnswer, String> {
    let body = wire::encode(&seq).map_err(|e| e.to_string())?;
    client::call(client, addr, STATE_HASH_PATH, body)
        .await
        .map_err(|e| match e {
            // Asking for a hash changes nothing: sent or not, it failed.
            CallError::NotSent(reason) | CallError::Lost(reason) => reason,
        })
}
