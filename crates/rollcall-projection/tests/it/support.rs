//! Shared helpers: Redis connections, unique prefixes, a store that delivers duplicates.

use std::collections::VecDeque;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use rollcall_core::envelope::{NewEvent, Position, RecordedEvent};
use rollcall_store::{AppendResult, EventFilter, EventStore, ExpectedRevision, MemoryStore, StoreError, Subscription};

/// The Redis URL of the tests.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The same server, logical database `db`.
pub fn redis_url_db(db: u8) -> String {
    let url = redis_url();
    let base = match url.rsplit_once('/') {
        Some((head, tail)) if tail.chars().all(|c| c.is_ascii_digit()) && head.ends_with(|c: char| c != '/') => {
            head.to_owned()
        }
        _ => url,
    };
    format!("{base}/{db}")
}

/// Connects, or panics saying how to start Redis.
pub async fn redis_at(url: &str) -> ConnectionManager {
    match rollcall_projection::connect_redis(url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "cannot connect to redis at {url} ({e}): start one with `redis-server --daemonize yes --port 6379 --save \"\" --appendonly no` or set REDIS_URL"
        ),
    }
}

/// Connects to the default test Redis.
pub async fn redis() -> ConnectionManager {
    redis_at(&redis_url()).await
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("test:{test}:{}:{nanos}:", std::process::id())
}

/// A memory store whose subscriptions deliver some events twice, and some earlier events again,
/// as an at-least-once transport may after a reconnect.
#[derive(Clone)]
pub struct Duplicating {
    pub inner: MemoryStore,
    pub seed: u64,
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[async_trait]
impl EventStore for Duplicating {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(&self, stream: &str, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, max).await
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &EventFilter,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, filter, max).await
    }

    async fn subscribe(&self, after: Position, filter: EventFilter) -> Result<Subscription, StoreError> {
        let inner = self.inner.subscribe(after, filter).await?;
        let mut rng = self.seed | 1;
        let mut recent: VecDeque<RecordedEvent> = VecDeque::new();
        Ok(Box::pin(inner.flat_map(move |item| {
            let mut out = Vec::new();
            match item {
                Ok(event) => {
                    rng = xorshift(rng);
                    out.push(Ok(event.clone()));
                    if rng.is_multiple_of(4) && !recent.is_empty() {
                        out.push(Ok(recent[(rng >> 8) as usize % recent.len()].clone()));
                    }
                    if rng.is_multiple_of(7) {
                        out.push(Ok(event.clone()));
                    }
                    recent.push_back(event);
                    if recent.len() > 8 {
                        recent.pop_front();
                    }
                }
                Err(e) => out.push(Err(e)),
            }
            futures::stream::iter(out)
        })))
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }
}
