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
