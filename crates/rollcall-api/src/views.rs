//! What the API reads besides the aggregate streams: how far the token validity projection has
//! got (a revocation answers only once it is there) and tool-call usage (member list,
//! analytics). Both are ports over the projectors the server runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollcall_analytics::AnalyticsView;
use rollcall_core::envelope::Position;
use rollcall_projection::{ProjectorHandle, parse_position};
use uuid::Uuid;

use crate::error::ApiError;

/// How far a projection has applied the log.
#[async_trait]
pub trait ProjectionWatch: Send + Sync + 'static {
    /// Waits until the view reflects every event up to `position`; false on timeout.
    async fn wait_for(&self, position: Position, timeout: Duration) -> bool;
    /// Whether the view has caught up with the log as it was when the server started.
    fn is_caught_up(&self) -> bool;
}

/// A projector's handle, with the head of the log when it started.
#[derive(Clone)]
pub struct ProjectorWatch {
    /// The projector.
    pub handle: ProjectorHandle,
    /// The head of the log at start: the view is caught up once its checkpoint is there.
    pub caught_up_at: Position,
}

#[async_trait]
impl ProjectionWatch for ProjectorWatch {
    async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        self.handle.wait_for(position, timeout).await.is_ok()
    }
    fn is_caught_up(&self) -> bool {
        self.handle.checkpoint().is_some_and(|c| c >= self.caught_up_at)
    }
}

/// Usage of one member or bot.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Tool calls made.
    pub tool_calls: u64,
    /// Calls that ended in an error or could not reach the upstream.
    pub errors: u64,
    /// Requests refused by the rate limit.
    pub rate_limited: u64,
    /// Requests refused because the token was revoked.
    pub denied: u64,
    /// Last tool call.
    pub last_active_at: Option<DateTime<Utc>>,
    /// Calls per tool.
    pub tools: BTreeMap<String, u64>,
}

/// Tool-call usage per member or bot.
#[async_trait]
pub trait UsageView: Send + Sync + 'static {
    /// The usage of a member (by member id) or bot (by bot id); zero when it never called.
    async fn usage(&self, subject_id: Uuid) -> Result<Usage, ApiError>;
    /// Whether the view has caught up with the log as it was when the server started.
    fn is_caught_up(&self) -> bool;
}

/// [`UsageView`] over the analytics projection (in process or in Redis).
pub struct AnalyticsUsage {
    /// The analytics read model.
    pub view: Arc<dyn AnalyticsView>,
    /// How far it has got: its projector here, or its checkpoint in Redis when another
    /// process projects.
    pub watch: Arc<dyn ProjectionWatch>,
}

#[async_trait]
impl UsageView for AnalyticsUsage {
    async fn usage(&self, subject_id: Uuid) -> Result<Usage, ApiError> {
        let subject = self.view.subject(subject_id).await.map_err(|e| ApiError::ViewUnavailable(e.to_string()))?;
        Ok(subject
            .map(|s| Usage {
                tool_calls: s.calls_total,
                errors: s.errors,
                rate_limited: s.rate_limited,
                denied: s.denied,
                last_active_at: s.last_active_at(),
                tools: s.calls_per_tool.clone(),
            })
            .unwrap_or_default())
    }
    fn is_caught_up(&self) -> bool {
        self.watch.is_caught_up()
    }
}

/// How often a wait on a Redis checkpoint looks again.
pub const CHECKPOINT_POLL_INTERVAL_MS: u64 = 5;
/// How often the readiness of a Redis checkpoint is looked at until it is caught up.
pub const READINESS_POLL_INTERVAL_MS: u64 = 200;

/// A projection written by another process (`rollcall project`), followed through its
/// checkpoint in Redis, `{P}checkpoint:<name>`.
pub struct RedisCheckpointWatch {
    conn: redis::aio::ConnectionManager,
    key: String,
    caught_up: Arc<std::sync::atomic::AtomicBool>,
    _poller: AbortOnDrop,
}

impl RedisCheckpointWatch {
    /// Follows `{prefix}checkpoint:{name}`; it counts as caught up once it reaches `head`.
    pub fn spawn(
        conn: redis::aio::ConnectionManager,
        prefix: &str,
        name: &str,
        head: Position,
    ) -> RedisCheckpointWatch {
        let key = format!("{prefix}checkpoint:{name}");
        let caught_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = tokio::spawn({
            let (conn, key, caught_up) = (conn.clone(), key.clone(), caught_up.clone());
            async move {
                loop {
                    if read_checkpoint(&conn, &key).await.is_some_and(|c| c >= head) {
                        caught_up.store(true, std::sync::atomic::Ordering::Release);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(READINESS_POLL_INTERVAL_MS)).await;
                }
            }
        });
        RedisCheckpointWatch { conn, key, caught_up, _poller: AbortOnDrop(poller) }
    }

    /// The checkpoint now; `None` when absent (not built, lost) or Redis cannot be read.
    pub async fn checkpoint(&self) -> Option<Position> {
        read_checkpoint(&self.conn, &self.key).await
    }
}

#[async_trait]
impl ProjectionWatch for RedisCheckpointWatch {
    async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.checkpoint().await.is_some_and(|c| c >= position) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep_until(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(CHECKPOINT_POLL_INTERVAL_MS)),
            )
            .await;
        }
    }
    fn is_caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Acquire)
    }
}

async fn read_checkpoint(conn: &redis::aio::ConnectionManager, key: &str) -> Option<Position> {
    let value: Option<String> = match redis::cmd("GET").arg(key).query_async(&mut conn.clone()).await {
        Ok(value) => value,
        Err(e) => {
            tracing::warn!(error = %e, key, "cannot read a projection checkpoint from redis");
            return None;
        }
    };
    value.as_deref().and_then(parse_position)
}

/// Aborts a background task when its owner is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
