//! Synthetic but valid histories, for property tests, crash tests and benchmarks.
//!
//! Membership events come from the domain's own `decide`, so every history is one the product
//! could have recorded; tool activity (calls, completions, denials, rate limiting) is added for
//! members and bots that exist. Everything is deterministic: ids come from a counter, time from
//! an explicit clock.

use chrono::{DateTime, Duration, Utc};
use rollcall_core::catalogue::{calls_stream, workspace_stream};
use rollcall_core::envelope::{Actor, Metadata, NewEvent};
use rollcall_core::events::{
    AccessDenied, CallOutcome, Caller, DenialReason, Event, RateLimited, RemovalReason, Role, ToolCallCompleted,
    ToolCalled,
};
use rollcall_core::token::{Secret, SecretKind};
use rollcall_core::workspace::{self, AccountRef, Context, WorkspaceCommand, WorkspaceState};
use rollcall_core::{AccountId, Email, IssuedToken, Plan, TokenId};
use rollcall_store::{EventStore, ExpectedRevision, StoreError};
use uuid::Uuid;

/// Tool names the generator uses.
pub const TOOLS: [&str; 8] =
    ["search", "read_file", "write_file", "run_query", "send_email", "fetch_url", "list_issues", "create_ticket"];

/// One append: a stream, its expected revision and the events.
#[derive(Clone, Debug)]
pub struct Step {
    /// The stream.
    pub stream: String,
    /// The expected revision.
    pub expected: ExpectedRevision,
    /// The events.
    pub events: Vec<NewEvent>,
}

impl Step {
    /// Appends this step to a store.
    pub async fn append(self, store: &dyn EventStore) -> Result<(), StoreError> {
        store.append(&self.stream, self.expected, self.events).await.map(|_| ())
    }
}

struct Ws {
    state: WorkspaceState,
    events: u64,
}

/// Builds histories step by step.
pub struct HistoryBuilder {
    now: DateTime<Utc>,
    counter: u128,
    workspaces: Vec<Ws>,
    accounts_max: usize,
}

impl HistoryBuilder {
    /// A builder whose clock starts at `start`, with `accounts_max` possible people.
    pub fn new(start: DateTime<Utc>, accounts_max: usize) -> HistoryBuilder {
        HistoryBuilder { now: start, counter: 0, workspaces: Vec::new(), accounts_max: accounts_max.max(2) }
    }

    /// The clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The workspaces created so far, as the builder folded them.
    pub fn workspaces(&self) -> impl Iterator<Item = &WorkspaceState> {
        self.workspaces.iter().map(|w| &w.state)
    }

    fn next_uuid(&mut self) -> Uuid {
        self.counter += 1;
        Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 | self.counter)
    }

    fn token(&mut self, kind: SecretKind) -> IssuedToken {
        let id = self.next_uuid();
        let mut random = [0u8; 32];
        random[..16].copy_from_slice(id.as_bytes());
        random[16..]
            .copy_from_slice(&(self.counter as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes().repeat(2));
        IssuedToken::of(TokenId(id), &Secret::generate(kind, random))
    }

    /// The account of person `i` (same id and address every time).
    pub fn account(&self, i: usize) -> AccountRef {
        let i = i % self.accounts_max;
        AccountRef {
            account_id: AccountId(Uuid::from_u128(0xacc0_0000_0000_0000_0000_0000_0000_0000 | i as u128)),
            email: Email::parse(&format!("person{i}@example.com")).expect("generated addresses are valid"),
        }
    }

    fn account_by_email(&self, email: &Email) -> Option<AccountRef> {
        (0..self.accounts_max).map(|i| self.account(i)).find(|a| &a.email == email)
    }

    fn metadata(&mut self, actor: Actor) -> Metadata {
        Metadata { actor, correlation_id: self.next_uuid(), causation_id: None, recorded_at: self.now }
    }

    fn envelope(&mut self, events: &[Event], actor: Actor) -> Vec<NewEvent> {
        events
            .iter()
            .map(|e| {
                let id = self.next_uuid();
                let metadata = self.metadata(actor.clone());
                e.to_new_event(id, metadata)
            })
            .collect()
    }

    /// Runs a command on workspace `index` as `actor`; `None` if the domain refuses it.
    pub fn command(&mut self, index: usize, command: WorkspaceCommand, actor: Option<AccountRef>) -> Option<Step> {
        let ctx = Context { actor: actor.clone(), now: self.now };
        let ws = self.workspaces.get(index)?;
        let events = workspace::decide(&ws.state, command, &ctx).ok()?;
        if events.is_empty() {
            return None;
        }
        let stream = workspace_stream(&ws.state.name);
        let expected = ExpectedRevision::Exact(ws.events - 1);
        let envelope_actor = actor.map_or(Actor::System, |a| Actor::Account { account_id: a.account_id.0 });
        let new_events = self.envelope(&events, envelope_actor);
        let ws = &mut self.workspaces[index];
        for event in &events {
            workspace::evolve(&mut ws.state, event);
        }
        ws.events += events.len() as u64;
        Some(Step { stream, expected, events: new_events })
    }

    /// Creates a workspace owned by person `owner`.
    pub fn create_workspace(&mut self, name: &str, plan: Plan, owner: usize) -> Option<Step> {
        if self.workspaces.iter().any(|w| w.state.name == name) {
            return None;
        }
        let owner = self.account(owner);
        let command = WorkspaceCommand::Create {
            workspace_id: self.next_uuid().into(),
            name: name.to_owned(),
            plan,
            owner: owner.clone(),
            owner_member_id: self.next_uuid().into(),
            owner_token: self.token(SecretKind::MemberToken),
        };
        let ctx = Context { actor: Some(owner.clone()), now: self.now };
        let events = workspace::decide(&WorkspaceState::default(), command, &ctx).ok()?;
        let new_events = self.envelope(&events, Actor::Account { account_id: owner.account_id.0 });
        let mut state = WorkspaceState::default();
        for event in &events {
            workspace::evolve(&mut state, event);
        }
        self.workspaces.push(Ws { state, events: events.len() as u64 });
        Some(Step { stream: workspace_stream(name), expected: ExpectedRevision::NoStream, events: new_events })
    }

    fn owner_of(&self, index: usize) -> Option<AccountRef> {
        let id = self.workspaces.get(index)?.state.owner_account_id?;
        (0..self.accounts_max).map(|i| self.account(i)).find(|a| a.account_id == id)
    }

    /// Invites person `person` to workspace `index` as the owner.
    pub fn invite(&mut self, index: usize, person: usize, role: Role) -> Option<Step> {
        let owner = self.owner_of(index)?;
        let code = self.token(SecretKind::InvitationCode);
        let command = WorkspaceCommand::Invite {
            invitation_id: self.next_uuid().into(),
            email: self.account(person).email,
            role,
            code_hash: code.hash,
            ttl: workspace::INVITATION_TTL_DEFAULT,
        };
        self.command(index, command, Some(owner))
    }

    /// Accepts the `pick`-th pending invitation of workspace `index`.
    pub fn accept(&mut self, index: usize, pick: usize) -> Option<Step> {
        let now = self.now;
        let ws = self.workspaces.get(index)?;
        let pending: Vec<_> = ws.state.pending_invitations(now).collect();
        let invitation = pending.get(pick % pending.len().max(1))?;
        let (code_hash, email) = (invitation.code_hash, invitation.email.clone());
        let account = self.account_by_email(&email)?;
        let command = WorkspaceCommand::Accept {
            code_hash,
            member_id: self.next_uuid().into(),
            token: self.token(SecretKind::MemberToken),
        };
        self.command(index, command, Some(account))
    }

    /// Removes person `person` from workspace `index` as the owner.
    pub fn remove(&mut self, index: usize, person: usize) -> Option<Step> {
        let owner = self.owner_of(index)?;
        let email = self.account(person).email;
        self.command(index, WorkspaceCommand::Remove { email, reason: RemovalReason::Removed }, Some(owner))
    }

    /// Interprets one random operation; `None` when it does not apply to the current state.
    pub fn random_op(&mut self, kind: u8, a: u8, b: u8) -> Option<Step> {
        let count = self.workspaces.len();
        let index = if count == 0 { 0 } else { a as usize % count };
        let owner = self.owner_of(index);
        let now = self.now;
        match kind % 16 {
            0 if count < 4 => {
                let plan = [Plan::Free, Plan::Starter, Plan::Pro, Plan::Business, Plan::Enterprise][b as usize % 5];
                self.create_workspace(&format!("ws-{count}"), plan, a as usize)
            }
            0 => self.accept(index, b as usize),
            1 | 2 => {
                let role = if b.is_multiple_of(4) { Role::Admin } else { Role::Member };
                self.invite(index, b as usize, role)
            }
            3 | 4 => self.accept(index, b as usize),
            5 => {
                let ws = self.workspaces.get(index)?;
                let members: Vec<_> = ws.state.active_members().filter(|m| m.role != Role::Owner).collect();
                let email = members.get(b as usize % members.len().max(1))?.email.clone();
                let person = (0..self.accounts_max).find(|i| self.account(*i).email == email)?;
                self.remove(index, person)
            }
            6 => {
                let token = self.token(SecretKind::BotToken);
                let command = WorkspaceCommand::CreateBot {
                    bot_id: self.next_uuid().into(),
                    name: format!("bot-{}", b % 6),
                    token,
                };
                self.command(index, command, owner)
            }
            7 => {
                let ws = self.workspaces.get(index)?;
                let bots: Vec<_> = ws.state.active_bots().collect();
                let name = bots.get(b as usize % bots.len().max(1))?.name.clone();
                self.command(index, WorkspaceCommand::RevokeBot { name }, owner)
            }
            8 => {
                let ws = self.workspaces.get(index)?;
                let pending: Vec<_> = ws.state.pending_invitations(now).collect();
                let invitation_id = pending.get(b as usize % pending.len().max(1))?.invitation_id;
                self.command(index, WorkspaceCommand::Cancel { invitation_id }, owner)
            }
            9 => {
                // Time passes; a stale invitation is expired or sent again.
                self.advance(Duration::days(i64::from(b % 9)));
                let ws = self.workspaces.get(index)?;
                let stale = ws.state.invitations.iter().find(|i| {
                    i.status == workspace::InvitationStatus::Pending
                        && i.expires_at <= now + Duration::days(i64::from(b % 9))
                })?;
                let invitation_id = stale.invitation_id;
                if b.is_multiple_of(2) {
                    self.command(index, WorkspaceCommand::Expire { invitation_id }, None)
                } else {
                    let code = self.token(SecretKind::InvitationCode);
                    let command = WorkspaceCommand::Resend {
                        invitation_id,
                        code_hash: code.hash,
                        ttl: workspace::INVITATION_TTL_DEFAULT,
                    };
                    self.command(index, command, owner)
                }
            }
            10 => {
                let plan = [Plan::Free, Plan::Starter, Plan::Pro, Plan::Business, Plan::Enterprise][b as usize % 5];
                self.command(index, WorkspaceCommand::ChangePlan { plan }, owner)
            }
            11 => {
                let url = format!("https://tools{}.example.com/mcp", b % 3);
                self.command(index, WorkspaceCommand::SetUpstream { url }, owner)
            }
            12 if b < 16 => self.command(index, WorkspaceCommand::Delete, owner),
            _ => self.activity(index, kind, b),
        }
    }

    /// Tool activity by a member or bot of workspace `index` (revoked ones are denied).
    pub fn activity(&mut self, index: usize, kind: u8, b: u8) -> Option<Step> {
        let ws = self.workspaces.get(index)?;
        let workspace_id = ws.state.workspace_id?;
        let mut subjects: Vec<(Caller, TokenId, bool)> = ws
            .state
            .members
            .iter()
            .map(|m| (Caller::Member { member_id: m.member_id }, m.token_id, m.removed_at.is_some()))
            .collect();
        subjects.extend(
            ws.state
                .bots
                .iter()
                .map(|bot| (Caller::Bot { bot_id: bot.bot_id }, bot.token_id, bot.revoked_at.is_some())),
        );
        let (caller, token_id, revoked) = *subjects.get(b as usize % subjects.len().max(1))?;
        let actor = match caller {
            Caller::Member { member_id } => Actor::Member { workspace_id: workspace_id.0, member_id: member_id.0 },
            Caller::Bot { bot_id } => Actor::Bot { workspace_id: workspace_id.0, bot_id: bot_id.0 },
        };
        self.advance(Duration::seconds(i64::from(b) * 7 + 1));
        let now = self.now;
        let events = if revoked {
            vec![Event::AccessDenied(AccessDenied {
                workspace_id,
                caller,
                token_id,
                reason: DenialReason::Revoked,
                denied_at: now,
            })]
        } else if kind % 16 == 15 && b.is_multiple_of(3) {
            vec![Event::RateLimited(RateLimited {
                workspace_id,
                caller,
                token_id,
                refused: u64::from(b % 7) + 1,
                window_start: now - Duration::seconds(60),
                window_end: now,
            })]
        } else {
            let tool = TOOLS[(b as usize / 3) % TOOLS.len()].to_owned();
            let request_id = format!("{}", self.counter);
            let outcome = match b % 10 {
                0 => CallOutcome::Error { code: Some(-32000) },
                1 => CallOutcome::UpstreamUnavailable,
                _ => CallOutcome::Ok,
            };
            vec![
                Event::ToolCalled(ToolCalled {
                    workspace_id,
                    caller,
                    token_id,
                    tool: tool.clone(),
                    request_id: request_id.clone(),
                    arguments_bytes: u64::from(b) * 13,
                    called_at: now,
                }),
                Event::ToolCallCompleted(ToolCallCompleted {
                    workspace_id,
                    caller,
                    token_id,
                    tool,
                    request_id,
                    outcome,
                    duration_ms: u64::from(b) * u64::from(b) / 4 + u64::from(kind),
                    completed_at: now,
                }),
            ]
        };
        let new_events = self.envelope(&events, actor);
        Some(Step { stream: calls_stream(workspace_id, token_id), expected: ExpectedRevision::Any, events: new_events })
    }
}
