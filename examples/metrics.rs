//! Metrics: a durable engine under load, its metrics served as Prometheus
//! text.
//!
//! What it shows:
//!
//! * the engine's `metrics` feature: the engine records through the
//!   `metrics` facade, and the application picks the exporter, here
//!   `metrics-exporter-prometheus`, installed *before* the engine opens
//!   (the engine registers its metrics at open);
//! * `Builder::metrics_label`, which labels every series `engine="bank"`;
//! * histogram buckets for the `_seconds` metrics, so that Prometheus can
//!   aggregate them (without buckets the exporter renders summaries);
//! * a scrape endpoint without an HTTP stack: a std `TcpListener` thread
//!   answers every request with `handle.render()`.
//!
//! The load: writer tasks pipeline bank transfers (some overdraw and are
//! rejected) into an engine journaling to a temporary directory under
//! `Durability::Always`, while a change-feed subscriber that pauses now
//! and then shows up as reader lag. At the end it prints the final
//! scrape.
//!
//! Run it from the workspace root (the first argument is how many seconds
//! of load, the second the address to serve on):
//!
//! ```text
//! cargo run --release --example metrics -- 30 127.0.0.1:9899
//! curl -s http://127.0.0.1:9899/metrics
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use solostate::{CheckpointPolicy, Durability, Engine};
use solostate_examples::bank::Bank;
use solostate_examples::rng::SplitMix64;

/// Accounts in the bank.
const ACCOUNTS: u32 = 1_000;
/// Writer tasks, and the transfers each keeps in flight.
const WRITERS: u64 = 4;
const IN_FLIGHT: usize = 256;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(Ok(5), |arg| arg.parse())?;
    let address = args.next().unwrap_or_else(|| "127.0.0.1:9899".to_owned());

    // The recorder first: the engine registers its metrics when it opens.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0,
            ],
        )?
        .install_recorder()?;
    let listener = TcpListener::bind(&address)?;
    println!("serving Prometheus text at http://{address}/metrics for {seconds} s");
    let served = handle.clone();
    std::thread::spawn(move || serve(listener, served));

    let dir = tempfile::tempdir()?;
    let engine = Engine::<Bank>::builder()
        .path(dir.path())
        .schema("bank-v1")
        .durability(Durability::Always)
        .checkpoints(CheckpointPolicy::default().every_events(200_000))
        .metrics_label("bank")
        .open()
        .await?;
    let mut opened = Vec::new();
    for account in 0..ACCOUNTS {
        opened.push(engine.send(Bank::deposit(account, 1_000)).await?);
    }
    for deposit in opened {
        deposit.await?;
    }

    // A subscriber that pauses a millisecond every 64 events: about as
    // fast as the writers, so its lag comes and goes. (Lagging past the
    // change capacity ends it.)
    let mut feed = engine.reader().changes();
    let subscriber = tokio::spawn(async move {
        let mut received = 0u64;
        while feed.recv().await.is_ok() {
            received += 1;
            if received.is_multiple_of(64) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let writers: Vec<_> = (0..WRITERS)
        .map(|seed| {
            let engine = engine.clone();
            tokio::spawn(async move { write_until(&engine, seed, deadline).await })
        })
        .collect();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Without the exporter's HTTP listener, its upkeep is ours.
        handle.run_upkeep();
    }
    let mut acked = 0;
    for writer in writers {
        acked += writer.await??;
    }
    engine.shutdown().await?;
    // Whatever it has not read yet is not worth waiting for.
    subscriber.abort();

    println!("{acked} transfers acknowledged; the final scrape:\n");
    for line in handle.render().lines() {
        if !line.starts_with('#') && !line.contains("_bucket{") {
            println!("{line}");
        }
    }
    Ok(())
}

/// Pipelines random transfers (about one in eight overdraws) until
/// `deadline`; returns how many were acknowledged.
async fn write_until(
    engine: &Engine<Bank>,
    seed: u64,
    deadline: Instant,
) -> Result<u64, solostate::SendError<Bank>> {
    let mut rng = SplitMix64::new(seed);
    let mut acked = 0;
    while Instant::now() < deadline {
        let mut pending = Vec::with_capacity(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            let from = rng.below(u64::from(ACCOUNTS)) as u32;
            let to = (from + 1 + rng.below(u64::from(ACCOUNTS) - 1) as u32) % ACCOUNTS;
            let amount = if rng.below(8) == 0 { 1_000_000 } else { 1 };
            pending.push(engine.send(Bank::transfer(from, to, amount)).await?);
        }
        for ack in pending {
            // A rejected overdraft is part of the load.
            acked += u64::from(ack.await.is_ok());
        }
    }
    Ok(acked)
}

/// Answers every connection with the current scrape. Runs until the
/// process exits.
fn serve(listener: TcpListener, handle: PrometheusHandle) {
    for stream in listener.incoming().flatten() {
        // A client that goes away mid-answer is not our problem.
        let _ = answer(stream, &handle);
    }
}

/// Reads the request's head (whatever the path) and writes the scrape.
fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let body = handle.render();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
