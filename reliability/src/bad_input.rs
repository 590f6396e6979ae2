//! Bad input gets a typed error: hostile journal records, checkpoint files
//! and damaged sled journals go through the public decode and open APIs,
//! and every one must end in a typed error, a correct decode, or (for a
//! damaged journal) a clean read of a prefix, a torn tail repaired
//! included. Never a panic, never an event or state other than the one
//! written, and never a heap that grows past the codec's decode limit,
//! whatever length an input claims.
//!
//! The inputs, by kind:
//!
//! * `record: random bytes`: arbitrary bytes as a journal record
//!   ([`codec::decode_record`], [`codec::peek`], [`codec::decode_state_hash`]);
//! * `record: random payload, valid frame`: a random kind byte and body
//!   under a correct header and crc, so the payload reaches bincode; `peek`
//!   must agree with the full decode;
//! * `record: damaged`: a real batch with bit flips or a cut; if it still
//!   decodes, it must be the batch that was written;
//! * `checkpoint: random bytes` and `checkpoint: damaged`: a file in a
//!   checkpoint directory, loaded with [`Checkpoints::load`];
//! * `journal: damaged through sled`: a record of a real sled journal
//!   flipped, cut, replaced, removed, or put under a bad key, through
//!   sled's own API; then reopen, repair the tail, read everything;
//! * `journal: damaged sled files`: bytes of sled's files on disk
//!   overwritten, zeroed or cut short; then reopen, repair, read.
//!
//! The heap: while records and checkpoint files are decoded, the
//! allocator ([`crate::ALLOCATOR`]) refuses to grow the heap more than
//! the codec's decode limit plus 16 MiB past where it started, so an
//! input that tried to allocate what a hostile length claims would abort
//! the run. The figures add the allocator's high-water mark, which is an
//! upper bound of any one input's cost (earlier work in the same process can only raise it).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use solostate::persistence::checkpoint::{CheckpointError, Checkpoints};
use solostate::persistence::codec::{self, CodecError, Record, RecordKind};
use solostate::persistence::journal::{Backend, Journal, JournalError, Step};
use solostate::{State, StateEvent};

use crate::report::{Mode, Section};
use crate::workload::Rng;

type Ev = StateEvent<u32, String>;

const SCHEMA: &str = "reliability/bad_input";
const CACHE: u64 = 1 << 20;
/// Batches in the template journal; batch `i` (from 0) holds `i % 4 + 1`
/// events.
const BATCHES: u64 = 40;
/// How far the heap may grow while records and checkpoint files are
/// decoded: the codec's decode limit ([`codec::MAX_PAYLOAD`]) plus 16 MiB.
/// Not less, because bincode 2.0.1 allocates a claimed string or byte
/// length (`vec![0u8; len]`) before it reads the bytes, so a record of a
/// few hundred bytes that claims a long string costs an allocation of up
/// to that limit (zeroed pages the read never touches, since it fails at
/// once; but an allocation all the same). The figures show how close the
/// run came.
const DECODE_HEAP_LIMIT: usize = codec::MAX_PAYLOAD + (16 << 20);

/// Inputs per kind.
struct Sizes {
    records: u64,
    checkpoints: u64,
    journals: u64,
}

fn sizes(mode: Mode) -> Sizes {
    match mode {
        Mode::Quick => Sizes {
            records: 2_000,
            checkpoints: 200,
            journals: 20,
        },
        Mode::Full => Sizes {
            records: 1_500_000,
            checkpoints: 100_000,
            journals: 4_000,
        },
    }
}

/// Up to `max` random bytes.
fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.below(max + 1);
    (0..len).map(|_| rng.bits() as u8).collect()
}

/// Flips 1 to 4 random bits, or cuts the bytes short, or appends junk.
fn damage(rng: &mut Rng, bytes: &mut Vec<u8>) {
    match rng.below(3) {
        0 => {
            for _ in 0..=rng.below(4) {
                let bit = rng.below(bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
        }
        1 => {
            let len = rng.below(bytes.len());
            bytes.truncate(len);
        }
        _ => {
            let junk = random_bytes(rng, 16);
            bytes.extend_from_slice(&junk);
            bytes.push(0);
        }
    }
}

/// What one input came to.
enum Outcome {
    /// Decoded, and (where the original is known) equal to it.
    Decoded,
    /// A damaged journal read back cleanly up to some seq: the whole
    /// journal, or a prefix (sled lost records, or the tail was repaired).
    Read { whole: bool },
    /// A typed error, by variant.
    Error(String),
    /// Something other than what was written was accepted: the promise is
    /// broken.
    Wrong(String),
}

/// The counts of a run.
#[derive(Default)]
struct Tally {
    tried: BTreeMap<&'static str, u64>,
    outcomes: BTreeMap<(&'static str, String), u64>,
    panics: u64,
    wrong: Vec<String>,
}

impl Tally {
    fn run(&mut self, kind: &'static str, input: impl FnOnce() -> Outcome) {
        *self.tried.entry(kind).or_default() += 1;
        let outcome = match catch_unwind(AssertUnwindSafe(input)) {
            Ok(Outcome::Decoded) => "decoded".to_owned(),
            Ok(Outcome::Read { whole: true }) => "read: whole journal".to_owned(),
            Ok(Outcome::Read { whole: false }) => "read: a prefix".to_owned(),
            Ok(Outcome::Error(variant)) => variant,
            Ok(Outcome::Wrong(what)) => {
                self.wrong.push(format!("{kind}: {what}"));
                "WRONG DATA ACCEPTED".to_owned()
            }
            Err(_) => {
                self.panics += 1;
                "PANIC".to_owned()
            }
        };
        *self.outcomes.entry((kind, outcome)).or_default() += 1;
    }
}

/// An error's variant name from its `Debug` form (`Corrupt { .. }` gives
/// `Corrupt`), prefixed with its type.
fn variant(type_name: &str, error: &impl Debug) -> String {
    let debug = format!("{error:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    format!("{type_name}::{name}")
}

fn codec_error(error: &CodecError) -> String {
    variant("CodecError", error)
}

/// A journal error's variant, with the codec's inside `Corrupt`.
fn journal_error(error: &JournalError) -> String {
    match error {
        JournalError::Corrupt { source, .. } => {
            format!("JournalError::Corrupt({})", codec_error(source))
        }
        other => variant("JournalError", other),
    }
}

fn checkpoint_error(error: &CheckpointError) -> String {
    match error {
        CheckpointError::Decode { source, .. } => {
            format!("CheckpointError::Decode({})", codec_error(source))
        }
        other => variant("CheckpointError", other),
    }
}

/// The event written at `seq`: a function of the seq, so reads are
/// checked without a model.
fn event(seq: u64) -> Ev {
    StateEvent::put(
        seq as u32 % 13,
        format!("{seq}:{}", "v".repeat((seq % 11) as usize)),
    )
}

fn random_batch(rng: &mut Rng) -> Vec<Ev> {
    let start = rng.bits() % 1000;
    (start..start + rng.below(8) as u64).map(event).collect()
}

fn records(rng: &mut Rng, tally: &mut Tally, count: u64) -> Result<(), String> {
    for _ in 0..count {
        let mut bytes = random_bytes(rng, 256);
        if bytes.len() >= codec::HEADER_LEN && rng.below(2) == 0 {
            // A plausible header, so that the crc check is reached.
            let len = (bytes.len() - codec::HEADER_LEN) as u32;
            bytes[0] = codec::FORMAT_VERSION;
            bytes[1..5].copy_from_slice(&len.to_le_bytes());
        }
        tally.run("record: random bytes", || {
            let _ = codec::peek(&bytes);
            let _ = codec::decode_state_hash(&bytes);
            match codec::decode_record::<Ev>(&bytes) {
                Ok(_) => Outcome::Decoded,
                Err(error) => Outcome::Error(codec_error(&error)),
            }
        });

        // A random kind and body behind a correct header and crc.
        let mut payload = vec![rng.below(4) as u8];
        payload.extend(random_bytes(rng, 200));
        let mut framed = vec![codec::FORMAT_VERSION];
        framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        framed.extend_from_slice(&payload);
        tally.run("record: random payload, valid frame", || {
            let peeked = codec::peek(&framed);
            let _ = codec::decode_state_hash(&framed);
            match codec::decode_record::<Ev>(&framed) {
                Ok(Record::Events(events))
                    if peeked
                        != Ok(RecordKind::Events {
                            count: events.len() as u64,
                        }) =>
                {
                    Outcome::Wrong(format!(
                        "peek {peeked:?} disagrees with {} events",
                        events.len()
                    ))
                }
                Ok(Record::Rollback { target })
                    if peeked != Ok(RecordKind::Rollback { target }) =>
                {
                    Outcome::Wrong(format!("peek {peeked:?} disagrees with marker to {target}"))
                }
                Ok(_) => Outcome::Decoded,
                Err(error) => Outcome::Error(codec_error(&error)),
            }
        });

        let batch = random_batch(rng);
        let mut damaged = codec::encode_batch(&batch).expect("encodes");
        damage(rng, &mut damaged);
        tally.run("record: damaged", || {
            match codec::decode_batch::<Ev>(&damaged) {
                Ok(events) if events == batch => Outcome::Decoded,
                Ok(events) => Outcome::Wrong(format!("{events:?} instead of {batch:?}")),
                Err(error) => Outcome::Error(codec_error(&error)),
            }
        });
    }
    Ok(())
}

fn checkpoints(rng: &mut Rng, tally: &mut Tally, count: u64, dir: &Path) -> Result<(), String> {
    let store = Checkpoints::open(dir, SCHEMA).map_err(|e| e.to_string())?;
    let state: State<Ev> = (0..200u64)
        .map(|seq| (seq as u32, format!("value {seq}")))
        .collect();
    store.write::<Ev>(1, &state).map_err(|e| e.to_string())?;
    let original = std::fs::read(store.path_of(1)).map_err(|e| e.to_string())?;
    let load = |seq: u64| store.load::<Ev>(seq).map(|(state, _)| state);
    for _ in 0..count {
        // Random bytes under seq 2's name.
        std::fs::write(store.path_of(2), random_bytes(rng, 1024)).map_err(|e| e.to_string())?;
        tally.run("checkpoint: random bytes", || match load(2) {
            Ok(found) => Outcome::Wrong(format!("random bytes loaded as {} entries", found.len())),
            Err(error) => Outcome::Error(checkpoint_error(&error)),
        });
        // The damaged copy in place of the original, under its own name,
        // so only the damage can make it fail.
        let mut damaged = original.clone();
        damage(rng, &mut damaged);
        std::fs::write(store.path_of(1), &damaged).map_err(|e| e.to_string())?;
        tally.run("checkpoint: damaged", || match load(1) {
            Ok(found) if found == state => Outcome::Decoded,
            Ok(found) => Outcome::Wrong(format!("a different state of {} entries", found.len())),
            Err(error) => Outcome::Error(checkpoint_error(&error)),
        });
    }
    Ok(())
}

/// Writes the template journal; returns the first seq of every batch and
/// the last seq.
fn template(dir: &Path, backend: Backend) -> Result<(Vec<u64>, u64), String> {
    let journal = Journal::open_with(dir, SCHEMA, CACHE, backend).map_err(|e| e.to_string())?;
    let mut firsts = Vec::new();
    let mut seq = 1;
    for batch in 0..BATCHES {
        let events: Vec<Ev> = (seq..seq + batch % 4 + 1).map(event).collect();
        journal.append(seq, &events).map_err(|e| e.to_string())?;
        firsts.push(seq);
        seq += events.len() as u64;
    }
    journal.flush().map_err(|e| e.to_string())?;
    Ok((firsts, seq - 1))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Every file under `dir`.
fn files(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            found.extend(files(&entry.path())?);
        } else {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Opens a damaged journal, repairs its tail and reads it all, checking
/// every event against what was written.
fn read_damaged(dir: &Path, last: u64) -> Outcome {
    let journal = match Journal::open(dir, SCHEMA, CACHE) {
        Ok(journal) => journal,
        Err(error) => return Outcome::Error(journal_error(&error)),
    };
    if let Err(error) = journal.repair_tail() {
        return Outcome::Error(journal_error(&error));
    }
    let mut next = 1;
    for entry in journal.read_from::<Ev>(1) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => return Outcome::Error(journal_error(&error)),
        };
        match &entry.step {
            Step::Event(found) if entry.seq == next && *found == event(next) => next += 1,
            other => return Outcome::Wrong(format!("seq {}: {other:?}", entry.seq)),
        }
    }
    Outcome::Read {
        whole: next - 1 == last,
    }
}

fn journals(rng: &mut Rng, tally: &mut Tally, count: u64, dir: &Path) -> Result<(), String> {
    let template_dir = dir.join("template");
    let (firsts, last) = template(&template_dir, Backend::Sled)?;
    let segments_dir = dir.join("template-segments");
    let (_, segments_last) = template(&segments_dir, Backend::Segments)?;
    let io = |e: std::io::Error| e.to_string();
    for case in 0..count {
        // Through sled's API.
        let case_dir = dir.join(format!("api-{case}"));
        copy_dir(&template_dir, &case_dir).map_err(io)?;
        {
            let db = sled::Config::new()
                .path(&case_dir)
                .cache_capacity(CACHE)
                .open()
                .map_err(|e| e.to_string())?;
            let tree = db.open_tree("journal").map_err(|e| e.to_string())?;
            let key = firsts[rng.below(firsts.len())].to_be_bytes();
            let record = tree
                .get(key)
                .map_err(|e| e.to_string())?
                .ok_or("template record missing")?
                .to_vec();
            let mut damaged = record.clone();
            let written = match rng.below(4) {
                0 => {
                    damage(rng, &mut damaged);
                    tree.insert(key, damaged)
                }
                1 => tree.insert(key, random_bytes(rng, 64)),
                2 => tree.remove(key),
                _ => tree.insert(random_bytes(rng, 12), record),
            };
            written.map_err(|e| e.to_string())?;
            db.flush().map_err(|e| e.to_string())?;
        }
        tally.run("journal: damaged through sled", || {
            read_damaged(&case_dir, last)
        });
        std::fs::remove_dir_all(&case_dir).map_err(io)?;

        // On disk, both backends.
        for (template, last, kind) in [
            (&template_dir, last, "journal: damaged sled files"),
            (
                &segments_dir,
                segments_last,
                "journal: damaged segment files",
            ),
        ] {
            let case_dir = dir.join(format!("disk-{case}"));
            copy_dir(template, &case_dir).map_err(io)?;
            damage_a_file(rng, &case_dir).map_err(io)?;
            tally.run(kind, || read_damaged(&case_dir, last));
            std::fs::remove_dir_all(&case_dir).map_err(io)?;
        }
    }
    Ok(())
}

/// Damages one file of the journal in `dir`, chosen at random: a byte
/// range damaged, 4 KiB or less zeroed, or one byte replaced.
fn damage_a_file(rng: &mut Rng, dir: &Path) -> std::io::Result<()> {
    let targets = files(dir)?;
    let target = &targets[rng.below(targets.len())];
    let mut bytes = std::fs::read(target)?;
    if !bytes.is_empty() {
        match rng.below(3) {
            0 => damage(rng, &mut bytes),
            1 => {
                let at = rng.below(bytes.len());
                let len = rng.below(4096).min(bytes.len() - at);
                bytes[at..at + len].fill(0);
            }
            _ => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.bits() as u8;
            }
        }
    }
    std::fs::write(target, &bytes)
}

/// Runs the sweep. Fails (the promise is broken) on any panic, any wrong
/// data accepted, or a heap that grew past its limit (the codec's decode limit plus 16 MiB).
///
/// # Errors
///
/// What was broken, or a setup failure (temporary files).
pub fn run(mode: Mode) -> Result<Section, String> {
    let sizes = sizes(mode);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut rng = Rng::new(0x0BAD_1A9E);
    let mut tally = Tally::default();
    let heap_at_start = crate::ALLOCATOR.allocated();
    crate::ALLOCATOR
        .set_limit(heap_at_start + DECODE_HEAP_LIMIT)
        .map_err(|()| "cannot limit the heap".to_owned())?;
    let decoded = records(&mut rng, &mut tally, sizes.records).and_then(|()| {
        checkpoints(
            &mut rng,
            &mut tally,
            sizes.checkpoints,
            &dir.path().join("checkpoints"),
        )
    });
    crate::ALLOCATOR
        .set_limit(usize::MAX)
        .map_err(|()| "cannot lift the heap limit".to_owned())?;
    decoded?;
    let decode_peak = crate::ALLOCATOR
        .max_allocated()
        .saturating_sub(heap_at_start);
    journals(&mut rng, &mut tally, sizes.journals, dir.path())?;
    let run_peak = crate::ALLOCATOR
        .max_allocated()
        .saturating_sub(heap_at_start);

    let mut section = Section::new(
        "Bad input gets a typed error",
        "Hostile journal records, checkpoint files and damaged sled journals end in a typed \
         error naming what is wrong, a correct decode, or a clean read of what was written (a \
         torn tail repaired): never a panic, never other data accepted in its place, and never \
         a heap that grows past the codec's decode limit, whatever length an input claims.",
    )
    .checked_by("reliability/src/bad_input.rs")
    .checked_by("reliability/tests/bad_input.rs")
    .checked_by("persistence/src/journal/tests_bad_input.rs")
    .checked_by("persistence/src/codec/tests.rs")
    .checked_by("persistence/src/checkpoint/tests.rs");
    for (kind, tried) in &tally.tried {
        section.figure(format!("inputs tried: {kind}"), tried);
    }
    for ((kind, outcome), count) in &tally.outcomes {
        section.figure(format!("{kind} → {outcome}"), count);
    }
    section.figure("panics", tally.panics);
    section.figure("wrong data accepted", tally.wrong.len());
    let mib = |bytes: usize| format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20));
    section.figure(
        "heap limit while decoding records and checkpoints",
        format!("start + {}", mib(DECODE_HEAP_LIMIT)),
    );
    section.figure(
        "heap high-water mark above the start, decoding",
        mib(decode_peak),
    );
    section.figure(
        "heap high-water mark above the start, whole run (sled's buffers)",
        mib(run_peak),
    );
    section.note(
        "The heap: a hostile record or checkpoint entry that claims a long string or byte \
         buffer makes bincode 2.0.1 allocate the claimed length before it finds the bytes \
         missing, up to the codec's 256 MiB decode limit; the high-water mark above shows what \
         this run's inputs reached. The limit bounds it; a tighter, per-record limit would \
         need bincode to check a claimed length against the bytes left.",
    );
    section.note(
        "`journal: damaged sled files` → `read: a prefix` means sled, meeting damage in its \
         log, recovered the records before it and dropped the rest without an error: sled \
         checks its own log but does not report what it discarded. Nothing wrong is read, \
         but events after the damage are gone, so keep the checkpoints and back up the \
         directory.",
    );
    if tally.panics > 0 || !tally.wrong.is_empty() {
        return Err(format!(
            "{} panics, {} wrong decodes {:?}",
            tally.panics,
            tally.wrong.len(),
            tally.wrong.iter().take(3).collect::<Vec<_>>()
        ));
    }
    Ok(section)
}
