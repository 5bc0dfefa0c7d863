//! The contract suite: the behaviour every [`EventStore`] backend must show, written once.
//!
//! A backend joins with one line in its integration tests, giving a factory that makes a fresh
//! store for each case:
//!
//! ```text
//! rollcall_store::contract_suite!(async || rollcall_store::MemoryStore::new());
//! ```
//!
//! The macro expands to one `#[tokio::test]` per case, named after the case, so a failure names
//! the broken rule. The calling crate needs `tokio` (with the `macros` and `rt-multi-thread`
//! features) among its dev-dependencies. A store that needs something kept alive for its
//! lifetime (a temporary directory, a database schema) can be wrapped in [`Guarded`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use rollcall_core::envelope::{Actor, Metadata, NewEvent, Position, RecordedEvent};
use uuid::Uuid;

use crate::error::StoreError;
use crate::limits::Limits;
use crate::store::{AppendResult, EventFilter, EventStore, ExpectedRevision, Subscription};

/// Expands to one `#[tokio::test]` per contract case, each with a fresh store from `$factory`.
///
/// `$factory` is an expression whose value can be called with no arguments and awaited to give
/// a store, such as an async closure `async || MemoryStore::new()`.
#[macro_export]
macro_rules! contract_suite {
    ($factory:expr) => {
        $crate::contract_suite!(@cases $factory;
            expected_any,
            expected_no_stream,
            expected_stream_exists,
            expected_exact,
            idempotent_reappend,
            reused_ids_are_refused,
            read_stream_from_revision,
            read_all_after_position_with_filters,
            head_tracks_last_position,
            subscribe_catches_up_then_goes_live,
            subscribe_with_filter,
            subscribe_from_the_middle,
            subscription_back_pressure,
            limits_are_enforced,
            concurrent_exact_appends_one_wins,
            concurrent_any_appends_keep_revisions_contiguous,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                let store = factory().await;
                $crate::contract::$case(store).await;
            }
        )*
    };
}

/// A store together with something that must live as long as it (a temporary directory, a
/// database schema to drop). Delegates every call to `store`.
pub struct Guarded<S, G> {
    /// The store.
    pub store: S,
    /// Kept alive with the store, dropped after it.
    pub guard: G,
}

#[async_trait]
impl<S: EventStore, G: Send + Sync + 'static> EventStore for Guarded<S, G> {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.store.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_stream(stream, from_revision, max_count).await
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(after, filter, max_count).await
    }

    async fn subscribe(&self, after: Position, filter: EventFilter) -> Result<Subscription, StoreError> {
        self.store.subscribe(after, filter).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.store.head().await
    }
}

/// How long any single wait in the suite may take before the case fails.
const WAIT: Duration = Duration::from_secs(30);

/// A small event of the given type with a fresh id.
pub fn event(event_type: &str) -> NewEvent {
    event_with_data(event_type, Bytes::from(format!(r#"{{"n":{}}}"#, rand_u32())))
}

/// An event of the given type and JSON payload with a fresh id.
pub fn event_with_data(event_type: &str, data: Bytes) -> NewEvent {
    NewEvent {
        id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        data,
        metadata: Metadata {
            actor: Actor::System,
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            recorded_at: Utc::now(),
        },
    }
}

fn rand_u32() -> u32 {
    Uuid::new_v4().as_u128() as u32
}

/// A stream name no other case uses, so the suite also works on a shared database.
fn unique(tag: &str) -> String {
    format!("{tag}-{}", Uuid::new_v4().simple())
}

fn events(n: usize, event_type: &str) -> Vec<NewEvent> {
    (0..n).map(|_| event(event_type)).collect()
}

fn assert_conflict(
    result: Result<AppendResult, StoreError>,
    want_expected: ExpectedRevision,
    want_actual: Option<u64>,
) {
    match result {
        Err(StoreError::WrongExpectedRevision { expected, actual, .. }) => {
            assert_eq!(expected, want_expected, "the conflict reports what the writer expected");
            assert_eq!(actual, want_actual, "the conflict reports the stream's actual revision");
        }
        other => panic!("expected WrongExpectedRevision, got {other:?}"),
    }
}

async fn read_everything<S: EventStore + ?Sized>(
    store: &S,
    after: Position,
    filter: &EventFilter,
) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let page = store.read_all(after, filter, 1000).await.expect("read_all");
        let Some(last) = page.last() else { break };
        after = last.position;
        out.extend(page);
    }
    out
}

async fn take_events(sub: &mut Subscription, n: usize) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription delivered {} of {n} events before timing out", out.len()));
        match next {
            Some(Ok(e)) => out.push(e),
            Some(Err(e)) => panic!("subscription failed after {} events: {e}", out.len()),
            None => panic!("subscription ended after {} of {n} events", out.len()),
        }
    }
    out
}

fn assert_strictly_increasing(events: &[RecordedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions must strictly increase: {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

/// `Any` appends to new and existing streams; revisions count from 0.
pub async fn expected_any<S: EventStore>(store: S) {
    let stream = unique("any");
    let r = store.append(&stream, ExpectedRevision::Any, events(2, "A")).await.expect("append to a new stream");
    assert_eq!(r.next_expected_revision, 1);
    let r2 = store.append(&stream, ExpectedRevision::Any, events(1, "A")).await.expect("append again");
    assert_eq!(r2.next_expected_revision, 2);
    assert!(r2.position > r.position);
    let read = store.read_stream(&stream, 0, 100).await.expect("read");
    assert_eq!(read.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_strictly_increasing(&read);
    assert_eq!(read[2].position, r2.position, "the result names the position of the last event");
    assert!(read.iter().all(|e| e.stream == stream));
}

/// `NoStream` creates a stream once and conflicts afterwards.
pub async fn expected_no_stream<S: EventStore>(store: S) {
    let stream = unique("nostream");
    let r = store.append(&stream, ExpectedRevision::NoStream, events(1, "A")).await.expect("create");
    assert_eq!(r.next_expected_revision, 0);
    let again = store.append(&stream, ExpectedRevision::NoStream, events(1, "A")).await;
    assert_conflict(again, ExpectedRevision::NoStream, Some(0));
    assert_eq!(store.read_stream(&stream, 0, 10).await.expect("read").len(), 1, "a conflict writes nothing");
}

/// `StreamExists` conflicts on a missing stream and appends to an existing one.
pub async fn expected_stream_exists<S: EventStore>(store: S) {
    let stream = unique("exists");
    let missing = store.append(&stream, ExpectedRevision::StreamExists, events(1, "A")).await;
    assert_conflict(missing, ExpectedRevision::StreamExists, None);
    store.append(&stream, ExpectedRevision::NoStream, events(1, "A")).await.expect("create");
    let r = store.append(&stream, ExpectedRevision::StreamExists, events(2, "A")).await.expect("append");
    assert_eq!(r.next_expected_revision, 2);
}

/// `Exact(n)` appends only when the stream's last revision is `n`.
pub async fn expected_exact<S: EventStore>(store: S) {
    let stream = unique("exact");
    let missing = store.append(&stream, ExpectedRevision::Exact(0), events(1, "A")).await;
    assert_conflict(missing, ExpectedRevision::Exact(0), None);
    store.append(&stream, ExpectedRevision::NoStream, events(1, "A")).await.expect("create");
    let r = store.append(&stream, ExpectedRevision::Exact(0), events(1, "A")).await.expect("exact 0");
    assert_eq!(r.next_expected_revision, 1);
    let stale = store.append(&stream, ExpectedRevision::Exact(0), events(1, "A")).await;
    assert_conflict(stale, ExpectedRevision::Exact(0), Some(1));
    let ahead = store.append(&stream, ExpectedRevision::Exact(5), events(1, "A")).await;
    assert_conflict(ahead, ExpectedRevision::Exact(5), Some(1));
    let r = store.append(&stream, ExpectedRevision::Exact(1), events(3, "A")).await.expect("exact 1");
    assert_eq!(r.next_expected_revision, 4);
    assert_eq!(store.read_stream(&stream, 0, 100).await.expect("read").len(), 5);
}

/// Re-appending the same event ids returns the original result and writes nothing.
pub async fn idempotent_reappend<S: EventStore>(store: S) {
    let stream = unique("idem");
    let batch = events(3, "A");
    let first = store.append(&stream, ExpectedRevision::NoStream, batch.clone()).await.expect("append");
    let head = store.head().await.expect("head");
    let retry = store
        .append(&stream, ExpectedRevision::NoStream, batch.clone())
        .await
        .expect("retry with the same expectation");
    assert_eq!(retry, first, "a retry returns the original result");
    let retry_any = store.append(&stream, ExpectedRevision::Any, batch.clone()).await.expect("retry with any");
    assert_eq!(retry_any, first);
    store.append(&stream, ExpectedRevision::Any, events(2, "A")).await.expect("more events");
    let late = store.append(&stream, ExpectedRevision::NoStream, batch.clone()).await.expect("late retry");
    assert_eq!(late, first, "a retry after later appends still returns the original result");
    let read = store.read_stream(&stream, 0, 100).await.expect("read");
    assert_eq!(read.len(), 5, "retries wrote nothing");
    let unique_ids: HashSet<Uuid> = read.iter().map(|e| e.id).collect();
    assert_eq!(unique_ids.len(), 5);
    assert!(store.head().await.expect("head") > head);
    let single = event("A");
    let s1 = store.append(&stream, ExpectedRevision::Exact(4), vec![single.clone()]).await.expect("single");
    let s2 = store.append(&stream, ExpectedRevision::Exact(4), vec![single]).await.expect("single retry");
    assert_eq!(s1, s2);
}

/// Ids already used by a different append are refused rather than silently dropped.
pub async fn reused_ids_are_refused<S: EventStore>(store: S) {
    let stream = unique("reuse");
    let batch = events(2, "A");
    store.append(&stream, ExpectedRevision::Any, batch.clone()).await.expect("append");
    let partial = vec![batch[0].clone(), event("A")];
    assert!(matches!(store.append(&stream, ExpectedRevision::Any, partial).await, Err(StoreError::Invalid(_))));
    let other = unique("reuse-other");
    assert!(matches!(store.append(&other, ExpectedRevision::Any, batch.clone()).await, Err(StoreError::Invalid(_))));
    let e = event("A");
    assert!(matches!(
        store.append(&stream, ExpectedRevision::Any, vec![e.clone(), e]).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.read_stream(&stream, 0, 100).await.expect("read").len(), 2);
    assert!(store.read_stream(&other, 0, 100).await.expect("read").is_empty());
}

/// A stream reads forwards from a revision, at most `max_count` events.
pub async fn read_stream_from_revision<S: EventStore>(store: S) {
    let stream = unique("rs");
    let noise = unique("rs-noise");
    for _ in 0..5 {
        store.append(&stream, ExpectedRevision::Any, events(2, "A")).await.expect("append");
        store.append(&noise, ExpectedRevision::Any, events(1, "B")).await.expect("append noise");
    }
    let page = store.read_stream(&stream, 3, 4).await.expect("read");
    assert_eq!(page.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
    assert_strictly_increasing(&page);
    let tail = store.read_stream(&stream, 8, 100).await.expect("read");
    assert_eq!(tail.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![8, 9]);
    assert!(store.read_stream(&stream, 10, 100).await.expect("read").is_empty());
    assert!(store.read_stream(&unique("missing"), 0, 100).await.expect("read").is_empty());
    let all = store.read_stream(&stream, 0, 100).await.expect("read");
    assert_eq!(all.len(), 10);
    assert!(all.iter().all(|e| e.stream == stream && e.event_type == "A"));
}

/// The whole log reads after a position, filtered by stream prefix and event type.
pub async fn read_all_after_position_with_filters<S: EventStore>(store: S) {
    let tag = unique("ra");
    let alpha1 = format!("{tag}-alpha-1");
    let alpha2 = format!("{tag}-alpha-2");
    let beta = format!("{tag}-beta-1");
    let mut written = Vec::new();
    for round in 0..4 {
        for (stream, t) in [(&alpha1, "A"), (&alpha2, "B"), (&beta, if round % 2 == 0 { "A" } else { "B" })] {
            let e = event(t);
            written.push((e.id, stream.clone(), t));
            store.append(stream, ExpectedRevision::Any, vec![e]).await.expect("append");
        }
    }
    let all = read_everything(&store, Position::START, &EventFilter::all()).await;
    assert_strictly_increasing(&all);
    let mine: Vec<&RecordedEvent> = all.iter().filter(|e| e.stream.starts_with(&tag)).collect();
    assert_eq!(mine.iter().map(|e| e.id).collect::<Vec<_>>(), written.iter().map(|w| w.0).collect::<Vec<_>>());

    let after = mine[2].position;
    let rest = read_everything(&store, after, &EventFilter::all()).await;
    assert!(rest.iter().all(|e| e.position > after), "read_all starts strictly after the position");
    assert_eq!(rest.first().map(|e| e.id), Some(mine[3].id));

    let alpha = EventFilter { stream_prefixes: vec![format!("{tag}-alpha-")], event_types: vec![] };
    let got = read_everything(&store, Position::START, &alpha).await;
    assert_eq!(ids(&got), written.iter().filter(|w| w.1.contains("-alpha-")).map(|w| w.0).collect::<Vec<_>>());

    let type_b = EventFilter { stream_prefixes: vec![tag.clone()], event_types: vec!["B".into()] };
    let got = read_everything(&store, Position::START, &type_b).await;
    assert_eq!(ids(&got), written.iter().filter(|w| w.2 == "B").map(|w| w.0).collect::<Vec<_>>());

    let both = EventFilter {
        stream_prefixes: vec![format!("{tag}-alpha-1"), format!("{tag}-beta")],
        event_types: vec!["A".into()],
    };
    let got = read_everything(&store, Position::START, &both).await;
    let want: Vec<Uuid> =
        written.iter().filter(|w| (w.1 == alpha1 || w.1 == beta) && w.2 == "A").map(|w| w.0).collect();
    assert_eq!(ids(&got), want);

    let limited = store.read_all(Position::START, &alpha, 3).await.expect("read");
    assert_eq!(limited.len(), 3, "max_count bounds a filtered read");
    let none = EventFilter { stream_prefixes: vec![format!("{tag}-nothing")], event_types: vec![] };
    assert!(store.read_all(Position::START, &none, 100).await.expect("read").is_empty());
    let head = store.head().await.expect("head");
    assert!(store.read_all(head, &EventFilter::all(), 100).await.expect("read").is_empty());
}

/// `head()` is `START` on an empty store and the position of the last event afterwards.
pub async fn head_tracks_last_position<S: EventStore>(store: S) {
    assert_eq!(store.head().await.expect("head"), Position::START, "a fresh store is empty");
    let r = store.append(&unique("head"), ExpectedRevision::Any, events(3, "A")).await.expect("append");
    assert_eq!(store.head().await.expect("head"), r.position);
    let r2 = store.append(&unique("head"), ExpectedRevision::Any, events(1, "A")).await.expect("append");
    assert_eq!(store.head().await.expect("head"), r2.position);
    let all = read_everything(&store, Position::START, &EventFilter::all()).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all.last().map(|e| e.position), Some(r2.position));
}

/// A subscription delivers history, then live events from concurrent writers, with no gaps,
/// duplicates or reordering: exactly what `read_all` returns afterwards.
pub async fn subscribe_catches_up_then_goes_live<S: EventStore>(store: S) {
    let store = Arc::new(store);
    let tag = unique("sub");
    for i in 0..30 {
        store.append(&format!("{tag}-{}", i % 7), ExpectedRevision::Any, events(10, "A")).await.expect("append");
    }
    let mut sub = store.subscribe(Position::START, EventFilter::all()).await.expect("subscribe");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let tag = tag.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    let stream = format!("{tag}-{}", (w * 250 + i) % 13);
                    store.append(&stream, ExpectedRevision::Any, vec![event("B")]).await.expect("live append");
                }
            })
        })
        .collect();
    let got = take_events(&mut sub, 1300).await;
    for w in writers {
        w.await.expect("writer task");
    }
    assert_strictly_increasing(&got);
    let all = read_everything(&*store, Position::START, &EventFilter::all()).await;
    assert_eq!(ids(&got), ids(&all), "the subscription saw exactly the log, in order");
    let unique_ids: HashSet<Uuid> = got.iter().map(|e| e.id).collect();
    assert_eq!(unique_ids.len(), 1300);
    let after = store.append(&format!("{tag}-late"), ExpectedRevision::Any, vec![event("C")]).await.expect("append");
    let late = take_events(&mut sub, 1).await;
    assert_eq!(late[0].position, after.position, "the subscription stays live");
}

/// A filtered subscription delivers only matching events, in order, history and live.
pub async fn subscribe_with_filter<S: EventStore>(store: S) {
    let store = Arc::new(store);
    let tag = unique("subf");
    let filter = EventFilter { stream_prefixes: vec![format!("{tag}-keep")], event_types: vec!["K".into()] };
    let mut expected = Vec::new();
    let append = async |stream: String, t: &str, expected: &mut Vec<Uuid>| {
        let e = event(t);
        if filter.matches(&stream, t) {
            expected.push(e.id);
        }
        store.append(&stream, ExpectedRevision::Any, vec![e]).await.expect("append");
    };
    for i in 0..40 {
        let stream = if i % 3 == 0 { format!("{tag}-keep-{i}") } else { format!("{tag}-drop-{i}") };
        append(stream, if i % 2 == 0 { "K" } else { "X" }, &mut expected).await;
    }
    let mut sub = store.subscribe(Position::START, filter.clone()).await.expect("subscribe");
    for i in 0..2000 {
        let stream = if i % 3 == 0 { format!("{tag}-keep-{i}") } else { format!("{tag}-drop-{i}") };
        append(stream, if i % 2 == 0 { "K" } else { "X" }, &mut expected).await;
    }
    let got = take_events(&mut sub, expected.len()).await;
    assert_eq!(ids(&got), expected);
    assert!(got.iter().all(|e| filter.matches(&e.stream, &e.event_type)));
}

/// A subscription from a position delivers exactly the events after it.
pub async fn subscribe_from_the_middle<S: EventStore>(store: S) {
    let stream = unique("mid");
    store.append(&stream, ExpectedRevision::Any, events(20, "A")).await.expect("append");
    let all = read_everything(&store, Position::START, &EventFilter::all()).await;
    let from = all[9].position;
    let mut sub = store.subscribe(from, EventFilter::all()).await.expect("subscribe");
    let got = take_events(&mut sub, 10).await;
    assert_eq!(ids(&got), ids(&all[10..]));
    let head = store.head().await.expect("head");
    let mut at_head = store.subscribe(head, EventFilter::all()).await.expect("subscribe at head");
    let r = store.append(&stream, ExpectedRevision::Any, events(1, "A")).await.expect("append");
    let got = take_events(&mut at_head, 1).await;
    assert_eq!(got[0].position, r.position, "a subscription at the head sees only new events");
}

/// A subscriber that does not poll neither blocks writers nor loses events: it catches up from
/// the log when it polls again. Backends bound what they buffer per subscriber.
pub async fn subscription_back_pressure<S: EventStore>(store: S) {
    let store = Arc::new(store);
    let stream = unique("bp");
    let mut stalled = store.subscribe(Position::START, EventFilter::all()).await.expect("subscribe");
    let dropped = store.subscribe(Position::START, EventFilter::all()).await.expect("subscribe");
    drop(dropped);
    let payload = Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000)));
    let writing = {
        let store = store.clone();
        let stream = stream.clone();
        async move {
            for _ in 0..60 {
                let batch = (0..100).map(|_| event_with_data("A", payload.clone())).collect();
                store.append(&stream, ExpectedRevision::Any, batch).await.expect("append while a subscriber stalls");
            }
        }
    };
    tokio::time::timeout(WAIT, writing).await.expect("a stalled subscriber must not block writers");
    let got = take_events(&mut stalled, 6000).await;
    assert_strictly_increasing(&got);
    assert_eq!(got.iter().map(|e| e.revision).collect::<Vec<_>>(), (0..6000).collect::<Vec<u64>>());
}

/// Oversized or empty input fails with a clear error and writes nothing.
pub async fn limits_are_enforced<S: EventStore>(store: S) {
    let limits = Limits::default();
    let stream = unique("limits");
    let head = store.head().await.expect("head");
    let long = "s".repeat(limits.stream_name_bytes_max * 4);
    assert!(matches!(
        store.append(&long, ExpectedRevision::Any, events(1, "A")).await,
        Err(StoreError::LimitExceeded { .. })
    ));
    assert!(matches!(store.append("", ExpectedRevision::Any, events(1, "A")).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.append(&stream, ExpectedRevision::Any, Vec::new()).await, Err(StoreError::Invalid(_))));
    let big = Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(limits.event_bytes_max * 2)));
    assert!(matches!(
        store.append(&stream, ExpectedRevision::Any, vec![event_with_data("A", big)]).await,
        Err(StoreError::LimitExceeded { .. })
    ));
    assert!(matches!(
        store.append(&stream, ExpectedRevision::Any, events(limits.batch_events_max * 2, "A")).await,
        Err(StoreError::LimitExceeded { .. })
    ));
    let long_type = "T".repeat(limits.event_type_bytes_max * 4);
    assert!(matches!(
        store.append(&stream, ExpectedRevision::Any, events(1, &long_type)).await,
        Err(StoreError::LimitExceeded { .. })
    ));
    assert_eq!(store.head().await.expect("head"), head, "refused appends write nothing");
    assert!(store.read_stream(&stream, 0, 10).await.expect("read").is_empty());
}

/// Of many concurrent appends expecting the same revision, exactly one wins.
pub async fn concurrent_exact_appends_one_wins<S: EventStore>(store: S) {
    let store = Arc::new(store);
    let stream = unique("race");
    store.append(&stream, ExpectedRevision::NoStream, events(1, "A")).await.expect("create");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move { store.append(&stream, ExpectedRevision::Exact(0), events(2, "A")).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(r) => {
                wins += 1;
                assert_eq!(r.next_expected_revision, 2);
            }
            Err(e) => assert_conflict(Err(e), ExpectedRevision::Exact(0), Some(2)),
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent append wins");
    assert_eq!(store.read_stream(&stream, 0, 100).await.expect("read").len(), 3);
}

/// Concurrent `Any` appends to one stream keep its revisions contiguous and every event once.
pub async fn concurrent_any_appends_keep_revisions_contiguous<S: EventStore>(store: S) {
    let store = Arc::new(store);
    let stream = unique("any-race");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..50 {
                    let e = event("A");
                    ids.push(e.id);
                    store.append(&stream, ExpectedRevision::Any, vec![e]).await.expect("append");
                }
                ids
            })
        })
        .collect();
    let mut written = HashSet::new();
    for t in tasks {
        written.extend(t.await.expect("task"));
    }
    let read = store.read_stream(&stream, 0, 1000).await.expect("read");
    assert_eq!(read.iter().map(|e| e.revision).collect::<Vec<_>>(), (0..400).collect::<Vec<u64>>());
    assert_strictly_increasing(&read);
    assert_eq!(read.iter().map(|e| e.id).collect::<HashSet<_>>(), written);
}
