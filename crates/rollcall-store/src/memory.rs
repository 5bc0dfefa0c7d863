//! The in-memory backend: the whole contract, no durability. For tests and examples.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use rollcall_core::envelope::{NewEvent, Position, RecordedEvent};
use tokio::sync::watch;
use uuid::Uuid;

use crate::decide::{Decision, IdLocation, decide};
use crate::error::StoreError;
use crate::limits::Limits;
use crate::store::{AppendResult, EventFilter, EventStore, ExpectedRevision, Subscription};
use crate::subscription::{self, Page, PageSource};

/// An event store held in memory; dropped with the process.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: RwLock<State>,
    head: watch::Sender<Position>,
    limits: Limits,
}

#[derive(Default)]
struct State {
    /// Every event; the event at position `n` is at index `n - 1`.
    events: Vec<RecordedEvent>,
    /// Stream name to the indexes of its events, in revision order.
    streams: HashMap<String, Vec<usize>>,
    /// Event id to its index.
    ids: HashMap<Uuid, usize>,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store with the default limits.
    pub fn new() -> MemoryStore {
        MemoryStore::with_limits(Limits::default())
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> MemoryStore {
        let (head, _) = watch::channel(Position::START);
        MemoryStore { shared: Arc::new(Shared { state: RwLock::new(State::default()), head, limits }) }
    }
}

impl Shared {
    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated (every update is
        // pushes after all checks), so a poisoned lock is still consistent.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl PageSource for Shared {
    async fn read_page(
        self: Arc<Self>,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Page, StoreError> {
        let state = self.read_lock();
        let start = usize::try_from(after.sequence()).unwrap_or(usize::MAX).min(state.events.len());
        let mut events = Vec::new();
        let mut scanned_to = after;
        for event in &state.events[start..] {
            scanned_to = event.position;
            if filter.matches(&event.stream, &event.event_type) {
                events.push(event.clone());
                if events.len() >= max_count {
                    break;
                }
            }
        }
        Ok(Page { events, scanned_to })
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.shared.limits.check_append(stream, &events)?;
        let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
        let last_revision = state.streams.get(stream).map(|s| s.len() as u64 - 1);
        let decision = decide(stream, expected, &events, last_revision, |id| {
            state.ids.get(id).map(|&i| {
                let e = &state.events[i];
                IdLocation { same_stream: e.stream == stream, revision: e.revision, position: e.position }
            })
        })?;
        let first_revision = match decision {
            Decision::Duplicate(result) => return Ok(result),
            Decision::Write { first_revision } => first_revision,
        };
        let mut result = AppendResult { next_expected_revision: 0, position: Position::START };
        for (i, event) in events.into_iter().enumerate() {
            let index = state.events.len();
            let position = Position::from_sequence(index as u64 + 1);
            let revision = first_revision + i as u64;
            state.ids.insert(event.id, index);
            state.streams.entry(stream.to_owned()).or_default().push(index);
            state.events.push(RecordedEvent {
                id: event.id,
                stream: stream.to_owned(),
                revision,
                position,
                event_type: event.event_type,
                schema_version: event.schema_version,
                data: event.data,
                metadata: event.metadata,
            });
            result = AppendResult { next_expected_revision: revision, position };
        }
        // Published under the write lock so the head never moves backwards.
        self.shared.head.send_replace(result.position);
        drop(state);
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max_count = max_count.min(self.shared.limits.read_events_max);
        let state = self.shared.read_lock();
        let Some(indexes) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let from = usize::try_from(from_revision).unwrap_or(usize::MAX).min(indexes.len());
        Ok(indexes[from..].iter().take(max_count).map(|&i| state.events[i].clone()).collect())
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max_count = max_count.min(self.shared.limits.read_events_max);
        Ok(self.shared.clone().read_page(after, filter, max_count).await?.events)
    }

    async fn subscribe(&self, after: Position, filter: EventFilter) -> Result<Subscription, StoreError> {
        let head = self.shared.head.subscribe();
        Ok(subscription::subscribe(self.shared.clone(), head, after, filter))
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Ok(*self.shared.head.borrow())
    }
}
