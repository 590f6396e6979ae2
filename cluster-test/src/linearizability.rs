//! A linearizability checker for client histories, in the style of
//! Porcupine: Wing & Gong's search with Lowe's just-in-time linearization
//! and memoization.
//!
//! A history is linearizable if every operation can be given one instant,
//! between its call and its return, at which it took effect, such that
//! running the operations one by one in that order through the [`Model`]
//! gives every output the clients saw. The checker searches for that order:
//! it walks the call and return events in time order and, at each point,
//! tries to place next ("linearize") an operation that has been called but
//! not placed. Reaching an operation's return before it has been placed
//! means an earlier choice was wrong, so it backtracks. A cache of
//! `(set of placed operations, model state)` pairs cuts every branch that
//! reaches a configuration already explored, which is what makes real
//! histories (mostly sequential, with short overlaps) fast.
//!
//! An operation whose client never saw the answer (a timeout, an
//! ambiguous error, a dead client) is [`Completion::Unknown`]: it may have
//! taken effect at any time after its call, or never. Its return is at
//! infinity, so it can be placed anywhere after its call, including after
//! everything else, where nothing observes it.
//!
//! The search is exponential in the worst case, so every check runs under
//! [`Limits`] and answers [`Verdict::Unknown`] rather than hanging.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{Debug, Write as _};
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::model::{CasRegister, KvInput, KvOutput, Model};

/// One operation of a client history.
///
/// Times are in any one unit from any one origin shared by all clients
/// (nanoseconds since the test started, say). Take the call time before
/// sending the request and the return time after the response arrived: the
/// operation's true instant must lie inside that window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// Which client ran it: only for explanations.
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// When it was called.
    pub call: u64,
    /// How it ended.
    pub completion: Completion<O>,
}

/// How an operation ended, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion<O> {
    /// The client received `output` at time `at` (`at >= call`).
    Returned {
        /// When the answer arrived.
        at: u64,
        /// The answer.
        output: O,
    },
    /// The client never learned the outcome: the operation may have taken
    /// effect at any time after its call, or never.
    Unknown,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned `output` at `ret`.
    pub fn returned(client: u64, input: I, call: u64, ret: u64, output: O) -> Self {
        Operation {
            client,
            input,
            call,
            completion: Completion::Returned { at: ret, output },
        }
    }

    /// An operation whose outcome its client never learned.
    pub fn unknown(client: u64, input: I, call: u64) -> Self {
        Operation {
            client,
            input,
            call,
            completion: Completion::Unknown,
        }
    }

    /// The answer, if one arrived.
    pub fn output(&self) -> Option<&O> {
        match &self.completion {
            Completion::Returned { output, .. } => Some(output),
            Completion::Unknown => None,
        }
    }

    /// The return time, if one arrived (`None`: infinity).
    pub fn ret(&self) -> Option<u64> {
        match self.completion {
            Completion::Returned { at, .. } => Some(at),
            Completion::Unknown => None,
        }
    }
}

/// How much work a check may do before answering [`Verdict::Unknown`].
///
/// One step is one event visited by the search. The budget covers the whole
/// check, over every partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The most search steps.
    pub max_steps: u64,
    /// The most wall-clock time, if any.
    pub timeout: Option<Duration>,
}

impl Default for Limits {
    /// Ten million steps, no timeout: a few seconds in a debug build, and
    /// far more than a test history of a few thousand operations needs
    /// unless it is pathologically concurrent.
    fn default() -> Self {
        Limits {
            max_steps: 10_000_000,
            timeout: None,
        }
    }
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations explains every output.
    Linearizable,
    /// No order does; here is how far the best one got.
    NotLinearizable(Box<Counterexample>),
    /// The budget ran out before the search finished.
    Unknown {
        /// The partition being checked when it ran out (its `Debug`).
        partition: Option<String>,
        /// Which limit was hit.
        reason: UnknownReason,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Which [`Limits`] bound stopped a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownReason {
    /// [`Limits::max_steps`] steps were taken.
    Steps(u64),
    /// [`Limits::timeout`] passed.
    Timeout(Duration),
}

/// Why a history is not linearizable: the longest order the search found
/// that explains a prefix of it, and the operation it could not get past.
///
/// Operation numbers are indices into the history given to the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The partition (for [`check_kv`], the key) that failed, by its
    /// `Debug`; `None` for an unpartitioned [`check`].
    pub partition: Option<String>,
    /// The longest linearizable prefix found, in linearization order.
    pub linearized: Vec<usize>,
    /// The model's state after `linearized`, by its `Debug`.
    pub state: String,
    /// The operation whose return the search reached without having been
    /// able to place it: it must have taken effect by then, and could not.
    pub stuck: usize,
    /// The operations called but not placed at that point (`stuck` among
    /// them), none of which the model allowed next.
    pub unplaced: Vec<usize>,
    /// All of the above in words, with each operation written out.
    pub explanation: String,
}

impl std::fmt::Display for Counterexample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.explanation)
    }
}

/// A history the checker cannot take, with the operation at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// An operation returned before it was called.
    #[error("operation {index} returned at {ret}, before its call at {call}")]
    ReturnBeforeCall {
        /// Its index in the history.
        index: usize,
        /// Its call time.
        call: u64,
        /// Its return time.
        ret: u64,
    },
}

/// Checks a whole history against `model`, as one object.
///
/// # Errors
///
/// [`HistoryError::ReturnBeforeCall`] if an operation's times are
/// reversed.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    limits: &Limits,
) -> Result<Verdict, HistoryError> {
    validate(history)?;
    let all: Vec<usize> = (0..history.len()).collect();
    let mut budget = Budget::new(limits);
    Ok(search(model, history, &all, None, &mut budget))
}

/// Checks a history one partition at a time: the operations for which
/// `partition` gives equal values, each against a fresh `model`.
///
/// This is sound only when operations in different partitions never
/// interact, as with single-key operations on a map (linearizability is
/// local: a history is linearizable iff each object's sub-history is). It
/// turns one search over every operation into many small ones. The first
/// partition (in `P`'s order) that is not linearizable is reported, or the
/// one that was being checked when the budget ran out.
///
/// # Errors
///
/// [`HistoryError::ReturnBeforeCall`] if an operation's times are
/// reversed.
pub fn check_partitioned<M, P, F>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    partition: F,
    limits: &Limits,
) -> Result<Verdict, HistoryError>
where
    M: Model,
    P: Ord + Debug,
    F: Fn(&M::Input) -> P,
{
    validate(history)?;
    let mut parts: BTreeMap<P, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        parts.entry(partition(&op.input)).or_default().push(index);
    }
    let mut budget = Budget::new(limits);
    for (part, indices) in parts {
        let name = Some(format!("{part:?}"));
        match search(model, history, &indices, name, &mut budget) {
            Verdict::Linearizable => {}
            // Not linearizable: one partition is enough. Unknown: the
            // budget is spent, so the rest could not be checked either.
            other => return Ok(other),
        }
    }
    Ok(Verdict::Linearizable)
}

/// Checks a history of a key-value map of compare-and-swap registers, one
/// key at a time (see [`check_partitioned`] and [`CasRegister`]).
///
/// # Errors
///
/// [`HistoryError::ReturnBeforeCall`] if an operation's times are
/// reversed.
pub fn check_kv<K, V>(
    history: &[Operation<KvInput<K, V>, KvOutput<V>>],
    limits: &Limits,
) -> Result<Verdict, HistoryError>
where
    K: Clone + Ord + Debug,
    V: Clone + Eq + Hash + Debug,
{
    check_partitioned(
        &CasRegister::<K, V>::new(),
        history,
        |input| input.key().clone(),
        limits,
    )
}

fn validate<I, O>(history: &[Operation<I, O>]) -> Result<(), HistoryError> {
    for (index, op) in history.iter().enumerate() {
        if let Some(ret) = op.ret()
            && ret < op.call
        {
            return Err(HistoryError::ReturnBeforeCall {
                index,
                call: op.call,
                ret,
            });
        }
    }
    Ok(())
}

/// The steps and time left, shared by the partitions of one check.
struct Budget {
    steps: u64,
    max_steps: u64,
    started: Instant,
    timeout: Option<Duration>,
}

impl Budget {
    fn new(limits: &Limits) -> Self {
        Budget {
            steps: 0,
            max_steps: limits.max_steps,
            started: Instant::now(),
            timeout: limits.timeout,
        }
    }

    /// Takes one step; says why not if the budget is spent. The clock is
    /// read only every 1024 steps: it costs more than a step.
    fn take(&mut self) -> Option<UnknownReason> {
        self.steps += 1;
        if self.steps > self.max_steps || self.steps.is_multiple_of(1024) {
            return self.exhausted();
        }
        None
    }

    fn exhausted(&self) -> Option<UnknownReason> {
        if self.steps > self.max_steps {
            return Some(UnknownReason::Steps(self.max_steps));
        }
        match self.timeout {
            Some(timeout) if self.started.elapsed() >= timeout => {
                Some(UnknownReason::Timeout(timeout))
            }
            _ => None,
        }
    }
}

/// A fixed-size set of operation numbers, as part of the cache key.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset(vec![0; len.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// The call and return events of one partition as a doubly linked list in
/// time order, from which placed operations are lifted out and put back
/// (dancing links). Node 0 is the head; operation `i`'s call is node
/// `1 + 2i` and its return node `2 + 2i`.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
}

fn call_node(op: usize) -> usize {
    1 + 2 * op
}
fn return_node(op: usize) -> usize {
    2 + 2 * op
}
fn op_of(node: usize) -> usize {
    (node - 1) / 2
}
fn is_call(node: usize) -> bool {
    node % 2 == 1
}

impl Events {
    /// `ops[i]` is `(call, return)`, `None` for a return at infinity.
    fn new(ops: &[(u64, Option<u64>)]) -> Self {
        // Sort key: (at infinity, time, return after call, op). Calls
        // before returns at equal times, so that touching intervals count
        // as concurrent: the clocks cannot tell them apart, and a false
        // alarm is worse than a missed one.
        let mut nodes: Vec<((bool, u64, bool, usize), usize)> = Vec::with_capacity(2 * ops.len());
        for (op, &(call, ret)) in ops.iter().enumerate() {
            nodes.push(((false, call, false, op), call_node(op)));
            let key = match ret {
                Some(at) => (false, at, true, op),
                None => (true, 0, true, op),
            };
            nodes.push((key, return_node(op)));
        }
        nodes.sort_unstable();
        let mut next = vec![NIL; 2 * ops.len() + 1];
        let mut prev = vec![NIL; 2 * ops.len() + 1];
        let mut last = HEAD;
        for &(_, node) in &nodes {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        Events { next, prev }
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(call_node(op));
        self.unlink(return_node(op));
    }

    /// Undoes [`Events::lift`]; only valid in reverse order of lifting.
    fn unlift(&mut self, op: usize) {
        self.relink(return_node(op));
        self.relink(call_node(op));
    }
}

/// The search over the operations `indices` of `history` (local operation
/// `i` is `history[indices[i]]`).
fn search<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    indices: &[usize],
    partition: Option<String>,
    budget: &mut Budget,
) -> Verdict {
    let ops: Vec<&Operation<M::Input, M::Output>> = indices.iter().map(|&i| &history[i]).collect();
    let times: Vec<(u64, Option<u64>)> = ops.iter().map(|op| (op.call, op.ret())).collect();
    let mut events = Events::new(&times);

    let mut state = model.init();
    let mut placed = Bitset::new(ops.len());
    let mut seen: HashSet<(Bitset, M::State)> = HashSet::new();
    // Each placed operation, with the state from before it.
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    // The deepest the stack got, and where the search stood there.
    let mut best: Vec<usize> = Vec::new();
    let mut best_state = state.clone();
    let mut stuck: Option<(usize, Vec<usize>)> = None;

    let mut node = events.next[HEAD];
    while events.next[HEAD] != NIL {
        if let Some(reason) = budget.take() {
            return Verdict::Unknown { partition, reason };
        }
        if is_call(node) {
            let op = op_of(node);
            if let Some(after) = model.step(&state, &ops[op].input, ops[op].output()) {
                let mut placed_after = placed.clone();
                placed_after.set(op);
                if seen.insert((placed_after.clone(), after.clone())) {
                    stack.push((op, std::mem::replace(&mut state, after)));
                    placed = placed_after;
                    events.lift(op);
                    if stack.len() > best.len() {
                        best = stack.iter().map(|&(op, _)| op).collect();
                        best_state = state.clone();
                        stuck = None;
                    }
                    node = events.next[HEAD];
                    continue;
                }
            }
            node = events.next[node];
        } else {
            // A return before its operation was placed: the search cannot
            // go past it, so the last choice was wrong.
            if stuck.is_none() && stack.len() == best.len() {
                // First return hit right after the deepest point: the
                // operations called before it are exactly those that
                // could not be placed next.
                let mut unplaced = Vec::new();
                let mut at = events.next[HEAD];
                while at != node {
                    if is_call(at) {
                        unplaced.push(op_of(at));
                    }
                    at = events.next[at];
                }
                stuck = Some((op_of(node), unplaced));
            }
            let Some((op, before)) = stack.pop() else {
                let (stuck, unplaced) = stuck.unwrap_or((op_of(node), Vec::new()));
                return Verdict::NotLinearizable(Box::new(counterexample(
                    &ops,
                    indices,
                    partition,
                    &best,
                    &best_state,
                    stuck,
                    &unplaced,
                )));
            };
            state = before;
            placed.clear(op);
            events.unlift(op);
            node = events.next[call_node(op)];
        }
    }
    Verdict::Linearizable
}

/// Writes the counterexample out, in the history's numbering.
fn counterexample<I: Debug, O: Debug, S: Debug>(
    ops: &[&Operation<I, O>],
    indices: &[usize],
    partition: Option<String>,
    best: &[usize],
    state: &S,
    stuck: usize,
    unplaced: &[usize],
) -> Counterexample {
    let describe = |op: usize| {
        let o = ops[op];
        let ret = o.ret().map_or("never".to_string(), |t| t.to_string());
        let output = o
            .output()
            .map_or("unknown".to_string(), |out| format!("{out:?}"));
        format!(
            "#{} client {}: {:?} -> {} (called {}, returned {})",
            indices[op], o.client, o.input, output, o.call, ret
        )
    };
    let mut text = String::new();
    match &partition {
        Some(part) => {
            let _ = writeln!(text, "partition {part} is not linearizable");
        }
        None => text.push_str("history is not linearizable\n"),
    }
    let _ = writeln!(
        text,
        "longest linearizable prefix: {} of {} operations",
        best.len(),
        ops.len()
    );
    for &op in best {
        let _ = writeln!(text, "  {}", describe(op));
    }
    let _ = writeln!(text, "model state after it: {state:?}");
    let _ = writeln!(
        text,
        "{} must have taken effect by its return, but none of the operations open then can be placed next:",
        describe(stuck)
    );
    for &op in unplaced {
        let _ = writeln!(text, "  {}", describe(op));
    }
    Counterexample {
        partition,
        linearized: best.iter().map(|&op| indices[op]).collect(),
        state: format!("{state:?}"),
        stuck: indices[stuck],
        unplaced: unplaced.iter().map(|&op| indices[op]).collect(),
        explanation: text,
    }
}
