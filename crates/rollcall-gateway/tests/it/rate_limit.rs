//! 120 requests in any 60 seconds per token, in process and across replicas sharing Redis.

use std::time::Duration;

use anyhow::{Result, ensure};
use futures::StreamExt;
use rollcall_core::events::Event;

use crate::support::*;

/// Sends 125 tool calls, spread over `urls`, 16 at a time; returns (successes, 429s).
async fn send_125(urls: &[String], token: &str) -> Result<(usize, usize)> {
    let http = reqwest::Client::new();
    let results: Vec<Result<(u16, Option<String>)>> = futures::stream::iter(0..125u64)
        .map(|i| {
            let http = http.clone();
            let url = urls[i as usize % urls.len()].clone();
            async move {
                let response = post(&http, &url, token, &tool_call(i + 1, 1, 2)).await?;
                let retry_after =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let status = response.status().as_u16();
                let _ = response.bytes().await?;
                Ok((status, retry_after))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut ok = 0;
    let mut limited = 0;
    for result in results {
        match result? {
            (200, _) => ok += 1,
            (429, retry_after) => {
                let seconds: u64 = retry_after.ok_or_else(|| anyhow::anyhow!("429 without Retry-After"))?.parse()?;
                ensure!((1..=60).contains(&seconds), "Retry-After {seconds}");
                limited += 1;
            }
            (status, _) => anyhow::bail!("unexpected status {status}"),
        }
    }
    Ok((ok, limited))
}

async fn assert_summary(world: &World) -> Result<()> {
    // Refusals are summarised in one RateLimited event per window, not one event each.
    for _ in 0..100 {
        let events = world.calls_of(&world.member).await?;
        let summaries: Vec<u64> = events
            .iter()
            .filter_map(|(_, e)| if let Event::RateLimited(r) = e { Some(r.refused) } else { None })
            .collect();
        if !summaries.is_empty() {
            ensure!(summaries.iter().sum::<u64>() == 5, "refusals summarised: {summaries:?}");
            let called = events.iter().filter(|(_, e)| matches!(e, Event::ToolCalled(_))).count();
            ensure!(called == 120, "{called} calls recorded");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("no RateLimited summary was recorded")
}

/// Redis, a fresh key prefix, a world with its upstream (kept running while it is held), and the
/// member's token in Redis as the token projection writes it.
async fn redis_world() -> Result<(String, redis::aio::MultiplexedConnection, String, Upstream, World)> {
    let url = redis_url();
    let mut redis = redis_connection(&url).await?;
    let prefix = unique_prefix();
    let upstream = start_upstream(UpstreamMode::StatelessJson).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    redis_put_token(&mut redis, &prefix, &world, &world.member).await?;
    Ok((url, redis, prefix, upstream, world))
}

#[tokio::test]
async fn in_process_125_requests_give_120_ok_and_5_refusals() -> Result<()> {
    let upstream = start_upstream(UpstreamMode::StatelessJson).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let (gateway, _) = in_process_gateway(&world, test_options()).await?;
    let (ok, limited) = send_125(&[gateway.mcp_url()], world.member.token()).await?;
    ensure!((ok, limited) == (120, 5), "{ok} ok, {limited} limited");
    // Another token has its own budget.
    let (ok, _) = send_125(&[gateway.mcp_url()], world.bot.token()).await?;
    ensure!(ok == 120, "the bot got {ok}");
    assert_summary(&world).await
}

#[tokio::test]
async fn with_redis_125_requests_give_120_ok_and_5_refusals() -> Result<()> {
    let (url, _, prefix, _upstream, world) = redis_world().await?;
    let gateway = redis_gateway(&world, &url, &prefix, test_options()).await?;
    let (ok, limited) = send_125(&[gateway.mcp_url()], world.member.token()).await?;
    ensure!((ok, limited) == (120, 5), "{ok} ok, {limited} limited");
    assert_summary(&world).await
}

#[tokio::test]
async fn two_gateways_sharing_redis_share_the_limit() -> Result<()> {
    let (url, _, prefix, _upstream, world) = redis_world().await?;
    let first = redis_gateway(&world, &url, &prefix, test_options()).await?;
    let second = redis_gateway(&world, &url, &prefix, test_options()).await?;
    let (ok, limited) = send_125(&[first.mcp_url(), second.mcp_url()], world.member.token()).await?;
    ensure!((ok, limited) == (120, 5), "{ok} ok, {limited} limited");
    Ok(())
}

/// The Redis window slides: the request after the limit is refused until the oldest counted
/// request leaves the window, with a retry delay that says when; the log never holds more than
/// the limit; a revoked token is seen as revoked even though its owner was already known.
#[tokio::test]
async fn the_redis_window_slides_and_the_retry_delay_is_when_the_oldest_leaves() -> Result<()> {
    use rollcall_gateway::{RateLimit, RedisAuthority, RedisAuthorityConfig, TokenAuthority, Verdict};
    let (url, mut redis, prefix, _upstream, world) = redis_world().await?;
    let mut config = RedisAuthorityConfig::new(&url);
    config.prefix = prefix.clone();
    config.limit = RateLimit { requests_max: 3, window_ms: 1500 };
    let authority = RedisAuthority::connect(config)?;
    let hash = world.member.secret.hash();

    let first_at = std::time::Instant::now();
    for i in 0..3 {
        let verdict = authority.check(&hash).await?;
        let Verdict::Allowed(info) = verdict else { anyhow::bail!("request {i} was not allowed: {verdict:?}") };
        ensure!(info.token_id == world.member.token_id && info.label == world.member.label, "owner {info:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let retry_after_ms = match authority.check(&hash).await? {
        Verdict::Limited { retry_after_ms, info } => {
            ensure!(info.token_id == world.member.token_id, "owner of the refusal {info:?}");
            retry_after_ms
        }
        other => anyhow::bail!("the 4th request was {other:?}"),
    };
    // The first request was counted about 600 ms ago: it leaves the window in about 900 ms.
    let elapsed = first_at.elapsed().as_millis() as u64;
    ensure!(
        retry_after_ms <= 1500 - elapsed.min(1500) + 50 && retry_after_ms + 250 >= 1500 - elapsed.min(1500),
        "retry after {retry_after_ms} ms, {elapsed} ms after the first request"
    );
    // A refusal is not counted: still refused just before the delay ends, allowed just after.
    tokio::time::sleep(Duration::from_millis(retry_after_ms.saturating_sub(150))).await;
    ensure!(matches!(authority.check(&hash).await?, Verdict::Limited { .. }), "allowed before the delay ended");
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(matches!(authority.check(&hash).await?, Verdict::Allowed(_)), "refused after the delay ended");
    let listed: u64 = redis::cmd("LLEN").arg(format!("{prefix}rate:{}", hash.to_hex())).query_async(&mut redis).await?;
    // Trimmed back to the limit only once it holds twice the limit.
    ensure!((3..=6).contains(&listed), "the log lists {listed} requests");
    let ttl_ms: i64 = redis::cmd("PTTL").arg(format!("{prefix}rate:{}", hash.to_hex())).query_async(&mut redis).await?;
    ensure!((1400..=3000).contains(&ttl_ms), "the log expires in {ttl_ms} ms");

    redis_revoke(&mut redis, &prefix, &world.member).await?;
    match authority.check(&hash).await? {
        Verdict::Revoked(info) => ensure!(info.token_id == world.member.token_id, "owner {info:?}"),
        other => anyhow::bail!("a revoked token was {other:?}"),
    }
    Ok(())
}
