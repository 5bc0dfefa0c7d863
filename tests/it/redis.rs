//! `rollcall serve --redis`: the token validity set lives in a real Redis, and a removal is
//! there before `member remove` returns.

use rollcall_e2e::{Redis, Server, ServerOptions, token_hash_hex};

use crate::text;

#[test]
fn with_redis_a_removal_is_in_the_token_set_before_the_command_returns() {
    let redis = Redis::connect();
    let prefix = format!("rollcall-e2e-{}:", uuid::Uuid::new_v4().simple());
    let options = ServerOptions {
        extra_args: vec!["--redis".into(), Redis::url(), "--redis-prefix".into(), prefix.clone()],
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(options);
    let owner = server.signup("owner@redis.test");
    let sam = server.signup("sam@redis.test");
    owner.json(&["workspace", "create", "cache", "--plan", "starter"]);
    let invitation = owner.json(&["workspace", "member", "invite", "cache", "sam@redis.test"]);
    let token = text(&sam.json(&["invite", "accept", text(&invitation, "code")]), "token").to_owned();
    let bot = owner.json(&["workspace", "bot", "create", "cache", "crawler"]);
    let key = format!("{prefix}token:{}", token_hash_hex(&token));
    let bot_key = format!("{prefix}token:{}", token_hash_hex(text(&bot, "token")));

    // Acceptance is projected asynchronously; it shows up shortly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while redis.hget(&key, "status").as_deref() != Some("active") {
        assert!(std::time::Instant::now() < deadline, "the token never became active in Redis");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(redis.hget(&key, "label").as_deref(), Some("sam@redis.test"));
    assert_eq!(redis.hget(&key, "kind").as_deref(), Some("member"));

    // No waiting here: the command returns only once Redis says revoked.
    owner.json(&["workspace", "member", "remove", "cache", "sam@redis.test"]);
    assert_eq!(redis.hget(&key, "status").as_deref(), Some("revoked"));
    owner.json(&["workspace", "bot", "revoke", "cache", "crawler"]);
    assert_eq!(redis.hget(&bot_key, "status").as_deref(), Some("revoked"));

    // After a restart the projection resumes from its checkpoint; nothing comes back to life.
    server.restart();
    assert_eq!(redis.hget(&key, "status").as_deref(), Some("revoked"));
    let members = owner.json(&["workspace", "member", "list", "cache"]);
    assert_eq!(crate::row(&members, "sam@redis.test").map(|r| r["token_status"].clone()), Some("revoked".into()));
    drop(server);
    redis.delete_prefix(&prefix);
}
