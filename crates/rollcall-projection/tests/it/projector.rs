//! The projector's contract: read your writes, lag, restarts, rebuilds on demand, broadcasts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use rollcall_analytics::InProcessAnalytics;
use rollcall_core::Plan;
use rollcall_core::envelope::Position;
use rollcall_core::events::Role;
use rollcall_projection::history::HistoryBuilder;
use rollcall_projection::{Phase, ProjectionError, Projector, ProjectorConfig, bench};
use rollcall_store::{EventFilter, EventStore, MemoryStore};
use rollcall_tokens::{InProcessTokens, RedisTokens, TokenCheck, TokenView};

use crate::support::{redis, redis_url, unique_prefix};

fn config() -> ProjectorConfig {
    ProjectorConfig { batch_events_max: 64, flush_interval_ms: 1, verify_interval_ms: 100, retry_interval_ms: 20 }
}

async fn team(store: &MemoryStore, members: usize) -> anyhow::Result<HistoryBuilder> {
    let mut history = HistoryBuilder::new(Utc.with_ymd_and_hms(2025, 5, 1, 8, 0, 0).unwrap(), 64);
    history.create_workspace("acme", Plan::Business, 0).unwrap().append(store).await?;
    for person in 1..=members {
        history.invite(0, person, Role::Member).unwrap().append(store).await?;
        history.accept(0, 0).unwrap().append(store).await?;
    }
    Ok(history)
}

fn token_of(history: &HistoryBuilder, person: usize) -> rollcall_core::token::TokenHash {
    let email = history.account(person).email;
    history.workspaces().next().unwrap().members.iter().rev().find(|m| m.email == email).unwrap().token_hash
}

#[tokio::test]
async fn a_removal_is_visible_once_wait_for_returns_and_is_broadcast() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let mut history = team(&store, 3).await?;
    let tokens = InProcessTokens::new();
    assert_eq!(tokens.check(&token_of(&history, 1)).await, TokenCheck::Unavailable, "not built yet");
    let handle = Projector::spawn(Arc::new(store.clone()), tokens.projection(), config());
    handle.wait_for(store.head().await?, Duration::from_secs(5)).await?;
    let hash = token_of(&history, 2);
    assert!(matches!(tokens.check(&hash).await, TokenCheck::Valid(info) if info.label == "person2@example.com"));

    let mut revocations = tokens.subscribe_revocations();
    let step = history.remove(0, 2).unwrap();
    let appended = store.append(&step.stream, step.expected, step.events).await?;
    handle.wait_for(appended.position, Duration::from_secs(5)).await?;
    assert!(matches!(tokens.check(&hash).await, TokenCheck::Revoked(_)));
    assert_eq!(tokio::time::timeout(Duration::from_secs(1), revocations.recv()).await??, hash);
    assert!(matches!(tokens.check(&token_of(&history, 1)).await, TokenCheck::Valid(_)));
    handle.stop().await;
    Ok(())
}

#[tokio::test]
async fn status_reports_position_and_lag_and_wait_for_times_out() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let _history = team(&store, 4).await?;
    let head = store.head().await?;
    let handle = Projector::spawn(Arc::new(store.clone()), InProcessTokens::new().projection(), config());
    handle.wait_for(head, Duration::from_secs(5)).await?;
    let status = handle.status();
    assert_eq!(status.checkpoint, Some(head));
    assert_eq!(status.head, head);
    assert_eq!(status.lag_events, 0);
    assert_eq!(status.phase, Phase::Live);
    assert_eq!(status.events_applied, head.sequence());
    assert!(status.since_last_applied_ms.is_some());
    let beyond = Position::from_sequence(head.sequence() + 10);
    let error = handle.wait_for(beyond, Duration::from_millis(50)).await.unwrap_err();
    assert!(matches!(error, ProjectionError::WaitTimeout { .. }), "{error}");
    handle.stop().await;
    assert_eq!(handle.status().phase, Phase::Stopped);
    Ok(())
}

#[tokio::test]
async fn a_restarted_projector_resumes_from_its_checkpoint_and_counts_nothing_twice() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let mut history = team(&store, 5).await?;
    let analytics = InProcessAnalytics::new();
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    for round in 0..5u8 {
        let handle = Projector::spawn(shared.clone(), analytics.projection(), config());
        for i in 0..200u8 {
            history.activity(0, 13 + round % 3, i.wrapping_mul(7).wrapping_add(round)).unwrap().append(&store).await?;
        }
        if round % 2 == 0 {
            handle.wait_for(store.head().await?, Duration::from_secs(5)).await?;
        }
        handle.stop().await;
    }
    let handle = Projector::spawn(shared.clone(), analytics.projection(), config());
    handle.wait_for(store.head().await?, Duration::from_secs(5)).await?;
    assert_eq!(handle.status().rebuilds, 0, "resumed, not rebuilt");
    let rebuilt = InProcessAnalytics::new();
    bench::rebuild_all(shared, &[rebuilt.projection()], 1000).await?;
    let (live, expected) = (analytics.snapshot().unwrap(), rebuilt.snapshot().unwrap());
    assert_eq!(live, expected);
    let filter = EventFilter { event_types: vec!["ToolCalled".into()], ..EventFilter::all() };
    let calls = store.read_all(Position::START, &filter, 10_000).await?.len() as u64;
    assert!(calls > 500);
    assert_eq!(live.workspaces.values().map(|w| w.total.calls).sum::<u64>(), calls);
    handle.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_on_demand_keeps_readers_on_the_old_view_until_the_switch() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let mut history = team(&store, 10).await?;
    history.remove(0, 3).unwrap().append(&store).await?;
    for i in 0..3000u32 {
        history.activity(0, 14, (i % 241) as u8).unwrap().append(&store).await?;
    }
    let tokens = RedisTokens::new(redis().await, &unique_prefix("rebuild"));
    let handle = Projector::spawn(
        Arc::new(store.clone()),
        Arc::new(tokens.clone()),
        ProjectorConfig { batch_events_max: 20, ..config() },
    );
    handle.wait_for(store.head().await?, Duration::from_secs(20)).await?;
    let (active, revoked) = (token_of(&history, 4), token_of(&history, 3));
    handle.request_rebuild();
    let mut saw_rebuilding = false;
    for _ in 0..20_000 {
        assert!(matches!(tokens.check(&active).await, TokenCheck::Valid(_)), "the old view stays readable");
        assert!(matches!(tokens.check(&revoked).await, TokenCheck::Revoked(_)));
        let status = handle.status();
        saw_rebuilding |= matches!(status.phase, Phase::Rebuilding { .. });
        if status.rebuilds == 2 && status.phase == Phase::Live {
            break;
        }
    }
    assert!(saw_rebuilding);
    assert_eq!(handle.status().rebuilds, 2);
    handle.wait_for(store.head().await?, Duration::from_secs(20)).await?;
    assert!(matches!(tokens.check(&active).await, TokenCheck::Valid(_)));
    handle.stop().await;
    tokens.target().delete_all().await?;
    Ok(())
}

#[tokio::test]
async fn redis_revocations_are_published() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let mut history = team(&store, 2).await?;
    let tokens = RedisTokens::new(redis().await, &unique_prefix("publish"));
    let mut pubsub = redis::Client::open(redis_url())?.get_async_pubsub().await?;
    pubsub.subscribe(tokens.revocations_channel()).await?;
    let handle = Projector::spawn(Arc::new(store.clone()), Arc::new(tokens.clone()), config());
    handle.wait_for(store.head().await?, Duration::from_secs(5)).await?;
    let hash = token_of(&history, 1);
    let step = history.remove(0, 1).unwrap();
    let appended = store.append(&step.stream, step.expected, step.events).await?;
    handle.wait_for(appended.position, Duration::from_secs(5)).await?;
    assert!(matches!(tokens.check(&hash).await, TokenCheck::Revoked(_)));
    let message = tokio::time::timeout(Duration::from_secs(2), pubsub.on_message().next()).await?.unwrap();
    assert_eq!(message.get_payload::<String>()?, hash.to_hex());
    handle.stop().await;
    tokens.target().delete_all().await?;
    Ok(())
}
