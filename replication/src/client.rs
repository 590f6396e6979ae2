//! The client side of a replica's HTTP API: the routes a follower forwards
//! writes and read-index requests to, and the calls that forward them.
//!
//! openraft leaves forwarding to the application (openraft #1716). A
//! follower that gets a write sends the encoded [`Request`] to the leader's
//! `/client/write`; the leader runs `client_write` and answers openraft's
//! own `Result`, so a leader that lost its leadership on the way answers
//! `ForwardToLeader` like a local call would. One hop only: the caller
//! decides whether to retry.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, LogId, Raft};

use crate::server::{answer, bad_request};
use crate::types::{Request, TypeConfig};
use crate::wire;

/// Where a follower forwards a write.
pub(crate) const WRITE_PATH: &str = "/client/write";
/// Where a follower asks the leader for a read index.
pub(crate) const READ_INDEX_PATH: &str = "/client/read_index";

/// How long a forwarded call may take before the caller is told the
/// outcome is unknown.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) type WriteResult =
    Result<ClientWriteResponse<TypeConfig>, RaftError<u64, ClientWriteError<u64, BasicNode>>>;
pub(crate) type ReadIndexResult =
    Result<Option<LogId<u64>>, RaftError<u64, CheckIsLeaderError<u64, BasicNode>>>;

/// The client routes, to merge onto [`raft_router`](crate::raft_router).
pub(crate) fn router(raft: Raft<TypeConfig>) -> Router {
    Router::new()
        .route(WRITE_PATH, post(write))
        .route(READ_INDEX_PATH, post(read_index))
        .with_state(raft)
}

async fn write(State(raft): State<Raft<TypeConfig>>, body: Bytes) -> axum::response::Response {
    match wire::decode::<Request>(&body) {
        Ok(request) => answer(&raft.client_write(request).await),
        Err(e) => bad_request(&e),
    }
}

async fn read_index(State(raft): State<Raft<TypeConfig>>) -> axum::response::Response {
    answer(&raft.ensure_linearizable().await)
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
