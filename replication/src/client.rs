//! The client side of a replica's HTTP API: the routes a follower forwards
//! writes and read-index requests to, and the calls that forward them.
//!
//! openraft leaves forwarding to the application (openraft #1716). A
//! follower that gets a write sends the encoded [`Request`] to the leader's
//! `/client/write`; the leader runs `client_write` and answers openraft's
//! own `Result`, so a leader that lost its leadership on the way answers
//! `ForwardToLeader` like a local call would. One hop only: the caller
//! decides whether to retry.
//!
//! The determinism guard asks any node (leader or not) for its state hash
//! at a seq at `/client/state_hash`; the node answers from its own engine.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, LogId, Raft};
use solostate::Event;

use crate::guard::{self, HashAnswer};
use crate::machine::Shared;
use crate::server::{answer, bad_request, encoded};
use crate::types::{Request, TypeConfig};
use crate::wire;

/// Where a follower forwards a write.
pub(crate) const WRITE_PATH: &str = "/client/write";
/// Where a follower asks the leader for a read index.
pub(crate) const READ_INDEX_PATH: &str = "/client/read_index";

/// Where the determinism guard asks a node for its state hash at a seq.
pub(crate) const STATE_HASH_PATH: &str = "/client/state_hash";

/// How long a forwarded call may take before the caller is told the
/// outcome is unknown.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) type WriteResult =
    Result<ClientWriteResponse<TypeConfig>, RaftError<u64, ClientWriteError<u64, BasicNode>>>;
pub(crate) type ReadIndexResult =
    Result<Option<LogId<u64>>, RaftError<u64, CheckIsLeaderError<u64, BasicNode>>>;

/// What the client routes need: the Raft handle for writes and read
/// indexes, the shared engine for state hashes.
struct Node<E: Event> {
    raft: Raft<TypeConfig>,
    shared: Arc<Shared<E>>,
}

// Not derived: a derive would ask `E: Clone`, and only the handles are
// cloned.
impl<E: Event> Clone for Node<E> {
    fn clone(&self) -> Self {
        Node {
            raft: self.raft.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The client routes, to merge onto [`raft_router`](crate::raft_router).
pub(crate) fn router<E: Event>(raft: Raft<TypeConfig>, shared: Arc<Shared<E>>) -> Router {
    Router::new()
        .route(WRITE_PATH, post(write::<E>))
        .route(READ_INDEX_PATH, post(read_index::<E>))
        .route(STATE_HASH_PATH, post(state_hash::<E>))
        .with_state(Node { raft, shared })
}

async fn write<E: Event>(State(node): State<Node<E>>, body: Bytes) -> axum::response::Response {
    match wire::decode::<Request>(&body) {
        Ok(request) => answer(&node.raft.client_write(request).await),
        Err(e) => bad_request(&e),
    }
}

async fn read_index<E: Event>(State(node): State<Node<E>>) -> axum::response::Response {
    answer(&node.raft.ensure_linearizable().await)
}

/// Body: the wire-encoded seq; answer: the wire-encoded [`HashAnswer`].
async fn state_hash<E: Event>(
    State(node): State<Node<E>>,
    body: Bytes,
) -> axum::response::Response {
    match wire::decode::<u64>(&body) {
        Ok(seq) => {
            let hash: HashAnswer = guard::state_hash_at(&node.shared, seq).await;
            encoded(&hash)
        }
        Err(e) => bad_request(&e),
    }
}

/// Why a forwarded call failed: whether the request may have reached the
/// leader decides whether the outcome is unknown.
pub(crate) enum CallError {
    /// The connection could not be made: the leader never saw it.
    NotSent(String),
    /// Anything after: it may have been carried out.
    Lost(String),
}

/// POSTs `body` to `http://{addr}{path}` and decodes the answer.
pub(crate) async fn call<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    addr: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<T, CallError> {
    let response = client
        .post(format!("http://{addr}{path}"))
        .timeout(FORWARD_TIMEOUT)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let reason = format!("{addr}{path}: {e}");
            if e.is_connect() {
                CallError::NotSent(reason)
            } else {
                CallError::Lost(reason)
            }
        })?;
    answer_of(response, addr, path)
        .await
        .map_err(CallError::Lost)
}

async fn answer_of<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    addr: &str,
    path: &str,
) -> Result<T, String> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("{addr}{path}: reading the answer: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{addr}{path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    wire::decode(&bytes).map_err(|e| format!("{addr}{path}: {e}"))
}
