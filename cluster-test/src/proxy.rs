//! A loopback TCP proxy per directed link, switchable at run time, and a
//! [`Network`] of them that partitions a cluster.
//!
//! Cluster tests cannot cut a real network cable, and iptables needs
//! privileges and leaks between tests. Instead every node dials its peers
//! through a proxy of its own per peer, and the test changes each proxy's
//! [`LinkMode`] while the cluster runs.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What a link does with traffic. Changing it takes effect at once, on the
/// connections already open as well as new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Forward both ways.
    Pass,
    /// Forward both ways, each chunk held for this long after it was read:
    /// added latency, not a throughput limit (chunks are pipelined).
    Delay(Duration),
    /// A hard cut: open connections are reset (RST) and new ones are reset
    /// as soon as they are accepted, so peers notice at once.
    Reset,
    /// A silent cut: nothing is forwarded and nothing is refused, so peers
    /// notice only through their own timeouts. Bytes sent into it are
    /// gone, so a connection that lived through it has a hole in its
    /// stream: it is reset when the link leaves this mode, and the peer
    /// reconnects as after a partition that outlasted TCP's retransmits.
    Blackhole,
}

/// One directed link: listens on `127.0.0.1:0` and forwards each accepted
/// connection to `target`. Dropping it stops the proxy and closes its
/// connections.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    mode: watch::Sender<LinkMode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target`, in [`LinkMode::Pass`]. Must be called
    /// inside a tokio runtime, which runs its tasks.
    ///
    /// # Errors
    ///
    /// If binding the listener fails.
    pub async fn start(target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, watch_mode) = watch::channel(LinkMode::Pass);
        let task = tokio::spawn(accept(listener, target, watch_mode));
        Ok(Proxy {
            addr,
            target,
            mode,
            task,
        })
    }

    /// Where to connect to reach the target through this link.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the link leads.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The link's mode now.
    pub fn mode(&self) -> LinkMode {
        *self.mode.borrow()
    }

    /// Switches the link's mode, for open and new connections alike.
    pub fn set_mode(&self, mode: LinkMode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept task owns the connections' JoinSet: aborting it drops
        // the set, which aborts them all.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, mode: watch::Receiver<LinkMode>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((client, _)) => {
                connections.spawn(serve(client, target, mode.clone()));
            }
            // Out of descriptors, say: back off rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn reset(stream: &TcpStream) {
    // Zero linger turns the close on drop into an RST. If it fails, the
    // close is an orderly FIN, which still ends the connection.
    let _ = stream.set_zero_linger();
}

async fn serve(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<LinkMode>) {
    let initial = *mode.borrow_and_update();
    match initial {
        LinkMode::Reset => return reset(&client),
        LinkMode::Blackhole => {
            // Never connected upstream: swallow until the link changes,
            // then reset (the client believes bytes were delivered).
            let mut sink = [0u8; 4096];
            loop {
                tokio::select! {
                    read = client.read(&mut sink) => if !matches!(read, Ok(n) if n > 0) { return },
                    changed = mode.changed() => {
                        if changed.is_err() || *mode.borrow_and_update() != LinkMode::Blackhole {
                            return reset(&client);
                        }
                    }
                }
            }
        }
        LinkMode::Pass | LinkMode::Delay(_) => {}
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return reset(&client);
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let hole = AtomicBool::new(false);
    let cut = {
        let (client_r, client_w) = client.split();
        let (up_r, up_w) = upstream.split();
        let (mode_in, mode_out) = (mode.clone(), mode.clone());
        let forward = async {
            tokio::try_join!(
                pump(client_r, up_w, mode_in, &hole),
                pump(up_r, client_w, mode_out, &hole),
            )
        };
        tokio::select! {
            done = forward => done.is_err(),
            () = watch_for_cut(&mut mode, &hole) => true,
        }
    };
    if cut {
        reset(&client);
        reset(&upstream);
    }
}

/// Returns when the connection must be reset: the link was set to
/// [`LinkMode::Reset`], or left [`LinkMode::Blackhole`] after swallowing
/// bytes, or the proxy was dropped.
async fn watch_for_cut(mode: &mut watch::Receiver<LinkMode>, hole: &AtomicBool) {
    loop {
        if mode.changed().await.is_err() {
            return;
        }
        match *mode.borrow_and_update() {
            LinkMode::Reset => return,
            LinkMode::Pass | LinkMode::Delay(_) if hole.load(Ordering::SeqCst) => return,
            _ => {}
        }
    }
}

/// Chunks read but not yet written, at most: then reading waits, and TCP's
/// flow control pushes back on the sender.
const MAX_QUEUED: usize = 64;

/// One direction of a connection. An `Err` means the connection is over
/// and must be reset (an I/O error, or a hole from a blackhole).
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mode: watch::Receiver<LinkMode>,
    hole: &AtomicBool,
) -> io::Result<()> {
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut eof = false;
    loop {
        if eof && queue.is_empty() {
            // Pass the half-close on, as a FIN.
            return to.shutdown().await;
        }
        let due = queue.front().map(|(at, _)| *at);
        tokio::select! {
            read = from.read(&mut buf), if !eof && queue.len() < MAX_QUEUED => {
                let n = read?;
                if n == 0 {
                    eof = true;
                    continue;
                }
                let now = Instant::now();
                match *mode.borrow() {
                    LinkMode::Pass => queue.push_back((now, buf[..n].to_vec())),
                    LinkMode::Delay(d) => queue.push_back((now + d, buf[..n].to_vec())),
                    LinkMode::Reset => return Err(io::ErrorKind::ConnectionReset.into()),
                    LinkMode::Blackhole => {
                        hole.store(true, Ordering::SeqCst);
                        // If the link healed while this chunk was read,
                        // the watcher may have looked before the hole was
                        // marked: end the connection here instead.
                        if *mode.borrow() != LinkMode::Blackhole {
                            return Err(io::ErrorKind::ConnectionReset.into());
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                if let Some((_, bytes)) = queue.pop_front() {
                    to.write_all(&bytes).await?;
                }
            }
        }
    }
}

/// A node's number in a [`Network`].
pub type NodeId = u64;

/// One [`Proxy`] per ordered pair of nodes: node `a` reaches node `b` only
/// through the proxy for `(a, b)`, so each direction of each pair can be
/// cut alone.
#[derive(Debug)]
pub struct Network {
    links: BTreeMap<(NodeId, NodeId), Proxy>,
}

/// A [`Network::partition`] whose groups are not a partition of the nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// A node is in no group.
    #[error("node {0} is in no group")]
    Missing(NodeId),
    /// A node is in two groups, or is not in the network.
    #[error("node {0} is in two groups or not in the network")]
    Unexpected(NodeId),
}

impl Network {
    /// Starts a proxy for every ordered pair of distinct nodes, the one for
    /// `(a, b)` leading to `nodes[b]`. Must be called inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// If binding a listener fails.
    pub async fn start(nodes: &BTreeMap<NodeId, SocketAddr>) -> io::Result<Network> {
        let mut links = BTreeMap::new();
        for &from in nodes.keys() {
            for (&to, &target) in nodes {
                if from != to {
                    links.insert((from, to), Proxy::start(target).await?);
                }
            }
        }
        Ok(Network { links })
    }

    /// The proxy node `from` dials to reach node `to`.
    pub fn link(&self, from: NodeId, to: NodeId) -> Option<&Proxy> {
        self.links.get(&(from, to))
    }

    /// Node `from`'s table of peer addresses: give it to the node at
    /// startup so that all its traffic crosses this network.
    pub fn peers_of(&self, from: NodeId) -> BTreeMap<NodeId, SocketAddr> {
        self.links
            .iter()
            .filter(|((a, _), _)| *a == from)
            .map(|(&(_, to), proxy)| (to, proxy.addr()))
            .collect()
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_between(&self, a: NodeId, b: NodeId, mode: LinkMode) {
        for key in [(a, b), (b, a)] {
            if let Some(proxy) = self.links.get(&key) {
                proxy.set_mode(mode);
            }
        }
    }

    /// Makes the network exactly `groups`: links inside a group pass,
    /// links between groups are set to `cut` (a [`LinkMode::Reset`] or
    /// [`LinkMode::Blackhole`], or a [`LinkMode::Delay`] for a slow link).
    /// `partition(&[&[1], &[2, 3]], ..)` splits `{1} | {2, 3}`.
    ///
    /// # Errors
    ///
    /// If the groups do not hold every node exactly once; then nothing is
    /// changed.
    pub fn partition(&self, groups: &[&[NodeId]], cut: LinkMode) -> Result<(), PartitionError> {
        let mut group_of = BTreeMap::new();
        for (index, group) in groups.iter().enumerate() {
            for &node in *group {
                if !self.links.keys().any(|&(a, _)| a == node)
                    || group_of.insert(node, index).is_some()
                {
                    return Err(PartitionError::Unexpected(node));
                }
            }
        }
        if let Some(&(missing, _)) = self.links.keys().find(|(a, _)| !group_of.contains_key(a)) {
            return Err(PartitionError::Missing(missing));
        }
        for (&(a, b), proxy) in &self.links {
            let mode = if group_of[&a] == group_of[&b] {
                LinkMode::Pass
            } else {
                cut
            };
            proxy.set_mode(mode);
        }
        Ok(())
    }

    /// Cuts `node` off from every other node, both ways, leaving the
    /// others connected.
    ///
    /// # Errors
    ///
    /// [`PartitionError::Unexpected`] if `node` is not in the network.
    pub fn isolate(&self, node: NodeId, cut: LinkMode) -> Result<(), PartitionError> {
        let rest: Vec<NodeId> = self
            .links
            .keys()
            .map(|&(a, _)| a)
            .filter(|&a| a != node)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        self.partition(&[&[node], &rest], cut)
    }

    /// Sets every link back to [`LinkMode::Pass`].
    pub fn heal(&self) {
        for proxy in self.links.values() {
            proxy.set_mode(LinkMode::Pass);
        }
    }
}
