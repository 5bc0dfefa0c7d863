//! A read model lost under a running projector (FLUSHDB) is noticed and rebuilt, and no revoked
//! token is reported valid meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rollcall_core::Plan;
use rollcall_core::events::Role;
use rollcall_core::token::TokenHash;
use rollcall_projection::history::HistoryBuilder;
use rollcall_projection::{Projector, ProjectorConfig};
use rollcall_store::{EventStore, MemoryStore};
use rollcall_tokens::{RedisTokens, TokenCheck, TokenView};

use crate::support::{redis_at, redis_url_db, unique_prefix};

/// Only this test uses logical database 9, where FLUSHDB cannot hurt anyone else.
const LOST_DB: u8 = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_is_noticed_and_rebuilt_without_reporting_a_revoked_token_valid() -> anyhow::Result<()> {
    let conn = redis_at(&redis_url_db(LOST_DB)).await;
    let store = MemoryStore::new();
    let mut history = HistoryBuilder::new(Utc.with_ymd_and_hms(2025, 4, 1, 8, 0, 0).unwrap(), 64);
    history.create_workspace("lost-and-found", Plan::Enterprise, 0).unwrap().append(&store).await?;
    for person in 1..40 {
        history.invite(0, person, Role::Member).unwrap().append(&store).await?;
        history.accept(0, 0).unwrap().append(&store).await?;
    }
    for person in 1..20 {
        history.remove(0, person).unwrap().append(&store).await?;
    }
    // Plenty of calls, so that the rebuild takes long enough to be observed.
    for i in 0..6000u32 {
        history.activity(0, 13, (i % 251) as u8).unwrap().append(&store).await?;
    }
    let state = history.workspaces().next().unwrap().clone();
    let revoked: Vec<TokenHash> =
        state.members.iter().filter(|m| m.removed_at.is_some()).map(|m| m.token_hash).collect();
    let active: Vec<TokenHash> =
        state.members.iter().filter(|m| m.removed_at.is_none()).map(|m| m.token_hash).collect();
    assert_eq!(revoked.len(), 19);

    let tokens = RedisTokens::new(conn.clone(), &unique_prefix("lost"));
    let config =
        ProjectorConfig { batch_events_max: 40, flush_interval_ms: 1, verify_interval_ms: 50, retry_interval_ms: 20 };
    let handle = Projector::spawn(Arc::new(store.clone()), Arc::new(tokens.clone()), config);
    handle.wait_for(store.head().await?, Duration::from_secs(30)).await?;
    for hash in &revoked {
        assert!(matches!(tokens.check(hash).await, TokenCheck::Revoked(_)));
    }
    for hash in &active {
        assert!(matches!(tokens.check(hash).await, TokenCheck::Valid(_)));
    }
    assert_eq!(handle.status().rebuilds, 1);

    redis::cmd("FLUSHDB").query_async::<()>(&mut conn.clone()).await?;
    assert_eq!(tokens.check(&active[0]).await, TokenCheck::Unavailable, "a lost view is unavailable, not unknown");
    // Removed while the view is being rebuilt: must come out revoked.
    history.remove(0, 25).unwrap().append(&store).await?;
    let late_email = history.account(25).email;
    let late = history.workspaces().next().unwrap().members.iter().find(|m| m.email == late_email).unwrap().token_hash;
    assert!(active.contains(&late));

    let started = Instant::now();
    let mut unavailable_seen = 0u32;
    loop {
        for hash in revoked.iter().chain([&late]) {
            match tokens.check(hash).await {
                TokenCheck::Valid(info) => panic!("revoked token of {} reported valid during the rebuild", info.label),
                TokenCheck::Unavailable => unavailable_seen += 1,
                TokenCheck::Revoked(_) | TokenCheck::Unknown => {}
            }
        }
        let status = handle.status();
        if status.rebuilds >= 2 && status.checkpoint == Some(store.head().await?) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no rebuild after FLUSHDB: {status:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(unavailable_seen > 0, "the rebuild window was observed");
    for hash in revoked.iter().chain([&late]) {
        assert!(matches!(tokens.check(hash).await, TokenCheck::Revoked(_)));
    }
    assert!(matches!(tokens.check(&active[0]).await, TokenCheck::Valid(_)));
    handle.stop().await;
    tokens.target().delete_all().await?;
    Ok(())
}
