//! What the split-deployment tests share: `rollcall api`, `gateway` and `project` as real
//! processes, a real MCP server upstream, MCP requests through a gateway, and PostgreSQL.

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::{free_port, http_status, rollcall_bin};

/// Longest wait for a process to become ready.
const READY_TIMEOUT_MS: u64 = 60_000;

/// The PostgreSQL the tests use (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A `--store` URL for a fresh schema of the test PostgreSQL; panics with how to start
/// PostgreSQL when it cannot be reached.
pub fn postgres_store() -> String {
    let url = database_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
    let reachable = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(1000)).is_ok());
    assert!(
        reachable,
        "cannot reach PostgreSQL at {host_port}: start it (`cargo xtask test` does) or set DATABASE_URL"
    );
    let schema = format!("split_{}", uuid::Uuid::new_v4().simple());
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}schema={schema}")
}

/// A `rollcall` subcommand running as its own process, killed on drop.
pub struct Process {
    name: String,
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    logs: TempDir,
}

impl Process {
    /// Starts `rollcall ARGS --listen <free port>` and waits until `GET /healthz` answers 200.
    pub fn start(name: &str, args: &[&str]) -> Process {
        let process = Process::spawn(name, args);
        process.wait_for_status(200);
        process
    }

    /// Starts `rollcall ARGS --listen <free port>` without waiting.
    pub fn spawn(name: &str, args: &[&str]) -> Process {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let logs = tempfile::Builder::new().prefix("rollcall-e2e-split-").tempdir().expect("temp dir");
        let log = |file: &str| -> File {
            OpenOptions::new().create(true).append(true).open(logs.path().join(file)).expect("log file")
        };
        let child = Command::new(rollcall_bin())
            .args(args)
            .args(["--listen", &addr.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .expect("rollcall starts");
        Process { name: name.to_owned(), child: Some(child), addr, logs }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `GET /healthz` answers `status`; panics with the logs if it never does.
    pub fn wait_for_status(&self, status: u16) {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            if http_status(self.addr, "/healthz") == Some(status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer {status} on /healthz within {READY_TIMEOUT_MS} ms; its logs:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the process with SIGKILL (no cleanup, as a crash).
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// The last lines it wrote on stdout and stderr.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for file in ["stdout.log", "stderr.log"] {
            if let Ok(part) = std::fs::read_to_string(self.logs.path().join(file)) {
                text.push_str(&part);
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// The folder holding its logs.
    pub fn logs_dir(&self) -> &Path {
        self.logs.path()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct SumRequest {
    a: i64,
    b: i64,
}

/// The upstream MCP server of the tests: one tool, `sum`.
#[derive(Debug, Clone)]
pub(crate) struct Adder {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Adder {
    pub(crate) fn new() -> Adder {
        Adder { tool_router: Self::tool_router() }
    }

    #[tool(description = "Adds two numbers")]
    fn sum(&self, Parameters(SumRequest { a, b }): Parameters<SumRequest>) -> String {
        (a + b).to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Adder {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A real MCP server (rmcp, Streamable HTTP, stateless with JSON answers) on its own runtime,
/// and a small MCP client; stops when dropped.
pub struct McpWorld {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// The upstream's URL, for `rollcall workspace upstream set`.
    pub upstream_url: String,
    stop: CancellationToken,
}

impl McpWorld {
    /// Starts the upstream.
    pub fn start() -> McpWorld {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let stop = CancellationToken::new();
        let upstream_url = runtime.block_on(async {
            let config = StreamableHttpServerConfig::default()
                .with_sse_keep_alive(None)
                .with_cancellation_token(stop.child_token())
                .with_legacy_session_mode(false)
                .with_json_response(true);
            let service: StreamableHttpService<Adder, LocalSessionManager> =
                StreamableHttpService::new(|| Ok(Adder::new()), Default::default(), config);
            let app = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let until = stop.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await;
            });
            format!("http://{addr}/mcp")
        });
        McpWorld { runtime, http: reqwest::Client::new(), upstream_url, stop }
    }

    /// Sends `tools/call sum(a, b)` with request id `id` to a gateway's `/mcp` with `token`;
    /// returns the HTTP status and the body.
    pub fn call_sum(&self, gateway: &str, token: &str, id: u64, a: i64, b: i64) -> (u16, Value) {
        let body = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "sum", "arguments": {"a": a, "b": b}},
        });
        self.runtime.block_on(async {
            let response = self
                .http
                .post(format!("{gateway}/mcp"))
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-06-18")
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .expect("the gateway answers");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }
}

impl Drop for McpWorld {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
