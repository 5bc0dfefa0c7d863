//! Given / when / then for every product rule and every refusal.

use chrono::Duration;
use rollcall_core::account::{self, AccountCommand, AccountState};
use rollcall_core::events::{Event, RemovalReason, Role};
use rollcall_core::ids::*;
use rollcall_core::offboard::{OffboardStep, plan_offboarding};
use rollcall_core::plan::Plan;
use rollcall_core::token::SecretKind;
use rollcall_core::workspace::{self, InvitationStatus, TokenStatus, WorkspaceCommand};
use rollcall_core::{DomainError, Email, ErrorClass};

use crate::fixtures::*;

// --- accounts ---------------------------------------------------------------------------

#[test]
fn signup_records_the_normalised_address_and_refuses_a_second_account() {
    let email = Email::parse("  Alice@Example.COM ").unwrap();
    assert_eq!(email.as_str(), "alice@example.com");
    let command = AccountCommand::SignUp {
        account_id: AccountId(id(5)),
        email: email.clone(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        token: issued(SecretKind::AccountToken, 9),
    };
    let events = account::decide(&AccountState::default(), command.clone(), t0()).unwrap();
    assert!(matches!(&events[0], Event::AccountSignedUp(e) if e.email == email));
    let mut state = AccountState::default();
    events.iter().for_each(|e| account::evolve(&mut state, e));
    let error = account::decide(&state, command, t0()).unwrap_err();
    assert_eq!(error.code(), "account_exists");
    assert!(error.to_string().contains("log in instead"));
}

#[test]
fn malformed_addresses_are_refused_with_the_reason() {
    for (input, reason) in [
        ("", "empty"),
        ("alice", "no @"),
        ("@example.com", "before the @"),
        ("alice@localhost", "needs a dot"),
        ("al ice@example.com", "whitespace"),
        ("alice@exa_mple.com", "not a valid host"),
        ("a..b@example.com", "misplaced dot"),
    ] {
        let error = Email::parse(input).unwrap_err();
        assert!(error.to_string().contains(reason), "{input:?}: {error}");
    }
}

// --- workspaces and plans ---------------------------------------------------------------

#[test]
fn creating_a_workspace_makes_the_owner_its_first_member_with_a_token() {
    let events = given(vec![]).when(create("acme", Plan::Starter), as_("owner", t0())).unwrap();
    let state = workspace::replay(&events);
    assert_eq!(state.active_members().count(), 1);
    let owner = state.active_members().next().unwrap();
    assert_eq!(owner.role, Role::Owner);
    assert_eq!(state.token_status(&owner.token_hash), Some(TokenStatus::Active));
    assert_eq!(state.seats_used(t0()), 1);
}

#[test]
fn workspace_names_are_validated_and_unique() {
    given(vec![]).refuses(create("A b", Plan::Free), as_("owner", t0()), "invalid_workspace_name", &["3 to 63"]);
    let history = workspace_with(Plan::Free, vec![]);
    given(history).refuses(create("acme", Plan::Free), as_("owner", t0()), "workspace_name_taken", &["acme"]);
}

#[test]
fn only_the_owner_changes_the_plan() {
    let history = workspace_with(
        Plan::Pro,
        vec![(invite("admin", Role::Admin, 1), as_("owner", t0())), (accept(1, 50, 2), as_("admin", t0()))],
    );
    let scenario = given(history);
    scenario.refuses(
        WorkspaceCommand::ChangePlan { plan: Plan::Business },
        as_("admin", t0()),
        "forbidden",
        &["owner"],
    );
    let events = scenario.when(WorkspaceCommand::ChangePlan { plan: Plan::Business }, as_("owner", t0())).unwrap();
    assert!(matches!(&events[..], [Event::PlanChanged(e)] if e.from == Plan::Pro && e.to == Plan::Business));
    assert!(scenario.when(WorkspaceCommand::ChangePlan { plan: Plan::Pro }, as_("owner", t0())).unwrap().is_empty());
}

#[test]
fn a_downgrade_below_use_is_refused_and_names_exactly_who_is_over() {
    let history = workspace_with(
        Plan::Pro,
        vec![
            (invite("a", Role::Member, 1), as_("owner", t0())),
            (accept(1, 51, 2), as_("a", t0())),
            (invite("b", Role::Member, 3), as_("owner", t0())),
            (accept(3, 52, 4), as_("b", t0())),
            (invite("c", Role::Member, 5), as_("owner", t0())),
            (invite("d", Role::Member, 6), as_("owner", t0())),
            (invite("e", Role::Member, 7), as_("owner", t0())),
            (invite("f", Role::Member, 8), as_("owner", t0())),
        ],
    );
    let scenario = given(history);
    // 3 members + 4 pending = 7 seats; Starter has 5: the last two to take a seat are over.
    let preview = scenario.state().preview_plan_change(Plan::Starter, t0());
    assert_eq!(preview.seats_used, 7);
    assert_eq!(preview.over_limit.len(), 2);
    let error = scenario.refuses(
        WorkspaceCommand::ChangePlan { plan: Plan::Starter },
        as_("owner", t0()),
        "downgrade_over_limit",
        &["starter", "5 seats", "7 are in use", "invitation to e@example.com", "invitation to f@example.com"],
    );
    assert!(!error.to_string().contains("c@example.com"));
    let free = scenario.refuses(
        WorkspaceCommand::ChangePlan { plan: Plan::Free },
        as_("owner", t0()),
        "downgrade_over_limit",
        &["member a@example.com", "member b@example.com", "invitation to f@example.com"],
    );
    assert!(!free.to_string().contains("owner@example.com"), "the owner is never over the limit");
}

// --- seats ------------------------------------------------------------------------------

#[test]
fn free_is_the_owner_only_and_the_refusal_names_plan_limit_and_ways_out() {
    let scenario = given(workspace_with(Plan::Free, vec![]));
    let error = scenario.refuses(
        invite("alice", Role::Member, 1),
        as_("owner", t0()),
        "seat_limit_reached",
        &["free plan", "1 seat", "remove a member", "cancel an invitation", "upgrade", "plan set acme starter"],
    );
    assert_eq!(error.class(), ErrorClass::Limit);
}

#[test]
fn each_plan_holds_its_limit_counting_the_owner_and_pending_invitations() {
    for (plan, limit) in [(Plan::Starter, 5usize), (Plan::Pro, 20), (Plan::Business, 100)] {
        let steps = (1..limit)
            .map(|n| (invite(&format!("p{n}"), Role::Member, n as u8), as_("owner", t0())))
            .collect::<Vec<_>>();
        let scenario = given(workspace_with(plan, steps));
        assert_eq!(scenario.state().seats_used(t0()), limit);
        scenario.refuses(
            invite("one-more", Role::Member, 250),
            as_("owner", t0()),
            "seat_limit_reached",
            &[plan.name(), &format!("{limit} seats")],
        );
    }
}

#[test]
fn enterprise_has_no_limit() {
    let steps = (1..=150u8).map(|n| (invite(&format!("e{n}"), Role::Member, n), as_("owner", t0()))).collect();
    let state = workspace::replay(&workspace_with(Plan::Enterprise, steps));
    assert_eq!(state.seats_used(t0()), 151);
}

#[test]
fn acceptance_never_fails_for_want_of_a_seat() {
    let steps = (1..5u8).map(|n| (invite(&format!("s{n}"), Role::Member, n), as_("owner", t0()))).collect();
    let scenario = given(workspace_with(Plan::Starter, steps));
    assert!(scenario.when(accept(4, 60, 9), as_("s4", t0())).is_ok());
}

#[test]
fn cancelled_and_expired_invitations_free_their_seat() {
    let scenario = given(workspace_with(Plan::Free, vec![]));
    scenario.refuses(invite("x", Role::Member, 2), as_("owner", t0()), "seat_limit_reached", &[]);
    let history = workspace_with(
        Plan::Starter,
        (1..5u8).map(|n| (invite(&format!("s{n}"), Role::Member, n), as_("owner", t0()))).collect(),
    );
    let mut history = history;
    history.extend(run_on(
        &history,
        vec![(WorkspaceCommand::Cancel { invitation_id: InvitationId(id(101)) }, as_("owner", t0()))],
    ));
    assert!(given(history.clone()).when(invite("new", Role::Member, 20), as_("owner", t0())).is_ok());
    // Eight days later every invitation has lapsed, swept or not.
    let later = t0() + Duration::days(8);
    assert_eq!(workspace::replay(&history).seats_used(later), 1);
}

fn run_on(history: &[Event], steps: Vec<(WorkspaceCommand, rollcall_core::workspace::Context)>) -> Vec<Event> {
    let mut all = history.to_vec();
    let mut new = Vec::new();
    for (command, ctx) in steps {
        let events = workspace::decide(&workspace::replay(&all), command, &ctx).unwrap();
        all.extend(events.clone());
        new.extend(events);
    }
    new
}

// --- invitations ------------------------------------------------------------------------

#[test]
fn an_invitation_carries_only_the_hash_of_its_code_and_expires_in_seven_days() {
    let events =
        given(workspace_with(Plan::Pro, vec![])).when(invite("alice", Role::Admin, 1), as_("owner", t0())).unwrap();
    let Event::MemberInvited(invited) = &events[0] else { panic!("{events:?}") };
    assert_eq!(invited.expires_at, t0() + Duration::days(7));
    assert_eq!(invited.role, Role::Admin);
    let json = events[0].to_json().to_string();
    assert!(!json.contains(secret(SecretKind::InvitationCode, 1).expose()));
    assert!(json.contains(&secret(SecretKind::InvitationCode, 1).hash().to_hex()));
}

#[test]
fn invitation_refusals() {
    let history = workspace_with(
        Plan::Pro,
        vec![
            (invite("alice", Role::Member, 1), as_("owner", t0())),
            (invite("bob", Role::Member, 2), as_("owner", t0())),
            (accept(2, 70, 3), as_("bob", t0())),
        ],
    );
    let scenario = given(history);
    scenario.refuses(
        invite("alice", Role::Member, 9),
        as_("owner", t0()),
        "already_invited",
        &["alice@example.com", "resend"],
    );
    scenario.refuses(invite("bob", Role::Member, 9), as_("owner", t0()), "already_member", &["bob@example.com"]);
    scenario.refuses(invite("owner", Role::Member, 9), as_("owner", t0()), "already_member", &[]);
    scenario.refuses(invite("carol", Role::Owner, 9), as_("owner", t0()), "invalid_role", &["one owner"]);
    scenario.refuses(invite("carol", Role::Member, 9), as_("bob", t0()), "forbidden", &["owner or admin"]);
    scenario.refuses(invite("carol", Role::Member, 9), as_("stranger", t0()), "workspace_not_found", &[]);
    let mut long = invite("carol", Role::Member, 9);
    if let WorkspaceCommand::Invite { ttl, .. } = &mut long {
        *ttl = Duration::days(91);
    }
    scenario.refuses(long, as_("owner", t0()), "invalid_expiry", &["90 days"]);
}

#[test]
fn an_address_whose_invitation_lapsed_can_be_invited_again() {
    let scenario = given(workspace_with(Plan::Pro, vec![(invite("alice", Role::Member, 1), as_("owner", t0()))]));
    let later = t0() + Duration::days(8);
    let events = scenario.when(invite("alice", Role::Member, 2), as_("owner", later)).unwrap();
    assert!(matches!(&events[..], [Event::InvitationExpired(_), Event::MemberInvited(_)]));
}

#[test]
fn resend_gives_a_new_code_and_the_old_one_stops_working() {
    let history = workspace_with(Plan::Pro, vec![(invite("alice", Role::Member, 1), as_("owner", t0()))]);
    let resend = WorkspaceCommand::Resend {
        invitation_id: InvitationId(id(101)),
        code_hash: secret(SecretKind::InvitationCode, 2).hash(),
        ttl: Duration::days(7),
    };
    let later = t0() + hours(30);
    let mut history = history;
    history.extend(run_on(&history, vec![(resend, as_("owner", later))]));
    let scenario = given(history);
    scenario.refuses(accept(1, 80, 5), as_("alice", later), "invitation_code_unknown", &["resent"]);
    let events = scenario.when(accept(2, 80, 5), as_("alice", later)).unwrap();
    assert!(matches!(&events[0], Event::InvitationAccepted(_)));
    let mut all = scenario.history().to_vec();
    all.extend(events);
    assert_eq!(workspace::replay(&all).invitations[0].expires_at, later + Duration::days(7));
}

#[test]
fn cancel_and_expire() {
    let history = workspace_with(Plan::Pro, vec![(invite("alice", Role::Member, 1), as_("owner", t0()))]);
    let scenario = given(history.clone());
    let cancel = WorkspaceCommand::Cancel { invitation_id: InvitationId(id(101)) };
    scenario.refuses(cancel.clone(), as_("alice", t0()), "workspace_not_found", &[]);
    let expire = WorkspaceCommand::Expire { invitation_id: InvitationId(id(101)) };
    scenario.refuses(expire.clone(), system(t0() + hours(1)), "invitation_not_yet_expired", &[]);
    let expired = scenario.when(expire, system(t0() + Duration::days(7))).unwrap();
    assert!(matches!(&expired[..], [Event::InvitationExpired(_)]));
    let mut cancelled_history = history;
    cancelled_history.extend(run_on(&cancelled_history, vec![(cancel.clone(), as_("owner", t0()))]));
    let state = workspace::replay(&cancelled_history);
    assert_eq!(state.invitations[0].status, InvitationStatus::Cancelled);
    given(cancelled_history.clone()).refuses(cancel, as_("owner", t0()), "invitation_not_pending", &["Cancelled"]);
    given(cancelled_history).refuses(accept(1, 80, 5), as_("alice", t0()), "invitation_cancelled", &["new one"]);
}

// --- acceptance -------------------------------------------------------------------------

#[test]
fn acceptance_needs_the_code_and_the_invited_address() {
    let scenario = given(workspace_with(Plan::Pro, vec![(invite("alice", Role::Admin, 1), as_("owner", t0()))]));
    scenario.refuses(
        accept(1, 80, 5),
        as_("mallory", t0()),
        "invitation_for_another_address",
        &["mallory@example.com"],
    );
    scenario.refuses(accept(7, 80, 5), as_("alice", t0()), "invitation_code_unknown", &[]);
    let ctx = rollcall_core::workspace::Context { actor: None, now: t0() };
    scenario.refuses(accept(1, 80, 5), ctx, "not_signed_in", &["sign in"]);
    scenario.refuses(accept(1, 80, 5), as_("alice", t0() + Duration::days(8)), "invitation_expired", &["resend"]);
    let events = scenario.when(accept(1, 80, 5), as_("alice", t0())).unwrap();
    let Event::InvitationAccepted(accepted) = &events[0] else { panic!() };
    assert_eq!(accepted.role, Role::Admin);
    assert_eq!(accepted.token.hash, secret(SecretKind::MemberToken, 5).hash());
    let mut history = scenario.history().to_vec();
    history.extend(events);
    given(history).refuses(accept(1, 81, 6), as_("alice", t0()), "invitation_already_used", &[]);
}

// --- removal and tokens -------------------------------------------------------------------

#[test]
fn removal_revokes_the_token_in_the_same_event_and_a_reinvite_gets_a_new_token() {
    let mut history = workspace_with(
        Plan::Starter,
        vec![(invite("alice", Role::Member, 1), as_("owner", t0())), (accept(1, 80, 5), as_("alice", t0()))],
    );
    let old_hash = secret(SecretKind::MemberToken, 5).hash();
    let removed = run_on(
        &history,
        vec![(WorkspaceCommand::Remove { email: email("alice"), reason: RemovalReason::Removed }, as_("owner", t0()))],
    );
    let [Event::MemberRemoved(e)] = &removed[..] else { panic!("{removed:?}") };
    assert_eq!(e.token_hash, old_hash);
    history.extend(removed);
    assert_eq!(workspace::replay(&history).token_status(&old_hash), Some(TokenStatus::Revoked));
    history.extend(run_on(
        &history,
        vec![(invite("alice", Role::Member, 2), as_("owner", t0())), (accept(2, 81, 6), as_("alice", t0()))],
    ));
    let state = workspace::replay(&history);
    assert_eq!(state.token_status(&old_hash), Some(TokenStatus::Revoked));
    assert_eq!(state.token_status(&secret(SecretKind::MemberToken, 6).hash()), Some(TokenStatus::Active));
    assert_eq!(state.active_members().count(), 2);
}

#[test]
fn removal_refusals() {
    let scenario = given(workspace_with(
        Plan::Pro,
        vec![
            (invite("admin", Role::Admin, 1), as_("owner", t0())),
            (accept(1, 80, 5), as_("admin", t0())),
            (invite("admin2", Role::Admin, 2), as_("owner", t0())),
            (accept(2, 81, 6), as_("admin2", t0())),
            (invite("bob", Role::Member, 3), as_("owner", t0())),
            (accept(3, 82, 7), as_("bob", t0())),
        ],
    ));
    let remove = |who: &str| WorkspaceCommand::Remove { email: email(who), reason: RemovalReason::Removed };
    scenario.refuses(remove("owner"), as_("admin", t0()), "cannot_remove_owner", &["delete the workspace"]);
    scenario.refuses(remove("admin2"), as_("admin", t0()), "forbidden", &["the owner"]);
    scenario.refuses(remove("admin"), as_("bob", t0()), "forbidden", &["owner or admin"]);
    scenario.refuses(remove("nobody"), as_("owner", t0()), "not_a_member", &["nobody@example.com"]);
    assert!(scenario.when(remove("bob"), as_("admin", t0())).is_ok());
    assert!(scenario.when(remove("admin2"), as_("owner", t0())).is_ok());
}

// --- bots -------------------------------------------------------------------------------

#[test]
fn bots_take_no_seat_have_their_own_prefix_and_can_be_revoked() {
    let scenario = given(workspace_with(Plan::Free, vec![]));
    let create_bot = |name: &str, n: u8| WorkspaceCommand::CreateBot {
        bot_id: BotId(id(900 + u128::from(n))),
        name: name.into(),
        token: issued(SecretKind::BotToken, n),
    };
    let events = scenario.when(create_bot("ci-bot", 40), as_("owner", t0())).unwrap();
    assert!(secret(SecretKind::BotToken, 40).expose().starts_with("mwb_"));
    let mut history = workspace_with(Plan::Free, vec![]);
    history.extend(events);
    let state = workspace::replay(&history);
    assert_eq!(state.seats_used(t0()), 1, "a bot takes no seat");
    let scenario = given(history.clone());
    scenario.refuses(create_bot("ci-bot", 41), as_("owner", t0()), "bot_name_taken", &["ci-bot"]);
    scenario.refuses(create_bot("bad name", 41), as_("owner", t0()), "invalid_bot_name", &[]);
    let revoked = scenario.when(WorkspaceCommand::RevokeBot { name: "ci-bot".into() }, as_("owner", t0())).unwrap();
    history.extend(revoked);
    let state = workspace::replay(&history);
    assert_eq!(state.token_status(&secret(SecretKind::BotToken, 40).hash()), Some(TokenStatus::Revoked));
    given(history).refuses(
        WorkspaceCommand::RevokeBot { name: "ci-bot".into() },
        as_("owner", t0()),
        "bot_not_found",
        &[],
    );
}

// --- upstream and deletion ---------------------------------------------------------------

#[test]
fn upstream_must_be_an_http_url() {
    let scenario = given(workspace_with(Plan::Pro, vec![]));
    scenario.refuses(
        WorkspaceCommand::SetUpstream { url: "ftp://x".into() },
        as_("owner", t0()),
        "invalid_upstream",
        &["http"],
    );
    assert!(
        scenario
            .when(WorkspaceCommand::SetUpstream { url: "http://127.0.0.1:9000/mcp".into() }, as_("owner", t0()))
            .is_ok()
    );
}

#[test]
fn deleting_revokes_every_token_and_only_the_owner_may() {
    let mut history = workspace_with(
        Plan::Pro,
        vec![(invite("admin", Role::Admin, 1), as_("owner", t0())), (accept(1, 80, 5), as_("admin", t0()))],
    );
    given(history.clone()).refuses(WorkspaceCommand::Delete, as_("admin", t0()), "forbidden", &["the owner"]);
    history.extend(run_on(&history, vec![(WorkspaceCommand::Delete, as_("owner", t0()))]));
    let state = workspace::replay(&history);
    assert!(!state.is_live());
    assert_eq!(state.token_status(&secret(SecretKind::MemberToken, 5).hash()), Some(TokenStatus::Revoked));
    assert_eq!(state.token_status(&secret(SecretKind::MemberToken, 1).hash()), Some(TokenStatus::Revoked));
    given(history).refuses(invite("x", Role::Member, 3), as_("owner", t0()), "workspace_not_found", &[]);
}

// --- offboarding ------------------------------------------------------------------------

#[test]
fn offboarding_plans_every_workspace_the_caller_administers() {
    let admin_of_two = |name: &str, alice_role: Role, caller_role: Role| {
        let mut state = workspace::replay(&run(vec![
            (
                WorkspaceCommand::Create {
                    workspace_id: WorkspaceId(id(u128::from(name.len() as u32) + 7000)),
                    name: name.into(),
                    plan: Plan::Pro,
                    owner: account("owner"),
                    owner_member_id: MemberId(id(2)),
                    owner_token: issued(SecretKind::MemberToken, 1),
                },
                as_("owner", t0()),
            ),
            (invite("caller", caller_role, 1), as_("owner", t0())),
            (accept(1, 80, 5), as_("caller", t0())),
            (invite("alice", alice_role, 2), as_("owner", t0())),
            (accept(2, 81, 6), as_("alice", t0())),
            (invite("pending", Role::Member, 3), as_("owner", t0())),
        ]));
        state.name = name.into();
        state
    };
    let a = admin_of_two("alpha", Role::Member, Role::Admin);
    let b = admin_of_two("bravo-ws", Role::Admin, Role::Admin);
    let c = admin_of_two("charlie-ws", Role::Member, Role::Member);
    let caller = account("caller").account_id;
    let steps = plan_offboarding([&a, &b, &c], caller, &email("alice"), t0());
    assert_eq!(
        steps,
        vec![
            OffboardStep::RemoveMember { workspace: "alpha".into() },
            OffboardStep::Skip {
                workspace: "bravo-ws".into(),
                reason: "the address is an admin here; only the owner can remove an admin".into()
            },
        ]
    );
    let pending = plan_offboarding([&a, &b, &c], caller, &email("pending"), t0());
    assert_eq!(pending.len(), 2, "pending invitations are cancelled in the workspaces the caller administers");
    assert!(pending.iter().all(|s| matches!(s, OffboardStep::CancelInvitation { .. })));
}

// --- errors -------------------------------------------------------------------------------

#[test]
fn every_refusal_has_a_stable_code_and_a_lowercase_message_without_a_trailing_period() {
    let samples: Vec<DomainError> = vec![
        DomainError::NotSignedIn,
        DomainError::CannotRemoveOwner,
        DomainError::InvitationAlreadyUsed,
        DomainError::BadCredentials,
        DomainError::SeatLimitReached { workspace: "acme".into(), plan: Plan::Starter, limit: 5, used: 5 },
    ];
    for error in samples {
        let message = error.to_string();
        assert!(message.chars().next().unwrap().is_lowercase(), "{message}");
        assert!(!message.ends_with('.'), "{message}");
        assert!(error.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    }
}
