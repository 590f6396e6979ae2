//! In-process shared maps: what a service keeps its state in when it does
//! not use an engine. Each is a plain map behind the sharing scheme people
//! reach for; reads clone nothing but answer whether the key is there
//! (every reader black-boxes the value it saw).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;

use super::{Contender, Session};
use crate::workload::{Value64, value};

/// `Mutex<HashMap>`.
pub const MUTEX: &str = "Mutex<HashMap>";
/// `std::sync::RwLock<HashMap>`.
pub const RWLOCK_STD: &str = "RwLock<HashMap>";
/// `parking_lot::RwLock<HashMap>`.
pub const RWLOCK_PL: &str = "parking_lot RwLock";
/// `DashMap`.
pub const DASHMAP: &str = "DashMap";
/// `papaya::HashMap`: a lock-free concurrent map.
pub const PAPAYA: &str = "papaya";
/// `ArcSwap<HashMap>`, copying the whole map on every write.
pub const ARCSWAP_COPY: &str = "ArcSwap<HashMap> copy";
/// `ArcSwap<imbl::HashMap>`: the persistent map without the engine, the
/// floor for solostate's read path.
pub const ARCSWAP_IMBL: &str = "ArcSwap<imbl>";

/// A map shared between threads: one read and one write, each complete
/// when it returns.
trait SharedMap: Send + Sync {
    fn get(&self, key: u64) -> bool;
    fn put(&self, key: u64, value: Value64);
}

fn filled<M: FromIterator<(u64, Value64)>>(keys: u64) -> M {
    (0..keys).map(|k| (k, value(k))).collect()
}

impl SharedMap for Mutex<HashMap<u64, Value64>> {
    fn get(&self, key: u64) -> bool {
        black_box(self.lock().expect("no panics while locked").get(&key)).is_some()
    }
    fn put(&self, key: u64, value: Value64) {
        self.lock()
            .expect("no panics while locked")
            .insert(key, value);
    }
}

impl SharedMap for RwLock<HashMap<u64, Value64>> {
    fn get(&self, key: u64) -> bool {
        black_box(self.read().expect("no panics while locked").get(&key)).is_some()
    }
    fn put(&self, key: u64, value: Value64) {
        self.write()
            .expect("no panics while locked")
            .insert(key, value);
    }
}

impl SharedMap for parking_lot::RwLock<HashMap<u64, Value64>> {
    fn get(&self, key: u64) -> bool {
        black_box(self.read().get(&key)).is_some()
    }
    fn put(&self, key: u64, value: Value64) {
        self.write().insert(key, value);
    }
}

impl SharedMap for dashmap::DashMap<u64, Value64> {
    fn get(&self, key: u64) -> bool {
        black_box(self.get(&key)).is_some()
    }
    fn put(&self, key: u64, value: Value64) {
        self.insert(key, value);
    }
}

impl SharedMap for papaya::HashMap<u64, Value64> {
    fn get(&self, key: u64) -> bool {
        black_box(self.pin().get(&key)).is_some()
    }
    fn put(&self, key: u64, value: Value64) {
        self.pin().insert(key, value);
    }
}

/// Copy-on-write behind an `ArcSwap`: readers load without locking;
/// writers take a lock among themselves (so that no write is lost and no
/// copy is wasted on a retry), copy the current map, change the copy and
/// publish it.
struct CopyOnWrite<M> {
    current: ArcSwap<M>,
    writers: Mutex<()>,
}

impl SharedMap for CopyOnWrite<HashMap<u64, Value64>> {
    fn get(&self, key: u64) -> bool {
        black_box(self.current.load().get(&key)).is_some()
    }
    fn put(&self, key: u64, value: Value64) {
        let _writer = self.writers.lock().expect("no panics while locked");
        let mut copy = HashMap::clone(&self.current.load());
        copy.insert(key, value);
        self.current.store(Arc::new(copy));
    }
}

impl SharedMap for CopyOnWrite<imbl::HashMap<u64, Value64>> {
    fn get(&self, key: u64) -> bool {
        black_box(self.current.load().get(&key)).is_some()
    }
    fn put(&self, key: u64, value: Value64) {
        let _writer = self.writers.lock().expect("no panics while locked");
        // An O(1) clone; the insert copies only the path to the key.
        let mut next = imbl::HashMap::clone(&self.current.load());
        next.insert(key, value);
        self.current.store(Arc::new(next));
    }
}

/// A [`SharedMap`] as a [`Contender`]: every op completes at once.
struct Shared<M> {
    name: &'static str,
    map: M,
}

struct Direct<'a, M> {
    map: &'a M,
    found: u64,
}

impl<M: SharedMap> Session for Direct<'_, M> {
    fn read(&mut self, key: u64) {
        self.found += u64::from(self.map.get(key));
    }
    fn write(&mut self, key: u64, value: &Value64) {
        self.map.put(key, *value);
    }
    fn sync(&mut self) -> u64 {
        std::mem::take(&mut self.found)
    }
}

impl<M: SharedMap> Contender for Shared<M> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn session(&self) -> Box<dyn Session + '_> {
        Box::new(Direct {
            map: &self.map,
            found: 0,
        })
    }
}

fn shared<M: SharedMap + 'static>(name: &'static str, map: M) -> Box<dyn Contender> {
    Box::new(Shared { name, map })
}

fn copy_on_write<M: Send + Sync + 'static>(name: &'static str, map: M) -> Box<dyn Contender>
where
    CopyOnWrite<M>: SharedMap,
{
    let map = CopyOnWrite {
        current: ArcSwap::from_pointee(map),
        writers: Mutex::new(()),
    };
    shared(name, map)
}

/// The map contender called `name`, holding `0..keys`; `None` if `name` is
/// not one of this family's.
pub fn build(name: &str, keys: u64) -> Option<Box<dyn Contender>> {
    Some(match name {
        MUTEX => shared(MUTEX, Mutex::new(filled::<HashMap<_, _>>(keys))),
        RWLOCK_STD => shared(RWLOCK_STD, RwLock::new(filled::<HashMap<_, _>>(keys))),
        RWLOCK_PL => shared(
            RWLOCK_PL,
            parking_lot::RwLock::new(filled::<HashMap<_, _>>(keys)),
        ),
        DASHMAP => shared(DASHMAP, filled::<dashmap::DashMap<_, _>>(keys)),
        PAPAYA => shared(PAPAYA, filled::<papaya::HashMap<_, _>>(keys)),
        ARCSWAP_COPY => copy_on_write(ARCSWAP_COPY, filled::<HashMap<_, _>>(keys)),
        ARCSWAP_IMBL => copy_on_write(ARCSWAP_IMBL, filled::<imbl::HashMap<_, _>>(keys)),
        _ => return None,
    })
}
