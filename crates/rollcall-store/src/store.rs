//! The event store contract: one trait that every backend implements.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use rollcall_core::envelope::{NewEvent, Position, RecordedEvent};

use crate::error::StoreError;

/// What the writer expects the stream's current revision to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must exist (have at least one event).
    StreamExists,
    /// The stream's last event must have exactly this revision.
    Exact(u64),
}

/// The outcome of a successful append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// The revision of the last event of the stream after the append.
    pub next_expected_revision: u64,
    /// The global position of the last event written (or found, for an idempotent retry).
    pub position: Position,
}

/// Which events a read of the whole log or a subscription delivers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only streams whose name starts with one of these (all when empty).
    pub stream_prefixes: Vec<String>,
    /// Only these event types (all when empty).
    pub event_types: Vec<String>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> EventFilter {
        EventFilter::default()
    }

    /// Whether an event passes the filter.
    pub fn matches(&self, stream: &str, event_type: &str) -> bool {
        (self.stream_prefixes.is_empty() || self.stream_prefixes.iter().any(|p| stream.starts_with(p.as_str())))
            && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
    }
}

/// A live subscription: events in global order, catch-up first, then live, never skipping one.
///
/// The stream is backed by a bounded buffer: a subscriber that does not poll stops the backend
/// from reading further for it, so a slow subscriber never grows memory without bound.
pub type Subscription = Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>;

/// The contract every backend implements.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events to one stream atomically, if the stream's revision is as expected.
    ///
    /// Appending events whose ids are already in the stream, in the same order, is an idempotent
    /// retry: nothing is written and the original result is returned.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Reads a stream forwards from `from_revision` (inclusive), at most `max_count` events.
    /// A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads the whole log forwards from *after* `after`, at most `max_count` matching events.
    async fn read_all(
        &self,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Subscribes to the whole log from *after* `after`: catch up, then live.
    async fn subscribe(&self, after: Position, filter: EventFilter) -> Result<Subscription, StoreError>;

    /// The position of the last event in the log (`Position::START` when empty).
    async fn head(&self) -> Result<Position, StoreError>;
}
