//! Revocation under load: once the revocation is applied, not one request with the token
//! succeeds, and its open event streams close within 100 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures::StreamExt;
use rollcall_core::events::Event;
use tokio::task::JoinSet;

use crate::mcp::open_event_stream;
use crate::support::*;

/// Clients that hammer `urls` with the token until stopped; each result is (started, status).
fn hammer(urls: Vec<String>, token: String, stop: Arc<AtomicBool>) -> JoinSet<Result<Vec<(Instant, u16)>>> {
    let mut clients = JoinSet::new();
    for worker in 0..8usize {
        let http = reqwest::Client::new();
        let url = urls[worker % urls.len()].clone();
        let token = token.clone();
        let stop = stop.clone();
        clients.spawn(async move {
            let mut seen = Vec::new();
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let started = Instant::now();
                let response = post(&http, &url, &token, &initialize(id)).await?;
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                seen.push((started, status));
            }
            Ok(seen)
        });
    }
    clients
}

fn initialize(id: u64) -> serde_json::Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "hammer", "version": "1"}}})
}

/// Waits for the stream to end; returns when it did.
async fn stream_end(stream: reqwest::Response) -> Instant {
    let mut body = stream.bytes_stream();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), body.next()).await {
            Ok(Some(Ok(_))) => continue,
            _ => return Instant::now(),
        }
    }
}

async fn check_outcome(clients: JoinSet<Result<Vec<(Instant, u16)>>>, revoked_at: Instant) -> Result<()> {
    let mut after = 0;
    let mut before_ok = 0;
    for seen in clients.join_all().await {
        for (started, status) in seen? {
            if started >= revoked_at {
                after += 1;
                ensure!(status == 401, "a request started after the revocation got {status}");
            } else if status == 200 {
                before_ok += 1;
            }
        }
    }
    ensure!(before_ok > 0, "the token worked before the revocation");
    ensure!(after > 0, "requests were sent after the revocation");
    Ok(())
}

#[tokio::test]
async fn in_process_revocation_under_load() -> Result<()> {
    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let options = GatewayOptionsExt::no_limit(test_options());
    let (gateway, authority) = in_process_gateway(&world, options).await?;
    let http = reqwest::Client::new();
    let (_, stream) = open_event_stream(&http, &gateway.mcp_url(), world.member.token()).await?;
    let ended = tokio::spawn(stream_end(stream));

    let stop = Arc::new(AtomicBool::new(false));
    let clients = hammer(vec![gateway.mcp_url()], world.member.token().to_owned(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let position = world.remove_member().await?;
    ensure!(authority.wait_for(position, Duration::from_secs(2)).await, "the removal was not applied");
    let revoked_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    check_outcome(clients, revoked_at).await?;
    let ended = ended.await?;
    let delay = ended.saturating_duration_since(revoked_at);
    ensure!(delay <= Duration::from_millis(100), "the event stream closed {delay:?} after the revocation");
    let denied =
        world.calls_of(&world.member).await?.iter().filter(|(_, e)| matches!(e, Event::AccessDenied(_))).count();
    ensure!(denied >= 1, "the refused requests were recorded");
    Ok(())
}

#[tokio::test]
async fn redis_revocation_under_load_across_two_gateways() -> Result<()> {
    let url = redis_url();
    let mut redis = redis_connection(&url).await?;
    let prefix = unique_prefix();
    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    redis_put_token(&mut redis, &prefix, &world, &world.member).await?;
    let options = GatewayOptionsExt::no_limit(test_options());
    let first = redis_gateway(&world, &url, &prefix, options.clone()).await?;
    let second = redis_gateway(&world, &url, &prefix, options).await?;
    let http = reqwest::Client::new();
    let (_, stream) = open_event_stream(&http, &second.mcp_url(), world.member.token()).await?;
    let ended = tokio::spawn(stream_end(stream));

    let stop = Arc::new(AtomicBool::new(false));
    let clients = hammer(vec![first.mcp_url(), second.mcp_url()], world.member.token().to_owned(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis_revoke(&mut redis, &prefix, &world.member).await?;
    let revoked_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    check_outcome(clients, revoked_at).await?;
    let delay = ended.await?.saturating_duration_since(revoked_at);
    ensure!(delay <= Duration::from_millis(100), "the event stream closed {delay:?} after the revocation");
    Ok(())
}

#[tokio::test]
async fn the_sweep_closes_streams_whose_revocation_message_was_missed() -> Result<()> {
    let url = redis_url();
    let mut redis = redis_connection(&url).await?;
    let prefix = unique_prefix();
    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    redis_put_token(&mut redis, &prefix, &world, &world.member).await?;
    let gateway = redis_gateway(&world, &url, &prefix, test_options()).await?;
    let http = reqwest::Client::new();
    let (_, stream) = open_event_stream(&http, &gateway.mcp_url(), world.member.token()).await?;
    let ended = tokio::spawn(stream_end(stream));
    // The status changes but no message is published, as when a message is lost.
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}token:{}", world.member.secret.hash().to_hex()))
        .arg("status")
        .arg("revoked")
        .query_async(&mut redis)
        .await?;
    let revoked_at = Instant::now();
    let delay = ended.await?.saturating_duration_since(revoked_at);
    // The test sweeps every 200 ms.
    ensure!(delay <= Duration::from_millis(600), "the sweep closed the stream after {delay:?}");
    Ok(())
}

/// Options without a practical rate limit, so the hammering is never refused for it.
struct GatewayOptionsExt;

impl GatewayOptionsExt {
    fn no_limit(mut options: rollcall_gateway::GatewayOptions) -> rollcall_gateway::GatewayOptions {
        options.rate_limit.requests_max = 1_000_000;
        options
    }
}

#[tokio::test]
async fn the_token_projections_view_revokes_at_once() -> Result<()> {
    use rollcall_projection::{Projector, ProjectorConfig};
    use rollcall_tokens::InProcessTokens;

    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let tokens = InProcessTokens::new();
    let config = ProjectorConfig { flush_interval_ms: 1, ..ProjectorConfig::default() };
    let projector = Projector::spawn(world.store.clone(), tokens.projection(), config);
    projector.wait_for(world.store.head().await?, Duration::from_secs(5)).await?;
    let options = GatewayOptionsExt::no_limit(test_options());
    let authority = Arc::new(rollcall_gateway::ProjectedAuthority::new(tokens, options.rate_limit));
    let gateway = serve_gateway(authority, world.store.clone(), options).await?;
    let http = reqwest::Client::new();
    let (_, stream) = open_event_stream(&http, &gateway.mcp_url(), world.member.token()).await?;
    let ended = tokio::spawn(stream_end(stream));

    let stop = Arc::new(AtomicBool::new(false));
    let clients = hammer(vec![gateway.mcp_url()], world.member.token().to_owned(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // As `member remove` does: append, then wait until the token view reflects it.
    let position = world.remove_member().await?;
    projector.wait_for(position, Duration::from_secs(5)).await?;
    let revoked_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    check_outcome(clients, revoked_at).await?;
    let delay = ended.await?.saturating_duration_since(revoked_at);
    ensure!(delay <= Duration::from_millis(100), "the event stream closed {delay:?} after the revocation");
    projector.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_redis_token_projection_and_the_gateway_agree_on_keys() -> Result<()> {
    use rollcall_projection::{Projector, ProjectorConfig};
    use rollcall_tokens::RedisTokens;

    let url = redis_url();
    redis_connection(&url).await?;
    let prefix = unique_prefix();
    let manager = redis::aio::ConnectionManager::new(redis::Client::open(url.as_str())?).await?;
    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let config = ProjectorConfig { flush_interval_ms: 1, ..ProjectorConfig::default() };
    let projector = Projector::spawn(world.store.clone(), Arc::new(RedisTokens::new(manager, &prefix)), config);
    projector.wait_for(world.store.head().await?, Duration::from_secs(5)).await?;
    let gateway = redis_gateway(&world, &url, &prefix, test_options()).await?;
    let http = reqwest::Client::new();
    let (_, stream) = open_event_stream(&http, &gateway.mcp_url(), world.member.token()).await?;
    let ended = tokio::spawn(stream_end(stream));
    let ok = post(&http, &gateway.mcp_url(), world.bot.token(), &initialize(1)).await?;
    ensure!(ok.status() == 200, "the bot's token from the projection answered {}", ok.status());

    let position = world.remove_member().await?;
    projector.wait_for(position, Duration::from_secs(5)).await?;
    let revoked_at = Instant::now();
    let refused = post(&http, &gateway.mcp_url(), world.member.token(), &initialize(2)).await?;
    ensure!(refused.status() == 401, "after the removal: {}", refused.status());
    let delay = ended.await?.saturating_duration_since(revoked_at);
    ensure!(delay <= Duration::from_millis(100), "the event stream closed {delay:?} after the revocation");
    projector.stop().await;
    Ok(())
}
