//! `solostate info`, `dump` and `state`, run as the real binary on
//! directories a real engine wrote.

mod support;

use solostate::persistence::hash::state_hash;
use solostate::{JournalBackend, StateEvent};
use support::*;

#[test]
fn info_names_the_schema_seqs_backend_and_each_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 100, 50, None, JournalBackend::Segments);
    let before = contents(&written.dir);
    let output = solostate(&["info", arg(&written.dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("schema:       kv-v1"), "{text}");
    assert!(text.contains("seqs:         1..=100"), "{text}");
    assert!(text.contains("(segment log)"), "{text}");
    assert!(text.contains("bytes on disk"), "{text}");
    assert!(text.contains("state hashes: 100 recorded"), "{text}");
    assert!(text.contains("archive:      empty"), "{text}");
    assert!(text.contains("quarantine:   empty"), "{text}");
    for (seq, _) in checkpoints(&written.dir) {
        let line = text
            .lines()
            .find(|line| line.starts_with(&format!("  seq {seq}: ")))
            .unwrap_or_else(|| panic!("no line for checkpoint {seq} in {text}"));
        assert!(line.contains("framing and crc verified"), "{line}");
    }
    assert_eq!(contents(&written.dir), before, "info changed nothing");

    // With the event type, each checkpoint is verified in full.
    let output = solostate(&["--types", "string-u64", "info", arg(&written.dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("  seq 50: ") && text.contains(": verified\n"),
        "{text}"
    );
}

#[test]
fn info_and_dump_show_what_a_rollback_archived() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 30, 1000, Some(20), JournalBackend::Segments);
    assert_eq!(written.last, 31);
    let output = solostate(&["info", arg(&written.dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("seqs:         1..=31"), "{text}");
    assert!(
        text.contains("10 steps undone by rollbacks (seqs 21..=30)"),
        "{text}"
    );

    let output = solostate(&[
        "--types",
        "string-u64",
        "dump",
        arg(&written.dir),
        "--from",
        "20",
    ]);
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1], serde_json::json!({"seq": 31, "rollback_to": 20}));

    let output = solostate(&[
        "--types",
        "string-u64",
        "dump",
        arg(&written.dir),
        "--archive",
    ]);
    let seqs: Vec<u64> = stdout(&output)
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
}

#[test]
fn dump_prints_the_events_in_a_range_as_json_lines() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 20, 1000, None, JournalBackend::Segments);
    let output = solostate(&[
        "--types",
        "string-u64",
        "dump",
        arg(&written.dir),
        "--from",
        "10",
        "--to",
        "12",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let expected: Vec<serde_json::Value> = (10..=12)
        .map(|i| {
            serde_json::json!({
                "seq": i,
                "event": serde_json::to_value(StateEvent::<String, u64>::put(key(i % 40), i)).unwrap(),
            })
        })
        .collect();
    assert_eq!(lines, expected);
}

#[test]
fn state_prints_the_entries_and_the_state_hash_at_a_seq() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 90, 30, None, JournalBackend::Segments);
    // Seq 75: past the checkpoint at 60, so a checkpoint and the journal.
    let output = solostate(&[
        "--types",
        "string-u64",
        "state",
        arg(&written.dir),
        "--at",
        "75",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let mut lines = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap());
    let head = lines.next().unwrap();
    let mut model = solostate::State::<Ev>::new();
    for i in 1..=75 {
        model.insert(key(i % 40), i);
    }
    let hash = state_hash::<Ev>(&model).unwrap();
    assert_eq!(
        head,
        serde_json::json!({"seq": 75, "entries": 40, "state_hash": format!("{hash:016x}")})
    );
    let entries: Vec<(String, u64)> = lines
        .map(|line| {
            (
                line["key"].as_str().unwrap().to_owned(),
                line["value"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<(String, u64)> = model.into_iter().collect();
    expected.sort();
    assert_eq!(entries, expected);
}

#[test]
fn dump_and_state_without_the_event_type_exit_1_saying_so() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 3, 1000, None, JournalBackend::Segments);
    for command in ["dump", "state"] {
        let output = solostate(&[command, arg(&written.dir)]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains("needs the event type"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_sled_journal_is_opened_only_with_allow_sled_writes() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 10, 1000, None, JournalBackend::Sled);
    let output = solostate(&["info", arg(&written.dir)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--allow-sled-writes"),
        "{}",
        stderr(&output)
    );
    let output = solostate(&[
        "--types",
        "string-u64",
        "--allow-sled-writes",
        "verify",
        arg(&written.dir),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("decoded and replayed"), "{text}");
}
