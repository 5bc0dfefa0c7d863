//! Refusals and failures: bad tokens, bad bodies, another workspace, Redis down, upstream down.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rollcall_core::events::{CallOutcome, Event};
use serde_json::{Value, json};

use crate::support::*;

async fn error_of(response: reqwest::Response) -> Result<(u16, Value)> {
    let status = response.status().as_u16();
    let body: Value = response.json().await.context("error bodies are JSON")?;
    Ok((status, body))
}

#[tokio::test]
async fn bad_tokens_bad_bodies_and_other_workspaces_are_refused() -> Result<()> {
    let upstream = start_upstream(UpstreamMode::StatelessJson).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let other = World::new(world.store.clone(), &upstream.url).await?;
    let (gateway, authority) = in_process_gateway(&world, test_options()).await?;
    let http = reqwest::Client::new();
    let url = gateway.mcp_url();

    // A bot's token works until the bot is revoked.
    ensure!(post(&http, &url, world.bot.token(), &tool_call(1, 1, 1)).await?.status() == 200);
    let position = world.revoke_bot().await?;
    ensure!(authority.wait_for(position, Duration::from_secs(2)).await);
    let (status, body) = error_of(post(&http, &url, world.bot.token(), &tool_call(1, 1, 1)).await?).await?;
    ensure!(status == 401 && body["error"]["data"]["code"] == "revoked_token", "{status} {body}");

    // No token.
    let response = http.post(&url).json(&tool_call(1, 1, 1)).send().await?;
    ensure!(response.headers().get("www-authenticate").is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer")));
    let (status, body) = error_of(response).await?;
    ensure!(status == 401 && body["error"]["data"]["code"] == "missing_token", "{status} {body}");

    // A typo in the token: refused by its checksum.
    let mut typo = world.member.token().to_owned().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let response = post(&http, &url, std::str::from_utf8(&typo)?, &tool_call(1, 1, 1)).await?;
    ensure!(response.headers().contains_key("www-authenticate"));
    let (status, body) = error_of(response).await?;
    ensure!(status == 401 && body["error"]["data"]["code"] == "malformed_token", "{status} {body}");

    // A well-formed token nobody issued.
    let stranger = rollcall_core::Secret::generate(rollcall_core::SecretKind::MemberToken, [9; 32]);
    let (status, body) = error_of(post(&http, &url, stranger.expose(), &tool_call(1, 1, 1)).await?).await?;
    ensure!(status == 401 && body["error"]["data"]["code"] == "unknown_token", "{status} {body}");

    // Not JSON, not JSON-RPC, too large.
    let response = http.post(&url).bearer_auth(world.member.token()).body("{not json").send().await?;
    let (status, body) = error_of(response).await?;
    ensure!(status == 400 && body["error"]["code"] == -32700, "{status} {body}");
    let (status, body) =
        error_of(post(&http, &url, world.member.token(), &json!({"id": 1, "method": "tools/list"})).await?).await?;
    ensure!(status == 400 && body["error"]["code"] == -32600, "{status} {body}");
    let (status, body) =
        error_of(post(&http, &url, world.member.token(), &json!({"jsonrpc": "2.0", "method": "tools/call"})).await?)
            .await?;
    ensure!(status == 400 && body["error"]["code"] == -32600, "{status} {body}");
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sum", "arguments": {"pad": "x".repeat(2 << 20)}}});
    let response = post(&http, &url, world.member.token(), &huge).await?;
    ensure!(
        response.headers().get("connection").is_some_and(|v| v == "close"),
        "a refused body leaves the connection unusable, so the answer must close it: {:?}",
        response.headers()
    );
    let (status, body) = error_of(response).await?;
    ensure!(status == 413 && body["error"]["data"]["code"] == "payload_too_large", "{status} {body}");
    ensure!(world.calls_of(&world.member).await?.is_empty(), "refused requests record no tool call");

    // The workspace's own URL works, by name and by id; another workspace's URL is refused.
    for path in [&world.name, &world.workspace_id.to_string()] {
        let own = format!("{}/w/{path}/mcp", gateway.base);
        let response = post(&http, &own, world.member.token(), &tool_call(2, 1, 1)).await?;
        ensure!(response.status() == 200, "own workspace answered {}", response.status());
    }
    let foreign = format!("{}/w/{}/mcp", gateway.base, other.name);
    let (status, body) = error_of(post(&http, &foreign, world.member.token(), &tool_call(3, 1, 1)).await?).await?;
    ensure!(status == 403 && body["error"]["data"]["code"] == "other_workspace", "{status} {body}");
    // A token of the other workspace on /mcp reaches the other workspace, as its own member.
    let response = post(&http, &url, other.member.token(), &tool_call(4, 1, 1)).await?;
    ensure!(response.status() == 200);
    ensure!(other.calls_of(&other.member).await?.iter().any(|(_, e)| matches!(e, Event::ToolCalled(_))));

    // Health and metrics.
    let health = http.get(format!("{}/healthz", gateway.base)).send().await?;
    ensure!(health.status() == 200);
    let metrics = http.get(format!("{}/metrics", gateway.base)).send().await?.text().await?;
    ensure!(metrics.contains("rollcall_gateway_requests_total{outcome=\"unauthorized\"} 3"), "{metrics}");
    ensure!(metrics.contains("rollcall_gateway_requests_total{outcome=\"forbidden\"} 1"), "{metrics}");
    ensure!(metrics.contains("rollcall_gateway_requests_total{outcome=\"revoked\"} 1"), "{metrics}");
    ensure!(metrics.contains("rollcall_gateway_check_seconds_count"), "{metrics}");
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|count| count.parse::<u64>().ok())
    };
    // Every recorded tool call's wait for its durable record is in the histogram.
    let recorded = value("rollcall_gateway_record_seconds_count");
    let calls = value("rollcall_gateway_tool_calls_total");
    ensure!(recorded.is_some_and(|r| r > 0) && recorded == calls, "{metrics}");
    // Every request, whatever its outcome, is in the request histogram; every forwarded one in
    // the upstream histogram.
    let requests: u64 = metrics
        .lines()
        .filter(|line| line.starts_with("rollcall_gateway_requests_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    ensure!(value("rollcall_gateway_request_seconds_count") == Some(requests), "{metrics}");
    let forwarded = value("rollcall_gateway_upstream_seconds_count");
    ensure!(forwarded.is_some_and(|f| f >= calls.unwrap_or(0) && f <= requests), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_upstream_gives_502_and_is_recorded() -> Result<()> {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?
    };
    let world = World::new(new_store(), &format!("http://{closed}/mcp")).await?;
    let (gateway, _) = in_process_gateway(&world, test_options()).await?;
    let http = reqwest::Client::new();
    let (status, body) =
        error_of(post(&http, &gateway.mcp_url(), world.member.token(), &tool_call(7, 1, 1)).await?).await?;
    ensure!(
        status == 502 && body["error"]["data"]["code"] == "upstream_unavailable" && body["id"] == 7,
        "{status} {body}"
    );
    for _ in 0..100 {
        let events = world.calls_of(&world.member).await?;
        if let Some((_, Event::ToolCallCompleted(c))) = events.get(1) {
            ensure!(matches!(events[0].1, Event::ToolCalled(_)), "the call was recorded first");
            ensure!(c.outcome == CallOutcome::UpstreamUnavailable && c.request_id == "7", "{c:?}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the outcome was not recorded")
}

/// A private redis-server on a free port, without persistence; killed when dropped.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Result<PrivateRedis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server: install it (apt-get install redis-server)")?;
        Ok(PrivateRedis { child, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) -> Result<redis::aio::MultiplexedConnection> {
        for _ in 0..100 {
            if let Ok(connection) = redis_connection(&self.url()).await {
                return Ok(connection);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the private redis-server did not start on port {}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_down_fails_closed_and_the_gateway_recovers() -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let private = PrivateRedis::start(port)?;
    let mut redis = private.wait_ready().await?;
    let prefix = unique_prefix();
    let upstream = start_upstream(UpstreamMode::StatelessJson).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    redis_put_token(&mut redis, &prefix, &world, &world.member).await?;
    let mut options = test_options();
    options.rate_limit.requests_max = 1_000_000;
    let gateway = redis_gateway(&world, &private.url(), &prefix, options).await?;
    let http = reqwest::Client::new();
    let url = gateway.mcp_url();
    let token = world.member.token().to_owned();
    let response = post(&http, &url, &token, &tool_call(1, 1, 1)).await?;
    ensure!(response.status() == 200, "before the outage: {}", response.status());

    drop(private);
    let started = Instant::now();
    let (status, body) = error_of(post(&http, &url, &token, &tool_call(2, 1, 1)).await?).await?;
    ensure!(status == 503 && body["error"]["data"]["code"] == "token_check_unavailable", "{status} {body}");
    ensure!(body["error"]["message"].as_str().unwrap_or("").contains("cannot be reached"), "{body}");
    ensure!(started.elapsed() < Duration::from_secs(2), "failing closed took {:?}", started.elapsed());
    let health = http.get(format!("{}/healthz", gateway.base)).send().await?;
    ensure!(health.status() == 503, "healthz during the outage: {}", health.status());

    // Back again (empty: the token projection would write the tokens again).
    let private = PrivateRedis::start(port)?;
    let mut redis = private.wait_ready().await?;
    redis_put_token(&mut redis, &prefix, &world, &world.member).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = post(&http, &url, &token, &tool_call(3, 1, 1)).await?;
        let status = response.status().as_u16();
        if status == 200 {
            break;
        }
        ensure!(status == 503, "while recovering: {status}");
        ensure!(Instant::now() < deadline, "the gateway did not recover within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn run_serves_a_stand_alone_gateway_until_shutdown() -> Result<()> {
    let upstream = start_upstream(UpstreamMode::StatelessJson).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let config =
        rollcall_gateway::GatewayConfig { listen, redis: None, store: world.store.clone(), options: test_options() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rollcall_gateway::run(config, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let url = format!("http://{listen}/mcp");
    let mut answered = None;
    for _ in 0..50 {
        if let Ok(response) = post(&http, &url, world.member.token(), &tool_call(1, 20, 22)).await {
            answered = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = answered.context("the stand-alone gateway never answered")?;
    ensure!(response.status() == 200, "{}", response.status());
    let body: Value = response.json().await?;
    ensure!(body["result"]["content"][0]["text"] == "42", "{body}");
    ensure!(http.get(format!("http://{listen}/healthz")).send().await?.status() == 200);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server).await???;
    Ok(())
}

/// An event stream's small writes must not wait for the client's delayed acknowledgements.
#[tokio::test]
async fn accepted_connections_send_small_writes_at_once() -> Result<()> {
    use axum::serve::Listener;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut listener = rollcall_gateway::without_nagle(listener);
    let (client, (accepted, _)) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let _client = client?;
    ensure!(accepted.nodelay()?, "TCP_NODELAY is not set on an accepted connection");
    Ok(())
}
