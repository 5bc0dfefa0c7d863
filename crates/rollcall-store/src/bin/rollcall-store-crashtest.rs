//! Appends to an embedded log from many tasks and prints each acknowledged event id, one per
//! line, flushed at once: the crash test kills this process at random moments and checks that
//! every id it printed survived.
//!
//! Usage: `rollcall-store-crashtest DATA_DIR [TASKS]`. Prints `ready` once the log is open.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;
use rollcall_store::{Actor, EmbeddedLog, EmbeddedOptions, EventStore, ExpectedRevision, Metadata, NewEvent};
use uuid::Uuid;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("usage: rollcall-store-crashtest DATA_DIR [TASKS]")?;
    let tasks: usize = args.next().map(|t| t.parse()).transpose().context("TASKS must be a number")?.unwrap_or(16);
    let options = EmbeddedOptions { segment_bytes_max: 256 * 1024, ..EmbeddedOptions::default() };
    let log = Arc::new(EmbeddedLog::open(&dir, options).await?);
    println!("ready");
    std::io::stdout().flush()?;
    let handles: Vec<_> = (0..tasks).map(|task| tokio::spawn(append_forever(log.clone(), task))).collect();
    for handle in handles {
        handle.await??;
    }
    Ok(())
}

/// Appends batches of one to three events until the process is killed or an append fails.
async fn append_forever(log: Arc<EmbeddedLog>, task: usize) -> anyhow::Result<()> {
    let mut round = 0usize;
    loop {
        round += 1;
        let stream = format!("crash-{}", (task * 7 + round) % 23);
        let count = 1 + (task + round) % 3;
        let events: Vec<NewEvent> = (0..count).map(|_| event()).collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        log.append(&stream, ExpectedRevision::Any, events).await?;
        let mut out = std::io::stdout().lock();
        for id in ids {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
    }
}

fn event() -> NewEvent {
    NewEvent {
        id: Uuid::new_v4(),
        event_type: "CrashTested".into(),
        schema_version: 1,
        data: Bytes::from_static(br#"{"note":"written by the crash test"}"#),
        metadata: Metadata {
            actor: Actor::System,
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            recorded_at: Utc::now(),
        },
    }
}
