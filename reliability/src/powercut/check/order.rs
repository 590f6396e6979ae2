//! Each writer's steps in order: which of its event indexes every known
//! step is, and the windows of its events that unseen seqs must hold.
//!
//! An acked step names its index. A journaled one (not acked) names only
//! its writer and its digest, so its index is found by matching digests.
//! After unseen seqs that is not always one index: a pure `Delete` carries
//! no index, and a writer deletes the same key many times, so the same
//! event can be its index 493 and its index 734. Taking the smallest match
//! (as the check once did) then puts the writer hundreds of events behind
//! its next step, which the dense journal after it cannot explain: a false
//! "not its next". So an ambiguous step waits until the writer's next
//! determined step, and is then matched backwards from it: the largest
//! index that fits below that step and the unseen seqs between. Only the
//! writer's steps after its last determined one stay open: each way to
//! settle them is tried by the rest of the check (the placement of the
//! unseen seqs, then the recovered state). Whatever is chosen must still
//! pass every check of a determined step, so a choice can turn a possible
//! history into a reported problem, never an impossible one into a pass.

use super::super::workload::{WRITERS, digest, event};
use super::unseen::Window;

/// A journaled step whose digest matches several of its writer's indexes.
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    digest: u64,
    /// How many unseen seqs came before it.
    unseen: usize,
}

/// The writers' progress through the history.
#[derive(Debug, Clone)]
pub(super) struct Writers {
    seed: u64,
    /// Each writer's next index.
    pub(super) next: [u64; WRITERS as usize],
    /// Each writer's last known step (the cycle's start before any).
    pub(super) last: [u64; WRITERS as usize],
    /// How many seqs were unseen at each writer's last known step.
    unseen_at_last: [usize; WRITERS as usize],
    /// Each writer's events that unseen seqs must hold, in order.
    pub(super) windows: Vec<Vec<Window>>,
    /// Each writer's ambiguous steps since its last known one.
    pending: Vec<Vec<Pending>>,
    /// The known events: `(seq, writer, index)`, in the order they were
    /// settled (not seq order).
    pub(super) events: Vec<(u64, u32, u64)>,
}

impl Writers {
    /// No steps yet, from the cycle's `start`.
    pub(super) fn new(seed: u64, start: u64) -> Self {
        Self {
            seed,
            next: [0; WRITERS as usize],
            last: [start; WRITERS as usize],
            unseen_at_last: [0; WRITERS as usize],
            windows: (0..WRITERS).map(|_| Vec::new()).collect(),
            pending: (0..WRITERS).map(|_| Vec::new()).collect(),
            events: Vec::new(),
        }
    }

    fn matches(&self, writer: u32, index: u64, found: u64) -> bool {
        digest(&event(self.seed, writer, index)) == found
    }

    /// A step known to be `writer`'s event `index` (acked, or matched to
    /// one index), at `seq` after `unseen` unseen seqs.
    pub(super) fn determined(
        &mut self,
        writer: u32,
        seq: u64,
        index: u64,
        unseen: usize,
    ) -> Result<(), String> {
        let w = writer as usize;
        let pending = std::mem::take(&mut self.pending[w]);
        // Backwards from this step: each pending one is the largest index
        // its digest matches below its successor's, at most the unseen
        // seqs between them below it, and leaving room before it for the
        // pending steps ahead of it and the unseen seqs since the last
        // known step.
        let mut chosen = vec![0; pending.len()];
        // `upper`: the index, unseen count and seq of the step after.
        let mut upper = (index, unseen, seq);
        for (p, pend) in pending.iter().enumerate().rev() {
            let after = (upper.1 - pend.unseen) as u64;
            let before = (pend.unseen - self.unseen_at_last[w]) as u64;
            let lo = (self.next[w] + p as u64).max(upper.0.saturating_sub(after + 1));
            let hi = upper.0.min(self.next[w] + p as u64 + before + 1);
            let Some(i) = (lo..hi)
                .rev()
                .find(|&i| self.matches(writer, i, pend.digest))
            else {
                return Err(format!(
                    "seq {} holds an event of writer {writer} that is none of the indexes \
                     {lo}..{hi} left between its steps before it and its event {} at seq {}: a \
                     duplicate, a gap or a foreign event",
                    pend.seq, upper.0, upper.2
                ));
            };
            chosen[p] = i;
            upper = (i, pend.unseen, pend.seq);
        }
        for (pend, i) in pending.iter().zip(chosen) {
            self.record(writer, pend.seq, i, pend.unseen)?;
        }
        self.record(writer, seq, index, unseen)
    }

    /// A journaled step of `writer` at `seq` with digest `found`, after
    /// `unseen` unseen seqs: its index is the one its digest matches among
    /// those the unseen seqs since the writer's last known step leave
    /// possible, or, when several match, decided later.
    pub(super) fn journaled(
        &mut self,
        writer: u32,
        seq: u64,
        found: u64,
        unseen: usize,
    ) -> Result<(), String> {
        let w = writer as usize;
        let first = self.next[w] + self.pending[w].len() as u64;
        let room = (unseen - self.unseen_at_last[w]) as u64;
        let mut fits = (first..=first + room).filter(|&i| self.matches(writer, i, found));
        match (fits.next(), fits.next()) {
            (None, _) => Err(format!(
                "seq {seq} holds an event of writer {writer} that is not its next (index {first}) \
                 nor one of the {room} after it that unseen seqs could explain: a duplicate, a \
                 gap or a foreign event"
            )),
            (Some(index), None) => self.determined(writer, seq, index, unseen),
            (Some(_), Some(_)) => {
                self.pending[w].push(Pending {
                    seq,
                    digest: found,
                    unseen,
                });
                Ok(())
            }
        }
    }

    /// Every way (up to `most`, smallest indexes first) to settle the
    /// ambiguous steps that no determined step follows, each a copy with
    /// no step left pending. Which one is right only the rest of the check
    /// can tell: the placement of the unseen seqs and the recovered state.
    ///
    /// # Errors
    ///
    /// When no way passes the checks of a determined step: the last
    /// reason found.
    pub(super) fn settle_tails(self, most: usize) -> Result<Vec<Writers>, String> {
        let mut done = Vec::new();
        let mut why = None;
        let mut todo = vec![self];
        while let Some(mut trial) = todo.pop() {
            let Some(writer) = (0..WRITERS).find(|&w| !trial.pending[w as usize].is_empty()) else {
                done.push(trial);
                if done.len() == most {
                    break;
                }
                continue;
            };
            let w = writer as usize;
            let pend = trial.pending[w].remove(0);
            let first = trial.next[w];
            let room = (pend.unseen - trial.unseen_at_last[w]) as u64;
            let fits: Vec<u64> = (first..=first + room)
                .filter(|&i| trial.matches(writer, i, pend.digest))
                .collect();
            if fits.is_empty() {
                why = Some(format!(
                    "seq {} holds an event of writer {writer} that is not its next (index \
                     {first}) nor one of the {room} after it that unseen seqs could explain",
                    pend.seq
                ));
            }
            // Depth first, the smallest index on top.
            for &index in fits.iter().rev() {
                let mut next = trial.clone();
                match next.record(writer, pend.seq, index, pend.unseen) {
                    Ok(()) => todo.push(next),
                    Err(e) => why = Some(e),
                }
            }
        }
        if done.is_empty() {
            Err(why.unwrap_or_else(|| "no way to settle the ambiguous steps".into()))
        } else {
            Ok(done)
        }
    }

    /// Records `writer`'s event `index` at `seq`, after `unseen` unseen
    /// seqs: it must come after the writer's last, and the unseen seqs
    /// since then must be able to hold the events between.
    fn record(&mut self, writer: u32, seq: u64, index: u64, unseen: usize) -> Result<(), String> {
        let w = writer as usize;
        if index < self.next[w] {
            return Err(format!(
                "seq {seq} is writer {writer}'s event {index}, where {} was next",
                self.next[w]
            ));
        }
        let missing = index - self.next[w];
        let room = (unseen - self.unseen_at_last[w]) as u64;
        if missing > room {
            return Err(format!(
                "seq {seq} is writer {writer}'s event {index}, where {} was next, and only \
                 {room} unseen seqs since its step at seq {} could hold the {missing} between",
                self.next[w], self.last[w]
            ));
        }
        if missing > 0 {
            self.windows[w].push(Window {
                first: self.next[w],
                count: missing,
                after: self.last[w],
                before: seq,
            });
        }
        self.next[w] = index + 1;
        self.last[w] = seq;
        self.unseen_at_last[w] = unseen;
        self.events.push((seq, writer, index));
        Ok(())
    }
}
