//! "Who had access at time T?" against a hand-checked history.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rollcall_core::Plan;
use rollcall_core::events::Role;
use rollcall_core::workspace::TokenStatus;
use rollcall_members::{AsOf, members_as_of};
use rollcall_projection::history::HistoryBuilder;
use rollcall_store::{EventStore, MemoryStore};

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 2, 3, hour, 0, 0).unwrap()
}

fn active_labels(list: &rollcall_members::WorkspaceMembers) -> Vec<&str> {
    list.active().map(|m| m.label.as_str()).collect()
}

#[tokio::test]
async fn the_member_list_as_of_times_and_positions_between_invite_accept_and_remove() -> anyhow::Result<()> {
    let store = MemoryStore::new();
    // 08:00 created by person0; 09:00 person1 invited; 10:00 accepted; 12:00 removed.
    let mut history = HistoryBuilder::new(at(8), 8);
    history.create_workspace("audit", Plan::Starter, 0).unwrap().append(&store).await?;
    history.advance(Duration::hours(1));
    history.invite(0, 1, Role::Member).unwrap().append(&store).await?;
    history.advance(Duration::hours(1));
    let accept = history.accept(0, 0).unwrap();
    let accepted = store.append(&accept.stream, accept.expected, accept.events).await?.position;
    history.advance(Duration::hours(2));
    history.remove(0, 1).unwrap().append(&store).await?;

    assert_eq!(members_as_of(&store, "audit", AsOf::Time(at(7))).await?, None, "not created yet");
    assert_eq!(members_as_of(&store, "nowhere", AsOf::Time(at(13))).await?, None);

    let before_invite = members_as_of(&store, "audit", AsOf::Time(at(8) + Duration::minutes(30))).await?.unwrap();
    assert_eq!(active_labels(&before_invite), ["person0@example.com"]);
    assert!(before_invite.invitations.is_empty());
    assert_eq!((before_invite.seats_used, before_invite.seats_limit), (1, Some(5)));

    let invited = members_as_of(&store, "audit", AsOf::Time(at(9) + Duration::minutes(30))).await?.unwrap();
    assert_eq!(active_labels(&invited), ["person0@example.com"]);
    assert_eq!(invited.invitations.len(), 1);
    assert_eq!(invited.invitations[0].email.as_str(), "person1@example.com");
    assert_eq!(invited.seats_used, 2, "a pending invitation holds a seat");

    let joined = members_as_of(&store, "audit", AsOf::Time(at(11))).await?.unwrap();
    assert_eq!(active_labels(&joined), ["person0@example.com", "person1@example.com"]);
    assert!(joined.invitations.is_empty());
    assert_eq!(joined.members[1].joined_at, at(10));
    assert_eq!(joined.members[1].usage, None, "as-of answers carry membership only");

    let by_position = members_as_of(&store, "audit", AsOf::Position(accepted)).await?.unwrap();
    assert_eq!(by_position, joined);
    assert_eq!(by_position.position, accepted);

    let removed = members_as_of(&store, "audit", AsOf::Time(at(13))).await?.unwrap();
    assert_eq!(active_labels(&removed), ["person0@example.com"]);
    assert_eq!(removed.members[1].token_status, TokenStatus::Revoked);
    assert_eq!(removed.members[1].removed_at, Some(at(12)));
    assert_eq!(removed.position, store.head().await?);
    Ok(())
}
