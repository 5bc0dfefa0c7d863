//! The account aggregate: one stream per address (see `catalogue::account_stream`).

use chrono::{DateTime, Utc};

use crate::email::Email;
use crate::error::DomainError;
use crate::events::{AccountSignedUp, AccountTokenIssued, AccountTokenRevoked, Event, IssuedToken, PasswordSet};
use crate::ids::{AccountId, TokenId};
use crate::token::TokenHash;

/// A command on an account.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountCommand {
    /// Sign up with an address and a password (already hashed by the caller with argon2id).
    SignUp {
        /// New id.
        account_id: AccountId,
        /// Address.
        email: Email,
        /// PHC string of the argon2id hash.
        password_hash: String,
        /// The first API token (for the CLI).
        token: IssuedToken,
    },
    /// Issue another API token.
    IssueToken {
        /// The token.
        token: IssuedToken,
        /// A label.
        label: String,
    },
    /// Revoke an API token.
    RevokeToken {
        /// Which.
        token_id: TokenId,
    },
}

/// The account as folded from its stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountState {
    /// Id, once signed up.
    pub account_id: Option<AccountId>,
    /// Address.
    pub email: Option<Email>,
    /// Current password hash.
    pub password_hash: Option<String>,
    /// Active API tokens: id and hash.
    pub tokens: Vec<(TokenId, TokenHash)>,
}

/// Decides an account command.
pub fn decide(state: &AccountState, command: AccountCommand, now: DateTime<Utc>) -> Result<Vec<Event>, DomainError> {
    match command {
        AccountCommand::SignUp { account_id, email, password_hash, token } => {
            if state.account_id.is_some() {
                return Err(DomainError::AccountExists { email });
            }
            Ok(vec![
                Event::AccountSignedUp(AccountSignedUp { account_id, email, signed_up_at: now }),
                Event::PasswordSet(PasswordSet { account_id, password_hash, set_at: now }),
                Event::AccountTokenIssued(AccountTokenIssued {
                    account_id,
                    token,
                    label: "signup".into(),
                    issued_at: now,
                }),
            ])
        }
        AccountCommand::IssueToken { token, label } => {
            let account_id = state.account_id.ok_or(DomainError::BadCredentials)?;
            let label: String = label.chars().take(64).collect();
            Ok(vec![Event::AccountTokenIssued(AccountTokenIssued { account_id, token, label, issued_at: now })])
        }
        AccountCommand::RevokeToken { token_id } => {
            let account_id = state.account_id.ok_or(DomainError::BadCredentials)?;
            if !state.tokens.iter().any(|(id, _)| *id == token_id) {
                return Ok(Vec::new());
            }
            Ok(vec![Event::AccountTokenRevoked(AccountTokenRevoked { account_id, token_id, revoked_at: now })])
        }
    }
}

/// Folds one event into an account.
pub fn evolve(state: &mut AccountState, event: &Event) {
    match event {
        Event::AccountSignedUp(e) => {
            state.account_id = Some(e.account_id);
            state.email = Some(e.email.clone());
        }
        Event::PasswordSet(e) => state.password_hash = Some(e.password_hash.clone()),
        Event::AccountTokenIssued(e) => state.tokens.push((e.token.token_id, e.token.hash)),
        Event::AccountTokenRevoked(e) => state.tokens.retain(|(id, _)| *id != e.token_id),
        _ => {}
    }
}
