//! The tool on a directory that changed schema: the shipped binary's
//! `--types bank-v2` reads a `bank-v1` directory through the examples'
//! upcaster, before and after an engine upgraded it; `bank` (v1) no longer
//! reads it once it is upgraded.

mod support;

use solostate::{CheckpointPolicy, Engine};
use solostate_examples::{BANK_V1_SCHEMA, BANK_V2_SCHEMA, Bank, BankV2};
use support::*;

/// Runs the tool, asserts it exited 0, and returns its stdout.
fn ok(args: &[&str]) -> String {
    let output = solostate(args);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {text}{}",
        stderr(&output)
    );
    text
}

#[test]
fn bank_v2_reads_a_bank_v1_directory_before_and_after_its_upgrade() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("bank");
    runtime().block_on(async {
        let engine = Engine::<Bank>::builder()
            .path(&dir)
            .schema(BANK_V1_SCHEMA)
            .state_hash_every(2)
            .checkpoints(CheckpointPolicy::default().every_events(2))
            .open()
            .await
            .unwrap();
        engine.submit(Bank::deposit(1, 100)).await.unwrap();
        engine.submit(Bank::deposit(2, 5)).await.unwrap();
        engine.submit(Bank::transfer(1, 2, 30)).await.unwrap();
        engine.shutdown().await.unwrap();
    });
    // Still v1 on disk: read as v2, verified, and dumped with the v2 shape.
    let text = ok(&["--types", "bank-v2", "verify", arg(&dir)]);
    assert!(text.contains("seqs 1..=3 decoded and replayed"), "{text}");
    let text = ok(&[
        "--types",
        "bank-v2",
        "dump",
        arg(&dir),
        "--from",
        "3",
        "--to",
        "3",
    ]);
    assert!(text.contains(r#""reference":null"#), "{text}");

    // An engine upgrades it with one new event.
    runtime().block_on(async {
        let engine = Engine::<BankV2>::builder()
            .path(&dir)
            .schema(BANK_V2_SCHEMA)
            .upcast_from(BANK_V1_SCHEMA, BankV2::from_v1)
            .state_hash_every(2)
            .open()
            .await
            .unwrap();
        let referenced = BankV2::Transfer {
            from: 2,
            to: 1,
            amount: 1,
            reference: Some("refund".into()),
        };
        engine.submit(referenced).await.unwrap();
        engine.shutdown().await.unwrap();
    });
    let text = ok(&["--types", "bank-v2", "verify", arg(&dir)]);
    assert!(text.contains("seqs 1..=4 decoded and replayed"), "{text}");
    let text = ok(&[
        "--types",
        "bank-v2",
        "dump",
        arg(&dir),
        "--from",
        "3",
        "--to",
        "4",
    ]);
    assert!(text.contains(r#""reference":null"#), "{text}");
    assert!(text.contains(r#""reference":"refund""#), "{text}");
    let text = ok(&["info", arg(&dir)]);
    assert!(text.contains("bank-v1 through seq 3"), "{text}");

    // The old type's seqs 1..=3 would still decode, but seq 4 is v2: the
    // v1 tool cannot read it (a decode error, never a v2 event misread).
    let dump = [
        "--types",
        "bank",
        "dump",
        arg(&dir),
        "--from",
        "4",
        "--to",
        "4",
    ];
    let output = solostate(&dump);
    assert_ne!(output.status.code(), Some(0), "{}", stdout(&output));

    // And a rollback through the tool, into the v1 history.
    ok(&["--types", "bank-v2", "rollback", arg(&dir), "--to", "2"]);
    let text = ok(&["--types", "bank-v2", "verify", arg(&dir)]);
    assert!(text.contains("1 rollback markers"), "{text}");
}
