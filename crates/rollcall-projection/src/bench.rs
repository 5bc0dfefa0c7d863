//! Whole-log rebuilds for benchmarks and operators: read the log once, decode each event once,
//! feed every projection's staging generation, then promote them all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_store::{EventFilter, EventStore};

use crate::error::ProjectionError;
use crate::event::ProjectedEvent;
use crate::projection::{Generation, Projection};

/// Events read per page, and so per batch applied.
pub const REBUILD_PAGE_EVENTS: usize = 10_000;

/// What a rebuild or a bare read did and how fast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RebuildStats {
    /// Events read from the log.
    pub events_read: u64,
    /// Events decoded (wanted by at least one projection).
    pub events_decoded: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// `events_read / elapsed`.
    pub events_per_s: f64,
    /// The position every projection reached.
    pub position: Position,
}

impl RebuildStats {
    fn new(events_read: u64, events_decoded: u64, started: Instant, position: Position) -> RebuildStats {
        let elapsed = started.elapsed();
        RebuildStats {
            events_read,
            events_decoded,
            elapsed,
            events_per_s: events_read as f64 / elapsed.as_secs_f64().max(1e-9),
            position,
        }
    }
}

/// Reads the whole log in pages without projecting anything (the floor for any rebuild).
pub async fn read_log(store: &dyn EventStore, page_events: usize) -> Result<RebuildStats, ProjectionError> {
    let started = Instant::now();
    let mut after = Position::START;
    let mut events_read = 0u64;
    loop {
        let page = store.read_all(after, &EventFilter::all(), page_events).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        events_read += page.len() as u64;
    }
    Ok(RebuildStats::new(events_read, 0, started, after))
}

/// Threads a page is decoded on.
pub const DECODE_THREADS: usize = 2;

/// Decodes events on [`DECODE_THREADS`] blocking threads, keeping their order.
async fn decode_parallel(events: Vec<RecordedEvent>) -> Result<Vec<ProjectedEvent>, ProjectionError> {
    let chunk_events = events.len().div_ceil(DECODE_THREADS).max(1);
    let mut tasks = Vec::with_capacity(DECODE_THREADS);
    let mut rest = events;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk_events.min(rest.len()));
        let chunk = std::mem::replace(&mut rest, tail);
        tasks.push(tokio::task::spawn_blocking(move || {
            chunk.iter().map(ProjectedEvent::decode).collect::<Result<Vec<_>, _>>()
        }));
    }
    let mut decoded = Vec::new();
    for task in tasks {
        let part = task.await.map_err(|e| ProjectionError::Malformed(format!("decoder task failed: {e}")))??;
        decoded.extend(part);
    }
    Ok(decoded)
}

/// Rebuilds every projection from zero into its staging generation and promotes them all.
///
/// A three-stage pipeline: while the projections apply page `n`, page `n + 1` is decoded (on
/// [`DECODE_THREADS`] threads) and page `n + 2` is read. At most three pages are in memory.
pub async fn rebuild_all(
    store: Arc<dyn EventStore>,
    targets: &[Arc<dyn Projection>],
    page_events: usize,
) -> Result<RebuildStats, ProjectionError> {
    let started = Instant::now();
    for target in targets {
        target.reset_staging().await?;
    }
    let page_events = page_events.max(1);
    let wanted: Arc<dyn Fn(&str) -> bool + Send + Sync> = {
        let targets: Vec<Arc<dyn Projection>> = targets.to_vec();
        Arc::new(move |event_type: &str| targets.iter().any(|t| t.wants(event_type)))
    };
    let mut checkpoint = Position::START;
    let mut events_read = 0u64;
    let mut events_decoded = 0u64;
    let read = |after: Position| {
        let store = store.clone();
        tokio::spawn(async move { store.read_all(after, &EventFilter::all(), page_events).await })
    };
    // Decodes a page in the background; yields its events and the position it ends at.
    let decode = |page: Vec<RecordedEvent>, to: Position| {
        let wanted = wanted.clone();
        tokio::spawn(async move {
            let page: Vec<_> = page.into_iter().filter(|e| wanted(&e.event_type)).collect();
            decode_parallel(page).await.map(|decoded| (decoded, to))
        })
    };
    let mut next_read = read(checkpoint);
    let mut decoding = None;
    loop {
        let page =
            (&mut next_read).await.map_err(|e| ProjectionError::Malformed(format!("reader task failed: {e}")))??;
        let next_decoding = match page.last() {
            Some(last) => {
                let to = last.position;
                next_read = read(to);
                events_read += page.len() as u64;
                Some(decode(page, to))
            }
            None => None,
        };
        let done = next_decoding.is_none();
        if let Some(previous) = std::mem::replace(&mut decoding, next_decoding) {
            let (decoded, to) =
                previous.await.map_err(|e| ProjectionError::Malformed(format!("decoder task failed: {e}")))??;
            events_decoded += decoded.len() as u64;
            let applies = targets.iter().map(|t| t.apply(Generation::Staging, checkpoint, &decoded, to));
            for result in futures::future::join_all(applies).await {
                result?;
            }
            checkpoint = to;
        }
        if done {
            break;
        }
    }
    for target in targets {
        target.promote_staging().await?;
    }
    Ok(RebuildStats::new(events_read, events_decoded, started, checkpoint))
}
