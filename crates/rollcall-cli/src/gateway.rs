//! The gateway inside `rollcall serve`, and `rollcall gateway` on its own.
//!
//! Inside `serve`, the gateway's routes (`/mcp`, `/w/{workspace}/mcp`, `/metrics`) are served on
//! the API's port, so users configure one URL. Without Redis the gateway checks tokens against
//! the API's own in-process token view (`ProjectedAuthority`), so `member remove` returning means
//! the gateway refuses the token: there is one view, and the API waits for it.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::http::header;
use axum::routing::get;
use rollcall_api::Runtime;
use rollcall_api::server::RouterHook;
use rollcall_gateway::{
    Gateway, GatewayConfig, GatewayOptions, LagProbe, ProjectedAuthority, RateLimit, RedisAuthority,
    RedisAuthorityConfig, StoreUpstreams, TokenAuthority,
};
use rollcall_tokens::InProcessTokens;

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
                    Arc::new(ProjectedAuthority::new((*view).clone(), limit))
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
