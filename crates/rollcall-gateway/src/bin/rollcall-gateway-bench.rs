//! `rollcall-gateway-bench`: measures the gateway against direct calls and nginx, and prints the
//! figures as JSON.

use std::net::SocketAddr;

use anyhow::Result;
use clap::{Parser, Subcommand};
use rollcall_gateway::UpstreamProtocol;
use rollcall_gateway::bench::{self, BenchOptions, BenchStore, ServeGateway};

#[derive(Parser)]
#[command(about = "Benchmarks the MCP gateway against direct calls and nginx")]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
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
    /// Print JSON only (the default output is JSON too; the flag is accepted for symmetry).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Commands {
    /// Serves a gateway for the benchmark (started by the benchmark itself).
    #[command(hide = true)]
    ServeGateway {
        #[arg(long)]
        listen: SocketAddr,
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
        store_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Some(Commands::ServeGateway {
            listen,
            redis,
            prefix,
            workspace_id,
            upstream,
            upstream_protocol,
            store_dir,
        }) => {
            let protocol = if upstream_protocol == "h2c" { UpstreamProtocol::H2c } else { UpstreamProtocol::Http1 };
            runtime.block_on(bench::serve_gateway(ServeGateway {
                listen,
                redis,
                prefix,
                workspace_id: rollcall_core::WorkspaceId(workspace_id),
                upstream,
                protocol,
                store_dir,
            }))
        }
        None => {
            let _ = cli.json;
            let options = BenchOptions {
                duration_s: cli.duration_s,
                concurrency: cli.concurrency,
                streams: cli.streams,
                store: if cli.store == "memory" { BenchStore::Memory } else { BenchStore::Embedded },
                ..BenchOptions::default()
            };
            let figures = runtime.block_on(bench::run(options))?;
            println!("{}", serde_json::to_string_pretty(&figures)?);
            Ok(())
        }
    }
}
