//! A real MCP client (rmcp) talks to a real MCP server (rmcp) through the gateway.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use futures::StreamExt;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rollcall_core::envelope::Actor;
use rollcall_core::events::{CallOutcome, Caller, Event};
use rollcall_core::{BotId, MemberId};
use serde_json::json;

use crate::support::*;

async fn client_session(
    url: &str,
    token: &str,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).auth_header(token),
    );
    Ok(ClientConfig::default().serve(transport).await?)
}

/// Waits until the holder's calls stream satisfies `done`, at most two seconds.
async fn wait_for_calls(world: &World, holder: &Holder, done: impl Fn(&[Event]) -> bool) -> Result<Vec<Event>> {
    for _ in 0..100 {
        let events: Vec<Event> = world.calls_of(holder).await?.into_iter().map(|(_, e)| e).collect();
        if done(&events) {
            return Ok(events);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the calls stream did not reach the expected state: {:?}", world.calls_of(holder).await?)
}

async fn full_session(world: &World, url: &str) -> Result<()> {
    let client = client_session(url, world.member.token()).await?;
    let tools = client.list_tools(Default::default()).await?;
    let names: Vec<&str> = tools.tools.iter().map(|t| t.name.as_ref()).collect();
    ensure!(names.contains(&"sum") && names.contains(&"broken"), "tools listed: {names:?}");

    let args = serde_json::from_value(json!({"a": 2, "b": 3}))?;
    let result = client.call_tool(CallToolRequestParams::new("sum").with_arguments(args)).await?;
    let text = serde_json::to_value(&result.content)?;
    ensure!(text.to_string().contains("\"5\""), "sum answered {text}");
    let broken = client.call_tool(CallToolRequestParams::new("broken")).await;
    ensure!(broken.is_err() || broken.as_ref().is_ok_and(|r| r.is_error == Some(true)), "broken answered {broken:?}");
    let _ = client.cancel().await;

    let events = wait_for_calls(world, &world.member, |events| {
        events.iter().filter(|e| matches!(e, Event::ToolCallCompleted(_))).count() == 2
    })
    .await?;
    let member = Caller::Member { member_id: MemberId(world.member.subject_id) };
    let called: Vec<_> =
        events.iter().filter_map(|e| if let Event::ToolCalled(c) = e { Some(c) } else { None }).collect();
    ensure!(called.len() == 2, "two calls recorded, got {called:?}");
    ensure!(
        called
            .iter()
            .all(|c| c.caller == member && c.workspace_id == world.workspace_id && c.token_id == world.member.token_id)
    );
    ensure!(called[0].tool == "sum" && called[1].tool == "broken");
    ensure!(called[0].arguments_bytes > 0);
    let completed: HashMap<String, CallOutcome> = events
        .iter()
        .filter_map(
            |e| if let Event::ToolCallCompleted(c) = e { Some((c.tool.clone(), c.outcome.clone())) } else { None },
        )
        .collect();
    ensure!(completed["sum"] == CallOutcome::Ok, "sum outcome {:?}", completed["sum"]);
    ensure!(matches!(completed["broken"], CallOutcome::Error { .. }), "broken outcome {:?}", completed["broken"]);
    // The ToolCalled precedes its completion in the log, and the actor is the member.
    let recorded = world.calls_of(&world.member).await?;
    ensure!(matches!(recorded[0].1, Event::ToolCalled(_)));
    ensure!(
        matches!(recorded[0].0.metadata.actor, Actor::Member { member_id, .. } if member_id == world.member.subject_id)
    );
    Ok(())
}

#[tokio::test]
async fn rmcp_client_and_server_through_the_gateway_in_process() -> Result<()> {
    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let (gateway, _) = in_process_gateway(&world, test_options()).await?;
    full_session(&world, &gateway.mcp_url()).await
}

#[tokio::test]
async fn rmcp_client_and_server_through_the_gateway_with_redis() -> Result<()> {
    let url = redis_url();
    let mut redis = redis_connection(&url).await?;
    let prefix = unique_prefix();
    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    redis_put_token(&mut redis, &prefix, &world, &world.member).await?;
    let gateway = redis_gateway(&world, &url, &prefix, test_options()).await?;
    full_session(&world, &format!("{}/w/{}/mcp", gateway.base, world.name)).await
}

#[tokio::test]
async fn a_bot_token_is_recorded_as_the_bot() -> Result<()> {
    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let (gateway, _) = in_process_gateway(&world, test_options()).await?;
    let client = client_session(&gateway.mcp_url(), world.bot.token()).await?;
    let args = serde_json::from_value(json!({"a": 40, "b": 2}))?;
    client.call_tool(CallToolRequestParams::new("sum").with_arguments(args)).await?;
    let _ = client.cancel().await;
    let events =
        wait_for_calls(&world, &world.bot, |events| events.iter().any(|e| matches!(e, Event::ToolCallCompleted(_))))
            .await?;
    let bot = Caller::Bot { bot_id: BotId(world.bot.subject_id) };
    ensure!(events.iter().all(|e| match e {
        Event::ToolCalled(c) => c.caller == bot,
        Event::ToolCallCompleted(c) => c.caller == bot && c.outcome == CallOutcome::Ok,
        _ => false,
    }));
    ensure!(world.calls_of(&world.member).await?.is_empty(), "nothing is attributed to the member");
    Ok(())
}

/// Opens a session by hand and the server-to-client event stream (GET).
pub async fn open_event_stream(http: &reqwest::Client, url: &str, token: &str) -> Result<(String, reqwest::Response)> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}});
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await?;
    ensure!(response.status() == 200, "initialize answered {}", response.status());
    let session =
        response.headers().get("mcp-session-id").cloned().ok_or_else(|| anyhow::anyhow!("no session id forwarded"))?;
    // Read the initialize answer to the end.
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("\"result\"") {
        let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), body.next()).await? else { break };
        text.push_str(&String::from_utf8_lossy(&chunk?));
    }
    drop(body);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&initialized)
        .send()
        .await?;
    ensure!(response.status().is_success(), "initialized answered {}", response.status());
    let stream = http
        .get(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await?;
    ensure!(stream.status() == 200, "GET event stream answered {}", stream.status());
    let content_type = stream.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    ensure!(content_type.starts_with("text/event-stream"), "GET answered {content_type}");
    Ok((session.to_str()?.to_owned(), stream))
}

#[tokio::test]
async fn the_event_stream_opens_and_delete_ends_the_session() -> Result<()> {
    let upstream = start_upstream(UpstreamMode::Sessions).await?;
    let world = World::new(new_store(), &upstream.url).await?;
    let (gateway, _) = in_process_gateway(&world, test_options()).await?;
    let http = reqwest::Client::new();
    let (session, stream) = open_event_stream(&http, &gateway.mcp_url(), world.member.token()).await?;
    ensure!(gateway.gateway.open_streams() == 1, "one open stream, got {}", gateway.gateway.open_streams());
    drop(stream);
    let deleted = http
        .delete(gateway.mcp_url())
        .bearer_auth(world.member.token())
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", &session)
        .send()
        .await?;
    ensure!(deleted.status().is_success(), "DELETE answered {}", deleted.status());
    // The GET stream's registration goes away with the stream.
    for _ in 0..50 {
        if gateway.gateway.open_streams() == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the closed stream is still registered")
}
