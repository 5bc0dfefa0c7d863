//! `rollcall`: one binary that serves Rollcall on embedded defaults and drives it from the
//! command line.
//!
//! The admin commands talk to the HTTP API (`/api/v1`); `serve`, `api`, `gateway`, `project`
//! and `store` run in process.
//! Every admin command prints a readable table or message, or with `--json` one JSON document
//! on stdout; errors go to stderr with a non-zero exit code.

mod admin;
mod cli;
mod client;
mod credentials;
mod gateway;
mod output;
mod process;
mod split;
mod store_url;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Serve(_) | Command::Api(_) | Command::Gateway(_) | Command::Project(_) | Command::Store(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain is shown in full: the outermost context says what failed, the inner
            // causes say why (connection refused, the API's message, a file system error).
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {error}");
            for cause in error.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => process::serve(args).await,
        Command::Api(args) => split::api(args).await,
        Command::Gateway(args) => gateway::run(args).await,
        Command::Project(args) => split::project(args).await,
        Command::Store(args) => process::store(args, cli.global.json),
        command => admin::run(cli.global, command).await,
    }
}
