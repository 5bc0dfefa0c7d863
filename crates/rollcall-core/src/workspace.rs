//! The workspace membership aggregate: plan, invitations, members, bots, upstream.
//!
//! One workspace is one stream, so optimistic concurrency on that stream makes the seat limit
//! hold under concurrent invitations: two invites decided on the same state cannot both land.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::email::Email;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::{AccountId, BotId, InvitationId, MemberId, TokenId, WorkspaceId};
use crate::plan::Plan;
use crate::token::{TokenHash, TokenHint};

/// How long an invitation is valid unless configured otherwise.
pub const INVITATION_TTL_DEFAULT: Duration = Duration::days(7);
/// Longest configurable invitation validity.
pub const INVITATION_TTL_MAX: Duration = Duration::days(90);
/// Longest bot name.
pub const BOT_NAME_LEN_MAX: usize = 64;
/// Longest upstream URL.
pub const UPSTREAM_URL_LEN_MAX: usize = 2048;

/// An account as the workspace sees it: id and address, already authenticated by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRef {
    /// The account.
    pub account_id: AccountId,
    /// Its address.
    pub email: Email,
}

/// A command on a workspace. Ids, secrets' hashes and time come in from outside.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkspaceCommand {
    /// Create the workspace with its owner as first member.
    Create {
        /// New id.
        workspace_id: WorkspaceId,
        /// Unique name.
        name: String,
        /// Plan.
        plan: Plan,
        /// The owner.
        owner: AccountRef,
        /// The owner's membership id.
        owner_member_id: MemberId,
        /// The owner's token.
        owner_token: IssuedToken,
    },
    /// Change the plan (owner only); a downgrade below current use is refused.
    ChangePlan {
        /// The plan wanted.
        plan: Plan,
    },
    /// Invite an address.
    Invite {
        /// New id.
        invitation_id: InvitationId,
        /// Who.
        email: Email,
        /// Role (admin or member).
        role: Role,
        /// Hash of the new code.
        code_hash: TokenHash,
        /// Validity.
        ttl: Duration,
    },
    /// Send an invitation again with a new code and expiry.
    Resend {
        /// Which.
        invitation_id: InvitationId,
        /// Hash of the new code.
        code_hash: TokenHash,
        /// Validity from now.
        ttl: Duration,
    },
    /// Cancel a pending invitation.
    Cancel {
        /// Which.
        invitation_id: InvitationId,
    },
    /// Record that a pending invitation has expired (system).
    Expire {
        /// Which.
        invitation_id: InvitationId,
    },
    /// Accept an invitation with its code, as the actor's account.
    Accept {
        /// Hash of the presented code.
        code_hash: TokenHash,
        /// New membership id.
        member_id: MemberId,
        /// The member's new token.
        token: IssuedToken,
    },
    /// Remove a member by address; revokes their token.
    Remove {
        /// Who.
        email: Email,
        /// Why.
        reason: RemovalReason,
    },
    /// Create a bot with its token.
    CreateBot {
        /// New id.
        bot_id: BotId,
        /// Name.
        name: String,
        /// Token.
        token: IssuedToken,
    },
    /// Revoke a bot by name.
    RevokeBot {
        /// Which.
        name: String,
    },
    /// Set the upstream MCP server.
    SetUpstream {
        /// URL.
        url: String,
    },
    /// Delete the workspace (owner only); revokes every token.
    Delete,
}

/// The actor and clock of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// Who asks (`None` for the system itself, e.g. the expiry sweep).
    pub actor: Option<AccountRef>,
    /// Now, by the caller's clock.
    pub now: DateTime<Utc>,
}

/// Status of a workspace token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Valid.
    Active,
    /// Revoked: never valid again.
    Revoked,
}

/// A member, current or past.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Membership id.
    pub member_id: MemberId,
    /// Account.
    pub account_id: AccountId,
    /// Address.
    pub email: Email,
    /// Role.
    pub role: Role,
    /// Joined.
    pub joined_at: DateTime<Utc>,
    /// Token id.
    pub token_id: TokenId,
    /// Token hash.
    pub token_hash: TokenHash,
    /// Token hint.
    pub token_hint: TokenHint,
    /// When removed, if removed.
    pub removed_at: Option<DateTime<Utc>>,
}

/// Status of an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Waiting for acceptance (may be past its expiry until the sweep records it).
    Pending,
    /// Accepted.
    Accepted,
    /// Cancelled.
    Cancelled,
    /// Expired.
    Expired,
}

/// An invitation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invitation {
    /// Id.
    pub invitation_id: InvitationId,
    /// Address.
    pub email: Email,
    /// Role.
    pub role: Role,
    /// Hash of the current code.
    pub code_hash: TokenHash,
    /// Inviter.
    pub invited_by: AccountId,
    /// First sent.
    pub invited_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Status.
    pub status: InvitationStatus,
}

impl Invitation {
    /// Whether it holds a seat at `now`: pending and not yet expired.
    pub fn reserves_seat(&self, now: DateTime<Utc>) -> bool {
        self.status == InvitationStatus::Pending && now < self.expires_at
    }
}

/// A bot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bot {
    /// Id.
    pub bot_id: BotId,
    /// Name.
    pub name: String,
    /// Token id.
    pub token_id: TokenId,
    /// Token hash.
    pub token_hash: TokenHash,
    /// Token hint.
    pub token_hint: TokenHint,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Revoked, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The workspace as folded from its stream. `Default` is "does not exist".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceState {
    /// Set once created.
    pub workspace_id: Option<WorkspaceId>,
    /// Name.
    pub name: String,
    /// Plan.
    pub plan: Option<Plan>,
    /// Owner.
    pub owner_account_id: Option<AccountId>,
    /// Every member ever, in join order.
    pub members: Vec<Member>,
    /// Every invitation ever, in order.
    pub invitations: Vec<Invitation>,
    /// Every bot ever, in order.
    pub bots: Vec<Bot>,
    /// Upstream MCP server.
    pub upstream: Option<String>,
    /// Deleted.
    pub deleted: bool,
}

/// One entry over a plan's limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OverLimit {
    /// A member past the limit.
    Member {
        /// Address.
        email: Email,
    },
    /// A pending invitation past the limit.
    Invitation {
        /// Address.
        email: Email,
    },
}

/// What a plan change would do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanChangePreview {
    /// Current plan.
    pub from: Plan,
    /// Wanted plan.
    pub to: Plan,
    /// Seats in use (members and pending invitations).
    pub seats_used: usize,
    /// The wanted plan's limit (`None`: unlimited).
    pub seats_limit: Option<usize>,
    /// Members and invitations past the new limit, in the order they took their seats.
    pub over_limit: Vec<OverLimit>,
    /// Active bots (they take no seat and keep working).
    pub bots_active: usize,
}

impl PlanChangePreview {
    /// Whether the change can be made.
    pub fn allowed(&self) -> bool {
        self.over_limit.is_empty()
    }
}

impl WorkspaceState {
    /// Whether the workspace exists and is not deleted.
    pub fn is_live(&self) -> bool {
        self.workspace_id.is_some() && !self.deleted
    }

    /// Current members, in join order (the owner first).
    pub fn active_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.removed_at.is_none())
    }

    /// Active bots.
    pub fn active_bots(&self) -> impl Iterator<Item = &Bot> {
        self.bots.iter().filter(|b| b.revoked_at.is_none())
    }

    /// Invitations holding a seat at `now`.
    pub fn pending_invitations(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Invitation> {
        self.invitations.iter().filter(move |i| i.reserves_seat(now))
    }

    /// Seats in use at `now`: current members plus live pending invitations.
    pub fn seats_used(&self, now: DateTime<Utc>) -> usize {
        self.active_members().count() + self.pending_invitations(now).count()
    }

    /// The current member with this address.
    pub fn member_by_email(&self, email: &Email) -> Option<&Member> {
        self.active_members().find(|m| &m.email == email)
    }

    /// The role of an account, if it is a current member.
    pub fn role_of(&self, account_id: AccountId) -> Option<Role> {
        self.active_members().find(|m| m.account_id == account_id).map(|m| m.role)
    }

    /// Status of a token of this workspace (member or bot), by hash.
    pub fn token_status(&self, hash: &TokenHash) -> Option<TokenStatus> {
        let status = |revoked: bool| if revoked || self.deleted { TokenStatus::Revoked } else { TokenStatus::Active };
        self.members
            .iter()
            .find(|m| &m.token_hash == hash)
            .map(|m| status(m.removed_at.is_some()))
            .or_else(|| self.bots.iter().find(|b| &b.token_hash == hash).map(|b| status(b.revoked_at.is_some())))
    }

    /// What changing to `plan` would do at `now`.
    pub fn preview_plan_change(&self, plan: Plan, now: DateTime<Utc>) -> PlanChangePreview {
        let mut seat_holders: Vec<OverLimit> =
            self.active_members().map(|m| OverLimit::Member { email: m.email.clone() }).collect();
        seat_holders.extend(self.pending_invitations(now).map(|i| OverLimit::Invitation { email: i.email.clone() }));
        let seats_used = seat_holders.len();
        let over_limit = match plan.seats() {
            Some(limit) if seats_used > limit => seat_holders.split_off(limit),
            _ => Vec::new(),
        };
        PlanChangePreview {
            from: self.plan.unwrap_or(plan),
            to: plan,
            seats_used,
            seats_limit: plan.seats(),
            over_limit,
            bots_active: self.active_bots().count(),
        }
    }
}

/// Decides what a command on a workspace records, or why it is refused.
pub fn decide(state: &WorkspaceState, command: WorkspaceCommand, ctx: &Context) -> Result<Vec<Event>, DomainError> {
    let now = ctx.now;
    if let WorkspaceCommand::Create { workspace_id, name, plan, owner, owner_member_id, owner_token } = command {
        if state.workspace_id.is_some() {
            return Err(DomainError::WorkspaceNameTaken { name });
        }
        validate_workspace_name(&name)?;
        let actor = ctx.actor.as_ref().ok_or(DomainError::NotSignedIn)?;
        if actor.account_id != owner.account_id {
            return Err(DomainError::Forbidden {
                action: "create a workspace for another account",
                needed: "to be that account",
            });
        }
        return Ok(vec![Event::WorkspaceCreated(WorkspaceCreated {
            workspace_id,
            name,
            plan,
            owner_account_id: owner.account_id,
            owner_email: owner.email,
            owner_member_id,
            owner_token,
            created_at: now,
        })]);
    }
    let workspace_id = match state.workspace_id {
        Some(id) if !state.deleted => id,
        _ => return Err(DomainError::WorkspaceNotFound { name: state.name.clone() }),
    };
    let plan = state.plan.expect("a created workspace has a plan");

    match command {
        WorkspaceCommand::Create { .. } => unreachable!("handled above"),
        WorkspaceCommand::ChangePlan { plan: wanted } => {
            let by = require_owner(state, ctx, "change the plan")?;
            if wanted == plan {
                return Ok(Vec::new());
            }
            let preview = state.preview_plan_change(wanted, now);
            if !preview.allowed() {
                return Err(DomainError::DowngradeOverLimit { preview });
            }
            let _ = by;
            Ok(vec![Event::PlanChanged(PlanChanged { workspace_id, from: plan, to: wanted, changed_at: now })])
        }
        WorkspaceCommand::Invite { invitation_id, email, role, code_hash, ttl } => {
            let by = require_manager(state, ctx, "invite members")?;
            if role == Role::Owner {
                return Err(DomainError::InvalidRole);
            }
            validate_ttl(ttl)?;
            if state.member_by_email(&email).is_some() {
                return Err(DomainError::AlreadyMember { email, workspace: state.name.clone() });
            }
            if state.pending_invitations(now).any(|i| i.email == email) {
                return Err(DomainError::AlreadyInvited { email, workspace: state.name.clone() });
            }
            let mut events = Vec::new();
            // A pending invitation past its expiry holds no seat; record its expiry before the
            // new one so that the log never shows two pending invitations for one address.
            for stale in state.invitations.iter().filter(|i| i.status == InvitationStatus::Pending && i.email == email)
            {
                events.push(Event::InvitationExpired(InvitationExpired {
                    workspace_id,
                    invitation_id: stale.invitation_id,
                    expired_at: now,
                }));
            }
            if let Some(limit) = plan.seats() {
                let used = state.seats_used(now);
                if used >= limit {
                    return Err(DomainError::SeatLimitReached { plan, limit, used, workspace: state.name.clone() });
                }
            }
            events.push(Event::MemberInvited(MemberInvited {
                workspace_id,
                invitation_id,
                email,
                role,
                code_hash,
                invited_by: by,
                invited_at: now,
                expires_at: now + ttl,
            }));
            Ok(events)
        }
        WorkspaceCommand::Resend { invitation_id, code_hash, ttl } => {
            let by = require_manager(state, ctx, "resend invitations")?;
            validate_ttl(ttl)?;
            let invitation = find_invitation(state, invitation_id)?;
            match invitation.status {
                InvitationStatus::Pending => {}
                InvitationStatus::Expired => {}
                other => return Err(DomainError::InvitationNotPending { status: other }),
            }
            if state.member_by_email(&invitation.email).is_some() {
                return Err(DomainError::AlreadyMember {
                    email: invitation.email.clone(),
                    workspace: state.name.clone(),
                });
            }
            // Resending an expired invitation re-reserves its seat, so the limit applies again.
            if !invitation.reserves_seat(now)
                && let Some(limit) = plan.seats()
            {
                let used = state.seats_used(now);
                if used >= limit {
                    return Err(DomainError::SeatLimitReached { plan, limit, used, workspace: state.name.clone() });
                }
            }
            if invitation.status == InvitationStatus::Expired
                && state.pending_invitations(now).any(|i| i.email == invitation.email)
            {
                return Err(DomainError::AlreadyInvited {
                    email: invitation.email.clone(),
                    workspace: state.name.clone(),
                });
            }
            Ok(vec![Event::InvitationResent(InvitationResent {
                workspace_id,
                invitation_id,
                code_hash,
                resent_by: by,
                resent_at: now,
                expires_at: now + ttl,
            })])
        }
        WorkspaceCommand::Cancel { invitation_id } => {
            let by = require_manager(state, ctx, "cancel invitations")?;
            let invitation = find_invitation(state, invitation_id)?;
            if invitation.status != InvitationStatus::Pending {
                return Err(DomainError::InvitationNotPending { status: invitation.status });
            }
            Ok(vec![Event::InvitationCancelled(InvitationCancelled {
                workspace_id,
                invitation_id,
                cancelled_by: by,
                cancelled_at: now,
            })])
        }
        WorkspaceCommand::Expire { invitation_id } => {
            let invitation = find_invitation(state, invitation_id)?;
            if invitation.status != InvitationStatus::Pending {
                return Err(DomainError::InvitationNotPending { status: invitation.status });
            }
            if now < invitation.expires_at {
                return Err(DomainError::InvitationNotYetExpired { expires_at: invitation.expires_at });
            }
            Ok(vec![Event::InvitationExpired(InvitationExpired { workspace_id, invitation_id, expired_at: now })])
        }
        WorkspaceCommand::Accept { code_hash, member_id, token } => {
            let account = ctx.actor.as_ref().ok_or(DomainError::NotSignedIn)?;
            let invitation = state
                .invitations
                .iter()
                .find(|i| i.code_hash.ct_eq(&code_hash))
                .ok_or(DomainError::InvitationCodeUnknown)?;
            match invitation.status {
                InvitationStatus::Pending if now < invitation.expires_at => {}
                InvitationStatus::Pending | InvitationStatus::Expired => {
                    return Err(DomainError::InvitationExpired { expires_at: invitation.expires_at });
                }
                InvitationStatus::Accepted => return Err(DomainError::InvitationAlreadyUsed),
                InvitationStatus::Cancelled => return Err(DomainError::InvitationCancelled),
            }
            if invitation.email != account.email {
                return Err(DomainError::InvitationForAnotherAddress { signed_in_as: account.email.clone() });
            }
            if state.member_by_email(&account.email).is_some() {
                return Err(DomainError::AlreadyMember { email: account.email.clone(), workspace: state.name.clone() });
            }
            // No seat check: the pending invitation has held this seat since it was sent.
            Ok(vec![Event::InvitationAccepted(InvitationAccepted {
                workspace_id,
                invitation_id: invitation.invitation_id,
                member_id,
                account_id: account.account_id,
                email: account.email.clone(),
                role: invitation.role,
                token,
                accepted_at: now,
            })])
        }
        WorkspaceCommand::Remove { email, reason } => {
            let by = require_manager(state, ctx, "remove members")?;
            let member = state
                .member_by_email(&email)
                .ok_or_else(|| DomainError::NotAMember { email: email.clone(), workspace: state.name.clone() })?;
            if member.role == Role::Owner {
                return Err(DomainError::CannotRemoveOwner);
            }
            if member.role == Role::Admin && state.role_of(by) != Some(Role::Owner) && member.account_id != by {
                return Err(DomainError::Forbidden { action: "remove an admin", needed: "the owner" });
            }
            Ok(vec![Event::MemberRemoved(MemberRemoved {
                workspace_id,
                member_id: member.member_id,
                email,
                token_id: member.token_id,
                token_hash: member.token_hash,
                removed_by: by,
                reason,
                removed_at: now,
            })])
        }
        WorkspaceCommand::CreateBot { bot_id, name, token } => {
            let by = require_manager(state, ctx, "create bots")?;
            validate_bot_name(&name)?;
            if state.active_bots().any(|b| b.name == name) {
                return Err(DomainError::BotNameTaken { name });
            }
            Ok(vec![Event::BotCreated(BotCreated {
                workspace_id,
                bot_id,
                name,
                token,
                created_by: by,
                created_at: now,
            })])
        }
        WorkspaceCommand::RevokeBot { name } => {
            let by = require_manager(state, ctx, "revoke bots")?;
            let bot = state.active_bots().find(|b| b.name == name).ok_or(DomainError::BotNotFound { name })?;
            Ok(vec![Event::BotRevoked(BotRevoked {
                workspace_id,
                bot_id: bot.bot_id,
                token_id: bot.token_id,
                token_hash: bot.token_hash,
                revoked_by: by,
                revoked_at: now,
            })])
        }
        WorkspaceCommand::SetUpstream { url } => {
            let by = require_manager(state, ctx, "set the upstream server")?;
            validate_upstream(&url)?;
            Ok(vec![Event::UpstreamSet(UpstreamSet { workspace_id, url, set_by: by, set_at: now })])
        }
        WorkspaceCommand::Delete => {
            let by = require_owner(state, ctx, "delete the workspace")?;
            let mut revoked_token_hashes: Vec<TokenHash> = state.active_members().map(|m| m.token_hash).collect();
            revoked_token_hashes.extend(state.active_bots().map(|b| b.token_hash));
            Ok(vec![Event::WorkspaceDeleted(WorkspaceDeleted {
                workspace_id,
                revoked_token_hashes,
                deleted_by: by,
                deleted_at: now,
            })])
        }
    }
}

/// Folds one event into the state. Never fails: events are facts.
pub fn evolve(state: &mut WorkspaceState, event: &Event) {
    match event {
        Event::WorkspaceCreated(e) => {
            state.workspace_id = Some(e.workspace_id);
            state.name = e.name.clone();
            state.plan = Some(e.plan);
            state.owner_account_id = Some(e.owner_account_id);
            state.members.push(Member {
                member_id: e.owner_member_id,
                account_id: e.owner_account_id,
                email: e.owner_email.clone(),
                role: Role::Owner,
                joined_at: e.created_at,
                token_id: e.owner_token.token_id,
                token_hash: e.owner_token.hash,
                token_hint: e.owner_token.hint.clone(),
                removed_at: None,
            });
        }
        Event::PlanChanged(e) => state.plan = Some(e.to),
        Event::MemberInvited(e) => state.invitations.push(Invitation {
            invitation_id: e.invitation_id,
            email: e.email.clone(),
            role: e.role,
            code_hash: e.code_hash,
            invited_by: e.invited_by,
            invited_at: e.invited_at,
            expires_at: e.expires_at,
            status: InvitationStatus::Pending,
        }),
        Event::InvitationResent(e) => {
            if let Some(i) = state.invitations.iter_mut().find(|i| i.invitation_id == e.invitation_id) {
                i.code_hash = e.code_hash;
                i.expires_at = e.expires_at;
                i.status = InvitationStatus::Pending;
            }
        }
        Event::InvitationCancelled(e) => set_invitation_status(state, e.invitation_id, InvitationStatus::Cancelled),
        Event::InvitationExpired(e) => set_invitation_status(state, e.invitation_id, InvitationStatus::Expired),
        Event::InvitationAccepted(e) => {
            set_invitation_status(state, e.invitation_id, InvitationStatus::Accepted);
            state.members.push(Member {
                member_id: e.member_id,
                account_id: e.account_id,
                email: e.email.clone(),
                role: e.role,
                joined_at: e.accepted_at,
                token_id: e.token.token_id,
                token_hash: e.token.hash,
                token_hint: e.token.hint.clone(),
                removed_at: None,
            });
        }
        Event::MemberRemoved(e) => {
            if let Some(m) = state.members.iter_mut().find(|m| m.member_id == e.member_id) {
                m.removed_at = Some(e.removed_at);
            }
        }
        Event::BotCreated(e) => state.bots.push(Bot {
            bot_id: e.bot_id,
            name: e.name.clone(),
            token_id: e.token.token_id,
            token_hash: e.token.hash,
            token_hint: e.token.hint.clone(),
            created_at: e.created_at,
            revoked_at: None,
        }),
        Event::BotRevoked(e) => {
            if let Some(b) = state.bots.iter_mut().find(|b| b.bot_id == e.bot_id) {
                b.revoked_at = Some(e.revoked_at);
            }
        }
        Event::UpstreamSet(e) => state.upstream = Some(e.url.clone()),
        Event::WorkspaceDeleted(e) => {
            state.deleted = true;
            for m in state.members.iter_mut().filter(|m| m.removed_at.is_none()) {
                m.removed_at = Some(e.deleted_at);
            }
            for b in state.bots.iter_mut().filter(|b| b.revoked_at.is_none()) {
                b.revoked_at = Some(e.deleted_at);
            }
        }
        Event::AccountSignedUp(_)
        | Event::PasswordSet(_)
        | Event::AccountTokenIssued(_)
        | Event::AccountTokenRevoked(_)
        | Event::ToolCalled(_)
        | Event::ToolCallCompleted(_)
        | Event::AccessDenied(_)
        | Event::RateLimited(_) => {}
    }
}

/// Folds a whole history.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> WorkspaceState {
    let mut state = WorkspaceState::default();
    for event in events {
        evolve(&mut state, event);
    }
    state
}

/// Checks a workspace name: 3 to 63 characters of a-z, 0-9 and inner dashes.
pub fn validate_workspace_name(name: &str) -> Result<(), DomainError> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { Ok(()) } else { Err(DomainError::InvalidWorkspaceName { name: name.chars().take(80).collect() }) }
}

fn validate_bot_name(name: &str) -> Result<(), DomainError> {
    let ok = !name.is_empty()
        && name.len() <= BOT_NAME_LEN_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(DomainError::InvalidBotName { name: name.chars().take(80).collect() }) }
}

fn validate_upstream(url: &str) -> Result<(), DomainError> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let host_ok = url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if scheme_ok && host_ok && url.len() <= UPSTREAM_URL_LEN_MAX && !url.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(DomainError::InvalidUpstream { url: url.chars().take(120).collect() })
    }
}

fn validate_ttl(ttl: Duration) -> Result<(), DomainError> {
    if ttl > Duration::zero() && ttl <= INVITATION_TTL_MAX {
        Ok(())
    } else {
        Err(DomainError::InvalidExpiry { hours: ttl.num_hours() })
    }
}

fn find_invitation(state: &WorkspaceState, id: InvitationId) -> Result<&Invitation, DomainError> {
    state.invitations.iter().find(|i| i.invitation_id == id).ok_or(DomainError::InvitationNotFound)
}

fn set_invitation_status(state: &mut WorkspaceState, id: InvitationId, status: InvitationStatus) {
    if let Some(i) = state.invitations.iter_mut().find(|i| i.invitation_id == id) {
        i.status = status;
    }
}

fn require_manager(state: &WorkspaceState, ctx: &Context, action: &'static str) -> Result<AccountId, DomainError> {
    let actor = ctx.actor.as_ref().ok_or(DomainError::NotSignedIn)?;
    match state.role_of(actor.account_id) {
        Some(Role::Owner | Role::Admin) => Ok(actor.account_id),
        Some(Role::Member) => Err(DomainError::Forbidden { action, needed: "an owner or admin" }),
        None => Err(DomainError::WorkspaceNotFound { name: state.name.clone() }),
    }
}

fn require_owner(state: &WorkspaceState, ctx: &Context, action: &'static str) -> Result<AccountId, DomainError> {
    let actor = ctx.actor.as_ref().ok_or(DomainError::NotSignedIn)?;
    match state.role_of(actor.account_id) {
        Some(Role::Owner) => Ok(actor.account_id),
        Some(_) => Err(DomainError::Forbidden { action, needed: "the owner" }),
        None => Err(DomainError::WorkspaceNotFound { name: state.name.clone() }),
    }
}
