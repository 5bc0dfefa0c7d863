//! Every refusal of the domain, with a stable code and a message that says what to do.

use chrono::{DateTime, Utc};

use crate::email::{Email, EmailError};
use crate::plan::Plan;
use crate::workspace::{InvitationStatus, OverLimit, PlanChangePreview};

/// The class of a refusal; the API maps each class to an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input is malformed (400).
    Invalid,
    /// Not signed in (401).
    Unauthenticated,
    /// Signed in but not allowed (403).
    Forbidden,
    /// No such thing, or not visible to the caller (404).
    NotFound,
    /// Conflicts with the current state (409).
    Conflict,
    /// Gone for good: expired, used, cancelled (410).
    Gone,
    /// A limit of the plan (402-like; the API uses 409 with its own code).
    Limit,
}

/// Why the domain refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Malformed email.
    #[error(transparent)]
    InvalidEmail(#[from] EmailError),
    /// Malformed workspace name.
    #[error(
        "{name:?} is not a valid workspace name: use 3 to 63 characters of a-z, 0-9 and dashes, not starting or ending with a dash"
    )]
    InvalidWorkspaceName {
        /// The name.
        name: String,
    },
    /// Malformed bot name.
    #[error("{name:?} is not a valid bot name: use 1 to 64 characters of letters, digits, '-', '_' and '.'")]
    InvalidBotName {
        /// The name.
        name: String,
    },
    /// Malformed upstream URL.
    #[error(
        "{url:?} is not a valid upstream URL: give the MCP server's http:// or https:// URL, e.g. https://mcp.example.com/mcp"
    )]
    InvalidUpstream {
        /// The URL.
        url: String,
    },
    /// Invitation expiry out of range.
    #[error("an invitation must expire between 1 hour and 90 days from now ({hours} hours was given)")]
    InvalidExpiry {
        /// Hours given.
        hours: i64,
    },
    /// Owner is not a role one can invite to.
    #[error("invitations are for the admin or member role; a workspace has exactly one owner")]
    InvalidRole,
    /// No actor.
    #[error("sign in first: this needs an account (rollcall login, or pass --token)")]
    NotSignedIn,
    /// Not allowed.
    #[error("only {needed} can {action}")]
    Forbidden {
        /// What was attempted.
        action: &'static str,
        /// Who may.
        needed: &'static str,
    },
    /// Email taken.
    #[error("an account already exists for {email}: log in instead (rollcall login --email {email})")]
    AccountExists {
        /// The address.
        email: Email,
    },
    /// No account.
    #[error("no account exists for {email}: sign up first (rollcall account signup --email {email})")]
    AccountNotFound {
        /// The address.
        email: Email,
    },
    /// Workspace name taken.
    #[error("a workspace named {name:?} already exists: pick another name")]
    WorkspaceNameTaken {
        /// The name.
        name: String,
    },
    /// Unknown workspace (or not visible to the caller).
    #[error("no workspace named {name:?} that you belong to: check the name with `rollcall workspace list`")]
    WorkspaceNotFound {
        /// The name.
        name: String,
    },
    /// Seat limit.
    #[error("workspace {workspace:?} is on the {plan} plan, which has {limit} seat{s} and all {used} are taken (members and pending invitations): remove a member or cancel an invitation, or upgrade the plan{upgrade}", s = if *limit == 1 { "" } else { "s" }, upgrade = plan.next_up().map(|p| format!(" (e.g. rollcall workspace plan set {workspace} {p})")).unwrap_or_default())]
    SeatLimitReached {
        /// The workspace.
        workspace: String,
        /// Its plan.
        plan: Plan,
        /// The plan's limit.
        limit: usize,
        /// Seats in use.
        used: usize,
    },
    /// Downgrade below use.
    #[error("cannot change to the {to} plan: it has {limit} seat{s} and {used} are in use; first remove or cancel these {n}: {list}", to = preview.to, limit = preview.seats_limit.unwrap_or(0), s = if preview.seats_limit == Some(1) { "" } else { "s" }, used = preview.seats_used, n = preview.over_limit.len(), list = describe_over_limit(&preview.over_limit))]
    DowngradeOverLimit {
        /// What the change would do.
        preview: PlanChangePreview,
    },
    /// Already a member.
    #[error("{email} is already a member of {workspace:?}")]
    AlreadyMember {
        /// The address.
        email: Email,
        /// The workspace.
        workspace: String,
    },
    /// Already invited.
    #[error(
        "{email} already has a pending invitation to {workspace:?}: resend it (rollcall workspace invite resend) or cancel it first"
    )]
    AlreadyInvited {
        /// The address.
        email: Email,
        /// The workspace.
        workspace: String,
    },
    /// Not a member.
    #[error("{email} is not a member of {workspace:?}")]
    NotAMember {
        /// The address.
        email: Email,
        /// The workspace.
        workspace: String,
    },
    /// Owner cannot be removed.
    #[error("the owner cannot be removed from their workspace: delete the workspace instead")]
    CannotRemoveOwner,
    /// Unknown invitation.
    #[error("no such invitation in this workspace: list them with `rollcall workspace invite list`")]
    InvitationNotFound,
    /// Code matches nothing.
    #[error(
        "this invitation code is not valid: check that it was copied whole, or ask for the invitation to be resent"
    )]
    InvitationCodeUnknown,
    /// Wrong status.
    #[error("the invitation is {status:?}, not pending", status = status)]
    InvitationNotPending {
        /// Its status.
        status: InvitationStatus,
    },
    /// Not expired yet.
    #[error("the invitation does not expire until {expires_at}")]
    InvitationNotYetExpired {
        /// Expiry.
        expires_at: DateTime<Utc>,
    },
    /// Expired.
    #[error("this invitation expired at {expires_at}: ask an admin to resend it")]
    InvitationExpired {
        /// Expiry.
        expires_at: DateTime<Utc>,
    },
    /// Used.
    #[error("this invitation has already been accepted")]
    InvitationAlreadyUsed,
    /// Cancelled.
    #[error("this invitation was cancelled: ask an admin for a new one")]
    InvitationCancelled,
    /// Wrong address.
    #[error(
        "this invitation is for another address, and you are signed in as {signed_in_as}: sign in with the invited address, or ask for an invitation to {signed_in_as}"
    )]
    InvitationForAnotherAddress {
        /// The account's address.
        signed_in_as: Email,
    },
    /// Bot name taken.
    #[error("an active bot named {name:?} already exists: pick another name or revoke it first")]
    BotNameTaken {
        /// The name.
        name: String,
    },
    /// Unknown bot.
    #[error("no active bot named {name:?}: list them with `rollcall workspace bot list`")]
    BotNotFound {
        /// The name.
        name: String,
    },
    /// Wrong password or unknown account at log-in (one message for both, so as not to reveal which).
    #[error("wrong email or password")]
    BadCredentials,
}

impl DomainError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidEmail(_) => "invalid_email",
            DomainError::InvalidWorkspaceName { .. } => "invalid_workspace_name",
            DomainError::InvalidBotName { .. } => "invalid_bot_name",
            DomainError::InvalidUpstream { .. } => "invalid_upstream",
            DomainError::InvalidExpiry { .. } => "invalid_expiry",
            DomainError::InvalidRole => "invalid_role",
            DomainError::NotSignedIn => "not_signed_in",
            DomainError::Forbidden { .. } => "forbidden",
            DomainError::AccountExists { .. } => "account_exists",
            DomainError::AccountNotFound { .. } => "account_not_found",
            DomainError::WorkspaceNameTaken { .. } => "workspace_name_taken",
            DomainError::WorkspaceNotFound { .. } => "workspace_not_found",
            DomainError::SeatLimitReached { .. } => "seat_limit_reached",
            DomainError::DowngradeOverLimit { .. } => "downgrade_over_limit",
            DomainError::AlreadyMember { .. } => "already_member",
            DomainError::AlreadyInvited { .. } => "already_invited",
            DomainError::NotAMember { .. } => "not_a_member",
            DomainError::CannotRemoveOwner => "cannot_remove_owner",
            DomainError::InvitationNotFound => "invitation_not_found",
            DomainError::InvitationCodeUnknown => "invitation_code_unknown",
            DomainError::InvitationNotPending { .. } => "invitation_not_pending",
            DomainError::InvitationNotYetExpired { .. } => "invitation_not_yet_expired",
            DomainError::InvitationExpired { .. } => "invitation_expired",
            DomainError::InvitationAlreadyUsed => "invitation_already_used",
            DomainError::InvitationCancelled => "invitation_cancelled",
            DomainError::InvitationForAnotherAddress { .. } => "invitation_for_another_address",
            DomainError::BotNameTaken { .. } => "bot_name_taken",
            DomainError::BotNotFound { .. } => "bot_not_found",
            DomainError::BadCredentials => "bad_credentials",
        }
    }

    /// The class of the refusal.
    pub fn class(&self) -> ErrorClass {
        match self {
            DomainError::InvalidEmail(_)
            | DomainError::InvalidWorkspaceName { .. }
            | DomainError::InvalidBotName { .. }
            | DomainError::InvalidUpstream { .. }
            | DomainError::InvalidExpiry { .. }
            | DomainError::InvalidRole => ErrorClass::Invalid,
            DomainError::NotSignedIn | DomainError::BadCredentials => ErrorClass::Unauthenticated,
            DomainError::Forbidden { .. } | DomainError::InvitationForAnotherAddress { .. } => ErrorClass::Forbidden,
            DomainError::AccountNotFound { .. }
            | DomainError::WorkspaceNotFound { .. }
            | DomainError::NotAMember { .. }
            | DomainError::InvitationNotFound
            | DomainError::InvitationCodeUnknown
            | DomainError::BotNotFound { .. } => ErrorClass::NotFound,
            DomainError::AccountExists { .. }
            | DomainError::WorkspaceNameTaken { .. }
            | DomainError::AlreadyMember { .. }
            | DomainError::AlreadyInvited { .. }
            | DomainError::CannotRemoveOwner
            | DomainError::InvitationNotPending { .. }
            | DomainError::InvitationNotYetExpired { .. }
            | DomainError::BotNameTaken { .. } => ErrorClass::Conflict,
            DomainError::InvitationExpired { .. }
            | DomainError::InvitationAlreadyUsed
            | DomainError::InvitationCancelled => ErrorClass::Gone,
            DomainError::SeatLimitReached { .. } | DomainError::DowngradeOverLimit { .. } => ErrorClass::Limit,
        }
    }
}

fn describe_over_limit(over: &[OverLimit]) -> String {
    over.iter()
        .map(|o| match o {
            OverLimit::Member { email } => format!("member {email}"),
            OverLimit::Invitation { email } => format!("invitation to {email}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
