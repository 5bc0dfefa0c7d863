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
    let url = redis_url();
    let mut redis = redis_connection(&url).await?;
    let prefix = unique_prefix();
    let upstream = start_upstream(UpstreamMode::StatelessJson).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    redis_put_token(&mut redis, &prefix, &world, &world.member).await?;
    let gateway = redis_gateway(&world, &url, &prefix, test_options()).await?;
    let (ok, limited) = send_125(&[gateway.mcp_url()], world.member.token()).await?;
    ensure!((ok, limited) == (120, 5), "{ok} ok, {limited} limited");
    assert_summary(&world).await
}

#[tokio::test]
async fn two_gateways_sharing_redis_share_the_limit() -> Result<()> {
    let url = redis_url();
    let mut redis = redis_connection(&url).await?;
    let prefix = unique_prefix();
    let upstream = start_upstream(UpstreamMode::StatelessJson).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    redis_put_token(&mut redis, &prefix, &world, &world.member).await?;
    let first = redis_gateway(&world, &url, &prefix, test_options()).await?;
    let second = redis_gateway(&world, &url, &prefix, test_options()).await?;
    let (ok, limited) = send_125(&[first.mcp_url(), second.mcp_url()], world.member.token()).await?;
    ensure!((ok, limited) == (120, 5), "{ok} ok, {limited} limited");
    Ok(())
}
