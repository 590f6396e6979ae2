//! What the fault harnesses write, and the model they check it against:
//! a deterministic event for every seq, so that a parent process knows
//! what a killed child wrote at each seq without being told, and a model
//! of the map that shares no code with `StateEvent::apply`.

use solostate::StateEvent;
use solostate::imbl::HashMap;

use crate::workload::Rng;

/// The event type every fault harness drives.
pub type Ev = StateEvent<u64, u64>;

/// The model of an engine's state: keys to values.
pub type Model = HashMap<u64, u64>;

/// Keys are drawn from `0..KEYS`, few enough that deletes and overwrites
/// hit existing keys often.
pub const KEYS: u64 = 64;

/// The event a harness writes at `seq` in a run with `seed`: mostly puts
/// (of the seq, so every acked seq leaves a visible trace until it is
/// overwritten), some deletes, and atomic batches of both. None of them
/// can be rejected, so a single pipelined writer's events take
/// consecutive seqs.
pub fn event_at(seed: u64, seq: u64) -> Ev {
    let mut rng = Rng::new(seed ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let one = |rng: &mut Rng| {
        let key = rng.bits() % KEYS;
        if rng.chance(75) {
            Ev::put(key, seq)
        } else {
            Ev::delete(key)
        }
    };
    if rng.chance(20) {
        let len = rng.range(2, 4);
        Ev::batch((0..len).map(|_| one(&mut rng)).collect::<Vec<_>>())
    } else {
        one(&mut rng)
    }
}

/// Applies `event` to `model`, the plain way.
///
/// # Panics
///
/// On an event kind [`event_at`] never makes.
pub fn apply(model: &mut Model, event: &Ev) {
    match event {
        StateEvent::Put { key, value } => {
            model.insert(*key, *value);
        }
        StateEvent::Delete { key } => {
            model.remove(key);
        }
        StateEvent::Batch(events) => events.iter().for_each(|event| apply(model, event)),
        other => panic!("the workload makes no {other:?}"),
    }
}

/// Why two states differ, in a line: the first few keys that disagree.
pub fn diff(what: &str, found: &Model, expected: &Model) -> String {
    let mut keys: Vec<u64> = found.keys().chain(expected.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let differing: Vec<String> = keys
        .into_iter()
        .filter(|key| found.get(key) != expected.get(key))
        .take(5)
        .map(|key| {
            format!(
                "key {key}: {:?} instead of {:?}",
                found.get(&key),
                expected.get(&key)
            )
        })
        .collect();
    format!("{what}: {}", differing.join(", "))
}
