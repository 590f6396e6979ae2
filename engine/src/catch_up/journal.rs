//! Reading a catch-up subscriber's events back from the journal, on a
//! blocking thread (the journal's reads are blocking I/O).

use std::sync::Arc;

use solostate_commands::Event;
use solostate_persistence::journal::{Journal, JournalError, Step};
use solostate_queries::{Change, CommittedBatch};

use super::{CatchUpError, Fetched};

/// Up to `max` committed events after `after`, through `through`, and the
/// rollback that ends them if one does. Blocking.
///
/// The step at `after` itself is read too: a journal read that starts
/// inside a rolled-back gap begins at the gap's marker, and that is how an
/// undone `after` shows.
pub(super) fn read<E: Event>(
    journal: &Journal,
    after: u64,
    through: u64,
    max: usize,
) -> Result<Fetched<E>, CatchUpError> {
    let failed = |error: JournalError| CatchUpError::History {
        seq: after + 1,
        message: error.to_string(),
    };
    let first = journal.first_seq().map_err(failed)?;
    let from = if after >= first {
        after
    } else if after + 1 == first {
        first // `after` was compacted away, but everything after it is here
    } else {
        return Err(CatchUpError::Pruned { seq: after, first });
    };
    let mut events = Vec::new();
    let mut rollback = None;
    for entry in journal.read_from::<E>(from) {
        let entry = entry.map_err(failed)?;
        if entry.seq <= after {
            continue; // the step at `after`: the subscriber has it
        }
        match entry.step {
            Step::Rollback { target } if from == after && entry.seq > after && target < after => {
                return Err(CatchUpError::Undone {
                    seq: after,
                    rollback: entry.seq,
                    target,
                });
            }
            Step::Rollback { target } => {
                // Even past `through`: then a rollback after the switch
                // point archived some of the events up to it.
                rollback = Some((entry.seq, target));
                break;
            }
            Step::Event(_) if entry.seq > through => break,
            Step::Event(event) => {
                events.push(event);
                if entry.seq == through || events.len() >= max {
                    break;
                }
            }
        }
    }
    let batch = Arc::new(CommittedBatch::new(after + 1, events));
    let changes = (0..batch.events().len())
        .filter_map(|index| Change::at(Arc::clone(&batch), index))
        .collect();
    Ok(Fetched { changes, rollback })
}
