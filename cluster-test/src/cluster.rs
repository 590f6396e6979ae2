//! A cluster of `cluster-node` processes on 127.0.0.1, every Raft link
//! through a [`Network`] proxy, and the client calls the tests make.
//!
//! Each node is a separate process (the binary `cluster-node` of this
//! crate), so killing one with SIGKILL or pausing it with SIGSTOP is what
//! happens to a real server: its memory, its tasks and its open files go,
//! or freeze, at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proxy::{Network, NodeId};

/// How long a wait for the cluster (a leader, a catch-up) may take before
/// the harness gives up. Not a performance bound.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The status [`ClusterClient`] gives a call that could not connect: the
/// node never saw it (not an HTTP status; 502 is the node's own refusal).
const REFUSED: u16 = 0;

/// How one write ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Acknowledged: committed with this seq at this log index.
    Acked {
        /// Its engine seq.
        seq: u64,
        /// Its Raft log index.
        index: u64,
    },
    /// Committed and rejected by `apply` (a compare-and-swap mismatch):
    /// nothing changed.
    Rejected,
    /// Not sent (no leader, or the leader changed): nothing changed.
    Refused,
    /// The outcome is unknown (a timeout, a node that died mid-call).
    Unknown,
}

/// One node's `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// Its last applied log index.
    pub applied: u64,
    /// Its engine seq.
    pub seq: u64,
    /// Its Raft role (`Leader`, `Follower`, `Candidate`, `Learner`).
    pub state: String,
    /// The first log index its log still holds (0 before any purge):
    /// a node behind it can only catch up from a snapshot.
    pub first_kept: u64,
}

struct NodeProcess {
    child: Option<Child>,
    raft: SocketAddr,
    api: SocketAddr,
    paused: bool,
}

/// A running cluster of node processes.
pub struct Cluster {
    dir: PathBuf,
    binary: PathBuf,
    network: Network,
    nodes: BTreeMap<u64, NodeProcess>,
    client: ClusterClient,
    /// Extra arguments for every node.
    args: Vec<String>,
}

/// A free loopback address below the kernel's ephemeral port range
/// ([`solostate_replication::loopback_listener`] says why), released for
/// the node process to bind (again at every restart).
pub fn free_addr() -> SocketAddr {
    solostate_replication::loopback_listener()
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

impl Cluster {
    /// Starts `n` nodes (ids `1..=n`) of `binary` under `dir`, the proxies
    /// between them, and initializes the cluster from node 1.
    ///
    /// # Panics
    ///
    /// If a process or proxy cannot start: this is test equipment.
    pub async fn start(binary: &Path, dir: &Path, n: u64) -> Cluster {
        Cluster::start_with(binary, dir, n, &[]).await
    }

    /// [`start`](Self::start), passing `args` to every node (for example
    /// `--snapshot-every 50`).
    pub async fn start_with(binary: &Path, dir: &Path, n: u64, args: &[&str]) -> Cluster {
        // Durably, as an operator's data directory would be: the nodes make
        // their own directories durable, not this one.
        solostate::persistence::sync::create_dir_all(dir).expect("create the cluster's directory");
        let addrs: BTreeMap<u64, (SocketAddr, SocketAddr)> =
            (1..=n).map(|id| (id, (free_addr(), free_addr()))).collect();
        let raft: BTreeMap<NodeId, SocketAddr> =
            addrs.iter().map(|(id, (r, _))| (*id, *r)).collect();
        let network = Network::start(&raft).await.expect("start the proxies");
        let nodes = addrs
            .iter()
            .map(|(id, (raft, api))| {
                let node = NodeProcess {
                    child: None,
                    raft: *raft,
                    api: *api,
                    paused: false,
                };
                (*id, node)
            })
            .collect();
        let client = ClusterClient {
            apis: addrs.iter().map(|(id, (_, api))| (*id, *api)).collect(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
        };
        let mut cluster = Cluster {
            dir: dir.to_owned(),
            binary: binary.to_owned(),
            network,
            nodes,
            client,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        for id in 1..=n {
            cluster.spawn(id, id == 1);
        }
        for id in 1..=n {
            cluster.wait_up(id).await;
        }
        cluster
    }

    /// The node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// A client of every node's test API.
    pub fn client(&self) -> ClusterClient {
        self.client.clone()
    }

    /// Node `id`'s status, or `None` if it does not answer.
    pub async fn status(&self, id: u64) -> Option<Status> {
        self.client.status(id).await
    }

    /// Node `id`'s whole local state.
    pub async fn dump(&self, id: u64) -> Option<BTreeMap<String, u64>> {
        self.client.dump(id).await
    }

    /// The proxies, to partition the cluster.
    pub fn network(&self) -> &Network {
        &self.network
    }

    fn spawn(&mut self, id: u64, init: bool) {
        let node = &self.nodes[&id];
        let mut command = Command::new(&self.binary);
        command
            .arg("--id")
            .arg(id.to_string())
            .arg("--dir")
            .arg(self.dir.join(format!("node-{id}")))
            .arg("--raft")
            .arg(node.raft.to_string())
            .arg("--api")
            .arg(node.api.to_string());
        command.args(&self.args);
        for (peer, addr) in self.network.peers_of(id) {
            command.arg("--peer").arg(format!("{peer}={addr}"));
        }
        if init {
            let members: Vec<String> = self
                .nodes
                .iter()
                .map(|(id, n)| format!("{id}={}", n.raft))
                .collect();
            command.arg("--init").arg(members.join(","));
        }
        let log = std::fs::File::create(self.dir.join(format!("node-{id}.log")))
            .expect("create the node's log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cluster-node");
        let node = self.nodes.get_mut(&id).expect("known node");
        node.child = Some(child);
        node.paused = false;
    }

    async fn wait_up(&self, id: u64) {
        let deadline = Instant::now() + PATIENCE;
        while self.status(id).await.is_none() {
            if Instant::now() > deadline {
                let log = self.dir.join(format!("node-{id}.log"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                panic!(
                    "node {id} did not come up; its log ends:\n{}",
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILLs node `id` (and reaps it).
    pub fn kill(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("known node");
        if let Some(mut child) = node.child.take() {
            // Already dead is fine.
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// Sends SIGSTOP (`pause`) or SIGCONT to node `id`.
    pub fn signal(&mut self, id: u64, pause: bool) {
        let node = self.nodes.get_mut(&id).expect("known node");
        let pid = node.child.as_ref().expect("a running node").id();
        let signal = if pause { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
        node.paused = pause;
    }

    /// Restarts node `id` from its own directory.
    pub async fn restart(&mut self, id: u64) {
        self.kill(id);
        self.spawn(id, false);
        self.wait_up(id).await;
    }

    /// Stops node `id` and removes its directory: it comes back empty.
    pub async fn wipe_and_restart(&mut self, id: u64) {
        self.kill(id);
        let dir = self.dir.join(format!("node-{id}"));
        std::fs::remove_dir_all(&dir).expect("remove the node's directory");
        self.spawn(id, false);
        self.wait_up(id).await;
    }

    /// Whether node `id` is running and not paused.
    pub fn is_live(&self, id: u64) -> bool {
        let node = &self.nodes[&id];
        node.child.is_some() && !node.paused
    }

    /// Waits until the live nodes other than `except` agree on one leader
    /// among them, and returns it.
    pub async fn wait_leader(&self, except: &[u64]) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut seen = Vec::new();
            for id in self.ids() {
                if !except.contains(&id) && self.is_live(id) {
                    seen.push(self.status(id).await.and_then(|s| s.leader));
                }
            }
            if let Some(Some(leader)) = seen.first()
                && seen.iter().all(|s| s == &Some(*leader))
                && !except.contains(leader)
            {
                return *leader;
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until node `id` has applied through log index `top`, and
    /// checks that its state holds every write of `acked` (key to value);
    /// returns the state. `when` goes into the panic message.
    ///
    /// # Panics
    ///
    /// When a write is missing or different, naming how many and the
    /// first few.
    pub async fn assert_holds(
        &self,
        id: u64,
        acked: &BTreeMap<String, u64>,
        top: u64,
        when: &str,
    ) -> BTreeMap<String, u64> {
        self.wait_applied(id, top).await;
        let state = self.dump(id).await.expect("the node answers /dump");
        let lost = crate::writers::missing(acked, &state);
        assert!(
            lost.is_empty(),
            "{when}: node {id} lacks {} of {} acknowledged writes, first {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(5)]
        );
        state
    }

    /// Waits until node `id` has applied through log index `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.status(id).await.is_some_and(|s| s.applied >= index) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not apply through {index}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The client side of the nodes' test API: cheap to clone, so that many
/// client tasks can run while the test kills and restarts nodes.
#[derive(Clone)]
pub struct ClusterClient {
    apis: BTreeMap<u64, SocketAddr>,
    client: reqwest::Client,
}

impl ClusterClient {
    async fn call(&self, id: u64, post: bool, path: &str) -> Option<(u16, String)> {
        let url = format!("http://{}{path}", self.apis[&id]);
        let request = if post {
            self.client.post(url)
        } else {
            self.client.get(url)
        };
        let response = match request.send().await {
            Ok(response) => response,
            // Nothing reached the node (it is down): as if refused.
            Err(e) if e.is_connect() => return Some((REFUSED, e.to_string())),
            Err(_) => return None,
        };
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Node `id`'s status, or `None` if it does not answer.
    pub async fn status(&self, id: u64) -> Option<Status> {
        let (200, text) = self.call(id, false, "/status").await? else {
            return None;
        };
        let words: Vec<&str> = text.split_whitespace().collect();
        let [leader, term, applied, seq, state, first_kept] = words[..] else {
            return None;
        };
        Some(Status {
            leader: leader.parse().ok(),
            term: term.parse().ok()?,
            applied: applied.parse().ok()?,
            seq: seq.parse().ok()?,
            state: state.to_owned(),
            first_kept: first_kept.parse().ok()?,
        })
    }

    fn written(answer: Option<(u16, String)>) -> Written {
        match answer {
            Some((200, text)) => {
                let mut words = text.split_whitespace().skip(1);
                let seq = words.next().and_then(|w| w.parse().ok());
                let index = words.next().and_then(|w| w.parse().ok());
                match (seq, index) {
                    (Some(seq), Some(index)) => Written::Acked { seq, index },
                    _ => Written::Unknown,
                }
            }
            Some((409, _)) => Written::Rejected,
            Some((502 | REFUSED, _)) => Written::Refused,
            _ => Written::Unknown,
        }
    }

    /// Puts `key = value` through node `id`.
    pub async fn put(&self, id: u64, key: &str, value: u64) -> Written {
        Self::written(self.call(id, true, &format!("/put/{key}/{value}")).await)
    }

    /// Compare-and-swap through node `id` (`None`: absent).
    pub async fn cas(
        &self,
        id: u64,
        key: &str,
        expected: Option<u64>,
        new: Option<u64>,
    ) -> Written {
        let text = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        let path = format!("/cas/{key}/{}/{}", text(expected), text(new));
        Self::written(self.call(id, true, &path).await)
    }

    /// Reads `key` on node `id`: linearizable, or stale from its local
    /// snapshot. `Err` when the read was not served.
    pub async fn get(&self, id: u64, key: &str, linearizable: bool) -> Result<Option<u64>, String> {
        let mode = if linearizable { "lin" } else { "stale" };
        match self.call(id, false, &format!("/get/{key}/{mode}")).await {
            Some((200, text)) if text == "none" => Ok(None),
            Some((200, text)) => text
                .strip_prefix("some ")
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or(text),
            Some((status, text)) => Err(format!("{status} {text}")),
            None => Err("no answer".to_owned()),
        }
    }

    /// Node `id`'s whole local state.
    pub async fn dump(&self, id: u64) -> Option<BTreeMap<String, u64>> {
        let (200, text) = self.call(id, false, "/dump").await? else {
            return None;
        };
        text.lines()
            .map(|line| {
                let (k, v) = line.split_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids = self.ids();
        for id in ids {
            self.kill(id);
        }
    }
}
