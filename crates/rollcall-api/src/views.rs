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
use rollcall_projection::ProjectorHandle;
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
    /// Its projector.
    pub watch: ProjectorWatch,
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
