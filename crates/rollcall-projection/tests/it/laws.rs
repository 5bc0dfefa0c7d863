//! The law of derived state: a view built live, whatever the batch boundaries, duplicate
//! deliveries and restarts, equals the view rebuilt from zero; Redis and in process agree.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rollcall_analytics::{InProcessAnalytics, RedisAnalytics};
use rollcall_core::Plan;
use rollcall_core::envelope::Position;
use rollcall_members::Members;
use rollcall_projection::history::HistoryBuilder;
use rollcall_projection::{Generation, ProjectedEvent, Projection, Projector, ProjectorConfig, ProjectorHandle, bench};
use rollcall_store::{EventFilter, EventStore, MemoryStore};
use rollcall_tokens::{InProcessTokens, RedisTokens};

use crate::support::{Duplicating, redis, unique_prefix};

#[derive(Clone, Debug)]
struct Case {
    ops: Vec<(u8, u8, u8)>,
    chunk_ops: usize,
    batch_events_max: usize,
    restarts: Vec<u8>,
    seed: u64,
    manual_cuts: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 1..160),
        1usize..40,
        1usize..30,
        prop::collection::vec(any::<u8>(), 0..6),
        any::<u64>(),
        prop::collection::vec(1u8..25, 1..20),
    )
        .prop_map(|(ops, chunk_ops, batch_events_max, restarts, seed, manual_cuts)| Case {
            ops,
            chunk_ops,
            batch_events_max,
            restarts,
            seed,
            manual_cuts,
        })
}

struct Targets {
    tokens: InProcessTokens,
    analytics: InProcessAnalytics,
    members: Members,
    redis_tokens: RedisTokens,
    redis_analytics: RedisAnalytics,
}

impl Targets {
    async fn new(prefix: &str) -> Targets {
        let conn = redis().await;
        Targets {
            tokens: InProcessTokens::new(),
            analytics: InProcessAnalytics::new(),
            members: Members::new(),
            redis_tokens: RedisTokens::new(conn.clone(), prefix),
            redis_analytics: RedisAnalytics::new(conn, prefix),
        }
    }

    fn all(&self) -> Vec<Arc<dyn Projection>> {
        vec![
            self.tokens.projection(),
            self.analytics.projection(),
            self.members.projection(),
            Arc::new(self.redis_tokens.clone()),
            Arc::new(self.redis_analytics.clone()),
        ]
    }

    async fn cleanup(&self) {
        self.redis_tokens.target().delete_all().await.unwrap();
        self.redis_analytics.target().delete_all().await.unwrap();
    }
}

async fn run_case(case: Case) -> anyhow::Result<()> {
    let store = Duplicating { inner: MemoryStore::new(), seed: case.seed };
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    let live = Targets::new(&unique_prefix("law-live")).await;
    let config = ProjectorConfig {
        batch_events_max: case.batch_events_max,
        flush_interval_ms: 1,
        verify_interval_ms: 200,
        retry_interval_ms: 10,
    };
    let projections = live.all();
    let mut handles: Vec<ProjectorHandle> =
        projections.iter().map(|p| Projector::spawn(shared.clone(), p.clone(), config)).collect();

    let mut history = HistoryBuilder::new(Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap(), 10);
    if let Some(step) = history.create_workspace("ws-first", Plan::Pro, 0) {
        step.append(&store).await?;
    }
    for (chunk_index, chunk) in case.ops.chunks(case.chunk_ops).enumerate() {
        for &(kind, a, b) in chunk {
            if let Some(step) = history.random_op(kind, a, b) {
                step.append(&store).await?;
            }
        }
        // A restart: the projector dies wherever it is and a new one resumes from the checkpoint.
        if let Some(&r) = case.restarts.get(chunk_index) {
            let i = r as usize % handles.len();
            handles[i].stop().await;
            handles[i] = Projector::spawn(shared.clone(), projections[i].clone(), config);
        }
    }
    let head = store.head().await?;
    for handle in &handles {
        handle.wait_for(head, Duration::from_secs(20)).await?;
    }
    for handle in &handles {
        handle.stop().await;
    }

    // The reference: rebuilt from zero in one pass.
    let rebuilt = Targets::new(&unique_prefix("law-rebuilt")).await;
    let stats = bench::rebuild_all(Arc::new(store.inner.clone()), &rebuilt.all(), 97).await?;
    assert_eq!(stats.position, head);

    let expected_tokens = rebuilt.tokens.snapshot().expect("rebuilt tokens");
    let expected_analytics = rebuilt.analytics.snapshot().expect("rebuilt analytics");
    let expected_members = rebuilt.members.snapshot().expect("rebuilt members");
    assert_eq!(live.tokens.snapshot().as_ref(), Some(&expected_tokens), "live in-process tokens");
    assert_eq!(live.analytics.snapshot().as_ref(), Some(&expected_analytics), "live in-process analytics");
    assert_eq!(live.members.snapshot().as_ref(), Some(&expected_members), "live members");
    assert_eq!(live.redis_tokens.snapshot().await?.as_ref(), Some(&expected_tokens), "live redis tokens");
    assert_eq!(live.redis_analytics.snapshot().await?.as_ref(), Some(&expected_analytics), "live redis analytics");
    assert_eq!(rebuilt.redis_tokens.snapshot().await?.as_ref(), Some(&expected_tokens), "rebuilt redis tokens");
    assert_eq!(
        rebuilt.redis_analytics.snapshot().await?.as_ref(),
        Some(&expected_analytics),
        "rebuilt redis analytics"
    );

    // Fed by hand: every batch re-delivers the tail of the previous one; targets skip it.
    let manual = Targets::new(&unique_prefix("law-manual")).await;
    let events: Vec<ProjectedEvent> = store
        .inner
        .read_all(Position::START, &EventFilter::all(), 100_000)
        .await?
        .iter()
        .map(ProjectedEvent::decode)
        .collect::<Result<_, _>>()?;
    for target in manual.all() {
        target.reset_staging().await?;
        let mut checkpoint = Position::START;
        let mut from = 0usize;
        let mut cuts = case.manual_cuts.iter().cycle();
        while from < events.len() {
            let cut = *cuts.next().expect("cycle of a non-empty list") as usize;
            let to = (from + cut).min(events.len());
            let redelivered = from.saturating_sub(cut / 2);
            target.apply(Generation::Staging, checkpoint, &events[redelivered..to], events[to - 1].position).await?;
            checkpoint = events[to - 1].position;
            from = to;
        }
        target.promote_staging().await?;
    }
    assert_eq!(manual.tokens.snapshot().as_ref(), Some(&expected_tokens), "manual tokens");
    assert_eq!(manual.analytics.snapshot().as_ref(), Some(&expected_analytics), "manual analytics");
    assert_eq!(manual.members.snapshot().as_ref(), Some(&expected_members), "manual members");
    assert_eq!(manual.redis_tokens.snapshot().await?.as_ref(), Some(&expected_tokens), "manual redis tokens");
    assert_eq!(manual.redis_analytics.snapshot().await?.as_ref(), Some(&expected_analytics), "manual redis analytics");

    live.cleanup().await;
    rebuilt.cleanup().await;
    manual.cleanup().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn live_projection_equals_rebuild_and_redis_agrees(case in case()) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run_case(case)).unwrap();
    }
}
