//! Small in-memory views the API keeps current by following the log.
//!
//! A [`Follower`] subscribes to the whole log, hands every event to a [`Fold`] and publishes
//! the position it has applied, so a request that just appended can wait until the view shows
//! its own write (read your writes) and `/healthz` can tell when the view has caught up.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_store::{EventFilter, EventStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a follower waits before subscribing again after its subscription failed.
const RESUBSCRIBE_DELAY_MS: u64 = 500;

/// A view built by folding events in log order.
pub trait Fold: Send + Sync + 'static {
    /// Applies one event. Never fails: events that do not concern the view are ignored.
    fn apply(&self, event: &RecordedEvent);
}

/// A running follower: where it is, and whether it has caught up with the log as it was when
/// it started.
#[derive(Clone)]
pub struct Follower {
    position: watch::Receiver<Position>,
    caught_up_at: Position,
}

impl Follower {
    /// Starts following `store` from the beginning into `fold`. The task runs until aborted.
    pub async fn spawn(
        store: Arc<dyn EventStore>,
        fold: Arc<dyn Fold>,
        name: &'static str,
    ) -> Result<(Follower, JoinHandle<()>), rollcall_store::StoreError> {
        let caught_up_at = store.head().await?;
        let (sender, position) = watch::channel(Position::START);
        let task = tokio::spawn(follow(store, fold, sender, name));
        Ok((Follower { position, caught_up_at }, task))
    }

    /// The position of the last event applied.
    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    /// Whether the view has applied everything the log held when the follower started.
    pub fn is_caught_up(&self) -> bool {
        self.position() >= self.caught_up_at
    }

    /// Waits until the view has applied `position`; false on timeout.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let mut receiver = self.position.clone();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|p| *p >= position)).await;
        matches!(reached, Ok(Ok(_)))
    }
}

async fn follow(store: Arc<dyn EventStore>, fold: Arc<dyn Fold>, sender: watch::Sender<Position>, name: &'static str) {
    loop {
        let after = *sender.borrow();
        // Unfiltered on purpose: the position then advances over events the view ignores too,
        // so "caught up with the head" is exact.
        let mut subscription = match store.subscribe(after, EventFilter::all()).await {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(view = name, %error, "cannot subscribe to the log; retrying");
                tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_DELAY_MS)).await;
                continue;
            }
        };
        while let Some(item) = subscription.next().await {
            match item {
                Ok(event) => {
                    if event.position <= *sender.borrow() {
                        continue;
                    }
                    fold.apply(&event);
                    sender.send_replace(event.position);
                }
                Err(error) => {
                    tracing::warn!(view = name, %error, "subscription failed; subscribing again");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_DELAY_MS)).await;
    }
}
