//! Where each workspace's upstream MCP server is.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rollcall_core::WorkspaceId;
use rollcall_core::catalogue::WORKSPACE_STREAM_PREFIX;
use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_core::events::Event;
use rollcall_store::{EventFilter, EventStore, StoreError};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::follow;

/// Upstream events the directory applies.
const UPSTREAM_EVENT_TYPES: &[&str] = &["UpstreamSet", "WorkspaceDeleted"];

/// Gives a workspace's upstream MCP server URL. Called on every request: keep it in memory.
pub trait UpstreamDirectory: Send + Sync + 'static {
    /// The URL, or `None` when the workspace has no upstream set.
    fn upstream(&self, workspace_id: WorkspaceId) -> Option<String>;
}

/// The upstream URLs, kept up to date by following the event store.
pub struct StoreUpstreams {
    urls: RwLock<HashMap<WorkspaceId, String>>,
    applied: watch::Sender<Position>,
    _stop: DropGuard,
}

impl StoreUpstreams {
    /// Catches up with the store, then follows it until dropped.
    pub async fn follow(store: Arc<dyn EventStore>) -> Result<Arc<StoreUpstreams>, StoreError> {
        let cancel = CancellationToken::new();
        let upstreams = Arc::new(StoreUpstreams {
            urls: RwLock::new(HashMap::new()),
            applied: watch::channel(Position::START).0,
            _stop: cancel.clone().drop_guard(),
        });
        let weak = Arc::downgrade(&upstreams);
        let filter = EventFilter {
            stream_prefixes: vec![WORKSPACE_STREAM_PREFIX.to_owned()],
            event_types: UPSTREAM_EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        };
        follow::follow(store, filter, upstreams.applied.clone(), cancel, move |event| {
            if let Some(upstreams) = weak.upgrade() {
                upstreams.apply(event);
            }
        })
        .await?;
        Ok(upstreams)
    }

    /// Waits until the upstream event at `position` is applied, at most `timeout`.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        follow::wait_for(&self.applied, position, timeout).await
    }

    fn apply(&self, recorded: &RecordedEvent) {
        let mut urls = self.urls.write().unwrap_or_else(|e| e.into_inner());
        match Event::from_recorded(recorded) {
            Ok(Event::UpstreamSet(e)) => {
                urls.insert(e.workspace_id, e.url);
            }
            Ok(Event::WorkspaceDeleted(e)) => {
                urls.remove(&e.workspace_id);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, stream = %recorded.stream, "cannot decode an upstream event; skipping it")
            }
        }
    }
}

impl UpstreamDirectory for StoreUpstreams {
    fn upstream(&self, workspace_id: WorkspaceId) -> Option<String> {
        self.urls.read().unwrap_or_else(|e| e.into_inner()).get(&workspace_id).cloned()
    }
}

/// A fixed map of upstreams, for embedding the gateway where the URLs are known up front.
#[derive(Default)]
pub struct FixedUpstreams {
    urls: HashMap<WorkspaceId, String>,
}

impl FixedUpstreams {
    /// An empty map.
    pub fn new() -> FixedUpstreams {
        FixedUpstreams::default()
    }

    /// Adds a workspace's upstream.
    pub fn with(mut self, workspace_id: WorkspaceId, url: impl Into<String>) -> FixedUpstreams {
        self.urls.insert(workspace_id, url.into());
        self
    }
}

impl UpstreamDirectory for FixedUpstreams {
    fn upstream(&self, workspace_id: WorkspaceId) -> Option<String> {
        self.urls.get(&workspace_id).cloned()
    }
}
