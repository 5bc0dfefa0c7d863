//! `rollcall-bench`: measures the event store on realistic `ToolCalled` traffic.
//!
//! - `append`: durable appends from many tasks with group commit, the naive one-fsync-per-append
//!   baseline and the disk's own sequential fsync limit, all in one run.
//! - `replay`: reads and decodes the whole log from position 0 (`--projections`: rebuilds the
//!   read models).
//! - `gateway`: `tools/call` load directly, through nginx and through the gateway with Redis.

mod append;
mod projections;
mod replay;
mod store_url;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rollcall_store::{EmbeddedLog, EmbeddedOptions, SyncPolicy};
use serde_json::json;

/// Benchmarks of Rollcall's event store.
#[derive(Parser)]
#[command(name = "rollcall-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Durable append throughput: group commit vs one fsync per append vs the disk's limit.
    Append(AppendArgs),
    /// Full replay: read and decode every event from position 0.
    Replay(ReplayArgs),
    /// The MCP gateway against direct calls and nginx as a plain reverse proxy.
    Gateway(GatewayArgs),
    /// Serves the gateway under test (started by `gateway` itself as a child process).
    #[command(hide = true)]
    ServeGateway(ServeGatewayArgs),
}

#[derive(Args)]
struct GatewayArgs {
    /// Print JSON (the output is JSON either way; accepted for symmetry with the other modes).
    #[arg(long)]
    json: bool,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 5)]
    duration_s: u64,
    /// Concurrent clients at peak load.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Event streams held open for the memory measurement.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Where the gateway appends its events: `embedded` (durable, the default) or `memory`.
    #[arg(long, default_value = "embedded")]
    store: String,
}

#[derive(Args)]
struct ServeGatewayArgs {
    #[arg(long)]
    listen: std::net::SocketAddr,
    #[arg(long)]
    redis: String,
    #[arg(long)]
    prefix: String,
    #[arg(long)]
    workspace_id: uuid::Uuid,
    #[arg(long)]
    upstream: String,
    #[arg(long, default_value = "http1")]
    upstream_protocol: String,
    #[arg(long)]
    store_dir: Option<PathBuf>,
}

#[derive(Args)]
struct Common {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Where the benchmark logs go (a fresh folder under the system temp dir by default).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct AppendArgs {
    #[command(flatten)]
    common: Common,
    /// Events appended with group commit.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Concurrent appending tasks.
    #[arg(long, default_value_t = 256)]
    tasks: usize,
    /// Events appended by the naive one-fsync-per-append baseline (it is a rate: fewer is fine).
    #[arg(long, default_value_t = 20_000)]
    naive_events: u64,
    /// Token streams the events are spread over.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Also run the group-commit workload on this server store (postgres://...[?schema=NAME]),
    /// in the same run, and compare.
    #[arg(long)]
    store: Option<String>,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    common: Common,
    /// Events in the log to replay (written first unless the log already has them).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Rebuild the member list, the token view and the analytics instead (in process and into
    /// Redis at `REDIS_URL`), beside a bare read of the same log.
    #[arg(long)]
    projections: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Append(args) => append(args).await,
            Command::Replay(args) => replay(args).await,
            Command::Gateway(args) => gateway(args).await,
            Command::ServeGateway(args) => serve_gateway(args).await,
        }
    })
}

async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    use rollcall_gateway::bench::{BenchOptions, BenchStore};
    let _ = args.json;
    let store = match args.store.as_str() {
        "embedded" => BenchStore::Embedded,
        "memory" => BenchStore::Memory,
        other => anyhow::bail!("unknown --store {other:?}: use embedded or memory"),
    };
    let options = BenchOptions {
        duration_s: args.duration_s,
        concurrency: args.concurrency,
        streams: args.streams,
        store,
        ..BenchOptions::default()
    };
    let figures = rollcall_gateway::bench::run(options).await?;
    println!("{figures}");
    Ok(())
}

async fn serve_gateway(args: ServeGatewayArgs) -> anyhow::Result<()> {
    use rollcall_gateway::UpstreamProtocol;
    let protocol = if args.upstream_protocol == "h2c" { UpstreamProtocol::H2c } else { UpstreamProtocol::Http1 };
    rollcall_gateway::bench::serve_gateway(rollcall_gateway::bench::ServeGateway {
        listen: args.listen,
        redis: args.redis,
        prefix: args.prefix,
        workspace_id: rollcall_core::WorkspaceId(args.workspace_id),
        upstream: args.upstream,
        protocol,
        store_dir: args.store_dir,
    })
    .await
}

fn base_dir(common: &Common) -> PathBuf {
    common
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("rollcall-bench-{}", std::process::id())))
}

/// A fresh, empty folder for one run.
fn fresh(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

const MB: f64 = 1_000_000.0;

async fn append(args: AppendArgs) -> anyhow::Result<()> {
    let base = base_dir(&args.common);
    let tokens = Arc::new(workload::token_streams(args.streams));

    let group_dir = base.join("append-group");
    fresh(&group_dir)?;
    let log = Arc::new(EmbeddedLog::open(&group_dir, EmbeddedOptions::default()).await?);
    let group = append::run_append(log.clone(), tokens.clone(), args.events, args.tasks).await?;
    close(log).await?;
    let log = EmbeddedLog::open(&group_dir, EmbeddedOptions::default()).await?;
    let caught_up = append::catch_up(&log, group.events).await?;
    close(Arc::new(log)).await?;
    let catch_up_events_per_s = group.events as f64 / caught_up.as_secs_f64();
    let log_bytes = append::dir_bytes(&group_dir)?;
    let bytes_per_event = log_bytes as f64 / group.events as f64;

    let naive_dir = base.join("append-naive");
    fresh(&naive_dir)?;
    let naive_options = EmbeddedOptions { sync: SyncPolicy::EveryAppend, ..EmbeddedOptions::default() };
    let log = Arc::new(EmbeddedLog::open(&naive_dir, naive_options).await?);
    let naive = append::run_append(log.clone(), tokens.clone(), args.naive_events, args.tasks).await?;
    close(log).await?;

    let server = match &args.store {
        Some(spec) => {
            let opened = store_url::open(spec).await?;
            Some(store_url::append_report(&opened, tokens.clone(), args.events, args.tasks).await?)
        }
        None => None,
    };

    let disk_bytes = log_bytes.min(512 * 1024 * 1024);
    let disk_dir = base.clone();
    let disk_bytes_per_s =
        tokio::task::spawn_blocking(move || append::disk_limit_bytes_per_s(&disk_dir, disk_bytes)).await??;
    let disk_events_per_s = disk_bytes_per_s / bytes_per_event;

    if args.common.data_dir.is_none() {
        std::fs::remove_dir_all(&base)?;
    }
    let events_per_s = group.events_per_s();
    let mb_per_s = events_per_s * bytes_per_event / MB;
    let mut report = json!({
        "events": group.events,
        "tasks": args.tasks,
        "streams": args.streams,
        "elapsed_s": group.elapsed.as_secs_f64(),
        "events_per_s": events_per_s.round(),
        "mb_per_s": round2(mb_per_s),
        "payload_mb_per_s": round2(group.payload_bytes as f64 / group.elapsed.as_secs_f64() / MB),
        "log_bytes_per_event": round2(bytes_per_event),
        "naive_events": naive.events,
        "naive_events_per_s": naive.events_per_s().round(),
        "disk_limit_mb_per_s": round2(disk_bytes_per_s / MB),
        "disk_limit_events_per_s": disk_events_per_s.round(),
        "group_commit_vs_naive": round2(events_per_s / naive.events_per_s()),
        "group_commit_vs_disk_limit": round2(events_per_s / disk_events_per_s),
        "catch_up_events_per_s": catch_up_events_per_s.round(),
    });
    if let Some(server) = server {
        let ratio = events_per_s / server["events_per_s"].as_f64().unwrap_or(f64::NAN);
        report["embedded_vs_server"] = json!(round2(ratio));
        let catch_up_ratio = catch_up_events_per_s / server["catch_up_events_per_s"].as_f64().unwrap_or(f64::NAN);
        report["embedded_vs_server_catch_up"] = json!(round2(catch_up_ratio));
        report["server"] = server;
    }
    if args.common.json {
        println!("{report}");
    } else {
        println!(
            "group commit: {:.0} durable events/s ({:.1} MB/s) from {} tasks\nnaive (one fsync per append): {:.0} events/s\ndisk limit (fdatasync per 256 KiB): {:.1} MB/s = {:.0} events/s\ngroup commit is {:.1}x naive and {:.2}x the disk limit",
            events_per_s,
            mb_per_s,
            args.tasks,
            naive.events_per_s(),
            disk_bytes_per_s / MB,
            disk_events_per_s,
            events_per_s / naive.events_per_s(),
            events_per_s / disk_events_per_s,
        );
    }
    Ok(())
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if args.projections {
        let options = projections::ProjectionsArgs {
            events: args.events,
            data_dir: args.common.data_dir.clone(),
            ..Default::default()
        };
        let report = projections::run(&options).await?;
        println!("{}", if args.common.json { report.to_string() } else { serde_json::to_string_pretty(&report)? });
        return Ok(());
    }
    let dir = base_dir(&args.common).join(format!("replay-{}", args.events));
    let tokens = Arc::new(workload::token_streams(1000));
    let log = Arc::new(EmbeddedLog::open(&dir, EmbeddedOptions::default()).await?);
    replay::fill(log.clone(), tokens, args.events).await?;
    close(log).await?;

    let started = Instant::now();
    let log = EmbeddedLog::open(&dir, EmbeddedOptions::default()).await?;
    let open = started.elapsed();
    let threads = args.threads;
    let log = Arc::new(log);
    let parallel = {
        let log = log.clone();
        tokio::task::spawn_blocking(move || replay::replay_parallel(&log, threads)).await??
    };
    let sequential = replay::replay_read_all(&*log).await?;
    anyhow::ensure!(parallel.events == sequential.events, "both replays see the same events");
    close(log).await?;

    let events_per_s = parallel.events as f64 / parallel.elapsed.as_secs_f64();
    let report = json!({
        "events": parallel.events,
        "threads": threads,
        "open_ms": open.as_millis(),
        "elapsed_s": parallel.elapsed.as_secs_f64(),
        "events_per_s": events_per_s.round(),
        "payload_mb_per_s": round2(parallel.payload_bytes as f64 / parallel.elapsed.as_secs_f64() / MB),
        "read_all_events_per_s": (sequential.events as f64 / sequential.elapsed.as_secs_f64()).round(),
        "data_dir": dir,
    });
    if args.common.json {
        println!("{report}");
    } else {
        println!(
            "replayed {} events in {:.2} s: {:.0} events/s on {} threads (read_all on one task: {:.0} events/s); opening the log took {} ms",
            parallel.events,
            parallel.elapsed.as_secs_f64(),
            events_per_s,
            threads,
            sequential.events as f64 / sequential.elapsed.as_secs_f64(),
            open.as_millis()
        );
    }
    Ok(())
}

async fn close(log: Arc<EmbeddedLog>) -> anyhow::Result<()> {
    let log = Arc::try_unwrap(log).map_err(|_| anyhow::anyhow!("the log is still shared"))?;
    log.close().await;
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
