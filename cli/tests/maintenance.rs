//! The commands that change a directory, run as the real binary:
//! `rollback` (the engine's own rollback restores the target's state as a
//! new seq, archiving, not deleting, what it undoes) and `compact`
//! (pruning behind the oldest checkpoint); with `--dry-run` each plans and
//! changes nothing.

mod support;

use solostate::JournalBackend;
use solostate::persistence::hash::state_hash;
use support::*;

/// The state hash after the puts `1..=through` that `write` makes.
fn model_hash(through: u64) -> String {
    let mut model = solostate::State::<Ev>::new();
    for i in 1..=through {
        model.insert(key(i % 40), i);
    }
    format!("{:016x}", state_hash::<Ev>(&model).unwrap())
}

#[test]
fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 60, 1000, None, JournalBackend::Segments);
    let before = contents(&written.dir);
    let output = solostate(&[
        "--types",
        "string-u64",
        "rollback",
        arg(&written.dir),
        "--to",
        "45",
        "--dry-run",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("a rollback marker at seq 61"), "{text}");
    assert!(
        text.contains(&format!("state hash {}", model_hash(45))),
        "{text}"
    );
    assert!(
        text.contains("seqs 46..=60 move to the journal's archive"),
        "{text}"
    );
    // The checkpoint written at shutdown (seq 60) is after the target.
    assert!(
        text.contains("checkpoints: deleted, being after the target: seqs 60"),
        "{text}"
    );
    assert!(text.contains("dry run:     nothing was changed"), "{text}");
    assert_eq!(contents(&written.dir), before, "a dry run changed nothing");
}

#[test]
fn a_rollback_restores_the_targets_state_at_a_new_seq_and_archives_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 60, 1000, None, JournalBackend::Segments);
    let output = solostate(&[
        "--types",
        "string-u64",
        "rollback",
        arg(&written.dir),
        "--to",
        "45",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("rolled back: to seq 45 at seq 61"), "{text}");

    let output = solostate(&["--types", "string-u64", "state", arg(&written.dir)]);
    let head: serde_json::Value =
        serde_json::from_str(stdout(&output).lines().next().unwrap()).unwrap();
    assert_eq!(head["seq"], 61);
    assert_eq!(head["state_hash"], model_hash(45));

    let output = solostate(&["info", arg(&written.dir)]);
    let text = stdout(&output);
    assert!(text.contains("seqs:         1..=61"), "{text}");
    assert!(
        text.contains("15 steps undone by rollbacks (seqs 46..=60)"),
        "{text}"
    );
    assert!(
        checkpoints(&written.dir).iter().all(|(seq, _)| *seq <= 45),
        "{:?}",
        checkpoints(&written.dir)
    );
    let output = solostate(&["--types", "string-u64", "verify", arg(&written.dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn a_rollback_to_the_last_seq_or_later_is_refused_with_exit_1() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 10, 1000, None, JournalBackend::Segments);
    let before = contents(&written.dir);
    for to in ["10", "11"] {
        let output = solostate(&[
            "--types",
            "string-u64",
            "rollback",
            arg(&written.dir),
            "--to",
            to,
        ]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        assert!(
            stderr(&output).contains("nothing to roll back"),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(contents(&written.dir), before);
}

#[test]
fn compact_prunes_behind_the_oldest_checkpoint_and_a_dry_run_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 60, 20, None, JournalBackend::Segments);
    let oldest = checkpoints(&written.dir)[0].0;
    assert!(oldest < 60, "a checkpoint before the one at shutdown");
    let before = contents(&written.dir);
    let output = solostate(&[
        "--types",
        "string-u64",
        "compact",
        arg(&written.dir),
        "--dry-run",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(
        text.contains(&format!("prune the journal's seqs 1..={oldest}")),
        "{text}"
    );
    assert_eq!(contents(&written.dir), before, "a dry run changed nothing");

    let output = solostate(&["--types", "string-u64", "compact", arg(&written.dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(
        text.contains(&format!(
            "{oldest} records pruned; the journal now begins at seq {}",
            oldest + 1
        )),
        "{text}"
    );
    let text = stdout(&solostate(&["info", arg(&written.dir)]));
    assert!(
        text.contains(&format!("seqs:         {}..=60", oldest + 1)),
        "{text}"
    );
    // Still opens, replays and rebuilds every seq from the checkpoint on.
    let output = solostate(&["--types", "string-u64", "verify", arg(&written.dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let output = solostate(&[
        "--types",
        "string-u64",
        "state",
        arg(&written.dir),
        "--at",
        "59",
    ]);
    let head: serde_json::Value =
        serde_json::from_str(stdout(&output).lines().next().unwrap()).unwrap();
    assert_eq!(head["state_hash"], model_hash(59));
}

#[test]
fn quarantine_list_shows_what_recovery_to_a_prefix_set_aside() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 50, 1000, None, JournalBackend::Segments);
    // Seq 45 writes key-00005 for the second time: damage it, then let an
    // engine recover to the prefix before it.
    damage_record_inside_its_frame(&written.dir, key(5).as_bytes(), 1);
    let output = solostate(&["quarantine", "list", arg(&written.dir)]);
    assert_eq!(stdout(&output), "quarantine: empty\n");
    // Without the checkpoint at shutdown (seq 50), opening replays the
    // journal and meets the damage.
    for (_, path) in checkpoints(&written.dir) {
        std::fs::remove_file(path).unwrap();
    }
    let recovered = runtime().block_on(async {
        let engine = solostate::Engine::<Ev>::builder()
            .path(&written.dir)
            .schema(SCHEMA)
            .recover_to_prefix(true)
            .open()
            .await
            .unwrap();
        let from = engine.recovery().quarantined_from;
        engine.shutdown().await.unwrap();
        from
    });
    assert_eq!(recovered, Some(45));

    let before = contents(&written.dir);
    let output = solostate(&["quarantine", "list", arg(&written.dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "seqs 45 to 50, one record each: {text}");
    assert!(
        lines[0].contains("record at seq 45") && lines[0].contains("does not verify"),
        "{text}"
    );
    assert!(
        lines[1].contains("record at seq 46") && lines[1].contains("verifies: 1 events"),
        "{text}"
    );
    assert_eq!(contents(&written.dir), before, "listing changed nothing");
    let text = stdout(&solostate(&["info", arg(&written.dir)]));
    assert!(text.contains("quarantine:   6 records"), "{text}");
}

/// Writes 50 puts, damages seq 45 (`key-00005`'s second write) and lets
/// an engine recover to the prefix before it; then, if `new_events`,
/// writes that many events after it (at seqs 45..). Returns the
/// directory and the quarantine's id.
fn quarantined(root: &std::path::Path, new_events: u64) -> (std::path::PathBuf, u64) {
    let written = write(root, 50, 1000, None, JournalBackend::Segments);
    damage_record_inside_its_frame(&written.dir, key(5).as_bytes(), 1);
    for (_, path) in checkpoints(&written.dir) {
        std::fs::remove_file(path).unwrap();
    }
    runtime().block_on(async {
        let engine = solostate::Engine::<Ev>::builder()
            .path(&written.dir)
            .schema(SCHEMA)
            .recover_to_prefix(true)
            .open()
            .await
            .unwrap();
        assert_eq!(engine.recovery().quarantined_from, Some(45));
        for i in 0..new_events {
            engine
                .submit(solostate::StateEvent::put("new".into(), i))
                .await
                .unwrap();
        }
        engine.shutdown().await.unwrap();
    });
    let text = stdout(&solostate(&["quarantine", "list", arg(&written.dir)]));
    let id = text
        .strip_prefix("quarantine ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    (written.dir, id)
}

/// Flips back the bit `damage_record_inside_its_frame` flipped in seq
/// 45's record, wherever its bytes are in the segment (the timeline's
/// old frame and the quarantine's copy): the operator's repair.
fn repair(dir: &std::path::Path) {
    let damaged = b"jey-00005";
    let bytes = std::fs::read(segment(dir)).unwrap();
    let copies = bytes
        .windows(damaged.len())
        .filter(|w| w == damaged)
        .count();
    assert!(copies > 0);
    for _ in 0..copies {
        damage_record_inside_its_frame(dir, damaged, 0);
    }
}

#[test]
fn quarantine_restore_refuses_a_record_that_does_not_verify() {
    let root = tempfile::tempdir().unwrap();
    let (dir, id) = quarantined(root.path(), 0);
    let before = contents(&dir);
    let id = id.to_string();
    let output = solostate(&["quarantine", "restore", arg(&dir), "--id", &id]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stderr(&output);
    assert!(text.contains("record at seq 45 does not verify"), "{text}");
    assert_eq!(contents(&dir), before, "nothing changed");
}

#[test]
fn quarantine_restore_puts_verifying_records_back_and_replays_them() {
    let root = tempfile::tempdir().unwrap();
    let (dir, id) = quarantined(root.path(), 0);
    repair(&dir);
    let id = id.to_string();
    let before = contents(&dir);
    let output = solostate(&["quarantine", "restore", arg(&dir), "--id", &id, "--dry-run"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("goes from 44 to 50"), "{text}");
    assert!(text.contains("dry run:     nothing was changed"), "{text}");
    assert_eq!(contents(&dir), before, "a dry run changed nothing");

    let output = solostate(&[
        "--types",
        "string-u64",
        "quarantine",
        "restore",
        arg(&dir),
        "--id",
        &id,
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(
        text.contains("restored:    6 records; the journal now ends at seq 50"),
        "{text}"
    );
    assert!(
        text.contains(&format!("state hash {}", model_hash(50))),
        "{text}"
    );
    let output = solostate(&["quarantine", "list", arg(&dir)]);
    assert_eq!(stdout(&output), "quarantine: empty\n");
    let output = solostate(&["--types", "string-u64", "verify", arg(&dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn quarantine_restore_is_refused_once_the_engine_wrote_the_seqs_again() {
    let root = tempfile::tempdir().unwrap();
    let (dir, id) = quarantined(root.path(), 2);
    repair(&dir);
    let before = contents(&dir);
    let id = id.to_string();
    let output = solostate(&["quarantine", "restore", arg(&dir), "--id", &id]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stderr(&output);
    assert!(
        text.contains("the timeline has moved on: the journal already holds seq 45"),
        "{text}"
    );
    assert!(text.contains("wrote new events there"), "{text}");
    assert_eq!(contents(&dir), before, "nothing changed");
}
