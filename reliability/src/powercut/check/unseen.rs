//! Placing the events of the unseen seqs: those neither printed as acked
//! nor kept by the journal, because a checkpoint covers them and the
//! journal before it was pruned while the writer had not printed their
//! acks yet.
//!
//! Each writer's events are dense and in order, so between two known
//! steps of one writer (its event `i` at seq `a`, its event `j` at seq
//! `b`) lie exactly its events `i + 1 .. j`, at unseen seqs between `a`
//! and `b`: a [`Window`]. After a writer's last known step its count is
//! open. One writer's unprinted events may spread over several runs of
//! unseen seqs, with other writers' printed acks between them, so the
//! runs are placed together, not one at a time.

use super::super::workload::WRITERS;

/// Writer events that no step shows: `count` of them from index `first`,
/// at unseen seqs after `after` (the writer's previous known step, or the
/// cycle's start) and before `before` (its next known step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) first: u64,
    pub(super) count: u64,
    pub(super) after: u64,
    pub(super) before: u64,
}

/// Unseen seqs that only the recovered state can split among several
/// writers, each past its last known step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Deferred {
    /// How many seqs.
    pub(super) rest: u64,
    /// The writers that may hold them, each with the most it can hold
    /// (the deferred seqs after its last known step).
    pub(super) writers: Vec<(u32, u64)>,
}

/// Where the unseen seqs' events go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Placed {
    /// `(seq, writer, index)`, in seq order.
    pub(super) events: Vec<(u64, u32, u64)>,
    /// The seqs left to the state, if any (they come after every placed
    /// event, and no rollback may follow them: [`settled`] checks that).
    pub(super) deferred: Option<Deferred>,
}

/// Places the writers' `windows` (per writer, in order) on the `unseen`
/// seqs (ascending), earliest deadline first: at each seq, of the windows
/// that may hold it, the one whose next known step comes first. That
/// finds a placement whenever one exists (unit jobs with release times and
/// deadlines). A seq no window may hold goes to the one writer past its
/// `last` known step (its `next` index moves on), or, when several are,
/// to the state ([`Placed::deferred`]).
///
/// Which writer took which unseen seq does not change the final state
/// (writers' keys are disjoint), only the state at a rollback's target
/// and the split around the rollback: [`settled`] checks those.
///
/// # Errors
///
/// When the unseen seqs cannot hold the windows (too few where they must
/// lie, or a seq that no writer may have sent), naming the writer or seq.
pub(super) fn place(
    unseen: &[u64],
    windows: &[Vec<Window>],
    last: &[u64; WRITERS as usize],
    next: &mut [u64; WRITERS as usize],
) -> Result<Placed, String> {
    let mut queues: Vec<std::collections::VecDeque<Window>> = windows
        .iter()
        .map(|w| w.iter().copied().collect())
        .collect();
    let mut placed = Placed::default();
    let mut deferred: Vec<u64> = Vec::new();
    let too_few = |writer: usize, w: &Window| {
        format!(
            "writer {writer}'s events {}..={} must lie between seqs {} and {}, where too few \
             seqs are unseen",
            w.first,
            w.first + w.count - 1,
            w.after,
            w.before
        )
    };
    for &seq in unseen {
        for (writer, queue) in queues.iter().enumerate() {
            if let Some(w) = queue.front().filter(|w| w.before < seq) {
                return Err(too_few(writer, w));
            }
        }
        let pick = (0..queues.len())
            .filter(|&w| queues[w].front().is_some_and(|win| win.after < seq))
            .min_by_key(|&w| queues[w].front().map(|win| win.before));
        if let Some(writer) = pick {
            let queue = &mut queues[writer];
            let win = queue.front_mut().expect("picked a non-empty queue");
            placed.events.push((seq, writer as u32, win.first));
            win.first += 1;
            win.count -= 1;
            if win.count == 0 {
                queue.pop_front();
            }
            continue;
        }
        let open: Vec<usize> = (0..WRITERS as usize).filter(|&w| last[w] < seq).collect();
        match open.as_slice() {
            [] => {
                return Err(format!(
                    "seq {seq} cannot be any writer's: their later steps account for all their \
                     events before it"
                ));
            }
            &[writer] if deferred.is_empty() => {
                placed.events.push((seq, writer as u32, next[writer]));
                next[writer] += 1;
            }
            _ => deferred.push(seq),
        }
    }
    if let Some((writer, w)) = queues
        .iter()
        .enumerate()
        .find_map(|(writer, q)| q.front().map(|w| (writer, w)))
    {
        return Err(too_few(writer, w));
    }
    if !deferred.is_empty() {
        let writers = (0..WRITERS)
            .filter_map(|w| {
                let most = deferred.iter().filter(|&&s| s > last[w as usize]).count() as u64;
                (most > 0).then_some((w, most))
            })
            .collect();
        placed.deferred = Some(Deferred {
            rest: deferred.len() as u64,
            writers,
        });
    }
    Ok(placed)
}

/// Whether every placement of the unseen seqs gives each writer the same
/// number of events up to seq `at`: `Err` with the writers that could
/// share the unseen seqs up to it otherwise. A sufficient test, not an
/// exact one, so it may call a settled point unsettled, never the
/// reverse.
///
/// Each writer has at least the events of its windows that must lie up to
/// `at`: those of windows that end by then, and of a window straddling
/// `at`, those for which too few unseen seqs follow `at` before its end.
/// When these lower bounds add up to the unseen seqs up to `at`, every
/// count is its bound. Otherwise the seqs left are filled from windows (or
/// open tails) that start before `at` and may end after it, and the counts
/// are fixed only when all such belong to one writer.
pub(super) fn settled(
    at: u64,
    unseen: &[u64],
    windows: &[Vec<Window>],
    last: &[u64; WRITERS as usize],
) -> Result<(), Vec<u32>> {
    let upto = unseen.partition_point(|&s| s <= at) as u64;
    // Unseen seqs in `from + 1 ..= to`.
    let between =
        |from: u64, to: u64| unseen.iter().filter(|&&s| s > from && s <= to).count() as u64;
    let least: u64 = windows
        .iter()
        .flatten()
        .map(|w| {
            if w.before <= at {
                w.count
            } else if w.after < at {
                w.count.saturating_sub(between(at, w.before - 1))
            } else {
                0
            }
        })
        .sum();
    if upto <= least {
        return Ok(());
    }
    let writers: Vec<u32> = (0..WRITERS)
        .filter(|&writer| {
            let w = writer as usize;
            let straddles = windows[w]
                .iter()
                .any(|win| win.after < at && at < win.before && between(win.after, at) > 0);
            let tail = last[w] < at && between(last[w], at) > 0;
            straddles || tail
        })
        .collect();
    if writers.len() <= 1 {
        Ok(())
    } else {
        Err(writers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(first: u64, count: u64, after: u64, before: u64) -> Window {
        Window {
            first,
            count,
            after,
            before,
        }
    }

    /// Writer 1's windows straddle writer 0's: earliest deadline first
    /// must give writer 0 the early seqs, or writer 0 runs out of room.
    #[test]
    fn earliest_deadline_first_places_interleaved_windows() {
        let windows = vec![vec![win(0, 2, 0, 4)], vec![win(0, 3, 0, 9)], vec![], vec![]];
        let last = [4, 9, 0, 0];
        let mut next = [1, 4, 0, 0];
        let unseen = [1, 2, 3, 5, 6];
        let placed = place(&unseen, &windows, &last, &mut next).unwrap();
        // Writer 0 takes the first two (deadline 4), writer 1 the rest.
        assert_eq!(
            placed.events,
            vec![(1, 0, 0), (2, 0, 1), (3, 1, 0), (5, 1, 1), (6, 1, 2)]
        );
        assert_eq!(placed.deferred, None);
    }

    #[test]
    fn too_few_unseen_seqs_for_a_window_is_an_error() {
        let windows = vec![vec![win(0, 3, 0, 4)], vec![], vec![], vec![]];
        let err = place(&[1, 2], &windows, &[4, 9, 9, 9], &mut [3, 0, 0, 0]).unwrap_err();
        assert!(err.contains("too few"), "{err}");
    }

    #[test]
    fn seqs_after_several_writers_last_steps_are_deferred() {
        let placed = place(
            &[5, 6],
            &[vec![], vec![], vec![], vec![]],
            &[4, 3, 9, 9],
            &mut [0; 4],
        )
        .unwrap();
        assert!(placed.events.is_empty());
        assert_eq!(
            placed.deferred,
            Some(Deferred {
                rest: 2,
                writers: vec![(0, 2), (1, 2)]
            })
        );
    }

    #[test]
    fn a_point_that_two_writers_windows_straddle_is_not_settled() {
        let windows = vec![vec![win(0, 1, 0, 4)], vec![win(0, 1, 0, 4)], vec![], vec![]];
        let last = [4, 4, 9, 9];
        // Seqs 1 and 3 are unseen; at seq 2 one of them is before, and it
        // could be either writer's.
        assert_eq!(settled(2, &[1, 3], &windows, &last), Err(vec![0, 1]));
        assert_eq!(settled(4, &[1, 3], &windows, &last), Ok(()));
        // Two seqs up to seq 3 and one event of each writer that must lie
        // before seq 4: whichever order, one each.
        assert_eq!(settled(3, &[2, 3], &windows, &last), Ok(()));
        // One writer's only: settled.
        let one = vec![vec![win(0, 2, 0, 4)], vec![], vec![], vec![]];
        assert_eq!(settled(2, &[1, 3], &one, &[4, 9, 9, 9]), Ok(()));
    }
}
