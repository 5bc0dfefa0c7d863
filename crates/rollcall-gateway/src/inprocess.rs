//! The token check without Redis: a token map fed by the event store, and the rate limit in
//! process. For `rollcall serve` on one machine.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rollcall_core::catalogue::WORKSPACE_STREAM_PREFIX;
use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_core::events::Event;
use rollcall_core::{TokenHash, WorkspaceId};
use rollcall_store::{EventFilter, EventStore, StoreError};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::authority::{
    AuthorityError, RateLimit, SlidingWindowLimiter, TokenAuthority, TokenInfo, TokenKind, TokenStatus, Verdict,
};
use crate::follow;

/// Revocations buffered for slow listeners before they lag (and rely on the sweep).
const REVOCATIONS_BUFFER: usize = 1024;

/// Token events the in-process view applies.
const TOKEN_EVENT_TYPES: &[&str] =
    &["WorkspaceCreated", "InvitationAccepted", "MemberRemoved", "BotCreated", "BotRevoked", "WorkspaceDeleted"];

#[derive(Clone, Debug)]
struct Entry {
    info: TokenInfo,
    status: TokenStatus,
}

/// Token validity and rate limits held in process.
///
/// Feed it with [`InProcessAuthority::follow`] (a subscriber of the event store), or from a
/// token projection through [`InProcessAuthority::upsert`] and [`InProcessAuthority::revoke`].
pub struct InProcessAuthority {
    tokens: RwLock<HashMap<TokenHash, Entry>>,
    workspaces: RwLock<HashMap<WorkspaceId, String>>,
    limiter: SlidingWindowLimiter,
    revocations: broadcast::Sender<TokenHash>,
    applied: watch::Sender<Position>,
    epoch: Instant,
    _stop: Option<DropGuard>,
}

impl InProcessAuthority {
    /// An empty view; tokens are added with [`InProcessAuthority::upsert`].
    pub fn new(limit: RateLimit) -> InProcessAuthority {
        InProcessAuthority {
            tokens: RwLock::new(HashMap::new()),
            workspaces: RwLock::new(HashMap::new()),
            limiter: SlidingWindowLimiter::new(limit),
            revocations: broadcast::channel(REVOCATIONS_BUFFER).0,
            applied: watch::channel(Position::START).0,
            epoch: Instant::now(),
            _stop: None,
        }
    }

    /// A view that follows the event store: it has caught up when this returns and keeps
    /// applying token events until it is dropped.
    pub async fn follow(store: Arc<dyn EventStore>, limit: RateLimit) -> Result<Arc<InProcessAuthority>, StoreError> {
        let cancel = CancellationToken::new();
        let mut authority = InProcessAuthority::new(limit);
        authority._stop = Some(cancel.clone().drop_guard());
        let authority = Arc::new(authority);
        let weak = Arc::downgrade(&authority);
        let filter = EventFilter {
            stream_prefixes: vec![WORKSPACE_STREAM_PREFIX.to_owned()],
            event_types: TOKEN_EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        };
        let applied = authority.applied.clone();
        follow::follow(store, filter, applied, cancel, move |event| {
            if let Some(authority) = weak.upgrade() {
                authority.apply(event);
            }
        })
        .await?;
        Ok(authority)
    }

    /// Adds or replaces an active token.
    pub fn upsert(&self, hash: TokenHash, info: TokenInfo) {
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        tokens.insert(hash, Entry { info, status: TokenStatus::Active });
    }

    /// Marks a token revoked (it stays known, so it is reported as revoked) and broadcasts it.
    pub fn revoke(&self, hash: TokenHash) {
        {
            let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = tokens.get_mut(&hash) {
                entry.status = TokenStatus::Revoked;
            }
        }
        // Nobody listening is fine: there are no open streams to close then.
        let _ = self.revocations.send(hash);
    }

    /// The position of the last token event applied.
    pub fn applied_position(&self) -> Position {
        *self.applied.borrow()
    }

    /// Waits until the view has applied the token event at `position`, at most `timeout`.
    /// Returns whether it did. Only positions of token events are ever reached exactly.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        follow::wait_for(&self.applied, position, timeout).await
    }

    /// Applies one stored event; events that do not concern tokens are ignored.
    pub fn apply(&self, recorded: &RecordedEvent) {
        let event = match Event::from_recorded(recorded) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(error = %e, stream = %recorded.stream, "cannot decode a token event; skipping it");
                return;
            }
        };
        match event {
            Event::WorkspaceCreated(e) => {
                self.workspaces_write().insert(e.workspace_id, e.name.clone());
                self.upsert(
                    e.owner_token.hash,
                    TokenInfo {
                        workspace_id: e.workspace_id,
                        workspace: e.name,
                        kind: TokenKind::Member,
                        subject_id: e.owner_member_id.as_uuid(),
                        token_id: e.owner_token.token_id,
                        label: e.owner_email.as_str().to_owned(),
                    },
                );
            }
            Event::InvitationAccepted(e) => {
                let workspace = self.workspace_name(e.workspace_id);
                self.upsert(
                    e.token.hash,
                    TokenInfo {
                        workspace_id: e.workspace_id,
                        workspace,
                        kind: TokenKind::Member,
                        subject_id: e.member_id.as_uuid(),
                        token_id: e.token.token_id,
                        label: e.email.as_str().to_owned(),
                    },
                );
            }
            Event::BotCreated(e) => {
                let workspace = self.workspace_name(e.workspace_id);
                self.upsert(
                    e.token.hash,
                    TokenInfo {
                        workspace_id: e.workspace_id,
                        workspace,
                        kind: TokenKind::Bot,
                        subject_id: e.bot_id.as_uuid(),
                        token_id: e.token.token_id,
                        label: e.name,
                    },
                );
            }
            Event::MemberRemoved(e) => self.revoke(e.token_hash),
            Event::BotRevoked(e) => self.revoke(e.token_hash),
            Event::WorkspaceDeleted(e) => {
                for hash in e.revoked_token_hashes {
                    self.revoke(hash);
                }
            }
            _ => {}
        }
    }

    fn workspaces_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<WorkspaceId, String>> {
        self.workspaces.write().unwrap_or_else(|e| e.into_inner())
    }

    fn workspace_name(&self, id: WorkspaceId) -> String {
        let workspaces = self.workspaces.read().unwrap_or_else(|e| e.into_inner());
        workspaces.get(&id).cloned().unwrap_or_default()
    }

    fn entry(&self, hash: &TokenHash) -> Option<Entry> {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        tokens.get(hash).cloned()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[async_trait]
impl TokenAuthority for InProcessAuthority {
    async fn check(&self, hash: &TokenHash) -> Result<Verdict, AuthorityError> {
        let Some(entry) = self.entry(hash) else { return Ok(Verdict::Unknown) };
        match entry.status {
            TokenStatus::Active => match self.limiter.acquire(hash, self.now_ms()) {
                Ok(()) => Ok(Verdict::Allowed(entry.info)),
                Err(retry_after_ms) => Ok(Verdict::Limited { info: entry.info, retry_after_ms }),
            },
            TokenStatus::Revoked => Ok(Verdict::Revoked(entry.info)),
            TokenStatus::Unknown => Ok(Verdict::Unknown),
        }
    }

    async fn statuses(&self, hashes: &[TokenHash]) -> Result<Vec<TokenStatus>, AuthorityError> {
        // The sweep calls this every second: a good moment to drop idle rate-limit logs too.
        self.limiter.forget_idle(self.now_ms());
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        Ok(hashes.iter().map(|h| tokens.get(h).map_or(TokenStatus::Unknown, |e| e.status)).collect())
    }

    fn revocations(&self) -> broadcast::Receiver<TokenHash> {
        self.revocations.subscribe()
    }

    async fn ping(&self) -> Result<(), AuthorityError> {
        Ok(())
    }
}
