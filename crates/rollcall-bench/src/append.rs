//! The append benchmark: durable `ToolCalled` appends from many concurrent tasks.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rollcall_store::{EventFilter, EventStore, ExpectedRevision, Position, StoreError};

use crate::workload::{TokenStream, tool_called};

/// What one append run measured.
#[derive(Clone, Copy, Debug)]
pub struct AppendRun {
    /// Events acknowledged.
    pub events: u64,
    /// Payload bytes acknowledged.
    pub payload_bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl AppendRun {
    /// Acknowledged events per second.
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// Appends `events` single-event `ToolCalled` appends from `tasks` concurrent tasks to any
/// backend, each task waiting for its acknowledgement before the next append, as the gateway
/// does. An `Overloaded` answer is retried after a short pause and not counted.
pub async fn run_append(
    store: Arc<dyn EventStore>,
    tokens: Arc<Vec<TokenStream>>,
    events: u64,
    tasks: usize,
) -> anyhow::Result<AppendRun> {
    let per_task = events / tasks as u64;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let store = store.clone();
            let tokens = tokens.clone();
            tokio::spawn(async move {
                let mut bytes = 0u64;
                for n in 0..per_task {
                    let token = &tokens[(task as u64 * 7919 + n * 31) as usize % tokens.len()];
                    let event = tool_called(token, n);
                    bytes += event.data.len() as u64;
                    loop {
                        match store.append(&token.stream, ExpectedRevision::Any, vec![event.clone()]).await {
                            Ok(_) => break,
                            Err(StoreError::Overloaded(_)) => tokio::time::sleep(Duration::from_millis(1)).await,
                            Err(e) => return Err(anyhow::Error::from(e)),
                        }
                    }
                }
                Ok(bytes)
            })
        })
        .collect();
    let mut payload_bytes = 0;
    for handle in handles {
        payload_bytes += handle.await.context("append task panicked")??;
    }
    Ok(AppendRun { events: per_task * tasks as u64, payload_bytes, elapsed: started.elapsed() })
}

/// How long a new subscription from the start takes to deliver the first `events` events of
/// `store`, as a projection catching up with the log does.
pub async fn catch_up(store: &dyn EventStore, events: u64) -> anyhow::Result<Duration> {
    use futures::StreamExt;
    let started = Instant::now();
    let mut subscription = store.subscribe(Position::START, EventFilter::all()).await?;
    for delivered in 0..events {
        match tokio::time::timeout(CATCH_UP_WAIT, subscription.next()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(anyhow::Error::from(e).context(format!("after {delivered} events"))),
            Ok(None) => anyhow::bail!("the subscription ended after {delivered} of {events} events"),
            Err(_) => anyhow::bail!(
                "the subscription delivered {delivered} of {events} events, then nothing for {} s",
                CATCH_UP_WAIT.as_secs()
            ),
        }
    }
    Ok(started.elapsed())
}

/// Longest wait for the next event while catching up.
const CATCH_UP_WAIT: Duration = Duration::from_secs(60);

/// Bytes of every file directly in `dir`.
pub fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// The disk's own limit for this workload: `bytes` written sequentially in 256 KiB chunks,
/// each followed by `fdatasync`. Returns bytes per second.
pub fn disk_limit_bytes_per_s(dir: &Path, bytes: u64) -> anyhow::Result<f64> {
    use std::io::Write;
    const CHUNK_BYTES: usize = 256 * 1024;
    let path = dir.join("disk-limit.tmp");
    let mut file = std::fs::File::create(&path)?;
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let chunks = bytes.div_ceil(CHUNK_BYTES as u64).max(16);
    let started = Instant::now();
    for _ in 0..chunks {
        file.write_all(&chunk)?;
        file.sync_data()?;
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok((chunks * CHUNK_BYTES as u64) as f64 / elapsed.as_secs_f64())
}
