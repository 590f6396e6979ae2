//! Redis on loopback with its append-only file, `appendfsync always` and
//! `everysec`, driven through the `redis` crate with pipelining: each
//! session queues up to [`super::solo::WINDOW`] commands (reads
//! and writes, in op order) and sends them as one pipeline, as solostate's
//! sessions keep that many acks in flight. The bench starts its own
//! `redis-server` on a free port in a temp dir, configured on the command
//! line, and kills it when the contender is dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::solo::WINDOW;
use super::{AdapterError, Contender, Session};
use crate::workload::{Value64, value};

/// `appendfsync always`.
pub const ALWAYS: &str = "redis fsync always";
/// `appendfsync everysec`.
pub const EVERYSEC: &str = "redis fsync everysec";

struct Redis {
    name: &'static str,
    server: Child,
    client: redis::Client,
    _dir: tempfile::TempDir,
}

/// Whether `redis-server` can be run.
pub fn available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Redis contender called `name`, holding `0..keys`.
pub fn build(name: &str, keys: u64) -> Option<Result<Box<dyn Contender>, AdapterError>> {
    let (name, fsync) = match name {
        ALWAYS => (ALWAYS, "always"),
        EVERYSEC => (EVERYSEC, "everysec"),
        _ => return None,
    };
    if !available() {
        return Some(Err(AdapterError::RedisMissing));
    }
    Some(
        start(name, fsync, keys).map_err(|reason| AdapterError::Store {
            contender: name,
            reason,
        }),
    )
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a port: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("find a port: {e}"))?
        .port();
    Ok(port)
}

fn start(name: &'static str, fsync: &str, keys: u64) -> Result<Box<dyn Contender>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let port = free_port()?;
    let server = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(dir.path())
        .args(["--appendonly", "yes", "--appendfsync", fsync])
        // No RDB snapshots: the AOF is the durability being compared.
        .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start redis-server: {e}"))?;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .map_err(|e| format!("client for port {port}: {e}"))?;
    // From here the server is killed on every path out.
    let redis = Redis {
        name,
        server,
        client,
        _dir: dir,
    };
    let mut con = redis.connect_within(Duration::from_secs(10))?;
    let mut pipe = redis::pipe();
    for key in 0..keys {
        pipe.set(&key.to_le_bytes()[..], &value(key).to_bytes()[..])
            .ignore();
        if pipe.len() == 1000 || key + 1 == keys {
            pipe.query::<()>(&mut con)
                .map_err(|e| format!("fill at key {key}: {e}"))?;
            pipe.clear();
        }
    }
    Ok(Box::new(redis))
}

impl Redis {
    /// Connects, retrying while the server starts.
    fn connect_within(&self, limit: Duration) -> Result<redis::Connection, String> {
        let start = Instant::now();
        loop {
            match self.client.get_connection() {
                Ok(con) => return Ok(con),
                Err(e) if start.elapsed() > limit => {
                    return Err(format!("redis-server did not answer in {limit:?}: {e}"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // Best effort: the server may have died already, which is fine.
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Contender for Redis {
    fn name(&self) -> &'static str {
        self.name
    }
    fn server_rss_kb(&self) -> Option<u64> {
        crate::metrics::status_kb(&format!("/proc/{}/status", self.server.id()), "VmRSS")
    }
    fn session(&self) -> Box<dyn Session + '_> {
        let con = self
            .connect_within(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        Box::new(RedisSession {
            con,
            pipe: redis::pipe(),
            found: 0,
        })
    }
}

struct RedisSession {
    con: redis::Connection,
    pipe: redis::Pipeline,
    found: u64,
}

impl RedisSession {
    fn send(&mut self) {
        if self.pipe.is_empty() {
            return;
        }
        // Only the GETs' answers come back; the SETs' are ignored.
        let answers: Vec<redis::Value> = self.pipe.query(&mut self.con).expect("redis pipeline");
        self.found += answers
            .iter()
            .filter(|v| matches!(v, redis::Value::BulkString(_)))
            .count() as u64;
        self.pipe.clear();
    }

    fn queued(&mut self) {
        if self.pipe.len() >= WINDOW {
            self.send();
        }
    }
}

impl Session for RedisSession {
    fn read(&mut self, key: u64) {
        self.pipe.get(&key.to_le_bytes()[..]);
        self.queued();
    }
    fn write(&mut self, key: u64, value: &Value64) {
        self.pipe
            .set(&key.to_le_bytes()[..], &value.to_bytes()[..])
            .ignore();
        self.queued();
    }
    fn sync(&mut self) -> u64 {
        self.send();
        std::mem::take(&mut self.found)
    }
}
