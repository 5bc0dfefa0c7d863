//! A projector process killed mid-batch (SIGKILL) and restarted counts nothing twice.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rollcall_analytics::{InProcessAnalytics, RedisAnalytics};
use rollcall_core::Plan;
use rollcall_core::events::Role;
use rollcall_projection::history::HistoryBuilder;
use rollcall_projection::{bench, connect_redis};
use rollcall_store::{EmbeddedLog, EmbeddedOptions, EventStore};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

struct Projector {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn(dir: &std::path::Path, prefix: &str) -> Projector {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollcall-analytics-crashtest"))
        .arg(dir)
        .arg(redis_url())
        .arg(prefix)
        .arg("3000")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the crashtest projector");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Projector { child, lines }
}

fn sigkill(child: &mut Child) {
    let pid = child.id() as libc::pid_t;
    let rc = unsafe_kill(pid);
    assert_eq!(rc, 0, "kill -9 {pid}");
    child.wait().expect("reap the killed projector");
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: libc::pid_t) -> i32 {
    // SAFETY: sending a signal to a child process we spawned and have not reaped.
    unsafe { libc::kill(pid, libc::SIGKILL) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_batch_and_restarted_counts_nothing_twice() -> anyhow::Result<()> {
    if let Err(e) = connect_redis(&redis_url()).await {
        panic!(
            "cannot connect to redis at {} ({e}): start one with `redis-server --daemonize yes --port 6379 --save \"\" --appendonly no` or set REDIS_URL",
            redis_url()
        );
    }
    let dir = tempfile::tempdir()?;
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await?;
        let mut history = HistoryBuilder::new(Utc.with_ymd_and_hms(2025, 6, 1, 8, 0, 0).unwrap(), 64);
        history.create_workspace("crashy", Plan::Enterprise, 0).unwrap().append(&log).await?;
        for person in 1..30 {
            history.invite(0, person, Role::Member).unwrap().append(&log).await?;
            history.accept(0, 0).unwrap().append(&log).await?;
        }
        history.create_workspace("other", Plan::Pro, 40).unwrap().append(&log).await?;
        // Bursts of calls by one member go in one append, as a gateway's would.
        for i in 0..1500u32 {
            let b = (i.wrapping_mul(2_654_435_761) >> 24) as u8;
            let mut burst = history.activity((i % 2) as usize, 13 + (i % 3) as u8, b).unwrap();
            for _ in 0..15 {
                burst.events.extend(history.activity((i % 2) as usize, 13 + (i % 3) as u8, b).unwrap().events);
            }
            burst.append(&log).await?;
        }
        log.close().await;
    }
    let prefix = format!("test:crash:{}:{}:", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap_or(0));

    // Killed at increasing delays after it starts making progress, so kills land mid-batch,
    // mid-script and between batches.
    let mut kills = 0;
    for round in 0..6u64 {
        let mut projector = spawn(dir.path(), &prefix);
        let started = Instant::now();
        let mut caught_up = false;
        // Wait for its first progress line (or a bounded time), then a little more.
        while started.elapsed() < Duration::from_secs(30) {
            match projector.lines.recv_timeout(Duration::from_millis(5)) {
                Ok(line) if line.starts_with("caught-up") => {
                    caught_up = true;
                    break;
                }
                Ok(_) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the projector exited early"),
            }
        }
        std::thread::sleep(Duration::from_millis(3 + round * 7));
        sigkill(&mut projector.child);
        kills += 1;
        if caught_up {
            break;
        }
    }
    assert!(kills >= 2);
    // A last run to the end.
    let mut projector = spawn(dir.path(), &prefix);
    let started = Instant::now();
    loop {
        match projector.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("caught-up") => break,
            Ok(_) => assert!(started.elapsed() < Duration::from_secs(120), "the projector never caught up"),
            Err(e) => panic!("the projector never caught up: {e}"),
        }
    }
    sigkill(&mut projector.child);

    let log: Arc<dyn EventStore> = Arc::new(EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await?);
    let expected = InProcessAnalytics::new();
    bench::rebuild_all(log, &[expected.projection()], 5000).await?;
    let expected = expected.snapshot().expect("rebuilt");
    let redis = RedisAnalytics::new(connect_redis(&redis_url()).await?, &prefix);
    let actual = redis.snapshot().await?.expect("the redis view is built");
    let calls = |s: &rollcall_analytics::AnalyticsState| s.workspaces.values().map(|w| w.total.calls).sum::<u64>();
    assert_eq!(calls(&actual), calls(&expected), "tool calls counted once each");
    assert_eq!(actual, expected);
    redis.target().delete_all().await?;
    Ok(())
}
