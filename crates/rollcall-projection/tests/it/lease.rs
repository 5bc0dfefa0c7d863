//! The projector lease: one writer among several projector processes, fenced in Redis.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rollcall_core::Plan;
use rollcall_core::envelope::Position;
use rollcall_core::events::Role;
use rollcall_projection::history::HistoryBuilder;
use rollcall_projection::{
    Generation, Lease, LeaseConfig, LeasedProjectors, Projection, ProjectionError, ProjectorConfig, RedisOps,
    RedisTarget,
};
use rollcall_store::{EventStore, MemoryStore};
use rollcall_tokens::{RedisTokens, TokenCheck, TokenView};

use crate::support::{redis, unique_prefix};

async fn count(conn: &redis::aio::ConnectionManager, key: &str) -> anyhow::Result<Option<i64>> {
    Ok(redis::cmd("HGET").arg(key).arg("n").query_async(&mut conn.clone()).await?)
}

#[tokio::test]
async fn a_holder_that_lost_the_lease_can_never_write_again() -> anyhow::Result<()> {
    let conn = redis().await;
    let prefix = unique_prefix("lease-fence");
    let first = Lease::new(conn.clone(), &prefix, "projector", "first", 300);
    let second = Lease::new(conn.clone(), &prefix, "projector", "second", 300);
    assert!(first.try_acquire().await?);
    assert!(!second.try_acquire().await?, "a held lease is not taken");
    assert!(first.try_acquire().await?, "the holder may take it again");

    let as_first = RedisTarget::new(conn.clone(), &prefix, "fenced").with_fence(first.fence());
    let as_second = RedisTarget::new(conn.clone(), &prefix, "fenced").with_fence(second.fence());
    let mut ops = RedisOps::new();
    ops.hincr("counter", "n", 1);
    let (one, two) = (Position::from_sequence(1), Position::from_sequence(2));
    as_first.reset_staging().await?;
    as_first.apply(Generation::Staging, Position::START, &ops, one).await?;
    let key = format!("{}counter", as_first.generation_prefix(Generation::Staging));
    assert_eq!(count(&conn, &key).await?, Some(1));

    // The first holder pauses past its TTL; the second takes over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(second.try_acquire().await?);
    assert!(!first.renew().await?, "a lost lease is not renewed");

    // The old holder wakes with a batch in hand: refused inside the script, nothing written.
    let refused = as_first.apply(Generation::Staging, one, &ops, two).await;
    assert!(matches!(&refused, Err(ProjectionError::Fenced { holder: Some(h), .. }) if h == "second"), "{refused:?}");
    assert!(matches!(as_first.reset_staging().await, Err(ProjectionError::Fenced { .. })));
    assert!(matches!(as_first.promote_staging().await, Err(ProjectionError::Fenced { .. })));
    assert_eq!(count(&conn, &key).await?, Some(1), "the fenced batch wrote nothing");
    assert_eq!(as_first.checkpoint(Generation::Staging).await?, Some(one));

    // The new holder applies the same batch once.
    as_second.apply(Generation::Staging, one, &ops, two).await?;
    assert_eq!(count(&conn, &key).await?, Some(2));
    assert!(!first.release().await?, "only the holder releases");
    assert_eq!(second.holder().await?.as_deref(), Some("second"));
    assert!(second.release().await?);
    assert_eq!(second.holder().await?, None);

    as_second.delete_all().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_and_continues_from_the_checkpoint() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let mut history = HistoryBuilder::new(Utc.with_ymd_and_hms(2025, 5, 1, 8, 0, 0).unwrap(), 64);
    history.create_workspace("acme", Plan::Business, 0).unwrap().append(&store).await?;
    for person in 1..=3 {
        history.invite(0, person, Role::Member).unwrap().append(&store).await?;
        history.accept(0, 0).unwrap().append(&store).await?;
    }
    let conn = redis().await;
    let prefix = unique_prefix("lease-takeover");
    let lease_config = LeaseConfig { ttl_ms: 600, renew_interval_ms: 100, standby_poll_interval_ms: 50 };
    let projector_config =
        ProjectorConfig { batch_events_max: 16, flush_interval_ms: 1, verify_interval_ms: 100, retry_interval_ms: 20 };
    let start = |instance: &str| {
        let lease = Lease::new(conn.clone(), &prefix, "projector", instance, lease_config.ttl_ms);
        let tokens: Arc<dyn Projection> = Arc::new(RedisTokens::new(conn.clone(), &prefix).with_fence(lease.fence()));
        (
            LeasedProjectors::spawn(
                Arc::new(store.clone()),
                vec![tokens],
                lease.clone(),
                lease_config,
                projector_config,
            ),
            lease,
        )
    };
    let (first, lease) = start("first");
    let checkpoint = |t: &RedisTokens| {
        let t = t.clone();
        async move { t.target().checkpoint(Generation::Live).await }
    };
    let tokens = RedisTokens::new(conn.clone(), &prefix);
    let head = store.head().await?;
    wait(|| async { checkpoint(&tokens).await.ok().flatten() == Some(head) }).await?;
    let (second, _) = start("second");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(second.status().projectors.len(), 0, "the second instance stands by");
    assert_eq!(lease.holder().await?.as_deref(), Some("first"));

    // The first stops; the second takes over and projects what comes next, from the checkpoint.
    first.stop().await;
    let member = history.account(2).email;
    let hash = history.workspaces().next().unwrap().members.iter().find(|m| m.email == member).unwrap().token_hash;
    let step = history.remove(0, 2).unwrap();
    let appended = store.append(&step.stream, step.expected, step.events).await?;
    wait(|| async { checkpoint(&tokens).await.ok().flatten() == Some(appended.position) }).await?;
    assert_eq!(lease.holder().await?.as_deref(), Some("second"));
    assert!(matches!(tokens.check(&hash).await, TokenCheck::Revoked(_)));
    let status = second.status();
    assert_eq!(status.acquisitions, 1);
    assert_eq!(status.projectors[0].rebuilds, 0, "the standby resumed from the checkpoint, it did not rebuild");
    second.stop().await;
    tokens.target().delete_all().await?;
    Ok(())
}

async fn wait<F, Fut>(mut condition: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if condition().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("timed out")
}
