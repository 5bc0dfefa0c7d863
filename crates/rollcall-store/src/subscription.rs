//! Catch-up-then-live subscriptions for backends with one global sequence and a head watch.
//!
//! A subscription is pull-based: it reads one page from the log when its buffer is empty and
//! waits on the head watch when it has caught up. Nothing is pushed to it, so a subscriber that
//! stops polling holds at most one page in memory and never slows the writers down.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use rollcall_core::envelope::{Position, RecordedEvent};
use tokio::sync::watch;

use crate::error::StoreError;
use crate::store::{EventFilter, Subscription};

/// Events a subscription buffers at most.
pub(crate) const SUBSCRIPTION_PAGE_EVENTS: usize = 512;

/// One page of a filtered scan of the log.
pub(crate) struct Page {
    /// The matching events, in order.
    pub events: Vec<RecordedEvent>,
    /// The last position the scan looked at (matching or not); the next scan starts after it.
    pub scanned_to: Position,
}

/// A log that can be scanned page by page.
pub(crate) trait PageSource: Send + Sync + 'static {
    /// Scans after `after`, returning at most `max_count` matching events.
    fn read_page(
        self: Arc<Self>,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
}

struct State<S> {
    source: Arc<S>,
    head: watch::Receiver<Position>,
    after: Position,
    filter: EventFilter,
    buffer: VecDeque<RecordedEvent>,
    done: bool,
}

/// Builds a subscription over a page source and its head watch.
pub(crate) fn subscribe<S: PageSource>(
    source: Arc<S>,
    head: watch::Receiver<Position>,
    after: Position,
    filter: EventFilter,
) -> Subscription {
    let state = State { source, head, after, filter, buffer: VecDeque::new(), done: false };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some(event) = st.buffer.pop_front() {
                return Some((Ok(event), st));
            }
            // Marking the head as seen before reading means a change published during the read
            // wakes the wait below, so no append is ever missed.
            let head = *st.head.borrow_and_update();
            if st.after < head {
                match st.source.clone().read_page(st.after, &st.filter, SUBSCRIPTION_PAGE_EVENTS).await {
                    Ok(page) => {
                        st.after = st.after.max(page.scanned_to);
                        st.buffer.extend(page.events);
                        continue;
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
            if st.head.changed().await.is_err() {
                st.done = true;
                let closed = StoreError::SubscriptionClosed("the event store was closed".into());
                return Some((Err(closed), st));
            }
        }
    }))
}
