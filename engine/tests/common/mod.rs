//! A test event type: the built-in key-value events plus events that
//! misbehave on purpose, to exercise the engine's failure handling.

#![allow(dead_code)] // each test binary uses a different part

pub mod model;

use std::path::Path;

use serde::{Deserialize, Serialize};
use solostate::{Event, StateEvent, StateRejection, Txn};

pub type Map = imbl::HashMap<u8, u8>;

/// Either a `StateEvent` or one that writes and then fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TestEvent {
    /// A built-in key-value event.
    Kv(StateEvent<u8, u8>),
    /// Writes `key = value`, then rejects: the write must not survive.
    WriteThenReject { key: u8, value: u8 },
    /// Writes `key = value`, then panics: the write must not survive.
    WriteThenPanic { key: u8, value: u8 },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TestRejection {
    #[error(transparent)]
    Kv(#[from] StateRejection<u8>),
    #[error("rejected on purpose after writing key {0}")]
    OnPurpose(u8),
}

impl Event for TestEvent {
    type Key = u8;
    type Value = u8;
    type Rejection = TestRejection;

    fn apply(&self, tx: &mut Txn<'_, u8, u8>) -> Result<(), TestRejection> {
        match self {
            TestEvent::Kv(event) => Ok(event.apply(tx)?),
            TestEvent::WriteThenReject { key, value } => {
                tx.insert(*key, *value);
                Err(TestRejection::OnPurpose(*key))
            }
            TestEvent::WriteThenPanic { key, value } => {
                tx.insert(*key, *value);
                panic!("panicking on purpose after writing key {key}");
            }
        }
    }
}

/// Silences the default panic hook's message for the panics these tests
/// cause on purpose, and keeps it for everything else.
pub fn quiet_intentional_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !text.contains("on purpose") {
                default(info);
            }
        }));
    });
}

/// Copies the directory `from` (files and subdirectories) to `to`: a
/// snapshot of an engine's directory, taken while it runs or after a
/// damage, to open elsewhere.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A value whose first drop of a 13, once armed ([`arm_bomb`]), panics: a
/// `Drop` of the user's value type that fails while the engine settles a
/// write set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bomb(pub u8);

static BOMB_ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the next drop of a `Bomb(13)` panic, once.
pub fn arm_bomb() {
    BOMB_ARMED.store(true, std::sync::atomic::Ordering::SeqCst);
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 == 13 && BOMB_ARMED.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("dropping 13 on purpose");
        }
    }
}
