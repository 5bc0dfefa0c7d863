//! The gap problem: an event whose transaction commits after later events became visible must
//! still be delivered, before them, and never skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rollcall_store::contract::event;
use rollcall_store::{EventFilter, EventStore, ExpectedRevision, Position, RecordedEvent, Subscription};
use uuid::Uuid;

use crate::support;

const WAIT: Duration = Duration::from_secs(30);

async fn take(sub: &mut Subscription, n: usize) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(Ok(e))) => out.push(e),
            Ok(Some(Err(e))) => panic!("subscription failed after {} events: {e}", out.len()),
            Ok(None) => panic!("subscription ended after {} of {n} events", out.len()),
            Err(_) => panic!("subscription delivered {} of {n} events before timing out", out.len()),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_back_later_events() -> anyhow::Result<()> {
    let (store, _guard) = support::store_with(|o| o.settle_timeout_ms = 300).await;
    let stream_prefix = format!("gap-{}", Uuid::new_v4().simple());
    let mut sub = store.subscribe(Position::START, EventFilter::all()).await?;

    let mut raw = support::raw_client().await;
    let held_tx = raw.transaction().await?;
    let held_event = event("Held");
    let held = store
        .append_within(&held_tx, &format!("{stream_prefix}-held"), ExpectedRevision::NoStream, vec![held_event.clone()])
        .await?;

    // Two later appends commit while the first is still open: one through the group commit,
    // one on its own.
    let later_any = event("Later");
    let later_exact = event("Later");
    let r1 = store.append(&format!("{stream_prefix}-a"), ExpectedRevision::Any, vec![later_any.clone()]).await?;
    let r2 = store.append(&format!("{stream_prefix}-b"), ExpectedRevision::NoStream, vec![later_exact.clone()]).await?;
    assert!(held.position < r1.position && r1.position < r2.position, "the open transaction comes first");
    assert_eq!(
        store.read_stream(&format!("{stream_prefix}-b"), 0, 10).await?.len(),
        1,
        "committed streams read at once"
    );

    assert!(
        tokio::time::timeout(Duration::from_millis(500), sub.next()).await.is_err(),
        "nothing may be delivered while an earlier event is uncommitted"
    );
    assert!(store.read_all(Position::START, &EventFilter::all(), 100).await?.is_empty(), "read_all holds back too");
    assert_eq!(store.head().await?, Position::START, "the head is the settled head");

    held_tx.commit().await?;
    let got = take(&mut sub, 3).await;
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), vec![held_event.id, later_any.id, later_exact.id]);
    assert_eq!(got.iter().map(|e| e.position).collect::<Vec<_>>(), vec![held.position, r1.position, r2.position]);
    assert_eq!(store.read_all(Position::START, &EventFilter::all(), 100).await?, got);
    assert_eq!(store.head().await?, r2.position);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_transaction_leaves_no_event_and_no_stall() -> anyhow::Result<()> {
    let (store, _guard) = support::store().await;
    let mut sub = store.subscribe(Position::START, EventFilter::all()).await?;
    let mut raw = support::raw_client().await;
    let tx = raw.transaction().await?;
    store.append_within(&tx, "rollback-1", ExpectedRevision::NoStream, vec![event("Gone")]).await?;
    let kept = store.append("rollback-2", ExpectedRevision::NoStream, vec![event("Kept")]).await?;
    tx.rollback().await?;
    let got = take(&mut sub, 1).await;
    assert_eq!(got[0].position, kept.position);
    assert!(store.read_stream("rollback-1", 0, 10).await?.is_empty());
    // The stream never existed, so creating it works.
    store.append("rollback-1", ExpectedRevision::NoStream, vec![event("Again")]).await?;
    Ok(())
}

#[tokio::test]
async fn append_within_must_come_first_in_its_transaction() -> anyhow::Result<()> {
    let (store, _guard) = support::store().await;
    let mut raw = support::raw_client().await;
    let tx = raw.transaction().await?;
    tx.batch_execute(&format!("CREATE TEMP TABLE t_{}(x int)", Uuid::new_v4().simple())).await?;
    tx.query("SELECT pg_current_xact_id()", &[]).await?;
    let result = store.append_within(&tx, "late-append", ExpectedRevision::Any, vec![event("A")]).await;
    assert!(
        matches!(result, Err(rollcall_store::StoreError::Backend(ref m)) if m.contains("first write")),
        "{result:?}"
    );
    Ok(())
}

/// Many writers, some holding their transactions open for a while, some rolling back; one
/// subscriber must see exactly the committed events, once each, in one consistent order, with
/// every stream's revisions in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_slow_writers_never_cause_a_gap() -> anyhow::Result<()> {
    let (store, _guard) = support::store_with(|o| o.pool_size = 12).await;
    let store = Arc::new(store);
    let mut sub = store.subscribe(Position::START, EventFilter::all()).await?;
    let writers: Vec<_> = (0..6u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut raw = support::raw_client().await;
                let mut committed = Vec::new();
                for i in 0..40u64 {
                    let stream = format!("slow-{}", (w + i) % 5);
                    let e = event("E");
                    match (w + i) % 4 {
                        // Held open for a few milliseconds, then committed or rolled back.
                        0 | 1 => {
                            let tx = raw.transaction().await?;
                            store.append_within(&tx, &stream, ExpectedRevision::Any, vec![e.clone()]).await?;
                            tokio::time::sleep(Duration::from_millis((w * 7 + i * 3) % 15)).await;
                            if (w + i) % 8 == 1 {
                                tx.rollback().await?;
                            } else {
                                tx.commit().await?;
                                committed.push(e.id);
                            }
                        }
                        2 => {
                            store.append(&stream, ExpectedRevision::Any, vec![e.clone()]).await?;
                            committed.push(e.id);
                        }
                        _ => {
                            let last = store.read_stream(&stream, 0, 1000).await?.last().map(|e| e.revision);
                            let expected = last.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
                            if store.append(&stream, expected, vec![e.clone()]).await.is_ok() {
                                committed.push(e.id);
                            }
                        }
                    }
                }
                anyhow::Ok(committed)
            })
        })
        .collect();
    let mut committed = HashSet::new();
    for writer in writers {
        committed.extend(writer.await??);
    }
    let got = take(&mut sub, committed.len()).await;
    for pair in got.windows(2) {
        assert!(pair[0].position < pair[1].position, "order: {} then {}", pair[0].position, pair[1].position);
    }
    assert_eq!(got.iter().map(|e| e.id).collect::<HashSet<_>>(), committed, "exactly the committed events");
    let mut last_revision: HashMap<&str, u64> = HashMap::new();
    for e in &got {
        if let Some(previous) = last_revision.insert(&e.stream, e.revision) {
            assert_eq!(e.revision, previous + 1, "stream {} revisions arrive in order", e.stream);
        } else {
            assert_eq!(e.revision, 0);
        }
    }
    let all = store.read_all(Position::START, &EventFilter::all(), 10_000).await?;
    assert_eq!(all, got, "read_all agrees with the subscription");
    assert!(tokio::time::timeout(Duration::from_millis(200), sub.next()).await.is_err(), "no duplicates follow");
    Ok(())
}

/// The global order is numeric in transaction ids, whatever their number of digits: a cluster's
/// ids pass 10, 100, ..., 10^k once each, and every store on it must keep reading in order
/// across that step. Events are written with ids on both sides of such steps, behind the store's
/// back; the head, paged reads and a subscription with small pages must all follow 9 < 10 and
/// 99 < 100, then go on with a real append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_ids_keep_their_order_when_they_gain_a_digit() -> anyhow::Result<()> {
    let (store, _guard) = support::store_with(|o| o.subscription_buffer_events = 2).await;
    let raw = support::raw_client().await;
    // Every one of these ids is older than any transaction still running on a cluster.
    let ids_in_order: [u64; 7] = [8, 9, 10, 11, 99, 100, 101];
    let insert = format!(
        "INSERT INTO {}.events (tx, stream, revision, id, event_type, schema_version, data, metadata) \
         VALUES ($1::text::xid8, $2, 0, $3, 'Faked', 1, $4, $5::text::jsonb)",
        store.schema()
    );
    // Written in an order that is neither numeric nor textual.
    for tx in [100u64, 9, 101, 8, 11, 99, 10] {
        let faked = event("Faked");
        let metadata = serde_json::to_string(&faked.metadata)?;
        raw.execute(&insert, &[&tx.to_string(), &format!("digits-{tx}"), &faked.id, &faked.data.to_vec(), &metadata])
            .await?;
    }
    let streams_in_order: Vec<String> = ids_in_order.iter().map(|tx| format!("digits-{tx}")).collect();
    let streams = |events: &[RecordedEvent]| events.iter().map(|e| e.stream.clone()).collect::<Vec<_>>();

    assert_eq!(store.head().await?.commit, 101, "the head is the numerically newest transaction");
    let mut paged = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, &EventFilter::all(), 2).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        paged.extend(page);
    }
    assert_eq!(streams(&paged), streams_in_order, "read_all pages follow the numeric order");

    let mut sub = store.subscribe(Position::START, EventFilter::all()).await?;
    let got = take(&mut sub, ids_in_order.len()).await;
    assert_eq!(streams(&got), streams_in_order, "the subscription follows the numeric order");
    let appended = store.append("digits-real", ExpectedRevision::NoStream, vec![event("Real")]).await?;
    assert!(appended.position.commit > 101);
    let got = take(&mut sub, 1).await;
    assert_eq!(got[0].position, appended.position, "and goes on with the next real append");
    Ok(())
}
