//! What the gateway tests share: a real MCP server upstream (stateless with JSON answers at
//! `/mcp`, with sessions and event streams at `/sessions/mcp`), MCP messages sent by hand or by
//! the rmcp client through a gateway, and a private Redis that a test may stop and start.

use std::fs::File;
use std::future::Future;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rmcp::ServiceExt;
use rmcp::model::ClientConfig;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::free_port;
use crate::split::Adder;

/// The MCP protocol version the hand-written messages speak (one with sessions).
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// Longest wait for one gateway answer (headers and whole body) in these tests.
const ANSWER_TIMEOUT_MS: u64 = 30_000;
/// Longest wait for the private Redis to listen.
const REDIS_READY_TIMEOUT_MS: u64 = 10_000;

/// A real MCP server (rmcp, Streamable HTTP) with one tool, `sum`, on its own runtime, which
/// also runs the tests' clients; stops when dropped.
pub struct Upstream {
    runtime: tokio::runtime::Runtime,
    stop: CancellationToken,
    /// Stateless, JSON answers: any request may come alone, with no session.
    pub json_url: String,
    /// With sessions (`initialize` first), event-stream answers and the GET event stream.
    pub sessions_url: String,
    http: reqwest::Client,
}

impl Upstream {
    /// Starts both flavours of the server on one free port.
    pub fn start() -> Upstream {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let stop = CancellationToken::new();
        let addr = runtime.block_on(async {
            let stateless = StreamableHttpServerConfig::default()
                .with_sse_keep_alive(None)
                .with_cancellation_token(stop.child_token())
                .with_legacy_session_mode(false)
                .with_json_response(true);
            let sessions = StreamableHttpServerConfig::default()
                .with_sse_keep_alive(None)
                .with_cancellation_token(stop.child_token());
            let stateless: StreamableHttpService<Adder, LocalSessionManager> =
                StreamableHttpService::new(|| Ok(Adder::new()), Default::default(), stateless);
            let sessions: StreamableHttpService<Adder, LocalSessionManager> =
                StreamableHttpService::new(|| Ok(Adder::new()), Default::default(), sessions);
            let app = axum::Router::new().nest_service("/mcp", stateless).nest_service("/sessions/mcp", sessions);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let until = stop.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await;
            });
            addr
        });
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("http client");
        Upstream {
            runtime,
            stop,
            json_url: format!("http://{addr}/mcp"),
            sessions_url: format!("http://{addr}/sessions/mcp"),
            http,
        }
    }

    /// Runs `future` to completion on the upstream's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The runtime, to spawn concurrent clients on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// An HTTP client for hand-written MCP messages (cheap to clone).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A URL where no MCP server listens: an upstream that is down.
pub fn dead_upstream_url() -> String {
    format!("http://127.0.0.1:{}/mcp", free_port())
}

/// One answer of the gateway, its body decoded from JSON or from an event stream.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON-RPC message (the last one carrying a result or an error, for an event stream),
    /// or the raw text when there is none.
    pub body: Value,
}

impl Reply {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The gateway's stable error code (`error.data.code`), when the body is a gateway error.
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["data"]["code"].as_str()
    }

    /// The text of a `tools/call` result.
    pub fn result_text(&self) -> Option<&str> {
        self.body["result"]["content"][0]["text"].as_str()
    }
}

/// A `tools/call` of `sum(a, b)` with JSON-RPC id `id`.
pub fn sum_call(id: u64, a: i64, b: i64) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "sum", "arguments": {"a": a, "b": b}},
    })
}

/// A `ping` with JSON-RPC id `id`: forwarded, but no tool call.
pub fn ping(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
}

/// POSTs `body` to the MCP endpoint `endpoint` (`.../mcp` or `.../w/{ws}/mcp`) with `token`
/// (and `session`, when given), and reads the whole answer.
pub async fn post(
    http: &reqwest::Client,
    endpoint: &str,
    token: &str,
    session: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> anyhow::Result<Reply> {
    let mut request = http
        .post(endpoint)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .timeout(Duration::from_millis(ANSWER_TIMEOUT_MS))
        .body(body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let response = request.send().await.with_context(|| format!("POST {endpoint}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.with_context(|| format!("reading the answer of POST {endpoint}"))?;
    Ok(Reply { status, headers, body: decode_body(&text) })
}

/// POSTs the JSON message `message`; see [`post`].
pub async fn post_json(
    http: &reqwest::Client,
    endpoint: &str,
    token: &str,
    session: Option<&str>,
    message: &Value,
) -> anyhow::Result<Reply> {
    post(http, endpoint, token, session, serde_json::to_vec(message)?).await
}

/// Opens an MCP session by hand (`initialize`, then `notifications/initialized`); returns its id.
pub async fn open_session(http: &reqwest::Client, endpoint: &str, token: &str) -> anyhow::Result<String> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
        "clientInfo": {"name": "rollcall-e2e", "version": "1"}}});
    let reply = post_json(http, endpoint, token, None, &init).await?;
    ensure!(reply.status == 200, "initialize answered {}: {}", reply.status, reply.body);
    let session = reply.header("mcp-session-id").context("the gateway forwarded no mcp-session-id")?.to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let reply = post_json(http, endpoint, token, Some(&session), &initialized).await?;
    ensure!((200..300).contains(&reply.status), "initialized answered {}: {}", reply.status, reply.body);
    Ok(session)
}

/// Opens the server-to-client event stream (GET) of `session`; checks it is one.
pub async fn open_event_stream(
    http: &reqwest::Client,
    endpoint: &str,
    token: &str,
    session: &str,
) -> anyhow::Result<reqwest::Response> {
    let response = http
        .get(endpoint)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .with_context(|| format!("GET {endpoint}"))?;
    ensure!(response.status() == 200, "the GET event stream answered {}", response.status());
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    ensure!(content_type.starts_with("text/event-stream"), "the GET answered {content_type}, not an event stream");
    Ok(response)
}

/// Reads an event stream until it ends (the server closed it, or it failed) or `limit` passes;
/// returns when it ended, or `None` if it was still open at the limit.
pub async fn wait_for_end(mut stream: reqwest::Response, limit: Duration) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return Some(Instant::now()),
            Err(_) => return None,
        }
    }
}

/// The rmcp client, initialized through the gateway at `endpoint` with `token` as its bearer.
pub async fn rmcp_client(endpoint: &str, token: &str) -> anyhow::Result<RunningService<RoleClient, ClientConfig>> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(endpoint).auth_header(token),
    );
    ClientConfig::default().serve(transport).await.with_context(|| format!("initializing an MCP session at {endpoint}"))
}

/// A gateway answer body: JSON as it is; for an event stream, the last message with a result
/// or an error; otherwise the text.
fn decode_body(text: &str) -> Value {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return value;
    }
    let mut messages = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok());
    messages
        .rfind(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| Value::String(text.to_owned()))
}

/// A `redis-server` of a test's own on a free port, without persistence, so that stopping it
/// loses everything (as a crashed cache does); killed on drop.
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl PrivateRedis {
    /// Starts it, or panics with how to install Redis.
    pub fn start() -> PrivateRedis {
        let dir = tempfile::Builder::new().prefix("rollcall-e2e-redis-").tempdir().expect("temp dir");
        let mut redis = PrivateRedis { child: None, port: free_port(), dir };
        redis.start_again();
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to its clients) and waits until the port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL redis-server");
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port, and waits until it listens.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the private redis-server is still running");
        let log = File::create(self.dir.path().join("redis.log")).expect("log file");
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_millis(REDIS_READY_TIMEOUT_MS);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().expect("wait on redis-server")) {
                let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                panic!("redis-server exited with {status} before listening:\n{log}");
            }
            assert!(Instant::now() < deadline, "redis-server did not listen within {REDIS_READY_TIMEOUT_MS} ms");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_server() -> &'static str {
    let found = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    assert!(found, "this test starts its own redis-server: install it with `apt-get install redis-server`");
    "redis-server"
}
