//! The event catalogue: every fact Rollcall records, in the past tense.
//!
//! Each variant's payload is a struct serialised as JSON. The type name and schema version travel
//! in the envelope, not in the payload. `schemas/<Type>.v<N>.json` describes each payload; a
//! published version never changes (see `crate::catalogue`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::ids::{AccountId, BotId, InvitationId, MemberId, TokenId, WorkspaceId};
use crate::plan::Plan;
use crate::token::{TokenHash, TokenHint};

/// A role in a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Created the workspace; the only one who changes the plan or deletes it.
    Owner,
    /// Manages members, invitations and bots.
    Admin,
    /// Uses the tools.
    Member,
}

impl Role {
    /// The role's name as users type it.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A token as recorded: never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuedToken {
    /// Names the token.
    pub token_id: TokenId,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Non-secret hint for lists.
    pub hint: TokenHint,
}

/// Who made a tool call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Caller {
    /// A human member.
    Member {
        /// The member.
        member_id: MemberId,
    },
    /// A bot.
    Bot {
        /// The bot.
        bot_id: BotId,
    },
}

/// Why a member left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Removed from this workspace.
    Removed,
    /// Removed from every workspace at once.
    Offboarded,
    /// The workspace was deleted.
    WorkspaceDeleted,
}

/// How a tool call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CallOutcome {
    /// The upstream answered with a result.
    Ok,
    /// The upstream answered with an error.
    Error {
        /// JSON-RPC error code, when there was one.
        code: Option<i64>,
    },
    /// The upstream could not be reached or timed out.
    UpstreamUnavailable,
}

/// Why the gateway refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    /// The token was revoked.
    Revoked,
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident ( $payload:ident ) = $version:literal ),* $(,)?) => {
        /// Every event Rollcall records.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Event {
            $( $(#[$doc])* $variant($payload), )*
        }

        /// Every event type with its current schema version, in catalogue order.
        pub const EVENT_TYPES: &[(&str, u32)] = &[ $( (stringify!($variant), $version), )* ];

        impl Event {
            /// The event type name, as stored in the envelope.
            pub fn event_type(&self) -> &'static str {
                match self { $( Event::$variant(_) => stringify!($variant), )* }
            }

            /// The schema version this code writes.
            pub fn schema_version(&self) -> u32 {
                match self { $( Event::$variant(_) => $version, )* }
            }

            /// The payload as JSON.
            pub fn to_json(&self) -> serde_json::Value {
                let value = match self { $( Event::$variant(p) => serde_json::to_value(p), )* };
                value.expect("event payloads always serialise")
            }

            /// The payload as JSON text, with its fields in declaration order. Written straight
            /// from the payload, without the tree of [`Event::to_json`]: every tool call
            /// serialises two events on the gateway's hot path.
            pub fn to_json_bytes(&self) -> Vec<u8> {
                let bytes = match self { $( Event::$variant(p) => serde_json::to_vec(p), )* };
                bytes.expect("event payloads always serialise")
            }

            /// Decodes a payload of the *current* version.
            pub(crate) fn from_current_json(event_type: &str, value: serde_json::Value) -> Result<Event, crate::catalogue::DecodeError> {
                match event_type {
                    $( stringify!($variant) => serde_json::from_value(value).map(Event::$variant).map_err(|e| crate::catalogue::DecodeError::Payload { event_type: event_type.to_owned(), reason: e.to_string() }), )*
                    other => Err(crate::catalogue::DecodeError::UnknownType(other.to_owned())),
                }
            }

            /// The JSON Schema of the current version of an event type's payload.
            pub fn schema_of(event_type: &str) -> Option<schemars::Schema> {
                match event_type {
                    $( stringify!($variant) => Some(schemars::schema_for!($payload)), )*
                    _ => None,
                }
            }
        }
    };
}

catalogue! {
    /// An account was created.
    AccountSignedUp(AccountSignedUp) = 1,
    /// An account's password was set (the argon2 hash, never the password).
    PasswordSet(PasswordSet) = 1,
    /// An API token was issued to an account, for the CLI.
    AccountTokenIssued(AccountTokenIssued) = 1,
    /// An account API token was revoked.
    AccountTokenRevoked(AccountTokenRevoked) = 1,
    /// A workspace was created; its owner became its first member with a token.
    WorkspaceCreated(WorkspaceCreated) = 1,
    /// The plan changed.
    PlanChanged(PlanChanged) = 1,
    /// An invitation was sent; it reserves a seat.
    MemberInvited(MemberInvited) = 1,
    /// An invitation was sent again with a new code and a new expiry.
    InvitationResent(InvitationResent) = 1,
    /// An invitation was cancelled; its seat is free.
    InvitationCancelled(InvitationCancelled) = 1,
    /// An invitation expired; its seat is free.
    InvitationExpired(InvitationExpired) = 1,
    /// An invitation was accepted: a member joined and got a token.
    InvitationAccepted(InvitationAccepted) = 1,
    /// A member was removed and their token revoked, in the same event.
    MemberRemoved(MemberRemoved) = 1,
    /// A bot was created with its token.
    BotCreated(BotCreated) = 1,
    /// A bot was revoked with its token.
    BotRevoked(BotRevoked) = 1,
    /// The workspace's upstream MCP server changed.
    UpstreamSet(UpstreamSet) = 1,
    /// The workspace was deleted; every token was revoked.
    WorkspaceDeleted(WorkspaceDeleted) = 1,
    /// A tool call passed the gateway; recorded before it reaches the upstream.
    ToolCalled(ToolCalled) = 1,
    /// A tool call returned (or failed).
    ToolCallCompleted(ToolCallCompleted) = 1,
    /// A request with a revoked token was refused.
    AccessDenied(AccessDenied) = 1,
    /// Requests refused for rate limiting, counted over a window (not one event each).
    RateLimited(RateLimited) = 1,
}

/// Payload of [`Event::AccountSignedUp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSignedUp {
    /// The account.
    pub account_id: AccountId,
    /// Its normalised address.
    pub email: Email,
    /// When.
    pub signed_up_at: DateTime<Utc>,
}

/// Payload of [`Event::PasswordSet`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordSet {
    /// The account.
    pub account_id: AccountId,
    /// The argon2id hash in PHC format. Audit exports redact it.
    pub password_hash: String,
    /// When.
    pub set_at: DateTime<Utc>,
}

/// Payload of [`Event::AccountTokenIssued`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountTokenIssued {
    /// The account.
    pub account_id: AccountId,
    /// The token (hash and hint only).
    pub token: IssuedToken,
    /// A label, e.g. "cli".
    pub label: String,
    /// When.
    pub issued_at: DateTime<Utc>,
}

/// Payload of [`Event::AccountTokenRevoked`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountTokenRevoked {
    /// The account.
    pub account_id: AccountId,
    /// The token.
    pub token_id: TokenId,
    /// When.
    pub revoked_at: DateTime<Utc>,
}

/// Payload of [`Event::WorkspaceCreated`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCreated {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its unique name (slug).
    pub name: String,
    /// The plan.
    pub plan: Plan,
    /// The owner's account.
    pub owner_account_id: AccountId,
    /// The owner's address.
    pub owner_email: Email,
    /// The owner's membership.
    pub owner_member_id: MemberId,
    /// The owner's workspace token.
    pub owner_token: IssuedToken,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Payload of [`Event::PlanChanged`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChanged {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The plan before.
    pub from: Plan,
    /// The plan after.
    pub to: Plan,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// Payload of [`Event::MemberInvited`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberInvited {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The invitation.
    pub invitation_id: InvitationId,
    /// Who is invited.
    pub email: Email,
    /// The role they will have.
    pub role: Role,
    /// SHA-256 of the secret code (the code itself is only in the email).
    pub code_hash: TokenHash,
    /// Who invited.
    pub invited_by: AccountId,
    /// When.
    pub invited_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Payload of [`Event::InvitationResent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationResent {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The invitation.
    pub invitation_id: InvitationId,
    /// SHA-256 of the new code; the old code stops working.
    pub code_hash: TokenHash,
    /// Who resent.
    pub resent_by: AccountId,
    /// When.
    pub resent_at: DateTime<Utc>,
    /// The new expiry.
    pub expires_at: DateTime<Utc>,
}

/// Payload of [`Event::InvitationCancelled`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationCancelled {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The invitation.
    pub invitation_id: InvitationId,
    /// Who cancelled.
    pub cancelled_by: AccountId,
    /// When.
    pub cancelled_at: DateTime<Utc>,
}

/// Payload of [`Event::InvitationExpired`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationExpired {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The invitation.
    pub invitation_id: InvitationId,
    /// When the expiry was recorded.
    pub expired_at: DateTime<Utc>,
}

/// Payload of [`Event::InvitationAccepted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationAccepted {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The invitation.
    pub invitation_id: InvitationId,
    /// The new membership.
    pub member_id: MemberId,
    /// The accepting account.
    pub account_id: AccountId,
    /// Its address (equal to the invitation's).
    pub email: Email,
    /// The role.
    pub role: Role,
    /// The member's token.
    pub token: IssuedToken,
    /// When.
    pub accepted_at: DateTime<Utc>,
}

/// Payload of [`Event::MemberRemoved`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRemoved {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The membership that ended.
    pub member_id: MemberId,
    /// The member's address.
    pub email: Email,
    /// The token revoked by this event.
    pub token_id: TokenId,
    /// Its hash, so the validity set can drop it without a lookup.
    pub token_hash: TokenHash,
    /// Who removed.
    pub removed_by: AccountId,
    /// Why.
    pub reason: RemovalReason,
    /// When.
    pub removed_at: DateTime<Utc>,
}

/// Payload of [`Event::BotCreated`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BotCreated {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The bot.
    pub bot_id: BotId,
    /// Its name, unique among the workspace's active bots.
    pub name: String,
    /// Its token.
    pub token: IssuedToken,
    /// Who created it.
    pub created_by: AccountId,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Payload of [`Event::BotRevoked`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BotRevoked {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The bot.
    pub bot_id: BotId,
    /// The token revoked.
    pub token_id: TokenId,
    /// Its hash.
    pub token_hash: TokenHash,
    /// Who revoked.
    pub revoked_by: AccountId,
    /// When.
    pub revoked_at: DateTime<Utc>,
}

/// Payload of [`Event::UpstreamSet`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSet {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The upstream MCP server's URL (http or https).
    pub url: String,
    /// Who set it.
    pub set_by: AccountId,
    /// When.
    pub set_at: DateTime<Utc>,
}

/// Payload of [`Event::WorkspaceDeleted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceDeleted {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Every token revoked by the deletion.
    pub revoked_token_hashes: Vec<TokenHash>,
    /// Who deleted it (always the owner).
    pub deleted_by: AccountId,
    /// When.
    pub deleted_at: DateTime<Utc>,
}

/// Payload of [`Event::ToolCalled`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCalled {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Member or bot.
    pub caller: Caller,
    /// The token used.
    pub token_id: TokenId,
    /// The tool's name.
    pub tool: String,
    /// The JSON-RPC request id (as text), linking the completion to this call.
    pub request_id: String,
    /// Size of the arguments, in bytes (the arguments themselves are not recorded).
    pub arguments_bytes: u64,
    /// When the gateway accepted the call.
    pub called_at: DateTime<Utc>,
}

/// Payload of [`Event::ToolCallCompleted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCallCompleted {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Member or bot.
    pub caller: Caller,
    /// The token used.
    pub token_id: TokenId,
    /// The tool's name.
    pub tool: String,
    /// The JSON-RPC request id, as in the `ToolCalled` event.
    pub request_id: String,
    /// How it ended.
    pub outcome: CallOutcome,
    /// From acceptance to the upstream's answer, in milliseconds.
    pub duration_ms: u64,
    /// When it ended.
    pub completed_at: DateTime<Utc>,
}

/// Payload of [`Event::AccessDenied`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessDenied {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Member or bot the token belonged to.
    pub caller: Caller,
    /// The token presented.
    pub token_id: TokenId,
    /// Why.
    pub reason: DenialReason,
    /// When.
    pub denied_at: DateTime<Utc>,
}

/// Payload of [`Event::RateLimited`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimited {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Member or bot.
    pub caller: Caller,
    /// The token.
    pub token_id: TokenId,
    /// How many requests were refused in the window.
    pub refused: u64,
    /// Start of the window.
    pub window_start: DateTime<Utc>,
    /// End of the window.
    pub window_end: DateTime<Utc>,
}
