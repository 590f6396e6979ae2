//! The server side of the Raft network: [`raft_router`], the three Raft
//! RPC routes for one [`Raft`], and [`serve`], which runs a router on a
//! listener until shutdown.

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use openraft::Raft;
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;

use crate::types::TypeConfig;
use crate::wire::{self, APPEND_PATH, MAX_MESSAGE, SNAPSHOT_PATH, VOTE_PATH, WireError};

/// The Raft RPC routes of one node, for [`crate::HttpNetwork`] on the
/// other nodes to call:
///
/// * `POST /raft/append` → `Raft::append_entries`
/// * `POST /raft/vote` → `Raft::vote`
/// * `POST /raft/snapshot` → `Raft::install_snapshot` (one chunk)
///
/// Each body is one bincode message ([`crate::wire`]); each `200` answer is
/// the encoded `Result<Response, RaftError>` of the call, so a Raft-level
/// refusal (a higher vote, a node shutting down) reaches the caller as
/// openraft's own error. A body that does not decode is answered `400`
/// with the decode error as text, and the `Raft` never sees it; a body over
/// [`MAX_MESSAGE`] is answered `413`.
///
/// The router has no state left to supply (`Router<()>`), so the
/// application can `.merge()` its own routes onto it and serve both on one
/// listener. The body limit applies to these three routes only.
pub fn raft_router(raft: Raft<TypeConfig>) -> Router {
    Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        // axum's default limit is 2 MiB, below a batch of entries or a
        // snapshot chunk (openraft's default chunk is 3 MiB).
        .layer(DefaultBodyLimit::max(MAX_MESSAGE))
        .with_state(raft)
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and lets requests in flight finish.
///
/// Why not bare `axum::serve`: each accepted connection gets
/// `TCP_NODELAY`, since a Raft answer is one small write that Nagle's
/// algorithm would hold back until the peer's delayed ACK.
///
/// # Errors
///
/// The I/O error that ended the server. (axum retries failed `accept`s
/// itself, so in practice this returns `Ok` after `shutdown`.)
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // A connection without nodelay still works, only slower: not a
        // reason to refuse it.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn append(State(raft): State<Raft<TypeConfig>>, body: Bytes) -> Response {
    match wire::decode::<AppendEntriesRequest<TypeConfig>>(&body) {
        Ok(rpc) => answer(&raft.append_entries(rpc).await),
        Err(e) => bad_request(&e),
    }
}

async fn vote(State(raft): State<Raft<TypeConfig>>, body: Bytes) -> Response {
    match wire::decode::<VoteRequest<u64>>(&body) {
        Ok(rpc) => answer(&raft.vote(rpc).await),
        Err(e) => bad_request(&e),
    }
}

async fn snapshot(State(raft): State<Raft<TypeConfig>>, body: Bytes) -> Response {
    match wire::decode::<InstallSnapshotRequest<TypeConfig>>(&body) {
        Ok(rpc) => answer(&raft.install_snapshot(rpc).await),
        Err(e) => bad_request(&e),
    }
}

/// The `400` answer to a body that is not a request, naming why.
pub(crate) fn bad_request(e: &WireError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("bad raft request body: {e}"),
    )
        .into_response()
}

/// Encodes what the `Raft` returned as a `200` answer. An answer that
/// cannot be encoded (over the size limit) is a `500` with the reason, so
/// the caller gets an error rather than a hang.
pub(crate) fn answer<Resp: Serialize, E: Serialize>(
    result: &Result<Resp, RaftError<u64, E>>,
) -> Response {
    encoded(result)
}

/// Encodes any answer as a `200`, or a `500` naming why it cannot be.
pub(crate) fn encoded<T: Serialize>(value: &T) -> Response {
    match wire::encode(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode raft answer: {e}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_garbage_body_is_a_400_naming_the_decode_error() {
        let e = wire::decode::<VoteRequest<u64>>(b"\xFF\xFF not bincode").unwrap_err();
        let refusal = bad_request(&e);
        assert_eq!(refusal.status(), StatusCode::BAD_REQUEST);
        let text = axum::body::to_bytes(refusal.into_body(), 4096)
            .await
            .unwrap();
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.starts_with("bad raft request body: "), "{text}");
    }
}
