//! sled used directly, as a user would without the engine: one `insert`
//! and one `flush` per write (an ack means durable, like solostate's
//! `Always`), and `insert` alone with sled's background `flush_every_ms`
//! of one second (like `Every(1s)` and Redis's `everysec`).

use std::hint::black_box;

use super::{AdapterError, Contender, Session};
use crate::workload::{Value64, value};

/// A flush per write.
pub const SLED_FLUSH: &str = "sled flush/write";
/// sled's own background flush every 1000 ms.
pub const SLED_FLUSH_EVERY: &str = "sled flush_every_ms";

/// sled's page cache: the engine's journal default, so both hold the same.
const CACHE_BYTES: u64 = 64 << 20;

struct Sled {
    name: &'static str,
    db: sled::Db,
    flush_each: bool,
    _dir: tempfile::TempDir,
}

fn key_bytes(key: u64) -> [u8; 8] {
    key.to_be_bytes()
}

/// The sled contender called `name`, holding `0..keys` (loaded in one go
/// and flushed once).
pub fn build(name: &str, keys: u64) -> Option<Result<Box<dyn Contender>, AdapterError>> {
    let (name, flush_each) = match name {
        SLED_FLUSH => (SLED_FLUSH, true),
        SLED_FLUSH_EVERY => (SLED_FLUSH_EVERY, false),
        _ => return None,
    };
    Some(
        open(name, flush_each, keys).map_err(|reason| AdapterError::Store {
            contender: name,
            reason,
        }),
    )
}

fn open(name: &'static str, flush_each: bool, keys: u64) -> Result<Box<dyn Contender>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms((!flush_each).then_some(1000))
        .open()
        .map_err(|e| format!("open {}: {e}", dir.path().display()))?;
    for key in 0..keys {
        db.insert(key_bytes(key), &value(key).to_bytes()[..])
            .map_err(|e| format!("fill key {key}: {e}"))?;
    }
    db.flush().map_err(|e| format!("flush after fill: {e}"))?;
    Ok(Box::new(Sled {
        name,
        db,
        flush_each,
        _dir: dir,
    }))
}

impl Contender for Sled {
    fn name(&self) -> &'static str {
        self.name
    }
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(SledSession {
            sled: self,
            found: 0,
        })
    }
}

struct SledSession<'a> {
    sled: &'a Sled,
    found: u64,
}

impl Session for SledSession<'_> {
    fn read(&mut self, key: u64) {
        let got = self.sled.db.get(key_bytes(key)).expect("sled read");
        self.found += u64::from(black_box(got).is_some());
    }
    fn write(&mut self, key: u64, value: &Value64) {
        let db = &self.sled.db;
        db.insert(key_bytes(key), &value.to_bytes()[..])
            .expect("sled insert");
        if self.sled.flush_each {
            db.flush().expect("sled flush");
        }
    }
    fn sync(&mut self) -> u64 {
        std::mem::take(&mut self.found)
    }
}
