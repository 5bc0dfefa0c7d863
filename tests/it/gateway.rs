//! The MCP gateway through real `rollcall` processes: a real MCP client (rmcp, and messages
//! written by hand) with members' and bots' tokens, a real MCP server upstream, real Redis and
//! PostgreSQL. Calls show up in the member list, the analytics and the audit log; the rate limit
//! holds in `serve` (in process and with Redis) and across two `rollcall gateway` processes; a
//! removal stops a token everywhere at once, under load; refusals carry the right status; and a
//! Redis that goes away and comes back empty is survived without a restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rollcall_e2e::mcp::{
    PrivateRedis, Reply, Upstream, dead_upstream_url, open_event_stream, open_session, ping, post, post_json,
    rmcp_client, sum_call, wait_for_end,
};
use rollcall_e2e::split::{Process, postgres_store};
use rollcall_e2e::{Redis, Server, ServerOptions, User};
use serde_json::{Value, json};

use crate::{row, text};

/// Longest wait for an eventually consistent view (the member list, analytics, the audit log).
const CONVERGE_TIMEOUT_MS: u64 = 30_000;
/// The rate limit every token has: requests per window.
const REQUESTS_MAX: usize = 120;
/// Requests sent in a rate-limit test: five over the limit.
const BURST_REQUESTS: usize = REQUESTS_MAX + 5;
/// Requests of a burst in flight at once.
const BURST_CONCURRENCY: usize = 16;
/// Longest time from `member remove` returning to a revoked token's event stream closing that
/// the tests accept. The goal is 100 ms (a broadcast); past the gateway's sweep interval (1 s)
/// even a missed broadcast is caught, so this bound leaves room for a loaded machine.
const STREAM_CLOSE_BOUND_MS: u64 = 2_000;
/// Clients calling tools with the token being removed, spread over both gateways.
const HAMMER_CLIENTS: usize = 6;
/// Pause between one client's calls, in milliseconds.
const HAMMER_PAUSE_MS: u64 = 40;
/// Longest time `rollcall serve` may take to answer again after Redis is back.
const REDIS_RECOVERY_TIMEOUT_MS: u64 = 30_000;

#[test]
fn an_mcp_client_through_serve_is_recorded_for_the_member_and_the_bot() {
    let upstream = Upstream::start();
    let server = Server::start();
    let owner = server.signup("owner@gw.test");
    let alice = server.signup("alice@gw.test");
    owner.json(&["workspace", "create", "gwtest", "--plan", "starter"]);
    let invitation = owner.json(&["workspace", "member", "invite", "gwtest", "alice@gw.test"]);
    let token = text(&alice.json(&["invite", "accept", text(&invitation, "code")]), "token").to_owned();
    owner.json(&["workspace", "upstream", "set", "gwtest", &upstream.sessions_url]);
    let bot = owner.json(&["workspace", "bot", "create", "gwtest", "ci-bot"]);
    let bot_token = text(&bot, "token").to_owned();
    let bot_id = text(&bot, "bot_id").to_owned();
    let endpoint = format!("{}/mcp", server.url());
    wait_until_forwarding(&upstream, &endpoint, &token);
    wait_until_forwarding(&upstream, &endpoint, &bot_token);

    // A real MCP client: initialize, list the tools, call one; then the event stream (GET).
    let http = upstream.http();
    upstream.block_on(async {
        let client = rmcp_client(&endpoint, &token).await.expect("alice's client initializes");
        let tools = client.list_tools(Default::default()).await.expect("tools/list");
        assert!(tools.tools.iter().any(|t| t.name == "sum"), "tools listed: {:?}", tools.tools);
        let arguments = serde_json::from_value(json!({"a": 2, "b": 3})).expect("arguments");
        let result =
            client.call_tool(CallToolRequestParams::new("sum").with_arguments(arguments)).await.expect("tools/call");
        let answer = serde_json::to_value(&result.content).expect("content");
        assert_eq!(answer[0]["text"], "5", "sum answered {answer}");
        let _ = client.cancel().await;

        let session = open_session(&http, &endpoint, &token).await.expect("a session by hand");
        let stream = open_event_stream(&http, &endpoint, &token, &session).await.expect("the GET event stream");
        let open = metric(&http, server.url(), "rollcall_gateway_open_streams").await;
        assert!(open >= 1.0, "the gateway counts {open} open streams while one is open");
        drop(stream);

        let client = rmcp_client(&endpoint, &bot_token).await.expect("the bot's client initializes");
        let arguments = serde_json::from_value(json!({"a": 40, "b": 2})).expect("arguments");
        let result =
            client.call_tool(CallToolRequestParams::new("sum").with_arguments(arguments)).await.expect("tools/call");
        assert_eq!(serde_json::to_value(&result.content).expect("content")[0]["text"], "42");
        let _ = client.cancel().await;
    });

    // The member list: one call, for alice, and when.
    let members = wait_for_json(&owner, &["workspace", "member", "list", "gwtest"], |members| {
        row(members, "alice@gw.test").is_some_and(|r| r["tool_calls"] == 1 && r["last_active_at"].is_string())
    });
    assert_eq!(row(&members, "owner@gw.test").expect("owner listed")["tool_calls"], 0, "{members}");
    let alice_id = text(row(&members, "alice@gw.test").expect("alice listed"), "member_id").to_owned();

    // The analytics: one human call (alice's) and one bot call, side by side.
    let analytics = wait_for_json(&owner, &["workspace", "analytics", "gwtest"], |a| a["totals"]["tool_calls"] == 2);
    assert_eq!(analytics["humans"]["tool_calls"], 1, "{analytics}");
    assert_eq!(analytics["bots"]["tool_calls"], 1, "{analytics}");
    let subjects = analytics["subjects"].as_array().expect("subjects");
    let alice_usage = subjects.iter().find(|s| s["email"] == "alice@gw.test").expect("alice's usage");
    assert_eq!(alice_usage["tool_calls"], 1, "{analytics}");
    assert_eq!(alice_usage["tools"]["sum"], 1, "{analytics}");
    assert!(alice_usage["last_active_at"].is_string(), "{analytics}");
    let bot_usage = subjects.iter().find(|s| s["kind"] == "bot").expect("the bot's usage");
    assert_eq!((bot_usage["name"].as_str(), bot_usage["tool_calls"].as_u64()), (Some("ci-bot"), Some(1)));

    // The audit log: each call attributed to whoever made it, as actor and as caller.
    let calls = audit(&owner, "gwtest", "ToolCalled", None);
    assert_eq!(calls.len(), 2, "{calls:?}");
    let by_alice: Vec<&Value> = calls.iter().filter(|e| e["actor"]["kind"] == "member").collect();
    assert_eq!(by_alice.len(), 1, "{calls:?}");
    assert_eq!(by_alice[0]["actor"]["member_id"], alice_id.as_str(), "{calls:?}");
    assert_eq!(by_alice[0]["data"]["caller"], json!({"kind": "member", "member_id": alice_id}), "{calls:?}");
    assert_eq!(by_alice[0]["data"]["tool"], "sum", "{calls:?}");
    let by_bot: Vec<&Value> = calls.iter().filter(|e| e["actor"]["kind"] == "bot").collect();
    assert_eq!(by_bot.len(), 1, "{calls:?}");
    assert_eq!(by_bot[0]["actor"]["bot_id"], bot_id.as_str(), "{calls:?}");
    assert_eq!(by_bot[0]["data"]["caller"], json!({"kind": "bot", "bot_id": bot_id}), "{calls:?}");
    assert_eq!(audit(&owner, "gwtest", "ToolCalled", Some("alice@gw.test")).len(), 1);
}

#[test]
fn serve_lets_120_requests_a_minute_through_per_token_in_process_and_with_redis() {
    let upstream = Upstream::start();
    let redis = Redis::connect();
    let prefix = format!("rollcall-e2e-gw-{}:", uuid::Uuid::new_v4().simple());
    let with_redis = ServerOptions {
        extra_args: vec!["--redis".into(), Redis::url(), "--redis-prefix".into(), prefix.clone()],
        ..ServerOptions::default()
    };
    for (how, options) in [("in process", ServerOptions::default()), ("with redis", with_redis)] {
        let server = Server::start_with(options);
        let owner = server.signup("owner@burst.test");
        let created = owner.json(&["workspace", "create", "burst", "--plan", "starter"]);
        owner.json(&["workspace", "upstream", "set", "burst", &upstream.json_url]);
        let endpoint = format!("{}/mcp", server.url());
        wait_until_forwarding(&upstream, &endpoint, text(&created, "owner_token"));
        // A token that has made no request yet.
        let token = text(&owner.json(&["workspace", "bot", "create", "burst", "loader"]), "token").to_owned();
        let (replies, took) = burst(&upstream, &[endpoint], &token);
        assert_rate_limited(&replies, took, &format!("serve {how}"));
    }
    redis.delete_prefix(&prefix);
}

#[test]
fn two_gateway_processes_share_the_rate_limit_and_a_removal_stops_the_token_under_load() {
    let redis = Redis::connect();
    let redis_url = Redis::url();
    let store = postgres_store();
    let prefix = format!("rollcall-e2e-gw-{}:", uuid::Uuid::new_v4().simple());
    let upstream = Upstream::start();
    let data = tempfile::Builder::new().prefix("rollcall-e2e-api-").tempdir().expect("temp dir");
    let data_dir = data.path().to_str().expect("a UTF-8 temp path").to_owned();
    let shared = ["--store", store.as_str(), "--redis", redis_url.as_str(), "--redis-prefix", prefix.as_str()];
    let with = |command: &'static str| -> Vec<&str> {
        let mut args = vec![command];
        args.extend(shared);
        args
    };
    let projector = Process::start("rollcall project", &with("project"));
    let mut api_args = with("api");
    api_args.extend(["--data-dir", data_dir.as_str()]);
    let api = Process::start("rollcall api", &api_args);
    let gateways = [
        Process::start("rollcall gateway (1)", &with("gateway")),
        Process::start("rollcall gateway (2)", &with("gateway")),
    ];
    let endpoints: Vec<String> = gateways.iter().map(|g| format!("{}/mcp", g.url())).collect();

    let owner = User::at(&api.url(), "owner@replicas.test");
    owner.signup();
    let alice = User::at(&api.url(), "alice@replicas.test");
    alice.signup();
    let limits = owner.json(&["workspace", "create", "limits", "--plan", "starter"]);
    owner.json(&["workspace", "upstream", "set", "limits", &upstream.json_url]);
    let removal = owner.json(&["workspace", "create", "removal", "--plan", "starter"]);
    owner.json(&["workspace", "upstream", "set", "removal", &upstream.sessions_url]);
    let invitation = owner.json(&["workspace", "member", "invite", "removal", "alice@replicas.test"]);
    let token = text(&alice.json(&["invite", "accept", text(&invitation, "code")]), "token").to_owned();
    for endpoint in &endpoints {
        wait_until_forwarding(&upstream, endpoint, text(&limits, "owner_token"));
        wait_until_forwarding(&upstream, endpoint, text(&removal, "owner_token"));
        wait_until_forwarding(&upstream, endpoint, &token);
    }

    // The rate limit is one across both gateways: 125 requests spread over them.
    let loader = text(&owner.json(&["workspace", "bot", "create", "limits", "loader"]), "token").to_owned();
    let (replies, took) = burst(&upstream, &endpoints, &loader);
    assert_rate_limited(&replies, took, "two gateway processes");

    // Removal under load: clients call tools through both gateways with alice's token, each
    // gateway holds one of her event streams open, and the owner removes her meanwhile.
    let http = upstream.http();
    let stop = Arc::new(AtomicBool::new(false));
    let mut streams = Vec::new();
    for endpoint in &endpoints {
        let (http, endpoint, token) = (http.clone(), endpoint.clone(), token.clone());
        let stream = upstream.block_on(async move {
            let session = open_session(&http, &endpoint, &token).await.expect("a session for the event stream");
            open_event_stream(&http, &endpoint, &token, &session).await.expect("alice's event stream")
        });
        let limit = Duration::from_millis(CONVERGE_TIMEOUT_MS);
        streams.push(upstream.runtime().spawn(wait_for_end(stream, limit)));
    }
    let mut hammers = Vec::new();
    for client in 0..HAMMER_CLIENTS {
        let (http, endpoint, token) = (http.clone(), endpoints[client % 2].clone(), token.clone());
        let stop = stop.clone();
        hammers.push(upstream.runtime().spawn(async move {
            let session = open_session(&http, &endpoint, &token).await.expect("a session for calls");
            let mut shots = Vec::new();
            let mut id = 0u64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let started = Instant::now();
                let reply = post_json(&http, &endpoint, &token, Some(&session), &sum_call(id, 1, 2)).await;
                let (status, code) = match &reply {
                    Ok(reply) => (reply.status, reply.error_code().map(str::to_owned)),
                    Err(e) => (0, Some(format!("{e:#}"))),
                };
                shots.push(Shot { started, status, code, endpoint: endpoint.clone() });
                // About 100 requests a second in all: the limit's budget lasts past the removal.
                tokio::time::sleep(Duration::from_millis(HAMMER_PAUSE_MS)).await;
            }
            shots
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let remove_started = Instant::now();
    let output = owner
        .command(&["workspace", "member", "remove", "removal", "alice@replicas.test", "--json"])
        .output()
        .expect("rollcall runs");
    let returned = Instant::now();
    assert!(
        output.status.success(),
        "member remove failed: {}\nthe projector's logs:\n{}\nthe api's logs:\n{}",
        String::from_utf8_lossy(&output.stderr),
        projector.logs(),
        api.logs()
    );
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let shots: Vec<Shot> = upstream.block_on(async { futures_join(hammers).await }).into_iter().flatten().collect();
    let ends = upstream.block_on(futures_join(streams));

    let succeeded_after: Vec<&Shot> = shots.iter().filter(|s| s.status == 200 && s.started > returned).collect();
    assert!(
        succeeded_after.is_empty(),
        "requests started after `member remove` returned succeeded: {succeeded_after:?}"
    );
    let after: Vec<&Shot> = shots.iter().filter(|s| s.started > returned).collect();
    assert!(!after.is_empty(), "no request was sent after the removal returned");
    let wrong: Vec<&&Shot> =
        after.iter().filter(|s| s.status != 401 || s.code.as_deref() != Some("revoked_token")).collect();
    assert!(wrong.is_empty(), "after the removal, requests were not refused as revoked: {wrong:?}");
    for endpoint in &endpoints {
        assert!(after.iter().any(|s| &s.endpoint == endpoint), "no request went through {endpoint} after the removal");
    }
    let before_ok = shots.iter().filter(|s| s.status == 200 && s.started < remove_started).count();
    assert!(before_ok > 0, "no request succeeded before the removal: {shots:?}");
    let during_ok = shots.iter().filter(|s| s.status == 200 && s.started >= remove_started).count();
    let removal_ms = returned.duration_since(remove_started).as_millis();
    let mut close_ms = Vec::new();
    for (end, endpoint) in ends.iter().zip(&endpoints) {
        let end = end.unwrap_or_else(|| panic!("alice's event stream through {endpoint} never closed"));
        assert!(end > remove_started, "alice's event stream through {endpoint} closed before the removal started");
        // Negative when the stream closed before the command had returned.
        let signed_ms = if end >= returned {
            i128::try_from(end.duration_since(returned).as_millis()).unwrap_or(i128::MAX)
        } else {
            -i128::try_from(returned.duration_since(end).as_millis()).unwrap_or(i128::MAX)
        };
        assert!(
            signed_ms <= i128::from(STREAM_CLOSE_BOUND_MS),
            "alice's event stream through {endpoint} closed {signed_ms} ms after the removal returned"
        );
        close_ms.push(signed_ms);
    }
    eprintln!(
        "removal under load: {} requests ({before_ok} succeeded before the removal, {during_ok} while it ran, \
         {} refused after it returned); `member remove` took {removal_ms} ms; event streams closed {close_ms:?} ms \
         after it returned",
        shots.len(),
        after.len()
    );
    drop(gateways);
    drop(api);
    redis.delete_prefix(&prefix);
}

#[test]
fn serve_refuses_what_it_must_with_the_right_status() {
    let upstream = Upstream::start();
    let server = Server::start();
    let owner = server.signup("owner@refuse.test");
    let bob = server.signup("bob@refuse.test");
    let main = owner.json(&["workspace", "create", "main", "--plan", "starter"]);
    let main_token = text(&main, "owner_token").to_owned();
    owner.json(&["workspace", "upstream", "set", "main", &upstream.json_url]);
    let other = owner.json(&["workspace", "create", "other", "--plan", "starter"]);
    owner.json(&["workspace", "upstream", "set", "other", &upstream.json_url]);
    let down = owner.json(&["workspace", "create", "down", "--plan", "starter"]);
    let down_token = text(&down, "owner_token").to_owned();
    owner.json(&["workspace", "upstream", "set", "down", &dead_upstream_url()]);
    let invitation = owner.json(&["workspace", "member", "invite", "main", "bob@refuse.test"]);
    let bob_token = text(&bob.json(&["invite", "accept", text(&invitation, "code")]), "token").to_owned();
    let endpoint = format!("{}/mcp", server.url());
    wait_until_forwarding(&upstream, &endpoint, &main_token);
    wait_until_forwarding(&upstream, &endpoint, &down_token);
    wait_until_forwarding(&upstream, &endpoint, &bob_token);
    let http = upstream.http();
    let send = |endpoint: &str, token: &str, body: Vec<u8>| -> Reply {
        upstream.block_on(post(&http, endpoint, token, None, body)).expect("the gateway answers")
    };
    let call = |id: u64| serde_json::to_vec(&sum_call(id, 1, 1)).expect("json");

    // The upstream is down: a JSON-RPC error answering the request, and the outcome recorded.
    let reply = send(&endpoint, &down_token, call(7));
    assert_refused(&reply, 502, "upstream_unavailable");
    assert_eq!(reply.body["id"], 7, "{:?}", reply.body);
    let completed = wait_for_audit(&owner, "down", "ToolCallCompleted", 1);
    assert_eq!(completed[0]["data"]["outcome"]["status"], "upstream_unavailable", "{completed:?}");
    assert_eq!(audit(&owner, "down", "ToolCalled", None).len(), 1, "the call is recorded before it is forwarded");

    // Malformed JSON-RPC.
    assert_refused(&send(&endpoint, &main_token, b"{\"jsonrpc\": \"2.0\", \"id\": 1".to_vec()), 400, "parse_error");
    let wrong_version = serde_json::to_vec(&json!({"jsonrpc": "1.0", "id": 1, "method": "ping"})).expect("json");
    assert_refused(&send(&endpoint, &main_token, wrong_version), 400, "invalid_request");
    let no_name = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"})).expect("json");
    assert_refused(&send(&endpoint, &main_token, no_name), 400, "invalid_request");

    // A body over the limit (1 MiB).
    let huge = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "sum", "arguments": {"a": 1, "b": 2, "pad": "x".repeat(1024 * 1024)}}}))
    .expect("json");
    assert_refused(&send(&endpoint, &main_token, huge), 413, "payload_too_large");

    // A workspace's URL with another workspace's token; the token's own workspace passes.
    let in_main = format!("{}/w/main/mcp", server.url());
    assert_refused(&send(&in_main, text(&other, "owner_token"), call(3)), 403, "other_workspace");
    let reply = send(&in_main, &main_token, call(4));
    assert_eq!((reply.status, reply.result_text()), (200, Some("2")), "{:?}", reply.body);

    // A mistyped token is refused on its checksum: no lookup (the check count does not move).
    let checks_before = upstream.block_on(metric(&http, server.url(), "rollcall_gateway_check_seconds_count"));
    let mistyped = mistype(&bob_token);
    let reply = send(&endpoint, &mistyped, call(5));
    assert_refused(&reply, 401, "malformed_token");
    assert!(reply.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{:?}", reply.headers);
    let reply = upstream
        .block_on(http.post(&endpoint).header("content-type", "application/json").body(call(6)).send())
        .expect("the gateway answers");
    assert_eq!(reply.status(), 401, "a request without a token");
    let checks_after = upstream.block_on(metric(&http, server.url(), "rollcall_gateway_check_seconds_count"));
    assert_eq!(checks_before, checks_after, "a malformed or missing token was looked up");

    // A revoked token: 401 with the challenge, and the refusal recorded.
    let reply = send(&endpoint, &bob_token, call(8));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    owner.json(&["workspace", "member", "remove", "main", "bob@refuse.test"]);
    let reply = send(&endpoint, &bob_token, call(9));
    assert_refused(&reply, 401, "revoked_token");
    assert!(reply.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{:?}", reply.headers);
    let denied = wait_for_audit(&owner, "main", "AccessDenied", 1);
    assert_eq!(denied[0]["data"]["reason"], "revoked", "{denied:?}");
}

#[test]
fn serve_with_redis_fails_closed_while_redis_is_down_and_recovers_by_itself() {
    let upstream = Upstream::start();
    let mut redis = PrivateRedis::start();
    let options = ServerOptions {
        extra_args: vec!["--redis".into(), redis.url(), "--redis-prefix".into(), "rollcall-e2e:".into()],
        ..ServerOptions::default()
    };
    let server = Server::start_with(options);
    let owner = server.signup("owner@outage.test");
    let created = owner.json(&["workspace", "create", "outage", "--plan", "starter"]);
    let token = text(&created, "owner_token").to_owned();
    owner.json(&["workspace", "upstream", "set", "outage", &upstream.json_url]);
    let endpoint = format!("{}/mcp", server.url());
    wait_until_forwarding(&upstream, &endpoint, &token);
    let http = upstream.http();
    let mut id = 0u64;
    let mut call = || {
        id += 1;
        upstream.block_on(post_json(&http, &endpoint, &token, None, &sum_call(id, 3, 4))).expect("the gateway answers")
    };
    for _ in 0..3 {
        let reply = call();
        assert_eq!((reply.status, reply.result_text()), (200, Some("7")), "{:?}", reply.body);
    }

    // Redis goes away: every request is refused, with a message that says why.
    redis.stop();
    let down_until = Instant::now() + Duration::from_millis(1500);
    let mut refused = 0;
    while Instant::now() < down_until {
        let reply = call();
        assert_refused(&reply, 503, "token_check_unavailable");
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("unavailable") && message.contains("retry"), "unclear message: {message}");
        refused += 1;
        std::thread::sleep(Duration::from_millis(50));
    }

    // Redis comes back empty: the gateway refuses until the token view is rebuilt, then lets
    // requests through again, without a restart.
    redis.start_again();
    let back = Instant::now();
    let mut waiting = Vec::new();
    let recovered = loop {
        let reply = call();
        if reply.status == 200 {
            break back.elapsed();
        }
        waiting.push((reply.status, reply.error_code().map(str::to_owned)));
        assert!(
            back.elapsed() < Duration::from_millis(REDIS_RECOVERY_TIMEOUT_MS),
            "no request passed within {REDIS_RECOVERY_TIMEOUT_MS} ms of Redis coming back; answers: {:?}; logs:\n{}",
            &waiting[waiting.len().saturating_sub(5)..],
            server.logs().lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let not_unavailable: Vec<_> = waiting.iter().filter(|(status, _)| *status != 503).collect();
    assert!(not_unavailable.is_empty(), "while the view was rebuilt, other answers than 503: {not_unavailable:?}");
    for _ in 0..3 {
        let reply = call();
        assert_eq!((reply.status, reply.result_text()), (200, Some("7")), "{:?}", reply.body);
    }
    eprintln!(
        "redis outage: {refused} requests refused with 503 while down; answering again {recovered:?} after it was back"
    );
}

/// One request of the removal-under-load test.
#[derive(Debug)]
struct Shot {
    started: Instant,
    status: u16,
    code: Option<String>,
    endpoint: String,
}

/// Sends [`BURST_REQUESTS`] `tools/call` with `token`, request `i` to `endpoints[i % len]`:
/// the first alone, retried while the token is not projected yet (those refusals are not
/// counted), the rest [`BURST_CONCURRENCY`] at a time. Returns the counted answers and how long
/// they took from the first one's start.
fn burst(upstream: &Upstream, endpoints: &[String], token: &str) -> (Vec<Reply>, Duration) {
    let http = upstream.http();
    upstream.block_on(async {
        let deadline = Instant::now() + Duration::from_millis(CONVERGE_TIMEOUT_MS);
        let (first, started) = loop {
            let started = Instant::now();
            let reply = post_json(&http, &endpoints[0], token, None, &sum_call(0, 1, 1)).await.expect("answers");
            match reply.error_code() {
                Some("unknown_token" | "token_check_unavailable") if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => break (reply, started),
            }
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(BURST_CONCURRENCY));
        let mut tasks = Vec::new();
        for i in 1..BURST_REQUESTS {
            let (http, endpoint, token) = (http.clone(), endpoints[i % endpoints.len()].clone(), token.to_owned());
            let permits = permits.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore open");
                let id = u64::try_from(i).expect("small");
                post_json(&http, &endpoint, &token, None, &sum_call(id, 1, 1)).await.expect("the gateway answers")
            }));
        }
        let mut replies = vec![first];
        replies.extend(futures_join(tasks).await);
        (replies, started.elapsed())
    })
}

/// Asserts a burst gave exactly [`REQUESTS_MAX`] answers and five refusals for the rate limit,
/// each with `Retry-After`.
fn assert_rate_limited(replies: &[Reply], took: Duration, what: &str) {
    assert!(took < Duration::from_secs(60), "{what}: the burst took {took:?}, longer than the window");
    let ok = replies.iter().filter(|r| r.status == 200 && r.result_text() == Some("2")).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    let other: Vec<(u16, &Value)> =
        replies.iter().filter(|r| r.status != 200 && r.status != 429).map(|r| (r.status, &r.body)).collect();
    assert!(other.is_empty(), "{what}: unexpected answers {other:?}");
    assert_eq!((ok, limited.len()), (REQUESTS_MAX, BURST_REQUESTS - REQUESTS_MAX), "{what}: successes and 429s");
    for reply in limited {
        assert_refused(reply, 429, "rate_limited");
        let retry_after: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{what}: a 429 without a Retry-After in seconds: {:?}", reply.headers));
        assert!((1..=60).contains(&retry_after), "{what}: Retry-After {retry_after}");
    }
    eprintln!("{what}: {BURST_REQUESTS} requests in {took:?}: {REQUESTS_MAX} passed, 5 got 429");
}

/// Asserts a refusal: its status, and a JSON-RPC error body with the gateway's stable code.
fn assert_refused(reply: &Reply, status: u16, code: &str) {
    assert_eq!((reply.status, reply.error_code()), (status, Some(code)), "{:?}", reply.body);
    assert_eq!(reply.body["jsonrpc"], "2.0", "{:?}", reply.body);
    assert!(reply.body["error"]["code"].is_i64(), "{:?}", reply.body);
    assert!(reply.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{:?}", reply.body);
}

/// Waits until the gateway at `endpoint` forwards `token`'s requests to the workspace's upstream
/// (the token is projected and the upstream known), with `ping`s, which are no tool calls.
fn wait_until_forwarding(upstream: &Upstream, endpoint: &str, token: &str) {
    let http = upstream.http();
    let deadline = Instant::now() + Duration::from_millis(CONVERGE_TIMEOUT_MS);
    let mut id = 1000u64;
    loop {
        id += 1;
        let reply = upstream.block_on(post_json(&http, endpoint, token, None, &ping(id))).expect("the gateway answers");
        match reply.error_code() {
            Some("upstream_not_configured" | "unknown_token" | "token_check_unavailable") => {}
            _ => return,
        }
        assert!(Instant::now() < deadline, "{endpoint} does not forward yet: {} {:?}", reply.status, reply.body);
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `rollcall ARGS --json` again and again until `done` holds of its output; returns it.
fn wait_for_json(user: &User, args: &[&str], done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_millis(CONVERGE_TIMEOUT_MS);
    loop {
        let value = user.json(args);
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "`rollcall {}` never showed what was expected: {value}", args.join(" "));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The events of `event_type` in a workspace's audit log (of one member when given).
fn audit(user: &User, workspace: &str, event_type: &str, member: Option<&str>) -> Vec<Value> {
    let mut args = vec!["audit", "log", "--workspace", workspace, "--type", event_type, "--json"];
    if let Some(member) = member {
        args.extend(["--member", member]);
    }
    let outcome = user.run(&args);
    assert!(outcome.status.success(), "audit log failed: {}", outcome.stderr);
    outcome.stdout.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect()
}

/// Waits until the audit log holds `count` events of `event_type`; returns them.
fn wait_for_audit(user: &User, workspace: &str, event_type: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_millis(CONVERGE_TIMEOUT_MS);
    loop {
        let events = audit(user, workspace, event_type, None);
        if events.len() >= count {
            assert_eq!(events.len(), count, "{events:?}");
            return events;
        }
        assert!(Instant::now() < deadline, "the audit log never held {count} {event_type}: {events:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the Prometheus sample `name` at `base/metrics`.
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text =
        http.get(format!("{base}/metrics")).send().await.expect("GET /metrics").text().await.expect("the metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// `token` with one character of its body changed, as a typo would.
fn mistype(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let at = chars.len() / 2;
    chars[at] = if chars[at] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

/// Awaits every task, in order, panicking if one did.
async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("a client task panicked"));
    }
    out
}
