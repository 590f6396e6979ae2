//! [`HttpNetwork`]: openraft's `RaftNetworkFactory` over HTTP/1, and
//! [`HttpConnection`], the `RaftNetwork` to one peer.
//!
//! Each RPC is one `POST` of a bincode message (see [`crate::wire`]) to the
//! peer's [`crate::raft_router`]; the answer is the encoded
//! `Result<Response, RaftError>` the peer's `Raft` returned.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;

use crate::types::TypeConfig;
use crate::wire::{self, APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH, WireError};

/// What an RPC to a peer can fail with, as openraft's network wants it.
type RpcError<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

/// Why [`HttpNetwork::new`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpNetworkError {
    /// The HTTP client could not be built (reqwest could not set up its
    /// connector or resolver).
    #[error("cannot build the http client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A transport failure that carries its own text, for openraft's
/// `Unreachable`/`NetworkError` (which take any `std::error::Error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

/// openraft's network factory over HTTP: it hands out one
/// [`HttpConnection`] per peer, all sharing one pooled HTTP client.
///
/// Why one client: reqwest keeps a pool of idle keep-alive connections per
/// host, so a leader's heartbeats to a follower reuse one TCP connection
/// instead of opening one every 50 ms. Cloning shares the pool.
///
/// A peer's address is its `BasicNode::addr`, `host:port` without a scheme
/// (for example `127.0.0.1:7001`); requests go to `http://{addr}/raft/...`.
#[derive(Debug, Clone)]
pub struct HttpNetwork {
    /// The shared client (an `Arc` inside): its pool and settings.
    client: reqwest::Client,
    /// Addresses that replace a peer's `BasicNode::addr` (see
    /// [`with_addresses`](Self::with_addresses)).
    addresses: Arc<BTreeMap<u64, String>>,
}

impl HttpNetwork {
    /// A network with its own HTTP client: no proxy (Raft peers are always
    /// reached directly; an `HTTP_PROXY` in the environment must not
    /// reroute consensus traffic), `TCP_NODELAY` (a heartbeat is one small
    /// write that Nagle's algorithm would hold back).
    ///
    /// Timeouts are per request, from openraft's `RPCOption::hard_ttl`.
    ///
    /// # Errors
    ///
    /// [`HttpNetworkError::Client`] if reqwest cannot build its client.
    pub fn new() -> Result<Self, HttpNetworkError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .map_err(HttpNetworkError::Client)?;
        Ok(Self::with_client(client))
    }

    /// Reaches each peer named in `addresses` at that address instead of
    /// its `BasicNode::addr`. Why: the membership holds one address per
    /// node, but a test proxy (or a NAT) puts a different address between
    /// each pair of nodes.
    pub fn with_addresses(mut self, addresses: BTreeMap<u64, String>) -> Self {
        self.addresses = Arc::new(addresses);
        self
    }

    /// A network over a client the application configured itself (to share
    /// one pool with its own requests, or to change connect timeouts).
    pub fn with_client(client: reqwest::Client) -> Self {
        Self {
            client,
            addresses: Arc::default(),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> HttpConnection {
        let addr = self.addresses.get(&target).unwrap_or(&node.addr);
        HttpConnection::new(self.client.clone(), target, addr)
    }
}

/// openraft's `RaftNetwork` to one peer: the peer's id (for
/// `RemoteError`) and the three URLs, built once. [`HttpNetwork`] hands
/// these out (openraft asks it for one per peer it replicates to).
///
/// Snapshots go by openraft's default `full_snapshot`, which splits them
/// into `install_snapshot` chunks of `Config::snapshot_max_chunk_size`.
#[derive(Debug, Clone)]
pub struct HttpConnection {
    client: reqwest::Client,
    /// The peer's node id: a remote error is reported as coming from it.
    target: u64,
    append_url: String,
    vote_url: String,
    snapshot_url: String,
}

impl HttpConnection {
    fn new(client: reqwest::Client, target: u64, addr: &str) -> Self {
        let url = |path: &str| format!("http://{addr}{path}");
        Self {
            client,
            target,
            append_url: url(APPEND_PATH),
            vote_url: url(VOTE_PATH),
            snapshot_url: url(SNAPSHOT_PATH),
        }
    }

    /// POSTs `body` to `url` within `ttl` and decodes the peer's
    /// `Result<Resp, RaftError<u64, E>>`.
    ///
    /// The mapping, chosen for how openraft 0.9's replication reacts:
    /// a refused or failed connect is `Unreachable` (openraft backs off
    /// before the next try); a timeout or a connection lost mid-request is
    /// `Network` (openraft retries at once, as it does after its own
    /// timeouts); an HTTP error status or an answer that is not a message
    /// is `Unreachable` too, because the peer does not speak this protocol
    /// and an immediate retry would get the same answer; the peer's own
    /// `RaftError` is `RemoteError` naming the peer.
    async fn post<Resp, E>(
        &self,
        url: &str,
        body: Vec<u8>,
        ttl: Duration,
    ) -> Result<Resp, RpcError<E>>
    where
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let mut response = self
            .client
            .post(url)
            .timeout(ttl)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(url, e))?;
        let status = response.status();
        // Read the answer in chunks, never more than the wire limit: a
        // misbehaving peer must not make this node buffer without bound.
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(url, e))?
        {
            if bytes.len() + chunk.len() > wire::MAX_MESSAGE {
                return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                    format!("{url} answered with more than {} bytes", wire::MAX_MESSAGE),
                ))));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                format!("{url} answered {status}: {text}"),
            ))));
        }
        let answer: Result<Resp, RaftError<u64, E>> = wire::decode(&bytes).map_err(|e| {
            RPCError::Unreachable(Unreachable::new(&TransportError(format!(
                "{url} answered with a bad message: {e}"
            ))))
        })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Maps a reqwest failure (see [`HttpConnection::post`] for why each way).
fn transport_error<E: Error>(url: &str, e: reqwest::Error) -> RpcError<E> {
    let err = TransportError(format!("{url}: {}", error_chain(&e)));
    if e.is_connect() {
        RPCError::Unreachable(Unreachable::new(&err))
    } else {
        RPCError::Network(NetworkError::new(&err))
    }
}

/// reqwest's error and its sources in one line: its own `Display` says
/// only "error sending request", the cause (refused, timed out) is below.
fn error_chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps a request that could not be encoded. One over
/// [`wire::MAX_MESSAGE`] is refused before sending: for AppendEntries (with
/// `entries` > 1) as `PayloadTooLarge` with a hint of half the entries, so
/// openraft sends fewer; otherwise as `Unreachable` (a retry at once would
/// fail the same way).
fn unsendable<E: Error>(e: WireError, entries: Option<usize>) -> RpcError<E> {
    match (&e, entries) {
        (WireError::TooLarge { .. }, Some(n)) if n > 1 => {
            RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint((n / 2) as u64))
        }
        _ => RPCError::Unreachable(Unreachable::new(&e)),
    }
}

impl RaftNetwork<TypeConfig> for HttpConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError> {
        let body = wire::encode(&rpc).map_err(|e| unsendable(e, Some(rpc.entries.len())))?;
        self.post(&self.append_url, body, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<InstallSnapshotError>> {
        let body = wire::encode(&rpc).map_err(|e| unsendable(e, None))?;
        self.post(&self.snapshot_url, body, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcError> {
        let body = wire::encode(&rpc).map_err(|e| unsendable(e, None))?;
        self.post(&self.vote_url, body, option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_the_node_address() {
        let client = reqwest::Client::new();
        let conn = HttpConnection::new(client, 3, "127.0.0.1:7003");
        assert_eq!(conn.append_url, "http://127.0.0.1:7003/raft/append");
        assert_eq!(conn.vote_url, "http://127.0.0.1:7003/raft/vote");
        assert_eq!(conn.snapshot_url, "http://127.0.0.1:7003/raft/snapshot");
    }

    #[test]
    fn an_oversized_append_asks_openraft_for_fewer_entries() {
        // A string, not a Vec<u8>: serde encodes it in one copy, not byte by byte.
        let big = "x".repeat(wire::MAX_MESSAGE + 1);
        let too_large = || wire::encode(&big).unwrap_err();
        let err = unsendable::<openraft::error::Infallible>(too_large(), Some(10));
        assert!(
            matches!(err, RPCError::PayloadTooLarge(ref p) if p.entries_hint() == 5),
            "{err:?}"
        );
        let err = unsendable::<openraft::error::Infallible>(too_large(), None);
        assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    }
}
