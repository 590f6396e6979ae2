//! The proxy with real sockets on loopback: an echo server behind it, and
//! a client in front. Timing is asserted only as a lower bound (a delay
//! adds at least its length); where a test shows that nothing arrives, it
//! waits a fixed while, which on a slow machine can only make it pass
//! more easily, never fail wrongly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use solostate_cluster_test::proxy::{LinkMode, Network, PartitionError, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// How long a test waits to be sure nothing comes back.
const QUIET: Duration = Duration::from_millis(300);

/// An echo server: every byte read is written back.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Sends `msg` and reads as many bytes back, within `QUIET`.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(msg).await?;
    let mut back = vec![0u8; msg.len()];
    match timeout(QUIET * 10, stream.read_exact(&mut back)).await {
        Ok(read) => read.map(|_| back),
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Whether the connection is dead: a read ends in EOF or an error.
async fn is_cut(stream: &mut TcpStream) -> bool {
    let _ = stream.write_all(b"ping").await;
    let mut buf = [0u8; 4];
    matches!(
        timeout(QUIET * 10, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn bytes_pass_both_ways() {
    let proxy = Proxy::start(echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    let msg: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    assert_eq!(round_trip(&mut client, &msg).await.unwrap(), msg);
}

#[tokio::test]
async fn reset_cuts_open_connections_and_refuses_new_ones() {
    let proxy = Proxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"hi").await.unwrap(), b"hi");
    proxy.set_mode(LinkMode::Reset);
    assert!(
        is_cut(&mut open).await,
        "an open connection survived a reset"
    );
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        is_cut(&mut new).await,
        "a new connection passed a reset link"
    );
}

#[tokio::test]
async fn heal_restores_new_connections() {
    let proxy = Proxy::start(echo_server().await).await.unwrap();
    proxy.set_mode(LinkMode::Reset);
    let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(is_cut(&mut refused).await);
    proxy.set_mode(LinkMode::Pass);
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut client, b"back").await.unwrap(), b"back");
}

#[tokio::test]
async fn blackhole_swallows_silently_and_resets_on_heal() {
    let proxy = Proxy::start(echo_server().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"hi").await.unwrap(), b"hi");
    proxy.set_mode(LinkMode::Blackhole);
    open.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 4];
    // Neither an echo nor a close: silence.
    assert!(timeout(QUIET, open.read(&mut buf)).await.is_err());
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    new.write_all(b"lost").await.unwrap();
    assert!(timeout(QUIET, new.read(&mut buf)).await.is_err());
    // Their streams have a hole: healing resets them.
    proxy.set_mode(LinkMode::Pass);
    assert!(
        is_cut(&mut open).await,
        "a connection with a hole survived the heal"
    );
    assert!(
        is_cut(&mut new).await,
        "a connection with a hole survived the heal"
    );
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut fresh, b"ok").await.unwrap(), b"ok");
}

#[tokio::test]
async fn delay_adds_at_least_the_delay_each_way() {
    let delay = Duration::from_millis(100);
    let proxy = Proxy::start(echo_server().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.set_mode(LinkMode::Delay(delay));
    let started = Instant::now();
    assert_eq!(round_trip(&mut client, b"slow").await.unwrap(), b"slow");
    // Held once on the way out and once on the way back.
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
}

#[tokio::test]
async fn network_splits_one_node_from_the_other_two() {
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, echo_server().await);
    }
    let net = Network::start(&nodes).await.unwrap();
    assert_eq!(
        net.peers_of(1).keys().copied().collect::<Vec<_>>(),
        vec![2, 3]
    );
    net.partition(&[&[1], &[2, 3]], LinkMode::Reset).unwrap();
    for (from, to, open) in [
        (1, 2, false),
        (2, 1, false),
        (3, 1, false),
        (2, 3, true),
        (3, 2, true),
    ] {
        let mut stream = TcpStream::connect(net.link(from, to).unwrap().addr())
            .await
            .unwrap();
        if open {
            assert_eq!(
                round_trip(&mut stream, b"x").await.unwrap(),
                b"x",
                "{from}->{to}"
            );
        } else {
            assert!(is_cut(&mut stream).await, "{from}->{to} passed a partition");
        }
    }
    net.heal();
    let mut stream = TcpStream::connect(net.link(1, 2).unwrap().addr())
        .await
        .unwrap();
    assert_eq!(round_trip(&mut stream, b"y").await.unwrap(), b"y");
    net.isolate(3, LinkMode::Reset).unwrap();
    assert_eq!(net.link(1, 3).unwrap().mode(), LinkMode::Reset);
    assert_eq!(net.link(3, 2).unwrap().mode(), LinkMode::Reset);
    assert_eq!(net.link(1, 2).unwrap().mode(), LinkMode::Pass);
}

#[tokio::test]
async fn a_partition_must_name_every_node_once() {
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, echo_server().await);
    }
    let net = Network::start(&nodes).await.unwrap();
    assert_eq!(
        net.partition(&[&[1], &[2]], LinkMode::Reset),
        Err(PartitionError::Missing(3))
    );
    assert_eq!(
        net.partition(&[&[1, 2], &[2, 3]], LinkMode::Reset),
        Err(PartitionError::Unexpected(2))
    );
    assert_eq!(net.link(1, 2).unwrap().mode(), LinkMode::Pass);
}
