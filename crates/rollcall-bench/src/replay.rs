//! The replay benchmark: read and decode the whole log from position 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rollcall_store::{EmbeddedLog, EventFilter, EventStore, ExpectedRevision, Position, StoreError};

use crate::workload::{TokenStream, ToolCalledRef, tool_called};

/// Appends batches of `ToolCalled` events until the log holds at least `events`.
pub async fn fill(log: Arc<EmbeddedLog>, tokens: Arc<Vec<TokenStream>>, events: u64) -> anyhow::Result<()> {
    const BATCH_EVENTS: u64 = 500;
    let have = log.head().await?.sequence();
    if have >= events {
        return Ok(());
    }
    let batches = (events - have).div_ceil(BATCH_EVENTS);
    let tasks = 8u64;
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let log = log.clone();
            let tokens = tokens.clone();
            tokio::spawn(async move {
                let mut b = task;
                while b < batches {
                    let token = &tokens[(b * 13) as usize % tokens.len()];
                    let batch = (0..BATCH_EVENTS).map(|n| tool_called(token, n)).collect();
                    log.append(&token.stream, ExpectedRevision::Any, batch).await?;
                    b += tasks;
                }
                Ok::<(), StoreError>(())
            })
        })
        .collect();
    for handle in handles {
        handle.await.context("fill task panicked")??;
    }
    Ok(())
}

/// What a replay measured.
#[derive(Clone, Copy, Debug)]
pub struct ReplayRun {
    /// Events decoded, envelope and typed payload.
    pub events: u64,
    /// Payload bytes decoded.
    pub payload_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Decodes every event (full envelope, then the JSON payload into [`ToolCalledRef`]), one segment
/// per thread at a time, and checks positions run 1, 2, 3, ... across segments.
pub fn replay_parallel(log: &EmbeddedLog, threads: usize) -> anyhow::Result<ReplayRun> {
    let started = Instant::now();
    let per_segment = log.replay_chunks(threads, 16_384, |events| {
        let mut count = 0u64;
        let mut bytes = 0u64;
        for (expected, event) in (events.first_position()..).zip(events) {
            let event = event?;
            ensure!(event.position.sequence() == expected, "position {} where {expected} was due", event.position);
            let payload: ToolCalledRef<'_> = serde_json::from_slice(&event.data)?;
            ensure!(payload.arguments_bytes > 0, "decoded payload is implausible");
            bytes += event.data.len() as u64;
            count += 1;
        }
        Ok((count, bytes))
    })?;
    let mut events = 0;
    let mut payload_bytes = 0;
    for result in per_segment {
        let (count, bytes) = result?;
        events += count;
        payload_bytes += bytes;
    }
    Ok(ReplayRun { events, payload_bytes, elapsed: started.elapsed() })
}

/// Reads everything through the `EventStore` API (`read_all` pages) on one task and decodes
/// each payload: the path any backend offers.
pub async fn replay_read_all(store: &dyn EventStore) -> anyhow::Result<ReplayRun> {
    let started = Instant::now();
    let mut after = Position::START;
    let (mut events, mut payload_bytes) = (0u64, 0u64);
    loop {
        let page = store.read_all(after, &EventFilter::all(), 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in &page {
            let _: ToolCalledRef<'_> = serde_json::from_slice(&event.data)?;
            payload_bytes += event.data.len() as u64;
        }
        events += page.len() as u64;
    }
    Ok(ReplayRun { events, payload_bytes, elapsed: started.elapsed() })
}
