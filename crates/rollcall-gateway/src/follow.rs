//! Following the event store: catch up, then live, resubscribing after errors.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_store::{EventFilter, EventStore};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long to wait before resubscribing after the store failed.
const RESUBSCRIBE_DELAY_MS: u64 = 200;
/// Events read per page while catching up.
const CATCH_UP_PAGE_EVENTS: usize = 1000;

/// Reads everything up to the store's head now, then keeps applying new events in a task until
/// `cancel` fires. Returns once the catch-up is done, so a caller starts with a complete view.
/// `applied` is advanced after every event, for read-your-writes waits.
pub(crate) async fn follow(
    store: Arc<dyn EventStore>,
    filter: EventFilter,
    applied: watch::Sender<Position>,
    cancel: CancellationToken,
    mut apply: impl FnMut(&RecordedEvent) + Send + 'static,
) -> Result<(), rollcall_store::StoreError> {
    let head = store.head().await?;
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, &filter, CATCH_UP_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        let last_position = last.position;
        for event in &page {
            apply(event);
        }
        after = last_position;
        applied.send_replace(after);
    }
    // Everything matching up to the head has been applied, so the view is complete as of it.
    applied.send_replace(after.max(head));
    // The subscription starts after the last applied event: nothing between is skipped.
    let mut subscription = store.subscribe(after, filter.clone()).await?;
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                next = subscription.next() => next,
            };
            match next {
                Some(Ok(event)) => {
                    apply(&event);
                    after = event.position;
                    // Never move backwards past the head the catch-up reported.
                    applied.send_if_modified(|applied| {
                        let moved = after > *applied;
                        if moved {
                            *applied = after;
                        }
                        moved
                    });
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "event subscription failed; resubscribing");
                    subscription = loop {
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_DELAY_MS)) => {}
                        }
                        match store.subscribe(after, filter.clone()).await {
                            Ok(s) => break s,
                            Err(e) => tracing::warn!(error = %e, "resubscribing to the event store failed; retrying"),
                        }
                    };
                }
                None => return,
            }
        }
    });
    Ok(())
}

/// Waits until `applied` reaches `position`, at most `timeout`. Returns whether it did.
pub(crate) async fn wait_for(applied: &watch::Sender<Position>, position: Position, timeout: Duration) -> bool {
    let mut receiver = applied.subscribe();
    tokio::time::timeout(timeout, receiver.wait_for(|p| *p >= position)).await.is_ok_and(|r| r.is_ok())
}
