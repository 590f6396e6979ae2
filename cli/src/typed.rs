//! What the tool can do only with the event type: decode events, load
//! checkpoints in full, replay. Behind one object-safe trait, [`Typed`],
//! so that every command is written once, and the untyped commands simply
//! get `None`.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;
use solostate::Event;
use solostate::persistence::backup::{self, Written};
use solostate::persistence::checkpoint::{CheckpointError, CheckpointSummary, Checkpoints};
use solostate::persistence::hash::{StateHasher, state_hash};
use solostate::persistence::journal::{Entry, JournalError, Step};
use solostate::persistence::recovery::{ReplayError, replay_range_hashed};
use solostate::persistence::replay;
use solostate::persistence::upcast::Upcasters;

use crate::error::{CliError, Damage, Failure, journal_failure, replay_failure};
use crate::open::Opened;
use crate::progress;

/// What a full replay found; damage is returned beside it.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// The seq replay started after (a checkpoint's, or 0).
    pub(crate) base: u64,
    /// The last seq reached.
    pub(crate) last: u64,
    /// Recorded state hashes in the replayed range, each checked.
    pub(crate) hashes_checked: u64,
    /// Checkpoints whose state hash the replay reproduced.
    pub(crate) checkpoints_matched: u64,
    /// Notes for the operator: what could not be checked, and why.
    pub(crate) notes: Vec<String>,
}

/// The commands' typed half. Object-safe, so the shipped binary can pick
/// an implementation at run time from `--types`.
pub(crate) trait Typed {
    /// Loads the checkpoint at `seq` in full ([`Checkpoints::load`]):
    /// every entry decoded, the count and state hash checked.
    fn load_checkpoint(&self, store: &Checkpoints, seq: u64) -> Result<(), CheckpointError>;

    /// Replays the whole journal, from its start or the oldest checkpoint
    /// it needs, checking every recorded state hash and the state hash of
    /// every checkpoint in `checkpoints` (those that verified) it passes.
    fn replay_all(
        &self,
        opened: &Opened,
        checkpoints: &[CheckpointSummary],
        damage: &mut Vec<Damage>,
    ) -> Result<Replayed, CliError>;

    /// Writes the steps with seqs in `from..=to` (or the archive's) as
    /// JSON lines; returns how many.
    fn dump(
        &self,
        opened: &Opened,
        from: u64,
        to: u64,
        archive: bool,
        out: &mut dyn Write,
    ) -> Result<u64, Failure>;

    /// Writes the state at `seq` as JSON lines: a first line with the seq,
    /// the entry count and the state hash, then one line per entry.
    fn state(&self, opened: &Opened, seq: u64, out: &mut dyn Write) -> Result<(), Failure>;

    /// The state at `seq`, rebuilt: its entry count and state hash.
    fn state_hash_at(&self, opened: &Opened, seq: u64) -> Result<(usize, u64), Failure>;

    /// Opens an engine on `root` and rolls it back to `target` through
    /// [`Engine::rollback_to`](solostate::Engine::rollback_to), then
    /// shuts it down. Returns the rollback's seq and, when opening the
    /// engine had anything to decide, what it found.
    fn rollback(
        &self,
        root: &std::path::Path,
        schema: &str,
        target: u64,
    ) -> Result<(u64, Option<String>), CliError>;

    /// The older schemas this type reads through upcasters.
    fn older_schemas(&self) -> Vec<String>;

    /// Gives `opened`'s journal and checkpoints the upcasters.
    fn attach(&self, opened: &mut Opened);

    /// Rebuilds the state at `seq` and writes it to `dest` as a backup
    /// ([`solostate::persistence::backup::write`]), on the journal's own
    /// backend and under its schema. Returns what was written and the
    /// state's hash.
    fn backup(
        &self,
        opened: &Opened,
        seq: u64,
        dest: &std::path::Path,
    ) -> Result<(Written, u64), Failure>;
}

/// [`Typed`] for the event type `E`, with the upcasters that read its
/// older schemas.
pub(crate) struct For<E> {
    /// The schema `E` is journaled under, when the caller named it (with
    /// upcasters): what an engine opened by the tool uses.
    schema: Option<String>,
    upcasters: Arc<Upcasters<E>>,
}

impl<E: 'static> For<E> {
    pub(crate) fn new() -> Self {
        Self::upcasting(None, Upcasters::new())
    }

    pub(crate) fn upcasting(schema: Option<String>, upcasters: Upcasters<E>) -> Self {
        For {
            schema,
            upcasters: Arc::new(upcasters),
        }
    }
}

/// One dumped step, as a JSON line.
#[derive(Serialize)]
struct DumpLine<'a, E> {
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a E>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_to: Option<u64>,
}

/// The first line of `state`'s output.
#[derive(Serialize)]
struct StateHead {
    seq: u64,
    entries: usize,
    state_hash: String,
}

/// One entry of `state`'s output.
#[derive(Serialize)]
struct StateLine<'a, K, V> {
    key: &'a K,
    value: &'a V,
}

impl<E: Event> Typed for For<E> {
    fn load_checkpoint(&self, store: &Checkpoints, seq: u64) -> Result<(), CheckpointError> {
        store.load::<E>(seq).map(drop)
    }

    fn replay_all(
        &self,
        opened: &Opened,
        checkpoints: &[CheckpointSummary],
        damage: &mut Vec<Damage>,
    ) -> Result<Replayed, CliError> {
        let journal = &opened.journal;
        let journal_path = &opened.layout.journal;
        let first = journal.first_seq()?;
        let (_, last) = journal.scan_last()?;
        let mut report = Replayed::default();
        // Where replay starts: the empty state, or (when a prefix was
        // pruned) the oldest checkpoint the retained journal continues.
        let mut state = solostate::State::<E>::new();
        let mut hasher = StateHasher::new();
        if first > 1 {
            let base = checkpoints
                .iter()
                .filter(|summary| summary.seq + 1 >= first && summary.seq <= last)
                .find_map(|summary| {
                    let store = opened.checkpoints.as_ref()?;
                    store.load::<E>(summary.seq).ok()
                });
            let Some((loaded, info)) = base else {
                report.notes.push(format!(
                    "the journal begins at seq {first} (a prefix was pruned) and no checkpoint at seq {} or later loads: nothing was replayed",
                    first - 1
                ));
                return Ok(report);
            };
            if info.seq >= first {
                report.notes.push(format!(
                    "seqs {first}..={} lie before the checkpoint replay starts from: decoded, not replayed",
                    info.seq
                ));
                for entry in journal.read_from::<E>(first) {
                    match entry {
                        Ok(entry) if entry.seq >= info.seq => break,
                        Ok(_) => {}
                        Err(error) => return record(error, journal_path, damage, report),
                    }
                }
            }
            state = loaded;
            hasher = info.hasher;
            report.base = info.seq;
        }
        report.last = report.base;
        let bar = progress::bar(last - report.base, "replaying");
        let offset = report.base;
        let mut stops: Vec<&CheckpointSummary> = checkpoints
            .iter()
            .filter(|summary| summary.seq > report.base && summary.seq <= last)
            .collect();
        stops.sort_by_key(|summary| summary.seq);
        for stop in stops.into_iter().map(Some).chain([None]) {
            let through = stop.map_or(last, |summary| summary.seq);
            if through <= report.last && stop.is_some() {
                continue;
            }
            let replayed = replay_range_hashed::<E>(
                journal,
                &mut state,
                Some(hasher.clone()),
                report.last + 1,
                through,
                |seq| bar.set_position(seq - offset),
            );
            match replayed {
                Ok((reached, Some(followed))) => {
                    report.last = reached;
                    hasher = followed;
                }
                Ok((reached, None)) => report.last = reached,
                // A checkpoint inside a rolled-back gap (set aside by
                // recovery to a prefix, say) is no state of this timeline.
                Err(ReplayError::RolledBack { seq, marker, .. }) => {
                    report.notes.push(format!(
                        "checkpoint at seq {seq} lies in the gap rolled back by the marker at seq {marker}: not compared"
                    ));
                    continue;
                }
                Err(error) => {
                    bar.finish_and_clear();
                    return match replay_failure(error, journal_path) {
                        Failure::Damage(found) => {
                            damage.push(found);
                            report.hashes_checked = hashes_in(opened, &report)?;
                            Ok(report)
                        }
                        Failure::Error(error) => Err(error),
                    };
                }
            }
            if let Some(summary) = stop {
                let replayed = hasher.finish();
                if replayed == summary.state_hash {
                    report.checkpoints_matched += 1;
                } else {
                    damage.push(Damage {
                        path: summary.path.clone(),
                        seq: Some(summary.seq),
                        what: format!(
                            "the checkpoint holds a state hashing to {:016x}, but the journal's events replay to {replayed:016x} at seq {}",
                            summary.state_hash, summary.seq
                        ),
                    });
                }
            }
        }
        bar.finish_and_clear();
        report.hashes_checked = hashes_in(opened, &report)?;
        Ok(report)
    }

    fn dump(
        &self,
        opened: &Opened,
        from: u64,
        to: u64,
        archive: bool,
        out: &mut dyn Write,
    ) -> Result<u64, Failure> {
        let journal_path = &opened.layout.journal;
        let steps: Box<dyn Iterator<Item = Result<Entry<E>, JournalError>>> = if archive {
            Box::new(opened.journal.read_archive::<E>())
        } else {
            Box::new(opened.journal.read_from::<E>(from))
        };
        let mut written = 0;
        for entry in steps {
            let entry = entry.map_err(|error| journal_failure(error, journal_path))?;
            if entry.seq < from {
                continue;
            }
            if entry.seq > to {
                // The archive interleaves rollbacks by seq, so it is read
                // to its end; the timeline can stop here.
                if archive {
                    continue;
                }
                break;
            }
            let line = match &entry.step {
                Step::Event(event) => DumpLine {
                    seq: entry.seq,
                    event: Some(event),
                    rollback_to: None,
                },
                Step::Rollback { target } => DumpLine {
                    seq: entry.seq,
                    event: None,
                    rollback_to: Some(*target),
                },
            };
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
            out.write_all(b"\n").map_err(CliError::from)?;
            written += 1;
        }
        Ok(written)
    }

    fn state_hash_at(&self, opened: &Opened, seq: u64) -> Result<(usize, u64), Failure> {
        self.rebuild(opened, seq)
            .map(|(state, hash)| (state.len(), hash))
    }

    fn older_schemas(&self) -> Vec<String> {
        self.upcasters.schemas().map(str::to_owned).collect()
    }

    fn attach(&self, opened: &mut Opened) {
        opened.journal.set_upcasters(Arc::clone(&self.upcasters));
        if let Some(checkpoints) = &mut opened.checkpoints {
            checkpoints.accept_older(self.upcasters.schemas());
        }
    }

    fn rollback(
        &self,
        root: &std::path::Path,
        schema: &str,
        target: u64,
    ) -> Result<(u64, Option<String>), CliError> {
        // Under the type's own schema when it was named: a directory
        // still in an older one is then upgraded by the rollback's marker,
        // as an engine's first write would.
        let schema = self.schema.as_deref().unwrap_or(schema);
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        runtime.block_on(async {
            // No checkpoint of its own (not even at shutdown) and none
            // pruned: the rollback is the only change made.
            let engine = solostate::Engine::<E>::builder()
                .path(root)
                .schema(schema)
                .upcasters((*self.upcasters).clone())
                .checkpoints(solostate::CheckpointPolicy::never().keep(usize::MAX))
                .open()
                .await?;
            let recovery = engine.recovery();
            let found = (!recovery.is_clean()).then(|| format!("{recovery:?}"));
            let rolled = engine.rollback_to(target).await;
            let stopped = engine.shutdown().await;
            let ack = rolled?;
            stopped?;
            Ok((ack.seq, found))
        })
    }

    fn backup(
        &self,
        opened: &Opened,
        seq: u64,
        dest: &std::path::Path,
    ) -> Result<(Written, u64), Failure> {
        let (state, hash) = self.rebuild(opened, seq)?;
        let written = backup::write::<E>(
            dest,
            &opened.schema,
            opened.journal.backend(),
            seq,
            state.iter(),
        )
        .map_err(CliError::from)?;
        Ok((written, hash))
    }

    fn state(&self, opened: &Opened, seq: u64, out: &mut dyn Write) -> Result<(), Failure> {
        let (state, hash) = self.rebuild(opened, seq)?;
        let head = StateHead {
            seq,
            entries: state.len(),
            state_hash: format!("{hash:016x}"),
        };
        // Sorted by their JSON text, so that the same state prints the
        // same lines whatever the map's iteration order.
        let mut lines = state
            .iter()
            .map(|(key, value)| serde_json::to_string(&StateLine { key, value }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::from)?;
        lines.sort_unstable();
        serde_json::to_writer(&mut *out, &head).map_err(std::io::Error::from)?;
        out.write_all(b"\n").map_err(CliError::from)?;
        for line in lines {
            out.write_all(line.as_bytes()).map_err(CliError::from)?;
            out.write_all(b"\n").map_err(CliError::from)?;
        }
        Ok(())
    }
}

/// The recorded state hashes replay passed (after the base, through the
/// last seq reached): each was checked.
fn hashes_in(opened: &Opened, report: &Replayed) -> Result<u64, CliError> {
    let hashes = opened.journal.state_hashes(report.base + 1..=report.last)?;
    Ok(hashes.len() as u64)
}

impl<E: Event> For<E> {
    /// The state at `seq` and its hash.
    fn rebuild(&self, opened: &Opened, seq: u64) -> Result<(solostate::State<E>, u64), Failure> {
        let journal_path = &opened.layout.journal;
        let state = replay::state_at::<E>(&opened.journal, opened.checkpoints.as_ref(), seq)
            .map_err(|error| replay_failure(error, journal_path))?;
        let hash = state_hash::<E>(&state)
            .map_err(|source| CliError::Replay(ReplayError::StateHash { seq, source }))?;
        Ok((state, hash))
    }
}

/// Records a journal error met while replaying: damage into `damage`
/// (and the report so far), anything else as the error.
fn record(
    error: JournalError,
    journal: &std::path::Path,
    damage: &mut Vec<Damage>,
    report: Replayed,
) -> Result<Replayed, CliError> {
    match journal_failure(error, journal) {
        Failure::Damage(found) => {
            damage.push(found);
            Ok(report)
        }
        Failure::Error(error) => Err(error),
    }
}
