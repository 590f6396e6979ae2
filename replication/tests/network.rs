//! The Raft network end to end: in-process `openraft::Raft` nodes, each with
//! its own [`LogStore`] in a temporary directory, each serving
//! [`raft_router`] on `127.0.0.1:0`, all connected by [`HttpNetwork`].
//!
//! The state machine here, `TestOnlyStateMachine`, exists **only for these
//! tests**: it records the events it applied (so a test can see that every
//! node applied the same ones) and keeps snapshots in memory. It is not
//! solostate's state machine (another piece of issue 14 builds that) and
//! not part of the crate's API.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{Fatal, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Config, Entry, EntryPayload, LogId, Raft, SnapshotMeta, StorageError,
    StoredMembership, Vote,
};
use solostate_replication::{
    HttpNetwork, LogStore, Request, Response, TypeConfig, raft_router, serve, wire,
};
use tokio::sync::oneshot;

/// How long any wait for the cluster may take before the test fails. Not a
/// performance bound: elections take well under a second here.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The test-only state machine
// ---------------------------------------------------------------------------

/// A snapshot kept in memory: its meta and its data (the encoded events).
type StoredSnapshot = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

/// Test-only: applied id, membership, the applied events, last snapshot.
#[derive(Debug, Clone, Default)]
struct TestOnlyStateMachine {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    /// Every applied `Request::event`, in order. Shared with the test (a
    /// lock is fine in this test-only type).
    events: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The current snapshot, shared with the snapshot builders.
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    snapshots_built: u64,
}

/// Test-only: a copy of the state machine at the moment it was asked for,
/// so a snapshot holds exactly the events up to its `last_log_id`.
struct TestOnlySnapshotBuilder {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    events: Vec<Vec<u8>>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    number: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for TestOnlySnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("snapshot-{}", self.number),
        };
        let data = wire::encode(&self.events).expect("test events encode");
        *self.snapshot.lock().unwrap() = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for TestOnlyStateMachine {
    type SnapshotBuilder = TestOnlySnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(request) => self.events.lock().unwrap().push(request.event),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            responses.push(Response::Applied {
                seq: entry.log_id.index,
            });
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> TestOnlySnapshotBuilder {
        self.snapshots_built += 1;
        TestOnlySnapshotBuilder {
            applied: self.applied,
            membership: self.membership.clone(),
            events: self.events.lock().unwrap().clone(),
            snapshot: self.snapshot.clone(),
            number: self.snapshots_built,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let events: Vec<Vec<u8>> = wire::decode(&data).expect("test snapshot decodes");
        *self.events.lock().unwrap() = events;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        *self.snapshot.lock().unwrap() = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .snapshot
            .lock()
            .unwrap()
            .clone()
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

/// One running node: its `Raft`, the address its router serves, the events
/// its state machine applied, and what keeps it alive.
struct TestNode {
    id: u64,
    raft: Raft<TypeConfig>,
    addr: String,
    events: Arc<Mutex<Vec<Vec<u8>>>>,
    stop_server: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

/// The Raft timing of these tests: heartbeat 50 ms, election 150–300 ms.
fn test_config() -> Config {
    Config {
        cluster_name: "network-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    }
}

async fn start_node(id: u64, config: Config) -> TestNode {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = LogStore::open(dir.path()).expect("log store opens");
    let sm = TestOnlyStateMachine::default();
    let events = sm.events.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr").to_string();
    let network = HttpNetwork::new().expect("http client");
    let raft = Raft::new(
        id,
        Arc::new(config.validate().expect("valid config")),
        network,
        store,
        sm,
    )
    .await
    .expect("raft starts");
    let (stop_server, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, raft_router(raft.clone()), async move {
        // A dropped sender stops the server too.
        let _ = stopped.await;
    }));
    TestNode {
        id,
        raft,
        addr,
        events,
        stop_server: Some(stop_server),
        server,
        _dir: dir,
    }
}

impl TestNode {
    fn node(&self) -> BasicNode {
        BasicNode::new(&self.addr)
    }

    /// Stops the `Raft`, then the server (in that order, so no RPC reaches
    /// a server whose `Raft` is gone without an answer).
    async fn stop(mut self) {
        self.raft.shutdown().await.expect("raft shuts down");
        if let Some(stop) = self.stop_server.take() {
            // The server may have ended already; then nobody listens.
            let _ = stop.send(());
        }
        self.server
            .await
            .expect("server task")
            .expect("server ends cleanly");
    }
}

async fn start_cluster(config: Config) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start_node(id, config.clone()).await);
    }
    let members: BTreeMap<u64, BasicNode> = nodes.iter().map(|n| (n.id, n.node())).collect();
    nodes[0]
        .raft
        .initialize(members)
        .await
        .expect("initialize a 3-voter cluster");
    nodes
}

/// Waits until every node names the same leader, and returns its id.
async fn agreed_leader(nodes: &[TestNode]) -> u64 {
    let metrics = nodes[0]
        .raft
        .wait(Some(PATIENCE))
        .metrics(|m| m.current_leader.is_some(), "a leader is elected")
        .await
        .expect("a leader within the patience");
    let leader = metrics.current_leader.unwrap();
    for node in nodes {
        node.raft
            .wait(Some(PATIENCE))
            .current_leader(leader, "every node knows the leader")
            .await
            .expect("the node learns the leader");
    }
    leader
}

fn by_id(nodes: &[TestNode], id: u64) -> &TestNode {
    nodes.iter().find(|n| n.id == id).expect("node id exists")
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_commit_on_all_and_followers_point_to_it() {
    let nodes = start_cluster(test_config()).await;
    let leader = agreed_leader(&nodes).await;
    let leader_node = by_id(&nodes, leader);

    let event = b"put greeting=hello".to_vec();
    let written = leader_node
        .raft
        .client_write(Request {
            event: event.clone(),
        })
        .await
        .expect("a write on the leader commits");
    assert_eq!(
        written.data,
        Response::Applied {
            seq: written.log_id.index
        }
    );

    for node in &nodes {
        node.raft
            .wait(Some(PATIENCE))
            .applied_index_at_least(Some(written.log_id.index), "the write is applied")
            .await
            .unwrap_or_else(|e| panic!("node {} did not apply the write: {e}", node.id));
        assert_eq!(
            *node.events.lock().unwrap(),
            vec![event.clone()],
            "node {} applied exactly the one event",
            node.id
        );
    }

    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    let err = follower
        .raft
        .client_write(Request {
            event: b"put from=follower".to_vec(),
        })
        .await
        .expect_err("a follower does not accept writes");
    let forward = err
        .forward_to_leader()
        .unwrap_or_else(|| panic!("expected ForwardToLeader, got {err:?}"));
    assert_eq!(forward.leader_id, Some(leader));
    assert_eq!(forward.leader_node, Some(leader_node.node()));

    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_far_behind_gets_a_snapshot_over_the_network() {
    // Keep no log behind a snapshot, so a new learner can only catch up by
    // install_snapshot.
    let config = Config {
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..test_config()
    };
    let mut nodes = start_cluster(config.clone()).await;
    let leader = agreed_leader(&nodes).await;
    let leader_raft = by_id(&nodes, leader).raft.clone();

    let events: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("put k{i}=v{i}").into_bytes())
        .collect();
    let mut last = None;
    for event in &events {
        let written = leader_raft
            .client_write(Request {
                event: event.clone(),
            })
            .await
            .expect("write commits");
        last = Some(written.log_id);
    }
    let last = last.unwrap();
    leader_raft
        .trigger()
        .snapshot()
        .await
        .expect("snapshot triggered");
    leader_raft
        .wait(Some(PATIENCE))
        .snapshot(last, "the leader's snapshot covers the writes")
        .await
        .expect("snapshot built");
    leader_raft
        .wait(Some(PATIENCE))
        .purged(Some(last), "the leader purged its log")
        .await
        .expect("log purged");

    let learner = start_node(4, config).await;
    leader_raft
        .add_learner(4, learner.node(), true)
        .await
        .expect("learner added and caught up");
    learner
        .raft
        .wait(Some(PATIENCE))
        .snapshot(last, "the learner installed the snapshot")
        .await
        .expect("snapshot arrives at the learner");
    assert_eq!(*learner.events.lock().unwrap(), events);

    nodes.push(learner);
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    // Bind, note the port, close it: nothing listens there now.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let mut network = HttpNetwork::new().unwrap();
    let mut conn = network.new_client(9, &BasicNode::new(&addr)).await;
    let err = conn
        .vote(
            VoteRequest::new(Vote::new(1, 1), None),
            RPCOption::new(Duration::from_secs(5)),
        )
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_peer_that_never_answers_times_out_at_the_hard_ttl_as_a_network_error() {
    // The kernel completes the handshake (backlog), but nobody ever
    // accepts or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut network = HttpNetwork::new().unwrap();
    let mut conn = network.new_client(9, &BasicNode::new(&addr)).await;
    let err = conn
        .vote(
            VoteRequest::new(Vote::new(1, 1), None),
            RPCOption::new(Duration::from_millis(200)),
        )
        .await
        .expect_err("nobody answers");
    assert!(matches!(err, RPCError::Network(_)), "{err:?}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_raft_error_comes_back_as_remote_error_naming_the_peer() {
    let node = start_node(7, test_config()).await;
    // The server keeps answering, but its Raft has stopped: every call on
    // it is RaftError::Fatal(Stopped), which must travel back as is.
    node.raft.shutdown().await.unwrap();
    let mut network = HttpNetwork::new().unwrap();
    let mut conn = network.new_client(7, &node.node()).await;
    let err = conn
        .vote(
            VoteRequest::new(Vote::new(1, 1), None),
            RPCOption::new(Duration::from_secs(5)),
        )
        .await
        .expect_err("a stopped raft refuses");
    match err {
        RPCError::RemoteError(remote) => {
            assert_eq!(remote.target, 7);
            assert!(
                matches!(remote.source, RaftError::Fatal(Fatal::Stopped)),
                "{:?}",
                remote.source
            );
        }
        other => panic!("expected RemoteError, got {other:?}"),
    }
    let TestNode {
        stop_server,
        server,
        ..
    } = node;
    drop(stop_server);
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_body_is_http_400_and_the_node_keeps_serving() {
    let node = start_node(5, test_config()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in [wire::APPEND_PATH, wire::VOTE_PATH, wire::SNAPSHOT_PATH] {
        let response = client
            .post(format!("http://{}{path}", node.addr))
            .body(b"\xFF\xFF\xFF this is not bincode".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            reqwest::StatusCode::BAD_REQUEST,
            "{path}"
        );
        let text = response.text().await.unwrap();
        assert!(text.contains("cannot decode message"), "{path}: {text}");
    }
    // Still serving: a proper vote gets a proper (Raft-level) answer.
    let mut network = HttpNetwork::new().unwrap();
    let mut conn = network.new_client(5, &node.node()).await;
    conn.vote(
        VoteRequest::new(Vote::new(1, 1), None),
        RPCOption::new(Duration::from_secs(5)),
    )
    .await
    .expect("a vote after the garbage is answered");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_router_merges_with_other_routes_on_one_listener() {
    // What the replicated engine will do: its client routes beside the
    // Raft routes, one listener.
    let sm = TestOnlyStateMachine::default();
    let dir = tempfile::tempdir().unwrap();
    let raft = Raft::new(
        6,
        Arc::new(test_config().validate().unwrap()),
        HttpNetwork::new().unwrap(),
        LogStore::open(dir.path()).unwrap(),
        sm,
    )
    .await
    .unwrap();
    let router = raft_router(raft.clone()).merge(
        axum::Router::new().route("/client/hello", axum::routing::get(|| async { "hello" })),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let hello = client
        .get(format!("http://{addr}/client/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), reqwest::StatusCode::OK);
    assert_eq!(hello.text().await.unwrap(), "hello");
    let mut network = HttpNetwork::new().unwrap();
    let mut conn = network.new_client(6, &BasicNode::new(&addr)).await;
    conn.vote(
        VoteRequest::new(Vote::new(1, 1), None),
        RPCOption::new(Duration::from_secs(5)),
    )
    .await
    .expect("the raft routes still answer after the merge");

    raft.shutdown().await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_server_without_the_raft_routes_is_unreachable_not_a_hot_retry() {
    // An HTTP server that answers 404 to everything: the peer does not
    // speak this protocol, so openraft should back off (Unreachable).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, axum::Router::new(), async move {
        let _ = stopped.await;
    }));
    let mut network = HttpNetwork::new().unwrap();
    let mut conn = network.new_client(8, &BasicNode::new(&addr)).await;
    let err = conn
        .vote(
            VoteRequest::new(Vote::new(1, 1), None),
            RPCOption::new(Duration::from_secs(5)),
        )
        .await
        .expect_err("404");
    assert!(
        matches!(err, RPCError::Unreachable(ref u) if u.to_string().contains("404")),
        "{err:?}"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
