//! Rollcall's membership domain.
//!
//! Everything here is pure: no IO, no clock, no randomness. Time, ids and random bytes come in
//! as inputs, so replaying the log is deterministic and every rule is testable as
//! given / when / then. `decide` holds every business rule; `evolve` never fails.

pub mod account;
pub mod catalogue;
pub mod email;
pub mod envelope;
pub mod error;
pub mod events;
pub mod ids;
pub mod offboard;
pub mod plan;
pub mod token;
pub mod workspace;

pub use email::Email;
pub use error::{DomainError, ErrorClass};
pub use events::{Caller, Event, IssuedToken, Role};
pub use ids::{AccountId, BotId, InvitationId, MemberId, TokenId, WorkspaceId};
pub use plan::Plan;
pub use token::{Secret, SecretKind, TokenHash, TokenHint};

impl IssuedToken {
    /// The record of a freshly generated secret: its id, hash and hint, never the secret.
    pub fn of(token_id: TokenId, secret: &Secret) -> IssuedToken {
        IssuedToken { token_id, hash: secret.hash(), hint: secret.hint() }
    }
}
