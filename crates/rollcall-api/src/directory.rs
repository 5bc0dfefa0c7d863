//! The accounts index: who is who, kept current from the log.
//!
//! Email to account (with the current password hash), account-token hash to account, the
//! workspaces each account belongs to, invitation-code hash to workspace (so that a code alone
//! finds its workspace), and pending invitations with their expiry (for the expiry sweep).
//! Only hashes of secrets are held.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use rollcall_core::Email;
use rollcall_core::envelope::RecordedEvent;
use rollcall_core::events::{Event, Role};
use rollcall_core::ids::{AccountId, InvitationId, MemberId, TokenId, WorkspaceId};
use rollcall_core::token::TokenHash;

use crate::follow::Fold;

/// An account as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    /// The account.
    pub account_id: AccountId,
    /// Its address.
    pub email: Email,
    /// The current argon2id PHC string.
    pub password_hash: Option<String>,
}

/// A pending invitation due to expire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingInvitation {
    /// The workspace's name.
    pub workspace: String,
    /// The invitation.
    pub invitation_id: InvitationId,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    accounts: HashMap<Email, AccountRow>,
    emails: HashMap<AccountId, Email>,
    account_tokens: HashMap<TokenHash, (AccountId, TokenId)>,
    workspace_names: HashMap<WorkspaceId, String>,
    memberships: HashMap<AccountId, BTreeMap<String, Role>>,
    member_accounts: HashMap<MemberId, (String, AccountId)>,
    codes: HashMap<TokenHash, String>,
    invitation_codes: HashMap<InvitationId, TokenHash>,
    pending: HashMap<InvitationId, PendingInvitation>,
}

/// The index. Cheap to read; written only by its follower.
#[derive(Default)]
pub struct Directory {
    state: RwLock<State>,
}

impl Directory {
    /// An empty index.
    pub fn new() -> Directory {
        Directory::default()
    }

    /// The account registered under an address.
    pub fn account_by_email(&self, email: &Email) -> Option<AccountRow> {
        self.read().accounts.get(email).cloned()
    }

    /// The address of an account.
    pub fn email_of(&self, account_id: AccountId) -> Option<Email> {
        self.read().emails.get(&account_id).cloned()
    }

    /// The account an active account token belongs to.
    pub fn account_by_token(&self, hash: &TokenHash) -> Option<(AccountId, Email)> {
        let state = self.read();
        let (account_id, _) = state.account_tokens.get(hash)?;
        Some((*account_id, state.emails.get(account_id)?.clone()))
    }

    /// The live workspaces an account belongs to, by name, with its role.
    pub fn workspaces_of(&self, account_id: AccountId) -> BTreeMap<String, Role> {
        self.read().memberships.get(&account_id).cloned().unwrap_or_default()
    }

    /// The workspace holding an invitation with this code hash (current codes only).
    pub fn workspace_of_code(&self, hash: &TokenHash) -> Option<String> {
        self.read().codes.get(hash).cloned()
    }

    /// Pending invitations whose expiry is at or before `now`, at most `limit`.
    pub fn expired_invitations(&self, now: DateTime<Utc>, limit: usize) -> Vec<PendingInvitation> {
        self.read().pending.values().filter(|p| p.expires_at <= now).take(limit).cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Every update below completes before the guard drops, so a poisoned lock still guards
        // a consistent index.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Fold for Directory {
    fn apply(&self, recorded: &RecordedEvent) {
        if recorded.stream.starts_with(rollcall_core::catalogue::CALLS_STREAM_PREFIX) {
            return;
        }
        let event = match Event::from_recorded(recorded) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, position = %recorded.position, "the accounts index cannot decode an event");
                return;
            }
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        apply(&mut state, event);
    }
}

fn apply(state: &mut State, event: Event) {
    match event {
        Event::AccountSignedUp(e) => {
            state.emails.insert(e.account_id, e.email.clone());
            state.accounts.entry(e.email.clone()).or_insert(AccountRow {
                account_id: e.account_id,
                email: e.email,
                password_hash: None,
            });
        }
        Event::PasswordSet(e) => {
            if let Some(email) = state.emails.get(&e.account_id).cloned()
                && let Some(row) = state.accounts.get_mut(&email)
            {
                row.password_hash = Some(e.password_hash);
            }
        }
        Event::AccountTokenIssued(e) => {
            state.account_tokens.insert(e.token.hash, (e.account_id, e.token.token_id));
        }
        Event::AccountTokenRevoked(e) => {
            state.account_tokens.retain(|_, (account, token)| !(*account == e.account_id && *token == e.token_id));
        }
        Event::WorkspaceCreated(e) => {
            state.workspace_names.insert(e.workspace_id, e.name.clone());
            state.memberships.entry(e.owner_account_id).or_default().insert(e.name.clone(), Role::Owner);
            state.member_accounts.insert(e.owner_member_id, (e.name, e.owner_account_id));
        }
        Event::MemberInvited(e) => {
            let Some(name) = state.workspace_names.get(&e.workspace_id).cloned() else { return };
            state.codes.insert(e.code_hash, name.clone());
            state.invitation_codes.insert(e.invitation_id, e.code_hash);
            state.pending.insert(
                e.invitation_id,
                PendingInvitation { workspace: name, invitation_id: e.invitation_id, expires_at: e.expires_at },
            );
        }
        Event::InvitationResent(e) => {
            let Some(name) = state.workspace_names.get(&e.workspace_id).cloned() else { return };
            // The old code stops working; the new one finds the workspace.
            if let Some(old) = state.invitation_codes.insert(e.invitation_id, e.code_hash) {
                state.codes.remove(&old);
            }
            state.codes.insert(e.code_hash, name.clone());
            state.pending.insert(
                e.invitation_id,
                PendingInvitation { workspace: name, invitation_id: e.invitation_id, expires_at: e.expires_at },
            );
        }
        Event::InvitationCancelled(e) => {
            state.pending.remove(&e.invitation_id);
        }
        Event::InvitationExpired(e) => {
            state.pending.remove(&e.invitation_id);
        }
        Event::InvitationAccepted(e) => {
            state.pending.remove(&e.invitation_id);
            let Some(name) = state.workspace_names.get(&e.workspace_id).cloned() else { return };
            state.memberships.entry(e.account_id).or_default().insert(name.clone(), e.role);
            state.member_accounts.insert(e.member_id, (name, e.account_id));
        }
        Event::MemberRemoved(e) => {
            if let Some((name, account_id)) = state.member_accounts.remove(&e.member_id)
                && let Some(list) = state.memberships.get_mut(&account_id)
            {
                list.remove(&name);
            }
        }
        Event::WorkspaceDeleted(e) => {
            let Some(name) = state.workspace_names.get(&e.workspace_id).cloned() else { return };
            for list in state.memberships.values_mut() {
                list.remove(&name);
            }
            state.member_accounts.retain(|_, (ws, _)| *ws != name);
            state.pending.retain(|_, p| p.workspace != name);
        }
        Event::PlanChanged(_)
        | Event::BotCreated(_)
        | Event::BotRevoked(_)
        | Event::UpstreamSet(_)
        | Event::ToolCalled(_)
        | Event::ToolCallCompleted(_)
        | Event::AccessDenied(_)
        | Event::RateLimited(_) => {}
    }
}
