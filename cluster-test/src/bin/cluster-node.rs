//! One node of a test cluster, as its own process: a `ReplicatedEngine` of
//! `StateEvent<String, u64>` plus a small plain-text HTTP API that the
//! cluster tests drive (`solostate_cluster_test::cluster`).
//!
//! ```text
//! cluster-node --id 1 --dir D --raft 127.0.0.1:7001 --api 127.0.0.1:8001 \
//!     --peer 2=127.0.0.1:9012 --peer 3=127.0.0.1:9013 \
//!     [--init 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003]
//! ```
//!
//! `--peer` gives the address this node reaches each peer at (the test's
//! proxy for that link); `--init` makes this node initialize the cluster
//! with those members (ignored when it already is). The API:
//!
//! * `POST /put/{key}/{value}`, `POST /cas/{key}/{expected}/{new}` (`-` for
//!   absent): `200 ok {seq} {index}`, `409 rejected ...` (nothing
//!   changed), `502 refused ...` (not sent: no leader, leader changed),
//!   `503 unknown ...` (the outcome is unknown);
//! * `GET /get/{key}/{lin|stale}`: `200 some {v}` or `200 none`, `503 ...`;
//! * `GET /status`: `{leader|-} {term} {applied index} {seq} {state}
//!   {first log index kept}`;
//! * `GET /dump`: the local state, a `key value` line each.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::Parser;
use solostate::StateEvent;
use solostate_replication::{ReadError, ReplicatedEngine, WriteError};

type Ev = StateEvent<String, u64>;
type Node = Arc<ReplicatedEngine<Ev>>;

#[derive(Parser, Debug)]
struct Args {
    /// This node's id.
    #[arg(long)]
    id: u64,
    /// The node's directory.
    #[arg(long)]
    dir: PathBuf,
    /// Where it serves Raft.
    #[arg(long)]
    raft: SocketAddr,
    /// Where it serves the test API.
    #[arg(long)]
    api: SocketAddr,
    /// `ID=ADDR`: reach peer ID at ADDR.
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// `ID=ADDR,...`: initialize the cluster with these members.
    #[arg(long)]
    init: Option<String>,
    /// Write and read timeout, in milliseconds.
    #[arg(long, default_value_t = 3_000)]
    timeout_ms: u64,
    /// Build a snapshot every this many log entries.
    #[arg(long, default_value_t = 20_000)]
    snapshot_every: u64,
    /// Log entries kept behind a snapshot.
    #[arg(long, default_value_t = 1_000)]
    keep_logs: u64,
}

fn pairs(text: &str) -> Result<BTreeMap<u64, String>, String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (id, addr) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not ID=ADDR"))?;
            let id = id.parse().map_err(|e| format!("{pair:?}: {e}"))?;
            Ok((id, addr.to_owned()))
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let mut builder = ReplicatedEngine::<Ev>::builder()
        .id(args.id)
        .path(&args.dir)
        .listen(args.raft)
        .timeout(Duration::from_millis(args.timeout_ms))
        .snapshot_every(args.snapshot_every)
        .keep_logs_after_snapshot(args.keep_logs);
    for (id, addr) in pairs(&args.peers.join(","))? {
        builder = builder.peer_address(id, addr);
    }
    let node: Node = Arc::new(builder.open().await.map_err(|e| e.to_string())?);
    if let Some(members) = &args.init {
        let members = pairs(members)?;
        if node.metrics().membership_config.nodes().next().is_none() {
            node.initialize(members).await.map_err(|e| e.to_string())?;
        }
    }
    let app = Router::new()
        .route("/put/{key}/{value}", post(put))
        .route("/cas/{key}/{expected}/{new}", post(cas))
        .route("/get/{key}/{mode}", get(read))
        .route("/status", get(status))
        .route("/dump", get(dump))
        .with_state(node);
    let listener = tokio::net::TcpListener::bind(args.api)
        .await
        .map_err(|e| format!("api {}: {e}", args.api))?;
    // The replication crate's `serve` sets TCP_NODELAY per connection: an
    // answer is one small write that Nagle's algorithm would hold back.
    solostate_replication::serve(listener, app, std::future::pending())
        .await
        .map_err(|e| e.to_string())
}

type Answer = (StatusCode, String);

fn written(result: Result<solostate_replication::ReplicatedAck, WriteError>) -> Answer {
    match result {
        Ok(ack) => (
            StatusCode::OK,
            format!("ok {} {}", ack.seq, ack.log_id.index),
        ),
        Err(e @ WriteError::Rejected { .. }) => (StatusCode::CONFLICT, format!("rejected {e}")),
        Err(
            e @ (WriteError::NoLeader
            | WriteError::LeaderChanged { .. }
            | WriteError::Encode { .. }),
        ) => (StatusCode::BAD_GATEWAY, format!("refused {e}")),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("unknown {e}")),
    }
}

async fn put(State(node): State<Node>, Path((key, value)): Path<(String, u64)>) -> Answer {
    written(node.submit(&StateEvent::put(key, value)).await)
}

fn optional(text: &str) -> Result<Option<u64>, Answer> {
    if text == "-" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("{text:?}: {e}")))
}

async fn cas(
    State(node): State<Node>,
    Path((key, expected, new)): Path<(String, String, String)>,
) -> Answer {
    let (expected, new) = match (optional(&expected), optional(&new)) {
        (Ok(e), Ok(n)) => (e, n),
        (Err(bad), _) | (_, Err(bad)) => return bad,
    };
    written(
        node.submit(&StateEvent::compare_and_swap(key, expected, new))
            .await,
    )
}

async fn read(State(node): State<Node>, Path((key, mode)): Path<(String, String)>) -> Answer {
    let snapshot = match mode.as_str() {
        "lin" => match node.linearizable().await {
            Ok(snapshot) => snapshot,
            Err(e @ (ReadError::NoLeader | ReadError::LeaderChanged { .. })) => {
                return (StatusCode::BAD_GATEWAY, format!("refused {e}"));
            }
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("unknown {e}")),
        },
        "stale" => node.reader().snapshot(),
        other => return (StatusCode::BAD_REQUEST, format!("mode {other:?}")),
    };
    match snapshot.get(key.as_str()) {
        Some(value) => (StatusCode::OK, format!("some {}", *value)),
        None => (StatusCode::OK, "none".to_owned()),
    }
}

async fn status(State(node): State<Node>) -> Answer {
    let metrics = node.metrics();
    let applied = node.applied();
    let leader = metrics
        .current_leader
        .map_or("-".to_owned(), |l| l.to_string());
    (
        StatusCode::OK,
        format!(
            "{leader} {} {} {} {:?} {}",
            metrics.current_term,
            applied.log_id.map_or(0, |id| id.index),
            applied.seq,
            metrics.state,
            metrics.purged.map_or(0, |id| id.index + 1),
        ),
    )
}

async fn dump(State(node): State<Node>) -> Answer {
    let snapshot = node.reader().snapshot();
    let mut lines: Vec<String> = snapshot
        .view()
        .iter()
        .map(|(key, value)| format!("{key} {}", *value))
        .collect();
    lines.sort();
    (StatusCode::OK, lines.join("\n"))
}
