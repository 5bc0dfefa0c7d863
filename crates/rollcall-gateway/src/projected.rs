//! The token check answered by the token projection's in-process view (`rollcall serve` without
//! Redis), with the rate limit in process.

use std::time::Instant;

use async_trait::async_trait;
use rollcall_core::TokenHash;
use rollcall_tokens::{InProcessTokens, TokenCheck};
use tokio::sync::broadcast;

use crate::authority::{
    AuthorityError, RateLimit, SlidingWindowLimiter, TokenAuthority, TokenInfo, TokenKind, TokenStatus, Verdict,
};

/// A hash nobody holds, to ask the view whether it is built.
const PROBE_HASH: TokenHash = TokenHash([0; 32]);

/// Token checks from the token projection's in-process view; the same view the admin API waits
/// on before `member remove` returns, so a removed member's token is refused at once.
pub struct ProjectedAuthority {
    tokens: InProcessTokens,
    limiter: SlidingWindowLimiter,
    epoch: Instant,
}

impl ProjectedAuthority {
    /// Checks tokens against `tokens` (driven by its projector) with `limit` per token.
    pub fn new(tokens: InProcessTokens, limit: RateLimit) -> ProjectedAuthority {
        ProjectedAuthority { tokens, limiter: SlidingWindowLimiter::new(limit), epoch: Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

fn convert(info: rollcall_tokens::TokenInfo) -> TokenInfo {
    TokenInfo {
        workspace_id: info.workspace_id,
        workspace: info.workspace,
        kind: match info.kind {
            rollcall_tokens::TokenKind::Member => TokenKind::Member,
            rollcall_tokens::TokenKind::Bot => TokenKind::Bot,
        },
        subject_id: info.subject_id,
        token_id: info.token_id,
        label: info.label,
    }
}

fn unavailable() -> AuthorityError {
    AuthorityError::Unavailable("the token view is not built yet (its projector is catching up)".into())
}

#[async_trait]
impl TokenAuthority for ProjectedAuthority {
    async fn check(&self, hash: &TokenHash) -> Result<Verdict, AuthorityError> {
        match self.tokens.check_now(hash) {
            TokenCheck::Valid(info) => match self.limiter.acquire(hash, self.now_ms()) {
                Ok(()) => Ok(Verdict::Allowed(convert(info))),
                Err(retry_after_ms) => Ok(Verdict::Limited { info: convert(info), retry_after_ms }),
            },
            TokenCheck::Revoked(info) => Ok(Verdict::Revoked(convert(info))),
            TokenCheck::Unknown => Ok(Verdict::Unknown),
            TokenCheck::Unavailable => Err(unavailable()),
        }
    }

    async fn statuses(&self, hashes: &[TokenHash]) -> Result<Vec<TokenStatus>, AuthorityError> {
        self.limiter.forget_idle(self.now_ms());
        hashes
            .iter()
            .map(|hash| match self.tokens.check_now(hash) {
                TokenCheck::Valid(_) => Ok(TokenStatus::Active),
                TokenCheck::Revoked(_) => Ok(TokenStatus::Revoked),
                TokenCheck::Unknown => Ok(TokenStatus::Unknown),
                TokenCheck::Unavailable => Err(unavailable()),
            })
            .collect()
    }

    fn revocations(&self) -> broadcast::Receiver<TokenHash> {
        self.tokens.subscribe_revocations()
    }

    async fn ping(&self) -> Result<(), AuthorityError> {
        match self.tokens.check_now(&PROBE_HASH) {
            TokenCheck::Unavailable => Err(unavailable()),
            _ => Ok(()),
        }
    }
}
