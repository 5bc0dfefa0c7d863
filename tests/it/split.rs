//! The split deployment on one machine: one `rollcall api`, two `rollcall gateway` and two
//! `rollcall project` over PostgreSQL and Redis, with a real MCP server upstream.

use std::time::{Duration, Instant};

use rollcall_e2e::split::{McpWorld, Process, postgres_store};
use rollcall_e2e::{Redis, User, token_hash_hex};
use serde_json::Value;

use crate::{row, text};

/// Longest wait for an eventually consistent view (analytics, a takeover).
const CONVERGE_TIMEOUT_MS: u64 = 30_000;
/// The projector lease's TTL in this test: a standby takes over within about this.
const LEASE_TTL_MS: u64 = 2_000;

#[test]
fn api_gateways_and_projectors_as_separate_processes() {
    let redis = Redis::connect();
    let redis_url = Redis::url();
    let store = postgres_store();
    let prefix = format!("rollcall-e2e-split-{}:", uuid::Uuid::new_v4().simple());
    let mcp = McpWorld::start();
    let data = tempfile::Builder::new().prefix("rollcall-e2e-api-").tempdir().expect("temp dir");
    let shared = ["--store", store.as_str(), "--redis", redis_url.as_str(), "--redis-prefix", prefix.as_str()];
    let lease_key = format!("{prefix}lease:projector");
    let ttl = LEASE_TTL_MS.to_string();

    // The first projector takes the lease; the second stands by.
    let project = |instance: &str| {
        let mut args = vec!["project"];
        args.extend(shared);
        args.extend(["--lease-ttl-ms", ttl.as_str(), "--instance", instance]);
        Process::start(&format!("rollcall project ({instance})"), &args)
    };
    let mut active = project("first");
    wait_until("the first projector takes the lease", || redis.get(&lease_key).as_deref() == Some("first"));
    let standby = project("second");
    let with = |command: &'static str, extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec![command];
        args.extend(shared);
        args.extend(extra);
        args
    };
    let data_dir = path(data.path()).to_owned();
    let mut api_args = with("api", &[]);
    api_args.extend(["--data-dir", data_dir.as_str()]);
    let api = Process::start("rollcall api", &api_args);
    let gateways = [
        Process::start("rollcall gateway (1)", &with("gateway", &[])),
        Process::start("rollcall gateway (2)", &with("gateway", &[])),
    ];

    // Sign up, create, invite, accept, set the upstream: all through the API process.
    let owner = User::at(&api.url(), "owner@split.test");
    owner.signup();
    let alice = User::at(&api.url(), "alice@split.test");
    alice.signup();
    let created = owner.json(&["workspace", "create", "split", "--plan", "starter"]);
    let owner_token = text(&created, "owner_token").to_owned();
    let invitation = owner.json(&["workspace", "member", "invite", "split", "alice@split.test"]);
    let token = text(&alice.json(&["invite", "accept", text(&invitation, "code")]), "token").to_owned();
    owner.json(&["workspace", "upstream", "set", "split", &mcp.upstream_url]);

    // Each gateway follows the store and learns the upstream within moments; until then it
    // refuses before recording anything.
    let mut id = 0u64;
    let mut alice_calls = 0u64;
    for gateway in &gateways {
        wait_until("a gateway forwards to the upstream", || {
            id += 1;
            let (status, body) = mcp.call_sum(&gateway.url(), &token, id, 2, 3);
            if status == 200 {
                assert_sum(&body, "5");
                alice_calls += 1;
            }
            status == 200
        });
    }
    for round in 0..6 {
        id += 1;
        let gateway = &gateways[round % 2];
        let (status, body) = mcp.call_sum(&gateway.url(), &token, id, 20, 22);
        assert_eq!(status, 200, "call through {}: {body}", gateway.url());
        assert_sum(&body, "42");
        alice_calls += 1;
    }

    // The member list and the analytics (read from Redis by the API) show every call.
    wait_until("the member list counts alice's calls", || {
        let members = owner.json(&["workspace", "member", "list", "split"]);
        let alice_row = row(&members, "alice@split.test").expect("alice is listed").clone();
        alice_row["tool_calls"] == alice_calls && alice_row["last_active_at"].is_string()
    });
    let usage = subject(&owner.json(&["workspace", "analytics", "split"]), "alice@split.test");
    assert_eq!(usage["tool_calls"], alice_calls, "{usage}");
    assert_eq!(usage["tools"]["sum"], alice_calls, "{usage}");
    assert!(usage["last_active_at"].is_string(), "{usage}");

    // Removal: when the command returns, neither gateway accepts the token.
    let removed = owner.json(&["workspace", "member", "remove", "split", "alice@split.test"]);
    assert_eq!(removed["token_status"], "revoked", "{removed}");
    assert_eq!(redis.hget(&format!("{prefix}token:{}", token_hash_hex(&token)), "status").as_deref(), Some("revoked"));
    for gateway in &gateways {
        id += 1;
        let (status, body) = mcp.call_sum(&gateway.url(), &token, id, 1, 1);
        assert_eq!(status, 401, "a removed member's token passed {}: {body}", gateway.url());
    }

    // The active projector dies without a word; calls go on meanwhile (the gateways record
    // them in the log), and the standby takes over and projects them.
    active.kill_hard();
    let killed_at = Instant::now();
    let mut owner_calls = 0u64;
    for round in 0..8 {
        id += 1;
        let gateway = &gateways[round % 2];
        let (status, body) = mcp.call_sum(&gateway.url(), &owner_token, id, 1, 2);
        assert_eq!(status, 200, "owner call through {}: {body}", gateway.url());
        assert_sum(&body, "3");
        owner_calls += 1;
    }
    wait_until("the standby takes the lease", || redis.get(&lease_key).as_deref() == Some("second"));
    let takeover = killed_at.elapsed();
    assert!(takeover < Duration::from_millis(LEASE_TTL_MS * 4), "the takeover took {takeover:?}");

    // Read your writes holds with the new holder too: a bot revoked is refused at once.
    let bot = owner.json(&["workspace", "bot", "create", "split", "crawler"]);
    let bot_token = text(&bot, "token").to_owned();
    id += 1;
    let (status, body) = mcp.call_sum(&gateways[0].url(), &bot_token, id, 4, 4);
    assert_eq!(status, 200, "bot call: {body}");
    assert_sum(&body, "8");
    owner.json(&["workspace", "bot", "revoke", "split", "crawler"]);
    for gateway in &gateways {
        id += 1;
        let (status, body) = mcp.call_sum(&gateway.url(), &bot_token, id, 1, 1);
        assert_eq!(status, 401, "a revoked bot's token passed {}: {body}", gateway.url());
    }

    // Every call is counted exactly once: the analytics equal the ToolCalled events in the log,
    // and stay so.
    let expected_total = alice_calls + owner_calls + 1;
    wait_until("the analytics count every call", || {
        owner.json(&["workspace", "analytics", "split"])["totals"]["tool_calls"] == expected_total
    });
    std::thread::sleep(Duration::from_millis(1500));
    let analytics = owner.json(&["workspace", "analytics", "split"]);
    assert_eq!(analytics["totals"]["tool_calls"], expected_total, "{analytics}");
    assert_eq!(subject(&analytics, "alice@split.test")["tool_calls"], alice_calls, "{analytics}");
    assert_eq!(subject(&analytics, "owner@split.test")["tool_calls"], owner_calls, "{analytics}");
    assert_eq!(analytics["bots"]["tool_calls"], 1, "{analytics}");
    let audit = owner.run(&["audit", "log", "--workspace", "split", "--type", "ToolCalled", "--json"]);
    assert!(audit.status.success(), "{}", audit.stderr);
    assert_eq!(audit.stdout.lines().count() as u64, expected_total, "{}", audit.stdout);
    let members = owner.json(&["workspace", "member", "list", "split"]);
    assert_eq!(row(&members, "owner@split.test").expect("owner listed")["tool_calls"], owner_calls, "{members}");
    assert_eq!(row(&members, "alice@split.test").expect("alice listed")["token_status"], "revoked", "{members}");

    drop(standby);
    drop(api);
    drop(gateways);
    redis.delete_prefix(&prefix);
}

/// The usage row of a member in `rollcall workspace analytics --json`.
fn subject(analytics: &Value, email: &str) -> Value {
    let subjects = analytics["subjects"].as_array().unwrap_or_else(|| panic!("no subjects in {analytics}"));
    subjects.iter().find(|s| s["email"] == email).unwrap_or_else(|| panic!("{email} not in {analytics}")).clone()
}

/// Asserts a `tools/call` answer carries `expected` as its text.
fn assert_sum(body: &Value, expected: &str) {
    let content = &body["result"]["content"][0]["text"];
    assert_eq!(content, expected, "unexpected answer: {body}");
}

fn path(dir: &std::path::Path) -> &str {
    dir.to_str().expect("a UTF-8 temp path")
}

/// Polls `condition` until it holds, or fails naming `what`.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_millis(CONVERGE_TIMEOUT_MS);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_answers_mcp_on_the_api_port_and_a_removal_stops_the_token_at_once() {
    let mcp = McpWorld::start();
    let server = rollcall_e2e::Server::start();
    let owner = server.signup("owner@one.test");
    let bob = server.signup("bob@one.test");
    owner.json(&["workspace", "create", "one", "--plan", "starter"]);
    let invitation = owner.json(&["workspace", "member", "invite", "one", "bob@one.test"]);
    let token = text(&bob.json(&["invite", "accept", text(&invitation, "code")]), "token").to_owned();
    owner.json(&["workspace", "upstream", "set", "one", &mcp.upstream_url]);

    let mut id = 0u64;
    wait_until("the gateway in `serve` forwards to the upstream", || {
        id += 1;
        mcp.call_sum(server.url(), &token, id, 2, 2).0 == 200
    });
    id += 1;
    let (status, body) = mcp.call_sum(server.url(), &token, id, 5, 6);
    assert_eq!(status, 200, "{body}");
    assert_sum(&body, "11");
    wait_until("the member list counts bob's calls", || {
        let members = owner.json(&["workspace", "member", "list", "one"]);
        row(&members, "bob@one.test").expect("bob is listed")["tool_calls"] == 2
    });

    owner.json(&["workspace", "member", "remove", "one", "bob@one.test"]);
    id += 1;
    let (status, body) = mcp.call_sum(server.url(), &token, id, 1, 1);
    assert_eq!(status, 401, "a removed member's token passed: {body}");
}
