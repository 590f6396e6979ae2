//! `solostate verify` with the event type: the replay against what the
//! engine recorded. A recorded state hash or a checkpoint that the
//! journal's events do not reproduce is damage, named by seq and path; a
//! pruned journal is replayed from the checkpoint it continues; the
//! examples' Bank type is served by the shipped binary.

mod support;

use solostate::persistence::checkpoint::Checkpoints;
use solostate::persistence::journal::Journal;
use solostate::{CheckpointPolicy, Durability, Engine, JournalBackend, Retention};
use solostate_examples::bank::Bank;
use support::*;

#[test]
fn a_recorded_state_hash_the_replay_does_not_reach_exits_2_naming_the_seq() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 30, 1000, None, JournalBackend::Segments);
    let journal = Journal::open(&written.dir.join("journal"), SCHEMA, 1 << 20).unwrap();
    journal
        .record_state_hash(17, 0x0123_4567_89ab_cdef)
        .unwrap();
    journal.flush().unwrap();
    drop(journal);

    let output = solostate(&["--types", "string-u64", "verify", arg(&written.dir)]);
    let (_, line) = damage_found(&output);
    assert!(line.contains(arg(&written.dir.join("journal"))), "{line}");
    assert!(line.contains("(seq 17)"), "{line}");
    assert!(line.contains("0x0123456789abcdef"), "{line}");
    // Without the type nothing is replayed, so nothing can disagree.
    let output = solostate(&["verify", arg(&written.dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn a_checkpoint_the_journal_does_not_replay_to_exits_2_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 30, 1000, None, JournalBackend::Segments);
    // A well-formed checkpoint at seq 12 that holds another state.
    let store = Checkpoints::open(&written.dir.join("checkpoints"), SCHEMA).unwrap();
    let mut other = solostate::State::<Ev>::new();
    other.insert("not-in-the-journal".to_owned(), 1);
    let info = store.write::<Ev>(12, &other).unwrap();

    let output = solostate(&["--types", "string-u64", "verify", arg(&written.dir)]);
    let (_, line) = damage_found(&output);
    assert!(line.contains(arg(&info.path)), "{line}");
    assert!(line.contains("(seq 12)"), "{line}");
    assert!(line.contains("the journal's events replay to"), "{line}");
}

#[test]
fn a_pruned_journal_is_replayed_from_the_checkpoint_it_continues() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("engine");
    runtime().block_on(async {
        let engine = Engine::<Ev>::builder()
            .path(&dir)
            .schema(SCHEMA)
            .durability(Durability::Never)
            .checkpoints(CheckpointPolicy::default().every_events(20).keep(2))
            .retention(Retention::SinceOldestCheckpoint)
            .open()
            .await
            .unwrap();
        for i in 1..=100 {
            engine
                .submit(solostate::StateEvent::put(key(i % 40), i))
                .await
                .unwrap();
        }
        engine.shutdown().await.unwrap();
    });
    let info = stdout(&solostate(&["info", arg(&dir)]));
    let first: u64 = info
        .lines()
        .find_map(|line| line.strip_prefix("seqs:         "))
        .and_then(|seqs| seqs.split("..=").next())
        .and_then(|first| first.parse().ok())
        .unwrap_or_else(|| panic!("no seq range in {info}"));
    assert!(first > 1, "the journal was pruned: {info}");

    let output = solostate(&["--types", "string-u64", "verify", arg(&dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("decoded and replayed"), "{text}");
    // From a checkpoint, not from seq 1, which is gone.
    assert!(!text.contains("replay:      seqs 1..="), "{text}");
    assert!(text.ends_with("result: ok\n"), "{text}");
}

#[test]
fn the_shipped_binary_verifies_and_dumps_a_bank_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("bank");
    runtime().block_on(async {
        let engine = Engine::<Bank>::builder()
            .path(&dir)
            .schema("bank-v1")
            .durability(Durability::Never)
            .open()
            .await
            .unwrap();
        engine.submit(Bank::deposit(1, 100)).await.unwrap();
        engine.submit(Bank::deposit(2, 5)).await.unwrap();
        engine.submit(Bank::transfer(1, 2, 30)).await.unwrap();
        engine.shutdown().await.unwrap();
    });
    let output = solostate(&["--types", "bank", "verify", arg(&dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("seqs 1..=3 decoded and replayed"), "{text}");

    let output = solostate(&["--types", "bank", "state", arg(&dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["seq"], 3);
    assert_eq!(
        lines[1..],
        [
            serde_json::json!({"key": 1, "value": 70}),
            serde_json::json!({"key": 2, "value": 35}),
        ]
    );
}
