//! Property: whatever the interleaving of concurrent appends and reads, every reader sees one
//! order, with positions 1, 2, 3, ... and no gaps.

use std::sync::Arc;

use futures::StreamExt;
use proptest::prelude::*;
use rollcall_store::contract::event;
use rollcall_store::{EmbeddedLog, EventFilter, EventStore, ExpectedRevision, MemoryStore, Position};
use uuid::Uuid;

use crate::embedded::small_segments;

#[derive(Clone, Debug)]
enum Op {
    Append { stream: u8, events: u8 },
    Read { max_count: u8 },
    Yield,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 1u8..4).prop_map(|(stream, events)| Op::Append { stream, events }),
        2 => (1u8..50).prop_map(|max_count| Op::Read { max_count }),
        1 => Just(Op::Yield),
    ]
}

/// Runs the tasks' operations concurrently and checks every observation against the final log.
async fn check<S: EventStore>(store: S, tasks: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let store = Arc::new(store);
    let mut subscription = store.subscribe(Position::START, EventFilter::all()).await.map_err(fail)?;
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|ops| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen: Vec<Vec<Uuid>> = Vec::new();
                for op in ops {
                    match op {
                        Op::Append { stream, events } => {
                            let batch = (0..events).map(|_| event("P")).collect();
                            store.append(&format!("p-{stream}"), ExpectedRevision::Any, batch).await.map_err(fail)?;
                        }
                        Op::Read { max_count } => {
                            let page = store
                                .read_all(Position::START, &EventFilter::all(), max_count as usize)
                                .await
                                .map_err(fail)?;
                            for (i, e) in page.iter().enumerate() {
                                prop_assert_eq!(e.position.sequence(), i as u64 + 1, "no gap in a read");
                            }
                            seen.push(page.iter().map(|e| e.id).collect());
                        }
                        Op::Yield => tokio::task::yield_now().await,
                    }
                }
                Ok::<_, TestCaseError>(seen)
            })
        })
        .collect();
    let mut observations = Vec::new();
    for h in handles {
        observations.extend(h.await.map_err(fail)??);
    }
    let head = store.head().await.map_err(fail)?.sequence();
    let final_log = store.read_all(Position::START, &EventFilter::all(), 10_000).await.map_err(fail)?;
    prop_assert_eq!(final_log.len() as u64, head);
    let order: Vec<Uuid> = final_log.iter().map(|e| e.id).collect();
    for seen in observations {
        prop_assert_eq!(&order[..seen.len()], &seen[..], "every read is a prefix of the one order");
    }
    let mut delivered = Vec::new();
    while (delivered.len() as u64) < head {
        let e = subscription.next().await.ok_or_else(|| fail("subscription ended"))?.map_err(fail)?;
        delivered.push(e.id);
    }
    prop_assert_eq!(delivered, order, "the subscription delivers the same order");
    Ok(())
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn embedded_readers_agree_on_one_gapless_order(tasks in prop::collection::vec(prop::collection::vec(op(), 1..30), 2..5)) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().map_err(fail)?;
            let log = EmbeddedLog::open(dir.path(), small_segments()).await.map_err(fail)?;
            check(log, tasks).await
        })?;
    }

    #[test]
    fn memory_readers_agree_on_one_gapless_order(tasks in prop::collection::vec(prop::collection::vec(op(), 1..30), 2..5)) {
        runtime().block_on(check(MemoryStore::new(), tasks))?;
    }
}
