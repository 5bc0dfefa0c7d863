//! The gateway's shared state, its background tasks (revocations, the sweep, summaries) and its
//! router.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rollcall_store::EventStore;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::authority::{RateLimit, TokenAuthority, TokenStatus};
use crate::metrics::{LagProbe, Metrics};
use crate::proxy;
use crate::recorder::{CallRecorder, Completions, Flush};
use crate::streams::Streams;
use crate::upstream::UpstreamDirectory;

/// How the gateway talks HTTP to upstreams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with a keep-alive pool: works with every MCP server.
    Http1,
    /// HTTP/2 without TLS ("prior knowledge"): many streams over a few connections, for
    /// upstreams that support it.
    H2c,
}

/// Limits and intervals of the gateway.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// The rate limit per token.
    pub rate_limit: RateLimit,
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// Largest upstream message inspected to find a tool call's outcome, in bytes.
    pub inspect_bytes_max: usize,
    /// Longest wait for the token check, in milliseconds; past it the gateway fails closed.
    pub check_timeout_ms: u64,
    /// Longest wait to connect to an upstream, in milliseconds.
    pub upstream_connect_timeout_ms: u64,
    /// Longest wait for an upstream's response headers (and a whole JSON body), in milliseconds.
    pub upstream_response_timeout_ms: u64,
    /// Idle connections kept per upstream.
    pub upstream_idle_connections_max: usize,
    /// HTTP version towards upstreams.
    pub upstream_protocol: UpstreamProtocol,
    /// How often open streams' tokens are checked again, in milliseconds.
    pub sweep_interval_ms: u64,
    /// One `RateLimited` event per token per this window, in milliseconds.
    pub rate_limited_summary_ms: u64,
    /// At most one `AccessDenied` event per token per this interval, in milliseconds.
    pub access_denied_interval_ms: u64,
    /// Most event streams open at once.
    pub open_streams_max: usize,
}

impl Default for GatewayOptions {
    fn default() -> GatewayOptions {
        GatewayOptions {
            rate_limit: RateLimit::default(),
            body_bytes_max: 1024 * 1024,
            inspect_bytes_max: 1024 * 1024,
            check_timeout_ms: 1000,
            upstream_connect_timeout_ms: 2000,
            upstream_response_timeout_ms: 300_000,
            upstream_idle_connections_max: 256,
            upstream_protocol: UpstreamProtocol::Http1,
            sweep_interval_ms: 1000,
            rate_limited_summary_ms: 60_000,
            access_denied_interval_ms: 1000,
            open_streams_max: 50_000,
        }
    }
}

impl GatewayOptions {
    fn validate(&self) -> Result<(), BuildError> {
        let positive = [
            ("body_bytes_max", self.body_bytes_max as u64),
            ("check_timeout_ms", self.check_timeout_ms),
            ("upstream_connect_timeout_ms", self.upstream_connect_timeout_ms),
            ("upstream_response_timeout_ms", self.upstream_response_timeout_ms),
            ("sweep_interval_ms", self.sweep_interval_ms),
            ("open_streams_max", self.open_streams_max as u64),
        ];
        match positive.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(BuildError::InvalidOption { name, problem: "must be more than 0" }),
            None => Ok(()),
        }
    }
}

/// hyper's pooled client without reqwest's layers (URL parsing with IDNA, redirect policy,
/// boxed bodies): on a proxy's hot path they cost more than the rest of the request handling.
/// Keep-alive connections are reused; DNS is resolved only when a connection is opened.
fn upstream_client(options: &GatewayOptions) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_millis(options.upstream_connect_timeout_ms)));
    // The TLS connector below decides between http and https.
    connector.enforce_http(false);
    let tls = HttpsConnectorBuilder::new().with_webpki_roots().https_or_http();
    let connector = match options.upstream_protocol {
        UpstreamProtocol::Http1 => tls.enable_http1().wrap_connector(connector),
        UpstreamProtocol::H2c => tls.enable_http2().wrap_connector(connector),
    };
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(options.upstream_idle_connections_max)
        .http2_only(options.upstream_protocol == UpstreamProtocol::H2c)
        .build(connector)
}

/// The gateway: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) authority: Arc<dyn TokenAuthority>,
    pub(crate) upstreams: Arc<dyn UpstreamDirectory>,
    pub(crate) recorder: CallRecorder,
    pub(crate) completions: Completions,
    pub(crate) http: UpstreamClient,
    pub(crate) streams: Arc<Streams>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) options: GatewayOptions,
    lag: RwLock<Option<LagProbe>>,
    _stop: DropGuard,
}

/// The HTTP client towards upstreams: hyper's pooled client, plain HTTP or TLS.
pub(crate) type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why the gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An option is out of range.
    #[error("the gateway option {name} {problem}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl Gateway {
    /// Builds the gateway and starts its background tasks (they stop when the last clone is
    /// dropped). Must be called inside a tokio runtime.
    pub fn new(
        authority: Arc<dyn TokenAuthority>,
        upstreams: Arc<dyn UpstreamDirectory>,
        store: Arc<dyn EventStore>,
        options: GatewayOptions,
    ) -> Result<Gateway, BuildError> {
        options.validate()?;
        let http = upstream_client(&options);
        let recorder = CallRecorder::new(
            store,
            Duration::from_millis(options.rate_limited_summary_ms),
            Duration::from_millis(options.access_denied_interval_ms),
        );
        let cancel = CancellationToken::new();
        let streams = Arc::new(Streams::new(options.open_streams_max));
        let metrics = Arc::new(Metrics::default());
        let completions = Completions::start(recorder.clone());
        let inner = Inner {
            authority,
            upstreams,
            recorder,
            completions,
            http,
            streams,
            metrics,
            options,
            lag: RwLock::new(None),
            _stop: cancel.clone().drop_guard(),
        };
        tokio::spawn(close_on_revocation(
            inner.authority.clone(),
            inner.streams.clone(),
            inner.metrics.clone(),
            cancel.clone(),
        ));
        tokio::spawn(sweep(
            inner.authority.clone(),
            inner.streams.clone(),
            inner.metrics.clone(),
            inner.recorder.clone(),
            Duration::from_millis(inner.options.sweep_interval_ms),
            cancel,
        ));
        Ok(Gateway { inner: Arc::new(inner) })
    }

    /// Reports projection lag in `/metrics`.
    pub fn set_projection_lag(&self, probe: LagProbe) {
        *self.inner.lag.write().unwrap_or_else(|e| e.into_inner()) = Some(probe);
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The gateway's metrics in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let lag = self.inner.lag.read().unwrap_or_else(|e| e.into_inner()).clone();
        self.inner.metrics.render(self.inner.streams.open(), lag.as_ref())
    }

    /// Whether the token check can be reached (what `/healthz` reports).
    pub async fn healthy(&self) -> Result<(), crate::authority::AuthorityError> {
        self.inner.authority.ping().await
    }

    /// How many event streams are open.
    pub fn open_streams(&self) -> usize {
        self.inner.streams.open()
    }

    /// Records the pending rate-limit summaries; call when stopping.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.recorder.flush_rate_limited(Flush::All).await {
            tracing::error!(error = %e, "cannot record the last rate-limit summaries");
        }
    }
}

/// The gateway's routes: `/mcp`, `/w/{workspace}/mcp`, `/healthz` and `/metrics`.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(gateway.clone())
        .merge(mcp_router(gateway))
}

/// Only the MCP routes, `/mcp` and `/w/{workspace}/mcp`, for merging into a server that has
/// its own `/healthz` and `/metrics` (render these with [`Gateway::render_metrics`]).
pub fn mcp_router(gateway: Gateway) -> Router {
    Router::new()
        .route("/mcp", get(proxy::mcp).post(proxy::mcp).delete(proxy::mcp))
        .route(
            "/w/{workspace}/mcp",
            get(proxy::mcp_in_workspace).post(proxy::mcp_in_workspace).delete(proxy::mcp_in_workspace),
        )
        .with_state(gateway)
}

async fn healthz(State(gateway): State<Gateway>) -> Response {
    match gateway.inner.authority.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: token check unavailable");
            let body = serde_json::json!({
                "status": "unavailable",
                "message": "the token validity store cannot be reached: requests are refused until it is back",
            });
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

async fn metrics(State(gateway): State<Gateway>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], gateway.render_metrics()).into_response()
}

async fn close_on_revocation(
    authority: Arc<dyn TokenAuthority>,
    streams: Arc<Streams>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut revocations = authority.revocations();
    loop {
        let received = tokio::select! {
            () = cancel.cancelled() => return,
            r = revocations.recv() => r,
        };
        match received {
            Ok(hash) => {
                let closed = streams.close_token(&hash);
                if closed > 0 {
                    metrics.streams_closed(closed);
                    tracing::info!(token = ?hash, closed, "closed the event streams of a revoked token");
                }
            }
            // Missed messages are caught by the sweep.
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "missed revocation messages; the sweep will catch up")
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn sweep(
    authority: Arc<dyn TokenAuthority>,
    streams: Arc<Streams>,
    metrics: Arc<Metrics>,
    recorder: CallRecorder,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let tokens = streams.tokens();
        match authority.statuses(&tokens).await {
            Ok(statuses) => {
                for (hash, status) in tokens.iter().zip(statuses) {
                    if status != TokenStatus::Active {
                        let closed = streams.close_token(hash);
                        metrics.streams_closed(closed);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "sweep of open streams could not check tokens"),
        }
        if let Err(e) = recorder.flush_rate_limited(Flush::Due).await {
            tracing::error!(error = %e, "cannot record rate-limit summaries; will retry");
        }
    }
}
