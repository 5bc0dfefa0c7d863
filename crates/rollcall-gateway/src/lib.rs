//! Rollcall's MCP gateway: per-token authentication, rate limits, tool-call events, instant
//! revocation.
//!
//! Every request to `/mcp` (or `/w/{workspace}/mcp`) carries a member's or bot's token. The
//! gateway refuses a malformed token without any lookup, then asks a [`TokenAuthority`] in one
//! call whether the token is valid, for whom, and within its rate limit (with Redis, one Lua
//! script, one round trip). A `tools/call` is appended to the log as `ToolCalled` before it is
//! forwarded to the workspace's upstream MCP server, and its outcome is appended when the answer
//! comes back. Event streams of a revoked token are closed at once (a broadcast) and by a
//! periodic sweep (broadcasts can be missed). When the token check cannot be reached the gateway
//! fails closed.

pub mod authority;
#[cfg(feature = "bench")]
pub mod bench;
pub mod error;
mod follow;
mod gateway;
pub mod inprocess;
mod jsonrpc;
pub mod metrics;
pub mod projected;
mod proxy;
pub mod recorder;
pub mod redis_authority;
mod streams;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::{ListenerExt, TapIo};
use rollcall_store::{EventStore, StoreError};
use tokio::net::{TcpListener, TcpStream};

pub use authority::{AuthorityError, RateLimit, TokenAuthority, TokenInfo, TokenKind, TokenStatus, Verdict};
pub use error::GatewayError;
pub use gateway::{BuildError, Gateway, GatewayOptions, UpstreamProtocol, mcp_router, router};
pub use inprocess::InProcessAuthority;
pub use metrics::LagProbe;
pub use projected::ProjectedAuthority;
pub use recorder::CallRecorder;
pub use redis_authority::{RedisAuthority, RedisAuthorityConfig};
pub use upstream::{FixedUpstreams, StoreUpstreams, UpstreamDirectory};

/// Settings of a stand-alone gateway (`rollcall gateway --listen ADDR --redis URL --store URL`).
pub struct GatewayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The Redis token check; `None` checks tokens in process from the event store.
    pub redis: Option<RedisAuthorityConfig>,
    /// The event store (tool calls are appended to it; upstreams and, without Redis, tokens
    /// are read from it).
    pub store: Arc<dyn EventStore>,
    /// Limits and intervals.
    pub options: GatewayOptions,
}

/// Why a stand-alone gateway stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}: pick another --listen address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The event store could not be read.
    #[error("cannot read the event store: {0}")]
    Store(#[from] StoreError),
    /// The Redis settings are wrong.
    #[error("cannot set up the redis token check: {0}")]
    Authority(#[from] AuthorityError),
    /// The gateway could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The server failed.
    #[error("the gateway server failed: {0}")]
    Serve(std::io::Error),
}

/// Builds a gateway over a store: Redis for tokens when configured, in process otherwise, and
/// the upstreams followed from the store.
pub async fn build(config: &GatewayConfig) -> Result<Gateway, RunError> {
    let authority: Arc<dyn TokenAuthority> = match &config.redis {
        Some(redis) => {
            let mut redis = redis.clone();
            redis.limit = config.options.rate_limit;
            Arc::new(RedisAuthority::connect(redis)?)
        }
        None => InProcessAuthority::follow(config.store.clone(), config.options.rate_limit).await?,
    };
    let upstreams = StoreUpstreams::follow(config.store.clone()).await?;
    Ok(Gateway::new(authority, upstreams, config.store.clone(), config.options.clone())?)
}

/// Runs a stand-alone gateway until `shutdown` completes.
pub async fn run(config: GatewayConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), RunError> {
    let gateway = build(&config).await?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| RunError::Bind { addr: config.listen, source })?;
    tracing::info!(listen = %config.listen, redis = config.redis.is_some(), "gateway listening");
    axum::serve(without_nagle(listener), router(gateway.clone()).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(RunError::Serve)?;
    gateway.shutdown().await;
    Ok(())
}

/// The listener with `TCP_NODELAY` set on every connection it accepts.
///
/// The gateway relays an event stream as it comes: the response headers, then each event in its
/// own small write. With Nagle's algorithm on, every small write that follows another one waits
/// until the client acknowledges the first, and a client delays its acknowledgements (up to
/// 40 ms on Linux); an answer sent as an event stream would wait that long behind its headers.
pub fn without_nagle(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay as fn(&mut TcpStream))
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
    }
}
