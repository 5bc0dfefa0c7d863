//! The live member list and the lookups the API makes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rollcall_core::Plan;
use rollcall_core::events::Role;
use rollcall_core::workspace::TokenStatus;
use rollcall_members::{MemberKind, Members};
use rollcall_projection::history::HistoryBuilder;
use rollcall_projection::{ProjectionError, Projector, ProjectorConfig};
use rollcall_store::{EventStore, MemoryStore};

#[tokio::test]
async fn the_list_shows_members_bots_usage_seats_and_lookups() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let mut history = HistoryBuilder::new(Utc.with_ymd_and_hms(2025, 2, 3, 8, 0, 0).unwrap(), 8);
    history.create_workspace("team", Plan::Starter, 0).unwrap().append(&store).await?;
    history.invite(0, 1, Role::Admin).unwrap().append(&store).await?;
    history.accept(0, 0).unwrap().append(&store).await?;
    history.invite(0, 2, Role::Member).unwrap().append(&store).await?;
    history.random_op(6, 0, 1).unwrap().append(&store).await?;
    history.random_op(11, 0, 0).unwrap().append(&store).await?;
    for b in 0..30u8 {
        // b % subjects (owner, person1, bot) picks who calls.
        history.activity(0, 13, b).unwrap().append(&store).await?;
    }
    let members = Members::new();
    assert!(matches!(members.list("team", history.now()), Err(ProjectionError::Unavailable(_))));
    let handle = Projector::spawn(Arc::new(store.clone()), members.projection(), ProjectorConfig::default());
    handle.wait_for(store.head().await?, Duration::from_secs(5)).await?;

    let list = members.list("team", history.now())?.unwrap();
    assert_eq!((list.seats_used, list.seats_limit), (3, Some(5)));
    assert_eq!(list.upstream.as_deref(), Some("https://tools0.example.com/mcp"));
    assert_eq!(list.invitations.len(), 1);
    let kinds: Vec<(MemberKind, &str, Option<Role>)> =
        list.members.iter().map(|m| (m.kind, m.label.as_str(), m.role)).collect();
    assert_eq!(
        kinds,
        [
            (MemberKind::Human, "person0@example.com", Some(Role::Owner)),
            (MemberKind::Human, "person1@example.com", Some(Role::Admin)),
            (MemberKind::Bot, "bot-1", None),
        ]
    );
    let calls: u64 = list.members.iter().map(|m| m.usage.unwrap().tool_calls_total).sum();
    assert_eq!(calls, 30);
    assert!(
        list.members
            .iter()
            .all(|m| m.usage.unwrap().tool_calls_total == 10 && m.usage.unwrap().last_active_at.is_some())
    );
    assert!(list.members.iter().all(|m| m.token_status == TokenStatus::Active));

    let person1 = history.account(1).account_id;
    let memberships = members.memberships(person1)?;
    assert_eq!(memberships.len(), 1);
    assert_eq!((memberships[0].name.as_str(), memberships[0].role), ("team", Role::Admin));
    let pending = &history.workspaces().next().unwrap().invitations[1];
    assert_eq!(members.workspace_of_invitation(&pending.code_hash)?.as_deref(), Some("team"));
    let used = &history.workspaces().next().unwrap().invitations[0];
    assert_eq!(members.workspace_of_invitation(&used.code_hash)?, None, "an accepted code leads nowhere");
    assert_eq!(members.workspaces()?.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["team"]);

    history.remove(0, 1).unwrap().append(&store).await?;
    handle.wait_for(store.head().await?, Duration::from_secs(5)).await?;
    let list = members.list("team", history.now())?.unwrap();
    assert_eq!(list.members[1].token_status, TokenStatus::Revoked);
    assert!(members.memberships(person1)?.is_empty());
    handle.stop().await;
    Ok(())
}
