//! Crash safety with real processes: a writer is killed with SIGKILL at random moments, and
//! every append it saw acknowledged must be in the log exactly once afterwards.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rollcall_store::contract::event;
use rollcall_store::{EmbeddedLog, EmbeddedOptions, EventFilter, EventStore, ExpectedRevision, Position, StoreError};
use uuid::Uuid;

const KILLS: usize = 50;

/// Starts the crash test writer on `dir` and waits until it has opened the log.
pub fn start_writer(dir: &Path, tasks: usize) -> anyhow::Result<(Child, BufReader<std::process::ChildStdout>)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall-store-crashtest"))
        .arg(dir)
        .arg(tasks.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start the crash test writer")?;
    let mut out = BufReader::new(child.stdout.take().context("writer stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    ensure!(line.trim() == "ready", "the writer did not start: {line:?}");
    Ok((child, out))
}

/// Everything the checks remember between rounds.
#[derive(Default)]
struct Seen {
    head: u64,
    ids: HashSet<Uuid>,
    next_revision: HashMap<String, u64>,
}

/// Reads the events after the last checked position and checks order, contiguity and ids.
async fn check_new_events(log: &EmbeddedLog, seen: &mut Seen) -> anyhow::Result<()> {
    loop {
        let page = log.read_all(Position::from_sequence(seen.head), &EventFilter::all(), 5000).await?;
        if page.is_empty() {
            break;
        }
        for e in page {
            ensure!(e.position.sequence() == seen.head + 1, "position {} follows {}", e.position, seen.head);
            seen.head += 1;
            ensure!(seen.ids.insert(e.id), "event {} is stored twice", e.id);
            let next = seen.next_revision.entry(e.stream.clone()).or_default();
            ensure!(e.revision == *next, "stream {} has revision {} where {} was due", e.stream, e.revision, next);
            *next += 1;
        }
    }
    ensure!(log.head().await?.sequence() == seen.head, "head matches the last event read");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let mut seen = Seen::default();
    let mut acknowledged_total = 0usize;
    for round in 0..KILLS {
        let (mut child, out) = start_writer(dir.path(), 16)?;
        let reader = std::thread::spawn(move || {
            // Only whole lines count: a line cut by the kill was never fully printed.
            let mut ids = Vec::new();
            for line in out.split(b'\n') {
                let Ok(line) = line else { break };
                if let Ok(id) = std::str::from_utf8(&line).unwrap_or("").parse::<Uuid>() {
                    ids.push(id);
                }
            }
            ids
        });
        std::thread::sleep(Duration::from_millis(rand::random_range(1..40)));
        child.kill().context("SIGKILL the writer")?;
        child.wait()?;
        let acknowledged = reader.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
        acknowledged_total += acknowledged.len();

        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default())
            .await
            .with_context(|| format!("reopen after kill {round}"))?;
        check_new_events(&log, &mut seen).await.with_context(|| format!("after kill {round}"))?;
        for id in &acknowledged {
            ensure!(seen.ids.contains(id), "acknowledged event {id} is missing after kill {round}");
        }
        let r = log.append("crash-after", ExpectedRevision::Any, vec![event("AfterCrash")]).await?;
        ensure!(r.position.sequence() == seen.head + 1, "appends continue right after the recovered head");
        check_new_events(&log, &mut seen).await?;
        log.close().await;
    }
    ensure!(
        acknowledged_total > KILLS * 10,
        "the writer acknowledged too little to test anything: {acknowledged_total}"
    );
    // A last full pass: the log as a whole, from the start, in parallel replay.
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await?;
    let counts =
        log.replay_chunks(2, 10_000, |events| events.map(|e| e.map(|_| 1u64)).sum::<Result<u64, StoreError>>())?;
    let total: u64 = counts.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().sum();
    ensure!(total == seen.head, "replay sees {total} events, reads saw {}", seen.head);
    log.close().await;
    if started.elapsed() > Duration::from_secs(60) {
        bail!("the crash test took {:?}, over its 60 s budget", started.elapsed());
    }
    Ok(())
}
