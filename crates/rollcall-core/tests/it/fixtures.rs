//! Deterministic inputs and a given / when / then harness.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rollcall_core::events::{Event, IssuedToken, Role};
use rollcall_core::ids::*;
use rollcall_core::plan::Plan;
use rollcall_core::token::{Secret, SecretKind};
use rollcall_core::workspace::{self, AccountRef, Context, INVITATION_TTL_DEFAULT, WorkspaceCommand, WorkspaceState};
use rollcall_core::{DomainError, Email};
use uuid::Uuid;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 3, 12, 0, 0).unwrap()
}

pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub fn email(local: &str) -> Email {
    Email::parse(&format!("{local}@example.com")).unwrap()
}

pub fn account(local: &str) -> AccountRef {
    // Stable per name, so the same person is the same account across a test.
    let n = local.bytes().fold(7u128, |acc, b| acc.wrapping_mul(131).wrapping_add(u128::from(b)));
    AccountRef { account_id: AccountId(id(n)), email: email(local) }
}

pub fn secret(kind: SecretKind, n: u8) -> Secret {
    Secret::generate(kind, [n; 32])
}

pub fn issued(kind: SecretKind, n: u8) -> IssuedToken {
    IssuedToken::of(TokenId(id(10_000 + u128::from(n))), &secret(kind, n))
}

pub fn as_(who: &str, now: DateTime<Utc>) -> Context {
    Context { actor: Some(account(who)), now }
}

pub fn system(now: DateTime<Utc>) -> Context {
    Context { actor: None, now }
}

pub fn create(name: &str, plan: Plan) -> WorkspaceCommand {
    WorkspaceCommand::Create {
        workspace_id: WorkspaceId(id(1)),
        name: name.into(),
        plan,
        owner: account("owner"),
        owner_member_id: MemberId(id(2)),
        owner_token: issued(SecretKind::MemberToken, 1),
    }
}

pub fn invite(local: &str, role: Role, code: u8) -> WorkspaceCommand {
    WorkspaceCommand::Invite {
        invitation_id: InvitationId(id(100 + u128::from(code))),
        email: email(local),
        role,
        code_hash: secret(SecretKind::InvitationCode, code).hash(),
        ttl: INVITATION_TTL_DEFAULT,
    }
}

pub fn accept(code: u8, member: u128, token: u8) -> WorkspaceCommand {
    WorkspaceCommand::Accept {
        code_hash: secret(SecretKind::InvitationCode, code).hash(),
        member_id: MemberId(id(member)),
        token: issued(SecretKind::MemberToken, token),
    }
}

/// A scenario: past events, then a command.
pub struct Scenario {
    history: Vec<Event>,
}

pub fn given(history: Vec<Event>) -> Scenario {
    Scenario { history }
}

/// Runs commands in order, each against the state so far, and returns the events.
pub fn run(steps: Vec<(WorkspaceCommand, Context)>) -> Vec<Event> {
    let mut events = Vec::new();
    for (command, ctx) in steps {
        let state = workspace::replay(&events);
        let new = workspace::decide(&state, command.clone(), &ctx)
            .unwrap_or_else(|e| panic!("setup command {command:?} refused: {e}"));
        events.extend(new);
    }
    events
}

impl Scenario {
    pub fn history(&self) -> &[Event] {
        &self.history
    }

    pub fn state(&self) -> WorkspaceState {
        workspace::replay(&self.history)
    }

    pub fn when(&self, command: WorkspaceCommand, ctx: Context) -> Result<Vec<Event>, DomainError> {
        workspace::decide(&self.state(), command, &ctx)
    }

    /// Asserts a refusal with this code whose message contains every fragment.
    pub fn refuses(&self, command: WorkspaceCommand, ctx: Context, code: &str, fragments: &[&str]) -> DomainError {
        let error = self.when(command, ctx).expect_err("the command should be refused");
        assert_eq!(error.code(), code, "unexpected refusal: {error}");
        let message = error.to_string();
        for fragment in fragments {
            assert!(message.contains(fragment), "message {message:?} lacks {fragment:?}");
        }
        error
    }
}

/// A workspace owned by "owner" on `plan`, after the given extra steps.
pub fn workspace_with(plan: Plan, steps: Vec<(WorkspaceCommand, Context)>) -> Vec<Event> {
    let mut all = vec![(create("acme", plan), as_("owner", t0()))];
    all.extend(steps);
    run(all)
}

pub fn hours(n: i64) -> Duration {
    Duration::hours(n)
}
