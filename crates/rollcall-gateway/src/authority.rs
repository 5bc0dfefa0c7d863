//! The question the gateway asks on every request: may this token pass, for whom, and is it
//! within its rate limit? One call answers all of it, so the Redis implementation can answer in
//! one round trip.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use rollcall_core::events::Caller;
use rollcall_core::{BotId, MemberId, TokenHash, TokenId, WorkspaceId};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Whether a token belongs to a person or a bot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A member's token (`mwt_`).
    Member,
    /// A bot's token (`mwb_`).
    Bot,
}

impl TokenKind {
    /// The name used in the token validity set (`member` or `bot`).
    pub const fn name(self) -> &'static str {
        match self {
            TokenKind::Member => "member",
            TokenKind::Bot => "bot",
        }
    }

    /// Parses the name used in the token validity set.
    pub fn from_name(name: &str) -> Option<TokenKind> {
        match name {
            "member" => Some(TokenKind::Member),
            "bot" => Some(TokenKind::Bot),
            _ => None,
        }
    }
}

/// Whom a token belongs to, as the token validity set records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The workspace the token opens.
    pub workspace_id: WorkspaceId,
    /// The workspace's name.
    pub workspace: String,
    /// Member or bot.
    pub kind: TokenKind,
    /// The member id or the bot id.
    pub subject_id: Uuid,
    /// The token's id.
    pub token_id: TokenId,
    /// The member's address or the bot's name.
    pub label: String,
}

impl TokenInfo {
    /// The caller as tool-call events record it.
    pub fn caller(&self) -> Caller {
        match self.kind {
            TokenKind::Member => Caller::Member { member_id: MemberId(self.subject_id) },
            TokenKind::Bot => Caller::Bot { bot_id: BotId(self.subject_id) },
        }
    }
}

/// The answer to one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The token is active and within its rate limit; this request was counted.
    Allowed(TokenInfo),
    /// The token was revoked.
    Revoked(TokenInfo),
    /// No such token.
    Unknown,
    /// The token is active but over its rate limit; the request was not counted.
    Limited {
        /// The token's owner.
        info: TokenInfo,
        /// How long until the oldest counted request leaves the window, in milliseconds.
        retry_after_ms: u64,
    },
}

/// A token's status, read without counting a request (for the sweep of open streams).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    /// Active.
    Active,
    /// Revoked.
    Revoked,
    /// Not in the validity set.
    Unknown,
}

/// The rate limit: at most `requests_max` requests in any window of `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in any window.
    pub requests_max: u32,
    /// The window, in milliseconds.
    pub window_ms: u64,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit { requests_max: 120, window_ms: 60_000 }
    }
}

/// Why a check could not be answered. The gateway fails closed on it.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The validity set cannot be reached (Redis down, timeout).
    #[error("the token validity set cannot be reached: {0}")]
    Unavailable(String),
    /// The validity set answered something this gateway does not understand.
    #[error("the token validity set answered something unexpected: {0}")]
    Malformed(String),
}

/// Checks tokens and applies the rate limit, in one call.
#[async_trait]
pub trait TokenAuthority: Send + Sync + 'static {
    /// Checks a token and, when it is active, counts the request against its rate limit.
    async fn check(&self, hash: &TokenHash) -> Result<Verdict, AuthorityError>;

    /// Reads the status of several tokens without counting anything.
    async fn statuses(&self, hashes: &[TokenHash]) -> Result<Vec<TokenStatus>, AuthorityError>;

    /// Revocations as they are applied, for closing open streams at once. Messages can be
    /// missed (a lagging receiver, a reconnect), which is why the gateway also sweeps.
    fn revocations(&self) -> broadcast::Receiver<TokenHash>;

    /// Whether the validity set can be reached, for `/healthz`.
    async fn ping(&self) -> Result<(), AuthorityError>;
}

/// An exact sliding-window log kept in process: at most `requests_max` timestamps per token.
///
/// It is the in-process twin of the Redis list: the same "N in any window" rule.
pub struct SlidingWindowLimiter {
    limit: RateLimit,
    logs: Mutex<HashMap<TokenHash, VecDeque<u64>>>,
}

impl SlidingWindowLimiter {
    /// A limiter with no history.
    pub fn new(limit: RateLimit) -> SlidingWindowLimiter {
        SlidingWindowLimiter { limit, logs: Mutex::new(HashMap::new()) }
    }

    /// Counts a request at `now_ms` if the token is under its limit; otherwise returns how long
    /// to wait, in milliseconds.
    pub fn acquire(&self, hash: &TokenHash, now_ms: u64) -> Result<(), u64> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let log = logs.entry(*hash).or_default();
        while log.front().is_some_and(|&t| t + self.limit.window_ms <= now_ms) {
            log.pop_front();
        }
        if log.len() >= self.limit.requests_max as usize {
            let oldest = log.front().copied().unwrap_or(now_ms);
            return Err((oldest + self.limit.window_ms).saturating_sub(now_ms).max(1));
        }
        log.push_back(now_ms);
        Ok(())
    }

    /// Forgets tokens whose whole log has left the window, so idle tokens cost no memory.
    pub fn forget_idle(&self, now_ms: u64) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.retain(|_, log| log.back().is_some_and(|&t| t + self.limit.window_ms > now_ms));
    }
}
