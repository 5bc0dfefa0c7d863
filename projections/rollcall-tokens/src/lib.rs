//! The token-validity projection: token hash to workspace, member or bot, kind and status; in
//! process or in Redis.
//!
//! Both targets answer [`TokenView::check`] with a tri-state: a token is valid, revoked or
//! unknown, or the view is unavailable (not built yet, being rebuilt after a loss, or Redis is
//! unreachable). Callers fail closed on [`TokenCheck::Unavailable`]: a view that is not there
//! can never report a revoked token as valid.
//!
//! Redis layout under prefix `P`: `{P}token:{sha256 hex}` is a hash with `workspace_id`,
//! `workspace`, `kind` (`member`|`bot`), `subject_id`, `token_id`, `label`, `status`
//! (`active`|`revoked`); revoked tokens keep their key. `{P}checkpoint:tokens` marks the view as
//! built; every revocation is published on `{P}revocations` (the token hash in hex) in the same
//! script that records it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use rollcall_core::catalogue::WORKSPACE_STREAM_PREFIX;
use rollcall_core::envelope::Position;
use rollcall_core::events::{Caller, Event};
use rollcall_core::token::TokenHash;
use rollcall_core::workspace::TokenStatus;
use rollcall_core::{TokenId, WorkspaceId};
use rollcall_projection::{
    Generation, InProcess, ProjectedEvent, Projection, ProjectionError, RedisOps, RedisTarget, ViewState,
};
use serde::Serialize;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The projection's name (in checkpoint keys and status).
pub const PROJECTION_NAME: &str = "tokens";

/// Revocations the in-process broadcast buffers for a slow receiver before it lags.
pub const REVOCATIONS_BUFFER_MAX: usize = 1024;

/// Whose token it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A human member's.
    Member,
    /// A bot's.
    Bot,
}

impl TokenKind {
    /// The name stored in Redis.
    pub const fn name(self) -> &'static str {
        match self {
            TokenKind::Member => "member",
            TokenKind::Bot => "bot",
        }
    }

    /// The caller this token acts as.
    pub fn caller(self, subject_id: Uuid) -> Caller {
        match self {
            TokenKind::Member => Caller::Member { member_id: subject_id.into() },
            TokenKind::Bot => Caller::Bot { bot_id: subject_id.into() },
        }
    }
}

/// What the view knows about a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub workspace: String,
    /// Member or bot.
    pub kind: TokenKind,
    /// The member id or bot id.
    pub subject_id: Uuid,
    /// The token's id.
    pub token_id: TokenId,
    /// The member's address or the bot's name.
    pub label: String,
    /// Active or revoked.
    pub status: TokenStatus,
}

/// The answer to "may this token be used?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// Active: the call may go through as this member or bot.
    Valid(TokenInfo),
    /// Revoked: refuse, and the refusal may name who it was.
    Revoked(TokenInfo),
    /// No such token.
    Unknown,
    /// The view cannot answer (not built, rebuilding after a loss, Redis unreachable): refuse.
    Unavailable,
}

/// A place that answers token checks: in process or Redis.
#[async_trait]
pub trait TokenView: Send + Sync {
    /// Checks a token by its hash.
    async fn check(&self, hash: &TokenHash) -> TokenCheck;
}

/// The whole token view: hash to info.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenState {
    /// Every token ever issued to a member or bot.
    pub tokens: HashMap<TokenHash, TokenInfo>,
}

/// One change to the view.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Effect {
    Issue(TokenHash, TokenInfo),
    Revoke(TokenHash),
}

fn workspace_of(event: &ProjectedEvent) -> String {
    event.stream.strip_prefix(WORKSPACE_STREAM_PREFIX).unwrap_or(&event.stream).to_owned()
}

fn effects(event: &ProjectedEvent, out: &mut Vec<Effect>) {
    let info = |workspace_id, kind, subject_id, token_id, label: &str| TokenInfo {
        workspace_id,
        workspace: workspace_of(event),
        kind,
        subject_id,
        token_id,
        label: label.to_owned(),
        status: TokenStatus::Active,
    };
    match &event.event {
        Event::WorkspaceCreated(e) => out.push(Effect::Issue(
            e.owner_token.hash,
            TokenInfo {
                workspace: e.name.clone(),
                ..info(
                    e.workspace_id,
                    TokenKind::Member,
                    e.owner_member_id.0,
                    e.owner_token.token_id,
                    e.owner_email.as_str(),
                )
            },
        )),
        Event::InvitationAccepted(e) => out.push(Effect::Issue(
            e.token.hash,
            info(e.workspace_id, TokenKind::Member, e.member_id.0, e.token.token_id, e.email.as_str()),
        )),
        Event::BotCreated(e) => out.push(Effect::Issue(
            e.token.hash,
            info(e.workspace_id, TokenKind::Bot, e.bot_id.0, e.token.token_id, &e.name),
        )),
        Event::MemberRemoved(e) => out.push(Effect::Revoke(e.token_hash)),
        Event::BotRevoked(e) => out.push(Effect::Revoke(e.token_hash)),
        Event::WorkspaceDeleted(e) => out.extend(e.revoked_token_hashes.iter().map(|h| Effect::Revoke(*h))),
        _ => {}
    }
}

fn wants(event_type: &str) -> bool {
    matches!(
        event_type,
        "WorkspaceCreated" | "InvitationAccepted" | "BotCreated" | "MemberRemoved" | "BotRevoked" | "WorkspaceDeleted"
    )
}

impl ViewState for TokenState {
    fn wants(event_type: &str) -> bool {
        wants(event_type)
    }

    fn apply(&mut self, event: &ProjectedEvent) {
        let mut out = Vec::new();
        effects(event, &mut out);
        for effect in out {
            match effect {
                Effect::Issue(hash, info) => {
                    self.tokens.insert(hash, info);
                }
                Effect::Revoke(hash) => {
                    if let Some(info) = self.tokens.get_mut(&hash) {
                        info.status = TokenStatus::Revoked;
                    }
                }
            }
        }
    }
}

impl TokenState {
    /// Checks a token against this state.
    pub fn check(&self, hash: &TokenHash) -> TokenCheck {
        match self.tokens.get(hash) {
            Some(info) if info.status == TokenStatus::Active => TokenCheck::Valid(info.clone()),
            Some(info) => TokenCheck::Revoked(info.clone()),
            None => TokenCheck::Unknown,
        }
    }
}

/// The token view held in this process (the embedded default), with a revocation broadcast.
#[derive(Clone)]
pub struct InProcessTokens {
    view: Arc<InProcess<TokenState>>,
    revocations: broadcast::Sender<TokenHash>,
}

impl Default for InProcessTokens {
    fn default() -> InProcessTokens {
        InProcessTokens::new()
    }
}

impl InProcessTokens {
    /// An empty view, unavailable until its projector has built it.
    pub fn new() -> InProcessTokens {
        let (revocations, _) = broadcast::channel(REVOCATIONS_BUFFER_MAX);
        let sender = revocations.clone();
        let hook = Box::new(move |events: &[ProjectedEvent]| {
            let mut out = Vec::new();
            for event in events {
                effects(event, &mut out);
            }
            for effect in out {
                if let Effect::Revoke(hash) = effect {
                    // No receiver is fine: nobody holds an open stream.
                    let _ = sender.send(hash);
                }
            }
        });
        InProcessTokens { view: Arc::new(InProcess::with_live_hook(PROJECTION_NAME, hook)), revocations }
    }

    /// The projection to hand to a [`rollcall_projection::Projector`].
    pub fn projection(&self) -> Arc<dyn Projection> {
        self.view.clone()
    }

    /// The underlying in-process view (for snapshots and tests).
    pub fn view(&self) -> &Arc<InProcess<TokenState>> {
        &self.view
    }

    /// Receives the hash of every token revoked from now on (after the view reflects it).
    pub fn subscribe_revocations(&self) -> broadcast::Receiver<TokenHash> {
        self.revocations.subscribe()
    }

    /// A copy of the whole view; `None` while unavailable.
    pub fn snapshot(&self) -> Option<TokenState> {
        self.view.snapshot()
    }

    /// Checks a token without awaiting.
    pub fn check_now(&self, hash: &TokenHash) -> TokenCheck {
        self.view.read(|s| s.check(hash)).unwrap_or(TokenCheck::Unavailable)
    }
}

#[async_trait]
impl TokenView for InProcessTokens {
    async fn check(&self, hash: &TokenHash) -> TokenCheck {
        self.check_now(hash)
    }
}

/// The token view in Redis, shared by every gateway replica.
#[derive(Clone)]
pub struct RedisTokens {
    target: RedisTarget,
}

impl RedisTokens {
    /// The view under key prefix `prefix` (e.g. `rollcall:`).
    pub fn new(conn: ConnectionManager, prefix: &str) -> RedisTokens {
        RedisTokens { target: RedisTarget::new(conn, prefix, PROJECTION_NAME) }
    }

    /// The same view, whose every write checks that `fence`'s projector lease is still held
    /// (for several `rollcall project` processes, of which only the lease holder writes).
    pub fn with_fence(self, fence: rollcall_projection::Fence) -> RedisTokens {
        RedisTokens { target: self.target.with_fence(fence) }
    }

    /// The underlying target.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The pub/sub channel revocations are published on, `{P}revocations`.
    pub fn revocations_channel(&self) -> String {
        self.target.live_key("revocations")
    }

    /// The key of a token's hash, `{P}token:{hex}`.
    pub fn token_key(&self, hash: &TokenHash) -> String {
        self.target.live_key(&format!("token:{}", hash.to_hex()))
    }

    /// Checks a token, reporting errors instead of folding them into `Unavailable`.
    pub async fn try_check(&self, hash: &TokenHash) -> Result<TokenCheck, ProjectionError> {
        let (marker, fields): (Option<String>, HashMap<String, String>) = redis::pipe()
            .atomic()
            .get(self.target.checkpoint_key())
            .hgetall(self.token_key(hash))
            .query_async(&mut self.target.connection())
            .await?;
        if marker.is_none() {
            return Ok(TokenCheck::Unavailable);
        }
        if fields.is_empty() {
            return Ok(TokenCheck::Unknown);
        }
        let info = info_from_fields(&fields)?;
        Ok(match info.status {
            TokenStatus::Active => TokenCheck::Valid(info),
            TokenStatus::Revoked => TokenCheck::Revoked(info),
        })
    }

    /// The whole live view, read back key by key; `None` while unavailable.
    pub async fn snapshot(&self) -> Result<Option<TokenState>, ProjectionError> {
        let mut conn = self.target.connection();
        if self.target.checkpoint(Generation::Live).await?.is_none() {
            return Ok(None);
        }
        let index = self.target.live_key(&format!("index:{PROJECTION_NAME}"));
        let suffixes: Vec<String> = redis::cmd("SMEMBERS").arg(&index).query_async(&mut conn).await?;
        let mut state = TokenState::default();
        for suffix in suffixes {
            let Some(hex) = suffix.strip_prefix("token:") else { continue };
            let hash =
                TokenHash::from_hex(hex).ok_or_else(|| ProjectionError::Malformed(format!("token key {suffix}")))?;
            let fields: HashMap<String, String> =
                redis::cmd("HGETALL").arg(self.target.live_key(&suffix)).query_async(&mut conn).await?;
            // A revocation of a token never issued leaves only a status field: not a token.
            if fields.contains_key("workspace_id") {
                state.tokens.insert(hash, info_from_fields(&fields)?);
            }
        }
        Ok(Some(state))
    }

    fn ops<'a>(&self, generation: Generation, events: impl Iterator<Item = &'a ProjectedEvent>) -> RedisOps {
        let mut ops = RedisOps::new();
        let mut out = Vec::new();
        for event in events {
            effects(event, &mut out);
        }
        let channel = self.revocations_channel();
        for effect in out {
            match effect {
                Effect::Issue(hash, info) => {
                    let key = format!("token:{}", hash.to_hex());
                    ops.hset(&key, "workspace_id", &info.workspace_id.to_string());
                    ops.hset(&key, "workspace", &info.workspace);
                    ops.hset(&key, "kind", info.kind.name());
                    ops.hset(&key, "subject_id", &info.subject_id.to_string());
                    ops.hset(&key, "token_id", &info.token_id.to_string());
                    ops.hset(&key, "label", &info.label);
                    ops.hset(&key, "status", status_name(info.status));
                }
                Effect::Revoke(hash) => {
                    let hex = hash.to_hex();
                    ops.hset(&format!("token:{hex}"), "status", status_name(TokenStatus::Revoked));
                    // Old revocations replayed into a staging generation concern nobody.
                    if generation == Generation::Live {
                        ops.publish(&channel, &hex);
                    }
                }
            }
        }
        ops
    }
}

fn status_name(status: TokenStatus) -> &'static str {
    match status {
        TokenStatus::Active => "active",
        TokenStatus::Revoked => "revoked",
    }
}

fn info_from_fields(fields: &HashMap<String, String>) -> Result<TokenInfo, ProjectionError> {
    let get = |name: &str| {
        fields.get(name).ok_or_else(|| ProjectionError::Malformed(format!("token hash without field {name}")))
    };
    let uuid = |name: &str| {
        get(name)?.parse::<Uuid>().map_err(|_| ProjectionError::Malformed(format!("token field {name} is not a uuid")))
    };
    Ok(TokenInfo {
        workspace_id: uuid("workspace_id")?.into(),
        workspace: get("workspace")?.clone(),
        kind: match get("kind")?.as_str() {
            "member" => TokenKind::Member,
            "bot" => TokenKind::Bot,
            other => return Err(ProjectionError::Malformed(format!("token kind {other:?}"))),
        },
        subject_id: uuid("subject_id")?,
        token_id: uuid("token_id")?.into(),
        label: get("label")?.clone(),
        status: match get("status")?.as_str() {
            "active" => TokenStatus::Active,
            "revoked" => TokenStatus::Revoked,
            other => return Err(ProjectionError::Malformed(format!("token status {other:?}"))),
        },
    })
}

#[async_trait]
impl TokenView for RedisTokens {
    async fn check(&self, hash: &TokenHash) -> TokenCheck {
        // Any failure to read is "unavailable", which callers refuse: fail closed.
        self.try_check(hash).await.unwrap_or(TokenCheck::Unavailable)
    }
}

#[async_trait]
impl Projection for RedisTokens {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    fn wants(&self, event_type: &str) -> bool {
        wants(event_type)
    }

    async fn checkpoint(&self, generation: Generation) -> Result<Option<Position>, ProjectionError> {
        self.target.checkpoint(generation).await
    }

    async fn apply(
        &self,
        generation: Generation,
        expected: Position,
        events: &[ProjectedEvent],
        to: Position,
    ) -> Result<(), ProjectionError> {
        let ops = self.ops(generation, events.iter().filter(|e| e.position > expected));
        self.target.apply(generation, expected, &ops, to).await
    }

    async fn reset_staging(&self) -> Result<(), ProjectionError> {
        self.target.reset_staging().await
    }

    async fn promote_staging(&self) -> Result<Position, ProjectionError> {
        self.target.promote_staging().await
    }
}
