//! The parts of Rollcall on their own, over a shared event store and Redis: `rollcall api` and
//! `rollcall project` (`rollcall gateway` is in [`crate::gateway`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rollcall_analytics::RedisAnalytics;
use rollcall_projection::{
    Lease, LeaseConfig, LeasedProjectors, LeasedStatus, Projection, ProjectorConfig, Role, connect_redis,
};
use rollcall_tokens::RedisTokens;
use serde_json::{Value, json};

use crate::cli::{ApiArgs, ProjectArgs};

/// The name of the lease every `rollcall project` competes for.
const LEASE_NAME: &str = "projector";
/// How often a projector process logs its role and lag.
const STATUS_LOG_INTERVAL_MS: u64 = 10_000;

/// `rollcall api`: the admin API alone. It reads the token and analytics views from Redis
/// (written by `rollcall project`) and keeps its own in-process member list.
pub async fn api(args: ApiArgs) -> anyhow::Result<()> {
    let opened = crate::store_url::open_store(&args.store).await?;
    let config = rollcall_api::ServeConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        store: Some(opened.store.clone()),
        redis_url: Some(args.redis),
        redis_prefix: args.redis_prefix,
        smtp_url: args.smtp,
        public_url: args.public_url,
        projectors: rollcall_api::ProjectorMode::ReadOnly,
        ..rollcall_api::ServeConfig::default()
    };
    tracing::info!(listen = %config.listen, smtp = config.smtp_url.is_some(), "starting rollcall api");
    let shutdown = crate::process::shutdown_signal()?;
    let result = rollcall_api::run(config, shutdown).await;
    opened.close().await;
    result?;
    tracing::info!("stopped");
    Ok(())
}

/// `rollcall project`: the token and analytics projections into Redis, while this instance
/// holds the projector lease; a standby otherwise.
pub async fn project(args: ProjectArgs) -> anyhow::Result<()> {
    let opened = crate::store_url::open_store(&args.store).await?;
    let conn = connect_redis(&args.redis).await.context("cannot connect to redis: check --redis")?;
    let instance = args.instance.clone().unwrap_or_else(default_instance);
    let lease_config = LeaseConfig {
        ttl_ms: args.lease_ttl_ms,
        renew_interval_ms: (args.lease_ttl_ms / 5).max(1),
        standby_poll_interval_ms: (args.lease_ttl_ms / 10).max(1),
    };
    let lease = Lease::new(conn.clone(), &args.redis_prefix, LEASE_NAME, &instance, lease_config.ttl_ms);
    let projections: Vec<Arc<dyn Projection>> = vec![
        Arc::new(RedisTokens::new(conn.clone(), &args.redis_prefix).with_fence(lease.fence())),
        Arc::new(RedisAnalytics::new(conn, &args.redis_prefix).with_fence(lease.fence())),
    ];
    let leased = Arc::new(LeasedProjectors::spawn(
        opened.store.clone(),
        projections,
        lease.clone(),
        lease_config,
        ProjectorConfig::default(),
    ));
    tracing::info!(%instance, lease = lease.key(), ttl_ms = lease_config.ttl_ms, "starting rollcall project");

    let status_server = match args.listen {
        Some(addr) => Some(serve_status(addr, leased.clone(), lease.clone()).await?),
        None => None,
    };
    let logger = tokio::spawn(log_status(leased.clone()));
    crate::process::shutdown_signal()?.await;
    logger.abort();
    if let Some(server) = status_server {
        server.abort();
    }
    leased.stop().await;
    drop(leased);
    opened.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// A name unique to this process: host, pid and a random suffix.
fn default_instance() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "rollcall".to_owned() } else { host };
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

#[derive(Clone)]
struct StatusState {
    leased: Arc<LeasedProjectors>,
    lease: Lease,
}

/// Serves `GET /healthz` (and `/status`): role, lease holder and each projector's lag.
async fn serve_status(
    addr: SocketAddr,
    leased: Arc<LeasedProjectors>,
    lease: Lease,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}: pick another address with --listen"))?;
    let app = axum::Router::new()
        .route("/healthz", get(status))
        .route("/status", get(status))
        .with_state(StatusState { leased, lease });
    tracing::info!(%addr, "projector status at /healthz");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the status server failed");
        }
    }))
}

/// 200 while this instance can reach Redis (active or standby), 503 when it cannot or when
/// one of its projectors keeps failing.
async fn status(State(state): State<StatusState>) -> Response {
    let report = state.leased.status();
    let holder = tokio::time::timeout(Duration::from_millis(1000), state.lease.holder()).await;
    let (holder, redis_ok) = match holder {
        Ok(Ok(holder)) => (holder, true),
        _ => (None, false),
    };
    let failing = report.projectors.iter().any(|p| p.last_error.is_some());
    let mut body = status_json(&report);
    body["holder"] = json!(holder);
    body["redis"] = json!(if redis_ok { "ok" } else { "unreachable" });
    let code = if redis_ok && !failing { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

fn status_json(report: &LeasedStatus) -> Value {
    let projectors: Vec<Value> = report
        .projectors
        .iter()
        .map(|p| {
            json!({
                "projection": p.projection,
                "phase": format!("{:?}", p.phase),
                "checkpoint": p.checkpoint.map(|c| c.to_string()),
                "head": p.head.to_string(),
                "lag_events": p.lag_events,
                "since_last_applied_ms": p.since_last_applied_ms,
                "last_error": p.last_error,
            })
        })
        .collect();
    json!({
        "instance": report.instance,
        "role": report.role,
        "acquisitions": report.acquisitions,
        "projectors": projectors,
    })
}

async fn log_status(leased: Arc<LeasedProjectors>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(STATUS_LOG_INTERVAL_MS));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let report = leased.status();
        match report.role {
            Role::Standby => tracing::info!(instance = %report.instance, "standing by for the projector lease"),
            Role::Active => {
                for p in &report.projectors {
                    tracing::info!(
                        projection = %p.projection,
                        lag_events = p.lag_events,
                        checkpoint = ?p.checkpoint.map(|c| c.to_string()),
                        error = ?p.last_error,
                        "projecting"
                    );
                }
            }
        }
    }
}
