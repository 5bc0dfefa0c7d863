//! The gateway inside `rollcall serve`, and `rollcall gateway` on its own.
//!
//! Inside `serve`, the gateway's routes (`/mcp`, `/w/{workspace}/mcp`, `/metrics`) are served on
//! the API's port, so users configure one URL. Without Redis the gateway checks tokens against
//! the API's own in-process token view ([`ViewAuthority`]), so `member remove` returning means
//! the gateway refuses the token: there is one view, and the API waits for it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;
use axum::http::header;
use axum::routing::get;
use rollcall_api::Runtime;
use rollcall_api::server::RouterHook;
use rollcall_core::token::TokenHash;
use rollcall_gateway::authority::SlidingWindowLimiter;
use rollcall_gateway::{
    AuthorityError, Gateway, GatewayConfig, GatewayOptions, LagProbe, RateLimit, RedisAuthority, RedisAuthorityConfig,
    StoreUpstreams, TokenAuthority, TokenInfo, TokenKind, TokenStatus, Verdict,
};
use rollcall_tokens::{InProcessTokens, TokenCheck};
use tokio::sync::broadcast;

use crate::cli::GatewayArgs;

/// The gateway built inside `rollcall serve`, kept to flush its summaries at shutdown.
pub type GatewaySlot = Arc<Mutex<Option<Gateway>>>;

/// The hook that adds the gateway's routes to `rollcall serve`: tokens from Redis when given,
/// otherwise from the server's in-process token view.
pub fn serve_hook(redis: Option<RedisAuthorityConfig>, slot: GatewaySlot) -> RouterHook {
    Box::new(move |runtime: Runtime| {
        Box::pin(async move {
            let limit = RateLimit::default();
            let authority: Arc<dyn TokenAuthority> = match redis {
                Some(config) => Arc::new(
                    RedisAuthority::connect(RedisAuthorityConfig { limit, ..config })
                        .context("cannot set up the gateway's redis token check")?,
                ),
                None => {
                    let view = runtime
                        .views
                        .get("tokens")
                        .cloned()
                        .and_then(|v| v.downcast::<InProcessTokens>().ok())
                        .context("the server runs no in-process token view for the gateway")?;
                    Arc::new(ViewAuthority::new((*view).clone(), limit))
                }
            };
            let upstreams = StoreUpstreams::follow(runtime.store.clone())
                .await
                .context("the gateway cannot read the workspaces' upstreams from the event store")?;
            let gateway = Gateway::new(authority, upstreams, runtime.store.clone(), GatewayOptions::default())?;
            let projectors = runtime.projectors.clone();
            let probe: LagProbe = Arc::new(move || {
                projectors.iter().map(|(name, handle)| (name.clone(), handle.status().lag_events)).collect()
            });
            gateway.set_projection_lag(probe);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(gateway.clone());
            // The gateway's own `/healthz` stays off this port: the API's answers for the server.
            // The MCP routes are merged as they are: nesting them under a route of their own
            // would hand `/w/{workspace}/mcp` its path parameter twice.
            let metrics = gateway.clone();
            Ok(rollcall_gateway::mcp_router(gateway).route(
                "/metrics",
                get(move || {
                    let text = metrics.render_metrics();
                    async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
                }),
            ))
        })
    })
}

/// `rollcall gateway`: the MCP gateway alone, checking tokens in Redis, until SIGINT/SIGTERM.
pub async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let opened = crate::store_url::open_store(&args.store).await?;
    let config = GatewayConfig {
        listen: args.listen,
        redis: Some(RedisAuthorityConfig {
            prefix: args.redis_prefix.clone(),
            ..RedisAuthorityConfig::new(&args.redis)
        }),
        store: opened.store.clone(),
        options: GatewayOptions::default(),
    };
    tracing::info!(listen = %args.listen, "starting rollcall gateway");
    let shutdown = crate::process::shutdown_signal()?;
    let result = rollcall_gateway::run(config, shutdown).await;
    opened.close().await;
    result.context("the gateway stopped")?;
    tracing::info!("stopped");
    Ok(())
}

/// The token check over the server's in-process token view, with the rate limit in process.
pub struct ViewAuthority {
    tokens: InProcessTokens,
    limiter: SlidingWindowLimiter,
    epoch: Instant,
}

impl ViewAuthority {
    /// Checks tokens against `tokens`, `limit` requests per window each.
    pub fn new(tokens: InProcessTokens, limit: RateLimit) -> ViewAuthority {
        ViewAuthority { tokens, limiter: SlidingWindowLimiter::new(limit), epoch: Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

fn gateway_info(info: rollcall_tokens::TokenInfo) -> TokenInfo {
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
    AuthorityError::Unavailable("the token view is being built; retry shortly".into())
}

#[async_trait]
impl TokenAuthority for ViewAuthority {
    async fn check(&self, hash: &TokenHash) -> Result<Verdict, AuthorityError> {
        match self.tokens.check_now(hash) {
            TokenCheck::Valid(info) => match self.limiter.acquire(hash, self.now_ms()) {
                Ok(()) => Ok(Verdict::Allowed(gateway_info(info))),
                Err(retry_after_ms) => Ok(Verdict::Limited { info: gateway_info(info), retry_after_ms }),
            },
            TokenCheck::Revoked(info) => Ok(Verdict::Revoked(gateway_info(info))),
            TokenCheck::Unknown => Ok(Verdict::Unknown),
            TokenCheck::Unavailable => Err(unavailable()),
        }
    }

    async fn statuses(&self, hashes: &[TokenHash]) -> Result<Vec<TokenStatus>, AuthorityError> {
        // Called by the periodic sweep: a good moment to forget idle rate-limit logs too.
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
        match self.tokens.check_now(&TokenHash([0; 32])) {
            TokenCheck::Unavailable => Err(unavailable()),
            _ => Ok(()),
        }
    }
}
