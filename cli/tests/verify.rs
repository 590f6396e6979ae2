//! `solostate verify`, run as the real binary on directories a real
//! engine wrote: exit code 0 on a good one, 2 with the path and seq of
//! what is damaged, 1 when it cannot run (a directory an engine holds).

mod support;

use solostate::JournalBackend;
use support::*;

#[test]
fn a_clean_directory_verifies_with_exit_0_and_a_full_replay() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 120, 50, None, JournalBackend::Segments);
    let before = contents(&written.dir);
    let output = solostate(&["--types", "string-u64", "verify", arg(&written.dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("120 records verified"), "{text}");
    assert!(
        text.contains("replay:      seqs 1..=120 decoded and replayed"),
        "{text}"
    );
    // One state hash per batch by default: every one is checked, and the
    // replay reproduces every checkpoint's: one every 50 events (one may
    // be skipped while the one before it is still being written, so the
    // files are counted) and one at shutdown.
    assert!(text.contains("120 recorded state hashes checked"), "{text}");
    let files = checkpoints(&written.dir).len();
    assert!(files >= 2, "checkpoints at 50 or 100, and at 120");
    assert!(
        text.contains(&format!("{files} checkpoints' state hashes reproduced")),
        "{text}"
    );
    assert!(text.ends_with("result: ok\n"), "{text}");
    assert_eq!(contents(&written.dir), before, "verify changed nothing");
}

#[test]
fn without_the_event_type_verify_checks_framing_and_says_it_skipped_the_replay() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 30, 10, None, JournalBackend::Segments);
    let output = solostate(&["verify", arg(&written.dir)]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("30 records verified"), "{text}");
    assert!(text.contains("replay:      skipped"), "{text}");
    let files = checkpoints(&written.dir).len();
    assert!(
        text.contains(&format!("checkpoints: {files} verified (framing and crc")),
        "{text}"
    );
}

#[test]
fn a_flipped_byte_in_a_journal_segment_exits_2_naming_the_segment_and_the_seq() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 60, 1000, None, JournalBackend::Segments);
    let segment = segment(&written.dir);
    let mut bytes = std::fs::read(&segment).unwrap();
    // The put of value 45 (seq 45, one event per batch) writes key-00005
    // for the second time; flip a byte of that record's key.
    let needle = key(5);
    let second = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle.as_bytes())
        .map(|(at, _)| at)
        .nth(1)
        .expect("key-00005 is written twice");
    bytes[second + 4] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();

    let output = solostate(&["--types", "string-u64", "verify", arg(&written.dir)]);
    let (text, line) = damage_found(&output);
    assert!(line.contains(arg(&segment)), "{line}");
    assert!(line.contains("(seq 45)"), "{line}");
    assert!(line.contains("seq 44"), "{line}");
    assert!(text.contains("result: damage found"), "{text}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "the damaged tail was reported, not cut"
    );

    // dump reads what verifies, and says on stderr where it ends.
    let output = solostate(&["--types", "string-u64", "dump", arg(&written.dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 44);
    let warning = stderr(&output);
    assert!(warning.contains("the journal ends early"), "{warning}");
    assert!(warning.contains(arg(&segment)), "{warning}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
}

#[test]
fn a_flipped_byte_in_a_checkpoint_exits_2_naming_the_file_and_the_seq() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 40, 20, None, JournalBackend::Segments);
    // The one written at shutdown, at the last seq.
    let (seq, path) = checkpoints(&written.dir).pop().expect("a checkpoint");
    assert_eq!(seq, written.last);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();

    for types in [None, Some("string-u64")] {
        let mut args = Vec::new();
        if let Some(types) = types {
            args.extend(["--types", types]);
        }
        args.extend(["verify", arg(&written.dir)]);
        let output = solostate(&args);
        let (_, line) = damage_found(&output);
        assert!(line.contains(arg(&path)), "{line}");
        assert!(line.contains(&format!("(seq {seq})")), "{line}");
        assert!(line.contains("checksum"), "{line}");
    }
}

#[test]
fn a_directory_an_engine_holds_is_refused_with_exit_1() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 5, 1000, None, JournalBackend::Segments);
    let runtime = runtime();
    let engine = runtime.block_on(async {
        solostate::Engine::<Ev>::builder()
            .path(&written.dir)
            .schema(SCHEMA)
            .open()
            .await
            .unwrap()
    });
    for command in ["info", "verify"] {
        let output = solostate(&[command, arg(&written.dir)]);
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        let message = stderr(&output);
        assert!(message.contains("open in a running engine"), "{message}");
        assert!(message.contains(arg(&written.dir)), "{message}");
    }
    runtime.block_on(engine.shutdown()).unwrap();
    let output = solostate(&["verify", arg(&written.dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn a_directory_without_a_journal_is_refused_with_exit_1() {
    let root = tempfile::tempdir().unwrap();
    let output = solostate(&["verify", arg(root.path())]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no journal"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn the_wrong_event_type_exits_1_calling_the_data_incompatible_not_damaged() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 20, 10, None, JournalBackend::Segments);
    let output = solostate(&["--types", "bank", "verify", arg(&written.dir)]);
    let (text, message) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{text}{message}");
    assert!(
        !text.lines().any(|line| line.starts_with("damaged:")),
        "{text}"
    );
    assert!(
        text.contains("the entries are not of this event type"),
        "{text}"
    );
    assert!(message.contains("incompatible"), "{message}");
}

#[test]
fn a_damaged_segment_header_exits_2_naming_the_segment() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 10, 1000, None, JournalBackend::Segments);
    let segment = segment(&written.dir);
    let mut bytes = std::fs::read(&segment).unwrap();
    // Inside the segment number, which the header's crc covers.
    bytes[9] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();

    let output = solostate(&["verify", arg(&written.dir)]);
    let (text, line) = damage_found(&output);
    assert!(line.contains(arg(&segment)), "{line}");
    assert!(line.contains("offset 0"), "{line}");
    assert!(text.contains("result: damage found"), "{text}");
    // Every other command says so too, with the same exit code.
    let output = solostate(&["info", arg(&written.dir)]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains(arg(&segment)),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&segment).unwrap(), bytes);
}

#[test]
fn a_damaged_record_inside_a_good_frame_exits_2_naming_the_record_and_its_seq() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 60, 1000, None, JournalBackend::Segments);
    // Seq 45 writes key-00005 for the second time.
    damage_record_inside_its_frame(&written.dir, key(5).as_bytes(), 1);
    let output = solostate(&["verify", arg(&written.dir)]);
    let (text, line) = damage_found(&output);
    assert!(line.contains(arg(&written.dir.join("journal"))), "{line}");
    assert!(line.contains("(seq 45)"), "{line}");
    assert!(line.contains("record at seq 45 is damaged"), "{line}");
    assert!(text.contains("seqs 1..=44"), "{text}");
}
