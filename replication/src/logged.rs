//! [`Logged`]: the event type a replica's engine journals, an application
//! event together with the Raft log id it came from.

use openraft::LogId;
use serde::{Deserialize, Serialize};
use solostate::{Event, Txn};

/// One application event as a replica's engine journals it: the event and
/// the id of the Raft log entry that carried it.
///
/// Why the log id rides in the event: the engine journals each batch of
/// events in one atomic, fsynced record, so the log id of the last applied
/// entry is durable in the same write as its effect. After a crash or a
/// power cut, the replica reads it back from its journal's last event and
/// tells openraft exactly where to resume, so no entry is applied twice and
/// none is skipped (openraft PR #441). A separate "last applied" record
/// written after the journal could lag it, and one written before could
/// claim an effect that was lost.
///
/// `apply` is the wrapped event's own: the log id never affects the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "E: Serialize",
    deserialize = "E: serde::de::DeserializeOwned"
))]
pub struct Logged<E> {
    /// The Raft log entry the event was committed in.
    pub log_id: LogId<u64>,
    /// The application's event.
    pub event: E,
}

impl<E: Event> Event for Logged<E> {
    type Key = E::Key;
    type Value = E::Value;
    type Rejection = E::Rejection;

    fn apply(&self, tx: &mut Txn<'_, Self::Key, Self::Value>) -> Result<(), Self::Rejection> {
        self.event.apply(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;
    use solostate::{State, StateEvent};

    #[test]
    fn applies_exactly_like_the_wrapped_event() {
        type Ev = StateEvent<String, u64>;
        let log_id = LogId::new(CommittedLeaderId::new(2, 1), 7);
        let mut plain = State::<Ev>::new();
        let mut logged = State::<Logged<Ev>>::new();
        for event in [
            StateEvent::put("a".to_owned(), 1),
            StateEvent::put("b".to_owned(), 2),
            StateEvent::delete("a".to_owned()),
        ] {
            let wrapped = Logged {
                log_id,
                event: event.clone(),
            };
            assert_eq!(
                event.apply_to(&mut plain).is_ok(),
                wrapped.apply_to(&mut logged).is_ok()
            );
        }
        assert_eq!(plain, logged);
    }
}
