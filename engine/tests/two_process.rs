//! A second process opening the same directory fails fast with a clear
//! "already open" error, not sled's raw lock error, and the directory opens
//! again once the first process is gone. Real processes: the test binary
//! re-executes itself as the holder.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use solostate::{Engine, OpenError, StateEvent};

type Ev = StateEvent<u64, u64>;

/// Set in the child: the directory to hold open.
const CHILD_ENV: &str = "SOLOSTATE_TWO_PROCESS_CHILD";

async fn open(dir: &Path) -> Result<Engine<Ev>, OpenError> {
    Engine::<Ev>::builder()
        .path(dir)
        .schema("two-process-test-v1")
        .open()
        .await
}

/// The child: opens the directory, writes one event, says so, and holds
/// the engine open until its stdin closes.
async fn child(dir: &Path) {
    let engine = open(dir).await.expect("the child opens first");
    engine.submit(Ev::put(1, 1)).await.expect("a put applies");
    println!("OPEN");
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
    engine.shutdown().await.expect("clean shutdown");
}

#[test]
fn a_second_process_gets_already_open_and_the_directory_reopens_after() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        runtime.block_on(child(Path::new(&dir)));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_process_gets_already_open_and_the_directory_reopens_after",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the holder");
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    // The test harness may print "test <name> ... " on the same line first.
    let opened = lines.any(|line| line.is_ok_and(|line| line.trim_end().ends_with("OPEN")));
    assert!(opened, "the holder process never opened the directory");

    runtime.block_on(async {
        match open(dir.path()).await {
            Err(OpenError::Journal { message, .. }) => assert!(
                message.contains("already open")
                    && message.contains(&*dir.path().to_string_lossy()),
                "the error must say 'already open' and name the path: {message}"
            ),
            Err(other) => panic!("expected an already-open journal error, got {other}"),
            Ok(_) => panic!("a second process opened a directory that another holds"),
        }
    });

    // Closing the holder's stdin lets it shut down and release the lock.
    drop(holder.stdin.take());
    let status = holder.wait().expect("reap the holder");
    assert!(status.success(), "the holder failed: {status}");

    runtime.block_on(async {
        let engine = open(dir.path())
            .await
            .expect("reopens once the holder is gone");
        assert_eq!(engine.reader().snapshot().get(&1).as_deref(), Some(&1));
        engine.shutdown().await.unwrap();
    });
}
