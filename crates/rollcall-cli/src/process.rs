//! The commands that run in process: `serve` and `store`.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use crate::cli::{ServeArgs, StoreArgs, StoreCommand};
use crate::output::{Table, print_json, print_line};

/// The folder of the embedded log inside a data directory.
const LOG_FOLDER: &str = "log";

/// `rollcall serve`: the API, the projectors, the MCP gateway, the mailer and the expiry sweep
/// in one process, until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let opened = match &args.store {
        Some(spec) => Some(crate::store_url::open_store(spec).await?),
        None => None,
    };
    let slot = crate::gateway::GatewaySlot::default();
    let gateway_redis = args.redis.as_ref().map(|url| rollcall_gateway::RedisAuthorityConfig {
        prefix: args.redis_prefix.clone(),
        ..rollcall_gateway::RedisAuthorityConfig::new(url)
    });
    let config = rollcall_api::ServeConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        store: opened.as_ref().map(|o| o.store.clone()),
        redis_url: args.redis,
        redis_prefix: args.redis_prefix,
        smtp_url: args.smtp,
        public_url: args.public_url,
        extra_routes: vec![crate::gateway::serve_hook(gateway_redis, slot.clone())],
        ..rollcall_api::ServeConfig::default()
    };
    // Only where things are is logged: the SMTP and Redis URLs may carry passwords.
    tracing::info!(
        data_dir = %config.data_dir.display(),
        listen = %config.listen,
        redis = config.redis_url.is_some(),
        smtp = config.smtp_url.is_some(),
        "starting rollcall serve (API at /api/v1, MCP gateway at /mcp)"
    );
    let shutdown = shutdown_signal()?;
    let server = rollcall_api::Server::start(config).await?;
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight requests");
    let gateway = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(gateway) = gateway {
        gateway.shutdown().await;
    }
    let stopped = server.shutdown().await;
    if let Some(opened) = opened {
        opened.close().await;
    }
    stopped?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down");
    })
}

/// `rollcall store inspect|repair`, on the data directory of a stopped server.
pub fn store(args: StoreArgs, json_output: bool) -> anyhow::Result<()> {
    match args.command {
        StoreCommand::Inspect { data_dir } => {
            let log = log_dir(&data_dir)?;
            let report = rollcall_store::embedded::inspect(&log)
                .with_context(|| format!("cannot inspect the event log in {}", log.display()))?;
            if json_output {
                return print_json(&serde_json::to_value(&report)?);
            }
            print_line(&format!(
                "{}: {} events in {} streams, {} segments; {}",
                log.display(),
                report.events,
                report.streams,
                report.segments.len(),
                if report.healthy { "healthy" } else { "damaged: stop the server and run `rollcall store repair`" }
            ))?;
            let mut table = Table::new(&["segment", "bytes", "events", "first_position", "status"]);
            for segment in &report.segments {
                let status = serde_json::to_value(&segment.status)?;
                table.row(vec![
                    segment.name.clone(),
                    segment.file_bytes.to_string(),
                    segment.events.to_string(),
                    segment.first_position.to_string(),
                    crate::output::cell(Some(&status)),
                ]);
            }
            table.print_or("no segments")
        }
        StoreCommand::Repair { data_dir } => {
            let log = log_dir(&data_dir)?;
            let report = rollcall_store::embedded::repair(&log)
                .with_context(|| format!("cannot repair the event log in {}", log.display()))?;
            if json_output {
                return print_json(&serde_json::to_value(&report)?);
            }
            if !report.repaired {
                return print_line(&format!("{}: nothing to repair, {} events", log.display(), report.events_kept));
            }
            let moved_to = report.damaged_dir.as_ref().map(|d| d.display().to_string());
            print_line(&format!(
                "{}: repaired; {} events kept, events from position {} on were lost; damaged segments {} moved to {}",
                log.display(),
                report.events_kept,
                json!(report.first_lost_position),
                report.moved_segments.join(", "),
                moved_to.unwrap_or_else(|| "-".into())
            ))
        }
    }
}

/// The embedded log of a data directory, which must exist.
fn log_dir(data_dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let log = data_dir.join(LOG_FOLDER);
    if !log.is_dir() {
        anyhow::bail!(
            "{} holds no event log (no {LOG_FOLDER}/ folder): pass the --data-dir that `rollcall serve` used",
            data_dir.display()
        );
    }
    Ok(log)
}
