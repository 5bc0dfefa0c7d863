//! Both targets answer the same tri-state for members, bots, revocations and deletions.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rollcall_core::Plan;
use rollcall_core::events::Role;
use rollcall_core::token::TokenHash;
use rollcall_core::workspace::WorkspaceCommand;
use rollcall_projection::history::HistoryBuilder;
use rollcall_projection::{Projector, ProjectorConfig, connect_redis};
use rollcall_store::{EventStore, MemoryStore};
use rollcall_tokens::{InProcessTokens, RedisTokens, TokenCheck, TokenKind, TokenView};

async fn redis_tokens(test: &str) -> RedisTokens {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let conn = connect_redis(&url).await.unwrap_or_else(|e| {
        panic!("cannot connect to redis at {url} ({e}): start one with `redis-server --daemonize yes --port 6379 --save \"\" --appendonly no` or set REDIS_URL")
    });
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or(0);
    RedisTokens::new(conn, &format!("test:{test}:{}:{nanos}:", std::process::id()))
}

#[tokio::test]
async fn members_bots_revocations_and_deletions_in_both_targets() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let mut history = HistoryBuilder::new(Utc.with_ymd_and_hms(2025, 7, 1, 8, 0, 0).unwrap(), 8);
    history.create_workspace("alpha", Plan::Pro, 0).unwrap().append(&store).await?;
    history.invite(0, 1, Role::Member).unwrap().append(&store).await?;
    history.accept(0, 0).unwrap().append(&store).await?;
    history.random_op(6, 0, 2).unwrap().append(&store).await?;
    history.create_workspace("beta", Plan::Pro, 3).unwrap().append(&store).await?;

    let in_process = InProcessTokens::new();
    let redis = redis_tokens("tokens-check").await;
    let unknown = TokenHash::of("mwt_never_issued");
    assert_eq!(in_process.check(&unknown).await, TokenCheck::Unavailable);
    assert_eq!(redis.check(&unknown).await, TokenCheck::Unavailable);

    let config = ProjectorConfig { flush_interval_ms: 1, ..ProjectorConfig::default() };
    let handles = [
        Projector::spawn(Arc::new(store.clone()), in_process.projection(), config),
        Projector::spawn(Arc::new(store.clone()), Arc::new(redis.clone()), config),
    ];
    let views: [&dyn TokenView; 2] = [&in_process, &redis];
    let sync = |handles: &[rollcall_projection::ProjectorHandle; 2], store: MemoryStore| {
        let handles = handles.clone();
        async move {
            let head = store.head().await?;
            for h in &handles {
                h.wait_for(head, Duration::from_secs(5)).await?;
            }
            anyhow::Ok(())
        }
    };
    sync(&handles, store.clone()).await?;

    let alpha = history.workspaces().next().unwrap().clone();
    let (owner, member, bot) = (alpha.members[0].token_hash, alpha.members[1].token_hash, alpha.bots[0].token_hash);
    for view in views {
        assert_eq!(view.check(&unknown).await, TokenCheck::Unknown);
        let TokenCheck::Valid(info) = view.check(&member).await else { panic!("member token valid") };
        assert_eq!(
            (info.workspace.as_str(), info.kind, info.label.as_str()),
            ("alpha", TokenKind::Member, "person1@example.com")
        );
        assert_eq!(info.subject_id, alpha.members[1].member_id.0);
        let TokenCheck::Valid(info) = view.check(&bot).await else { panic!("bot token valid") };
        assert_eq!((info.kind, info.label.as_str()), (TokenKind::Bot, "bot-2"));
    }

    history.remove(0, 1).unwrap().append(&store).await?;
    history.random_op(7, 0, 0).unwrap().append(&store).await?;
    sync(&handles, store.clone()).await?;
    for view in views {
        assert!(matches!(view.check(&member).await, TokenCheck::Revoked(_)));
        assert!(matches!(view.check(&bot).await, TokenCheck::Revoked(_)));
        assert!(matches!(view.check(&owner).await, TokenCheck::Valid(_)));
    }

    let owner_account = history.account(0);
    history.command(0, WorkspaceCommand::Delete, Some(owner_account)).unwrap().append(&store).await?;
    sync(&handles, store.clone()).await?;
    let beta_owner = history.workspaces().nth(1).unwrap().members[0].token_hash;
    for view in views {
        assert!(matches!(view.check(&owner).await, TokenCheck::Revoked(_)), "deletion revokes every token");
        assert!(matches!(view.check(&beta_owner).await, TokenCheck::Valid(_)), "other workspaces untouched");
    }
    assert_eq!(redis.snapshot().await?, in_process.snapshot());
    for h in &handles {
        h.stop().await;
    }
    redis.target().delete_all().await?;
    Ok(())
}
