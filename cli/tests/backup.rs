//! `backup DIR DEST`, run as the real binary: the copy opens as an engine
//! with the source's state at its last seq; a directory an engine holds
//! and a non-empty destination are refused.

mod support;

use solostate::JournalBackend;
use support::*;

/// `state`'s first line (seq, entries, state hash) and its entry lines.
fn state_lines(dir: &std::path::Path) -> Vec<String> {
    let output = solostate(&["--types", "string-u64", "state", arg(dir)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output).lines().map(str::to_owned).collect()
}

#[test]
fn a_backup_opens_as_an_engine_with_the_sources_state_and_hash() {
    for backend in [JournalBackend::Segments, JournalBackend::Sled] {
        let root = tempfile::tempdir().unwrap();
        // A checkpoint every 20 events and a rollback: the state at the
        // last seq is a checkpoint plus the journal after it.
        let written = write(root.path(), 70, 20, Some(55), backend);
        let dest = root.path().join("copy");
        let sled = matches!(backend, JournalBackend::Sled);
        let mut args = vec!["--types", "string-u64"];
        if sled {
            args.push("--allow-sled-writes");
        }
        args.extend(["backup", arg(&written.dir), arg(&dest)]);
        let output = solostate(&args);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
        assert!(
            text.contains(&format!("backed up:   seq {},", written.last)),
            "{text}"
        );
        assert!(text.contains(arg(&dest)), "{text}");

        let mut source = vec!["--types", "string-u64"];
        if sled {
            source.push("--allow-sled-writes");
        }
        let lines = |dir: &std::path::Path| {
            let mut args = source.clone();
            args.extend(["state", arg(dir)]);
            let output = solostate(&args);
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            stdout(&output)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let (from, copy) = (lines(&written.dir), lines(&dest));
        assert_eq!(from, copy, "the same seq, entries, state hash and entries");
        assert!(
            text.contains(&from[0][from[0].find("state_hash").unwrap() + 13..][..16]),
            "the printed hash is the state's: {text} {}",
            from[0]
        );

        // The engine opens the copy at the source's last seq, with its map.
        let (seq, entries) = runtime().block_on(async {
            let engine = solostate::Engine::<Ev>::builder()
                .path(&dest)
                .schema(SCHEMA)
                .open()
                .await
                .unwrap();
            assert!(engine.recovery().is_clean(), "{:?}", engine.recovery());
            let snapshot = engine.reader().snapshot();
            let mut entries: Vec<(String, u64)> = snapshot.to_map().into_iter().collect();
            entries.sort();
            let seq = snapshot.seq();
            drop(snapshot);
            engine.shutdown().await.unwrap();
            (seq, entries)
        });
        assert_eq!(seq, written.last);
        let mut model = std::collections::BTreeMap::new();
        for i in 1..=55 {
            model.insert(key(i % 40), i);
        }
        assert_eq!(entries, model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn a_backup_into_a_non_empty_destination_is_refused_with_exit_1() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 10, 1000, None, JournalBackend::Segments);
    let dest = root.path().join("taken");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("precious"), b"keep me").unwrap();
    let output = solostate(&[
        "--types",
        "string-u64",
        "backup",
        arg(&written.dir),
        arg(&dest),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("is not empty") && stderr(&output).contains(arg(&dest)),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        contents(&dest),
        vec![(dest.join("precious"), b"keep me".to_vec())]
    );
    // The source is untouched and still reads.
    assert!(state_lines(&written.dir)[0].contains("\"seq\":10"));
}

#[test]
fn a_backup_of_a_directory_a_live_engine_holds_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let written = write(root.path(), 10, 1000, None, JournalBackend::Segments);
    let dest = root.path().join("copy");
    let runtime = runtime();
    let engine = runtime.block_on(
        solostate::Engine::<Ev>::builder()
            .path(&written.dir)
            .schema(SCHEMA)
            .open(),
    );
    let engine = engine.unwrap();
    let output = solostate(&[
        "--types",
        "string-u64",
        "backup",
        arg(&written.dir),
        arg(&dest),
    ]);
    runtime.block_on(engine.shutdown()).unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("open in a running engine"),
        "{}",
        stderr(&output)
    );
    assert!(!dest.exists(), "nothing was written");
}
