//! [`loopback_listener`]: a loopback port for a node of a cluster that
//! runs on one machine (tests, benchmarks, a local trial), that stays
//! free for the node's restarts.

use std::net::TcpListener;

/// A listener on 127.0.0.1 at a port **below the kernel's ephemeral
/// range** (`/proc/sys/net/ipv4/ip_local_port_range`; 32768 when that
/// cannot be read), picked at random from 10000 up.
///
/// Why not port 0: a cluster needs every node's address before any node
/// opens (for the membership), and a node restarted keeps its address.
/// A port from the ephemeral range can, between a release and the next
/// bind, become the local end of some outgoing connection (peers and
/// clients open many), and the node then fails with "address in use"
/// (CI saw it). Outgoing connections never take a port outside that
/// range, so one that binds now stays free for the next bind, unless
/// another program picks it on purpose.
///
/// Hold the listener until the node serves on it
/// ([`ReplicaBuilder::listener`](crate::ReplicaBuilder::listener)), or
/// take its address and drop it.
///
/// # Errors
///
/// The last bind's error, when 10,000 random ports below the range were
/// all taken.
pub fn loopback_listener() -> std::io::Result<TcpListener> {
    let low = ephemeral_low();
    let span = u64::from(low.saturating_sub(10_000).max(1));
    // xorshift seeded by the time and the process, so that processes
    // started together do not walk the same ports.
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32)
        | 1;
    let mut last = None;
    for _ in 0..10_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        match TcpListener::bind(("127.0.0.1", 10_000 + (state % span) as u16)) {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port tried")))
}

/// The first port of the kernel's ephemeral range (32768 when it cannot
/// be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_below_the_ephemeral_range_and_bound() {
        let low = ephemeral_low();
        let listener = loopback_listener().unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!((10_000..low.max(10_001)).contains(&port), "{port} vs {low}");
        // Held: a second bind of the same port fails while it lives.
        assert!(TcpListener::bind(("127.0.0.1", port)).is_err());
    }
}
