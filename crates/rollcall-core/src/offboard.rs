//! Offboarding: one address out of every workspace the caller administers, at once.
//!
//! Planning is pure: given the workspaces, it says what would happen (the dry run). Carrying it
//! out is one `Remove` (and `Cancel` for pending invitations) per workspace, each on its own
//! stream, so a failure in one workspace is reported without undoing the others.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::email::Email;
use crate::events::Role;
use crate::ids::{AccountId, InvitationId};
use crate::workspace::WorkspaceState;

/// One step of an offboarding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OffboardStep {
    /// Remove the member and revoke their token.
    RemoveMember {
        /// The workspace.
        workspace: String,
    },
    /// Cancel their pending invitation.
    CancelInvitation {
        /// The workspace.
        workspace: String,
        /// The invitation.
        invitation_id: InvitationId,
    },
    /// Cannot be done by this caller (e.g. the address owns the workspace).
    Skip {
        /// The workspace.
        workspace: String,
        /// Why.
        reason: String,
    },
}

/// Plans the offboarding of `email` across `workspaces`, as seen by `caller`.
///
/// Only workspaces where the caller is owner or admin are considered; the others are not
/// mentioned at all (the caller may not even know they exist).
pub fn plan_offboarding<'a>(
    workspaces: impl IntoIterator<Item = &'a WorkspaceState>,
    caller: AccountId,
    email: &Email,
    now: DateTime<Utc>,
) -> Vec<OffboardStep> {
    let mut steps = Vec::new();
    for ws in workspaces {
        if !ws.is_live() || !matches!(ws.role_of(caller), Some(Role::Owner | Role::Admin)) {
            continue;
        }
        if let Some(member) = ws.member_by_email(email) {
            if member.role == Role::Owner {
                steps.push(OffboardStep::Skip {
                    workspace: ws.name.clone(),
                    reason: "the address owns this workspace; delete or hand it over instead".into(),
                });
            } else if member.role == Role::Admin && ws.role_of(caller) != Some(Role::Owner) {
                steps.push(OffboardStep::Skip {
                    workspace: ws.name.clone(),
                    reason: "the address is an admin here; only the owner can remove an admin".into(),
                });
            } else {
                steps.push(OffboardStep::RemoveMember { workspace: ws.name.clone() });
            }
        }
        for invitation in ws.pending_invitations(now).filter(|i| &i.email == email) {
            steps.push(OffboardStep::CancelInvitation {
                workspace: ws.name.clone(),
                invitation_id: invitation.invitation_id,
            });
        }
    }
    steps
}
