//! Analytics queries: per member and bot, per tool, human vs bot, latency estimates.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rollcall_analytics::{AnalyticsView, InProcessAnalytics, Latency, SubjectKind};
use rollcall_core::Plan;
use rollcall_core::events::Role;
use rollcall_projection::history::HistoryBuilder;
use rollcall_projection::{Projector, ProjectorConfig};
use rollcall_store::{EventStore, MemoryStore};

#[tokio::test]
async fn usage_per_subject_and_workspace_with_humans_and_bots_side_by_side() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let mut history = HistoryBuilder::new(Utc.with_ymd_and_hms(2025, 8, 1, 8, 0, 0).unwrap(), 8);
    history.create_workspace("usage", Plan::Pro, 0).unwrap().append(&store).await?;
    history.invite(0, 1, Role::Member).unwrap().append(&store).await?;
    history.accept(0, 0).unwrap().append(&store).await?;
    history.random_op(6, 0, 0).unwrap().append(&store).await?;
    // Subjects are owner (b % 3 == 0), person1 (1) and the bot (2).
    for b in [3u8, 6, 9, 12, 1, 4, 2, 5, 8] {
        history.activity(0, 13, b).unwrap().append(&store).await?;
    }
    history.remove(0, 1).unwrap().append(&store).await?;
    history.activity(0, 13, 1).unwrap().append(&store).await?; // denied: revoked
    history.activity(0, 15, 2 * 3 + 3).unwrap().append(&store).await?; // b = 9: owner, rate-limited

    let analytics = InProcessAnalytics::new();
    let handle = Projector::spawn(Arc::new(store.clone()), analytics.projection(), ProjectorConfig::default());
    handle.wait_for(store.head().await?, Duration::from_secs(5)).await?;
    let ws = history.workspaces().next().unwrap().clone();
    let usage = analytics.workspace(ws.workspace_id.unwrap()).await?.unwrap();
    assert_eq!(usage.total.calls, 9);
    assert_eq!((usage.humans.calls, usage.bots.calls), (6, 3));
    assert_eq!(usage.total.denied, 1);
    assert_eq!(usage.humans.rate_limited, 9 % 7 + 1);
    assert_eq!(usage.top_tools(100).iter().map(|t| t.1).sum::<u64>(), 9);

    let owner = analytics.subject(ws.members[0].member_id.0).await?.unwrap();
    assert_eq!((owner.kind, owner.calls_total), (SubjectKind::Human, 4));
    assert_eq!(owner.rate_limited, 3);
    assert_eq!(owner.latency.count, 4);
    assert_eq!(owner.calls_per_day.values().sum::<u64>(), 4);
    assert_eq!(owner.calls_per_hour.values().sum::<u64>(), 4);
    assert!(owner.last_active_at().is_some());
    // b = 3, 6, 9, 12 with kind 13: b*b/4 + 13 ms; errors when b % 10 is 0 or 1 (none here).
    assert_eq!(owner.latency.max_ms, 12 * 12 / 4 + 13);
    assert_eq!(owner.errors, 0);
    let member = analytics.subject(ws.members[1].member_id.0).await?.unwrap();
    assert_eq!((member.calls_total, member.denied, member.errors), (2, 1, 1));
    let bot = analytics.subject(ws.bots[0].bot_id.0).await?.unwrap();
    assert_eq!((bot.kind, bot.calls_total), (SubjectKind::Bot, 3));
    let all = analytics.subjects_of(ws.workspace_id.unwrap()).await?;
    assert_eq!(
        all.iter().map(|s| s.kind).collect::<Vec<_>>(),
        [SubjectKind::Human, SubjectKind::Human, SubjectKind::Bot]
    );
    handle.stop().await;
    Ok(())
}

#[test]
fn latency_quantiles_come_from_the_buckets() {
    let mut latency = Latency::default();
    assert_eq!(latency.quantile_ms(0.5), None);
    for ms in [5, 5, 5, 5, 5, 5, 5, 5, 5, 700] {
        latency.count += 1;
        latency.sum_ms += ms;
        latency.max_ms = latency.max_ms.max(ms);
        latency.buckets[if ms <= 10 { 0 } else { 6 }] += 1;
    }
    assert_eq!(latency.quantile_ms(0.5), Some(10), "the upper bound of the bucket holding the median");
    assert_eq!(latency.quantile_ms(0.95), Some(700));
    assert_eq!(latency.mean_ms(), Some(74.5));
}
