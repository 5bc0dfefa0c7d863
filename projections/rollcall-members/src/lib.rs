//! The member-list projection: members, bots, invitations, seats, and the list as of any past
//! position.
//!
//! The view folds each workspace stream with the domain's own `evolve`, so the list shows
//! exactly what the aggregate decides on, and adds what the aggregate does not keep: tool calls
//! and last activity per member and bot, and the lookups the API needs (an account's
//! workspaces, the workspace of an invitation code). [`members_as_of`] answers "who had access
//! at time T?" by replaying one workspace stream up to that point.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rollcall_core::catalogue::{WORKSPACE_STREAM_PREFIX, workspace_stream};
use rollcall_core::envelope::Position;
use rollcall_core::events::{Caller, Event, Role};
use rollcall_core::token::{TokenHash, TokenHint};
use rollcall_core::workspace::{InvitationStatus, TokenStatus, WorkspaceState, evolve};
use rollcall_core::{AccountId, Email, InvitationId, Plan, TokenId, WorkspaceId};
use rollcall_projection::{InProcess, ProjectedEvent, Projection, ProjectionError, ViewState};
use rollcall_store::EventStore;
use serde::Serialize;
use uuid::Uuid;

/// The projection's name.
pub const PROJECTION_NAME: &str = "members";

/// Events read per page when replaying a workspace stream for an "as of" query.
pub const AS_OF_PAGE_EVENTS: usize = 1000;

/// Human member or bot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    /// A person.
    Human,
    /// A bot.
    Bot,
}

/// Tool usage of a member or bot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tool calls.
    pub tool_calls_total: u64,
    /// Time of the last tool call.
    pub last_active_at: Option<DateTime<Utc>>,
}

/// One row of the member list: a member or a bot, current or past.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// Human or bot.
    pub kind: MemberKind,
    /// The member id or bot id.
    pub subject_id: Uuid,
    /// The account, for humans.
    pub account_id: Option<AccountId>,
    /// The address (humans) or name (bots).
    pub label: String,
    /// The role, for humans.
    pub role: Option<Role>,
    /// When they joined (or the bot was created).
    pub joined_at: DateTime<Utc>,
    /// When they were removed (or the bot revoked).
    pub removed_at: Option<DateTime<Utc>>,
    /// The token's status.
    pub token_status: TokenStatus,
    /// The token's id.
    pub token_id: TokenId,
    /// The token's non-secret hint.
    pub token_hint: TokenHint,
    /// Tool usage; `None` in "as of" answers, which replay membership only.
    pub usage: Option<Usage>,
}

/// A pending invitation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvitationRow {
    /// The invitation.
    pub invitation_id: InvitationId,
    /// Who is invited.
    pub email: Email,
    /// With which role.
    pub role: Role,
    /// Who invited.
    pub invited_by: AccountId,
    /// When.
    pub invited_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// A workspace's member list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceMembers {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub name: String,
    /// Its plan.
    pub plan: Plan,
    /// Seats taken (members plus pending invitations).
    pub seats_used: usize,
    /// The plan's limit (`None`: unlimited).
    pub seats_limit: Option<usize>,
    /// The upstream MCP server.
    pub upstream: Option<String>,
    /// Whether the workspace was deleted.
    pub deleted: bool,
    /// Every member and bot, current and past: humans in join order, then bots.
    pub members: Vec<MemberRow>,
    /// Invitations pending (not yet expired) at the time asked about.
    pub invitations: Vec<InvitationRow>,
    /// The position of the log this list reflects.
    pub position: Position,
}

impl WorkspaceMembers {
    /// The members and bots whose token is active.
    pub fn active(&self) -> impl Iterator<Item = &MemberRow> {
        self.members.iter().filter(|m| m.token_status == TokenStatus::Active)
    }
}

/// A workspace in the list of workspaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceSummary {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub name: String,
    /// Its plan.
    pub plan: Plan,
    /// Current members.
    pub members_active: usize,
    /// Active bots.
    pub bots_active: usize,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// A workspace an account belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub name: String,
    /// The account's role there.
    pub role: Role,
}

/// The whole member-list view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembersState {
    /// Workspace aggregates by name.
    pub workspaces: BTreeMap<String, WorkspaceState>,
    /// Workspace names by id.
    pub names: HashMap<WorkspaceId, String>,
    /// Usage by member id or bot id.
    pub usage: HashMap<Uuid, Usage>,
    /// Workspaces an account ever joined (current membership is checked on read).
    pub accounts: HashMap<AccountId, BTreeSet<String>>,
    /// Workspace of each current invitation code hash.
    pub invitation_codes: HashMap<TokenHash, String>,
}

fn is_membership_event(event_type: &str) -> bool {
    matches!(
        event_type,
        "WorkspaceCreated"
            | "PlanChanged"
            | "MemberInvited"
            | "InvitationResent"
            | "InvitationCancelled"
            | "InvitationExpired"
            | "InvitationAccepted"
            | "MemberRemoved"
            | "BotCreated"
            | "BotRevoked"
            | "UpstreamSet"
            | "WorkspaceDeleted"
    )
}

impl ViewState for MembersState {
    fn wants(event_type: &str) -> bool {
        is_membership_event(event_type) || event_type == "ToolCalled"
    }

    fn apply(&mut self, event: &ProjectedEvent) {
        if let Event::ToolCalled(e) = &event.event {
            let subject = match e.caller {
                Caller::Member { member_id } => member_id.0,
                Caller::Bot { bot_id } => bot_id.0,
            };
            let usage = self.usage.entry(subject).or_default();
            usage.tool_calls_total += 1;
            usage.last_active_at = Some(usage.last_active_at.map_or(e.called_at, |t| t.max(e.called_at)));
            return;
        }
        if !is_membership_event(event.event.event_type()) {
            return;
        }
        let name = match &event.event {
            Event::WorkspaceCreated(e) => e.name.clone(),
            _ => event.stream.strip_prefix(WORKSPACE_STREAM_PREFIX).unwrap_or(&event.stream).to_owned(),
        };
        let state = self.workspaces.entry(name.clone()).or_default();
        match &event.event {
            Event::WorkspaceCreated(e) => {
                self.names.insert(e.workspace_id, name.clone());
                self.accounts.entry(e.owner_account_id).or_default().insert(name.clone());
            }
            Event::InvitationAccepted(e) => {
                self.accounts.entry(e.account_id).or_default().insert(name.clone());
                if let Some(i) = state.invitations.iter().find(|i| i.invitation_id == e.invitation_id) {
                    self.invitation_codes.remove(&i.code_hash);
                }
            }
            Event::MemberInvited(e) => {
                self.invitation_codes.insert(e.code_hash, name.clone());
            }
            Event::InvitationResent(e) => {
                if let Some(i) = state.invitations.iter().find(|i| i.invitation_id == e.invitation_id) {
                    self.invitation_codes.remove(&i.code_hash);
                }
                self.invitation_codes.insert(e.code_hash, name.clone());
            }
            _ => {}
        }
        evolve(state, &event.event);
    }
}

/// Builds the list of one workspace from its aggregate.
pub fn list_of(
    state: &WorkspaceState,
    usage: Option<&HashMap<Uuid, Usage>>,
    now: DateTime<Utc>,
    position: Position,
) -> Option<WorkspaceMembers> {
    let workspace_id = state.workspace_id?;
    let plan = state.plan?;
    let usage_of = |id: Uuid| usage.map(|u| u.get(&id).copied().unwrap_or_default());
    let status = |ended: bool| if ended { TokenStatus::Revoked } else { TokenStatus::Active };
    let mut members: Vec<MemberRow> = state
        .members
        .iter()
        .map(|m| MemberRow {
            kind: MemberKind::Human,
            subject_id: m.member_id.0,
            account_id: Some(m.account_id),
            label: m.email.as_str().to_owned(),
            role: Some(m.role),
            joined_at: m.joined_at,
            removed_at: m.removed_at,
            token_status: status(m.removed_at.is_some()),
            token_id: m.token_id,
            token_hint: m.token_hint.clone(),
            usage: usage_of(m.member_id.0),
        })
        .collect();
    members.extend(state.bots.iter().map(|b| MemberRow {
        kind: MemberKind::Bot,
        subject_id: b.bot_id.0,
        account_id: None,
        label: b.name.clone(),
        role: None,
        joined_at: b.created_at,
        removed_at: b.revoked_at,
        token_status: status(b.revoked_at.is_some()),
        token_id: b.token_id,
        token_hint: b.token_hint.clone(),
        usage: usage_of(b.bot_id.0),
    }));
    let invitations = state
        .pending_invitations(now)
        .map(|i| InvitationRow {
            invitation_id: i.invitation_id,
            email: i.email.clone(),
            role: i.role,
            invited_by: i.invited_by,
            invited_at: i.invited_at,
            expires_at: i.expires_at,
        })
        .collect();
    Some(WorkspaceMembers {
        workspace_id,
        name: state.name.clone(),
        plan,
        seats_used: if state.deleted { 0 } else { state.seats_used(now) },
        seats_limit: plan.seats(),
        upstream: state.upstream.clone(),
        deleted: state.deleted,
        members,
        invitations,
        position,
    })
}

impl MembersState {
    /// The member list of a workspace by name, with invitations pending at `now`.
    pub fn list(&self, workspace: &str, now: DateTime<Utc>, position: Position) -> Option<WorkspaceMembers> {
        list_of(self.workspaces.get(workspace)?, Some(&self.usage), now, position)
    }

    /// The workspaces an account currently belongs to, by name, with its role.
    pub fn memberships(&self, account_id: AccountId) -> Vec<Membership> {
        let Some(names) = self.accounts.get(&account_id) else { return Vec::new() };
        names
            .iter()
            .filter_map(|name| {
                let state = self.workspaces.get(name)?;
                let role = state.role_of(account_id).filter(|_| state.is_live())?;
                Some(Membership { workspace_id: state.workspace_id?, name: name.clone(), role })
            })
            .collect()
    }

    /// The workspace holding a pending invitation with this code hash.
    pub fn workspace_of_invitation(&self, code_hash: &TokenHash) -> Option<String> {
        let name = self.invitation_codes.get(code_hash)?;
        let state = self.workspaces.get(name)?;
        state
            .invitations
            .iter()
            .any(|i| i.status == InvitationStatus::Pending && i.code_hash.ct_eq(code_hash))
            .then(|| name.clone())
    }

    /// Every workspace, by name.
    pub fn summaries(&self) -> Vec<WorkspaceSummary> {
        self.workspaces
            .iter()
            .filter_map(|(name, s)| {
                Some(WorkspaceSummary {
                    workspace_id: s.workspace_id?,
                    name: name.clone(),
                    plan: s.plan?,
                    members_active: s.active_members().count(),
                    bots_active: s.active_bots().count(),
                    deleted: s.deleted,
                })
            })
            .collect()
    }
}

/// The member-list view held in this process.
#[derive(Clone)]
pub struct Members {
    view: Arc<InProcess<MembersState>>,
}

impl Default for Members {
    fn default() -> Members {
        Members::new()
    }
}

fn unavailable() -> ProjectionError {
    ProjectionError::Unavailable(PROJECTION_NAME.to_owned())
}

impl Members {
    /// An empty view, unavailable until its projector has built it.
    pub fn new() -> Members {
        Members { view: Arc::new(InProcess::new(PROJECTION_NAME)) }
    }

    /// The projection to hand to a [`rollcall_projection::Projector`].
    pub fn projection(&self) -> Arc<dyn Projection> {
        self.view.clone()
    }

    /// The underlying in-process view.
    pub fn view(&self) -> &Arc<InProcess<MembersState>> {
        &self.view
    }

    /// A copy of the whole view; `None` while unavailable.
    pub fn snapshot(&self) -> Option<MembersState> {
        self.view.snapshot()
    }

    /// The member list of a workspace (by name), with invitations pending at `now`.
    pub fn list(&self, workspace: &str, now: DateTime<Utc>) -> Result<Option<WorkspaceMembers>, ProjectionError> {
        self.view.read_at(|s, position| s.list(workspace, now, position)).ok_or_else(unavailable)
    }

    /// The workspace aggregate as the view holds it (by name).
    pub fn workspace_state(&self, workspace: &str) -> Result<Option<WorkspaceState>, ProjectionError> {
        self.view.read(|s| s.workspaces.get(workspace).cloned()).ok_or_else(unavailable)
    }

    /// The name of a workspace by id.
    pub fn workspace_name(&self, workspace_id: WorkspaceId) -> Result<Option<String>, ProjectionError> {
        self.view.read(|s| s.names.get(&workspace_id).cloned()).ok_or_else(unavailable)
    }

    /// The workspaces an account belongs to, with its role in each.
    pub fn memberships(&self, account_id: AccountId) -> Result<Vec<Membership>, ProjectionError> {
        self.view.read(|s| s.memberships(account_id)).ok_or_else(unavailable)
    }

    /// The workspace (by name) holding a pending invitation with this code hash.
    pub fn workspace_of_invitation(&self, code_hash: &TokenHash) -> Result<Option<String>, ProjectionError> {
        self.view.read(|s| s.workspace_of_invitation(code_hash)).ok_or_else(unavailable)
    }

    /// Every workspace, by name.
    pub fn workspaces(&self) -> Result<Vec<WorkspaceSummary>, ProjectionError> {
        self.view.read(MembersState::summaries).ok_or_else(unavailable)
    }
}

/// A point in the past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Just after the event at this global position.
    Position(Position),
    /// At this time, by the recorded time of the events.
    Time(DateTime<Utc>),
}

/// The member list of a workspace as it was at a past point, replayed from its stream.
///
/// `Ok(None)` when the workspace did not exist yet. Rows carry no usage (membership only).
pub async fn members_as_of(
    store: &dyn EventStore,
    workspace: &str,
    as_of: AsOf,
) -> Result<Option<WorkspaceMembers>, ProjectionError> {
    let stream = workspace_stream(workspace);
    let mut state = WorkspaceState::default();
    let mut revision = 0u64;
    let mut position = Position::START;
    let mut last_time: Option<DateTime<Utc>> = None;
    'pages: loop {
        let page = store.read_stream(&stream, revision, AS_OF_PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        revision = last.revision + 1;
        for recorded in &page {
            let within = match as_of {
                AsOf::Position(p) => recorded.position <= p,
                AsOf::Time(t) => recorded.metadata.recorded_at <= t,
            };
            if !within {
                break 'pages;
            }
            let event = ProjectedEvent::decode(recorded)?;
            evolve(&mut state, &event.event);
            position = recorded.position;
            last_time = Some(recorded.metadata.recorded_at);
        }
    }
    let now = match as_of {
        AsOf::Time(t) => t,
        AsOf::Position(_) => match last_time {
            Some(t) => t,
            None => return Ok(None),
        },
    };
    Ok(list_of(&state, None, now, position))
}
