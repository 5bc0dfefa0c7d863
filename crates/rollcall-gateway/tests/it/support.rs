//! A workspace in a real event store, a real rmcp upstream, and a gateway in front of it,
//! with tokens checked in process or in a real Redis.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use rollcall_core::catalogue::{calls_stream, workspace_stream};
use rollcall_core::envelope::{Actor, Metadata, RecordedEvent};
use rollcall_core::events::{
    BotCreated, BotRevoked, Event, InvitationAccepted, MemberRemoved, RemovalReason, UpstreamSet, WorkspaceCreated,
};
use rollcall_core::{
    AccountId, BotId, Email, InvitationId, IssuedToken, MemberId, Plan, Role, Secret, SecretKind, TokenId, WorkspaceId,
};
use rollcall_gateway::{
    Gateway, GatewayOptions, InProcessAuthority, RedisAuthority, RedisAuthorityConfig, StoreUpstreams, TokenAuthority,
    router,
};
use rollcall_store::{EventStore, ExpectedRevision, MemoryStore};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SumRequest {
    pub a: i64,
    pub b: i64,
}

/// The upstream MCP server: a calculator with a tool that always fails.
#[derive(Debug, Clone)]
pub struct Calculator {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Calculator {
    pub fn new() -> Calculator {
        Calculator { tool_router: Self::tool_router() }
    }

    #[tool(description = "Adds two numbers")]
    fn sum(&self, Parameters(SumRequest { a, b }): Parameters<SumRequest>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Always fails")]
    fn broken(&self) -> Result<String, rmcp::ErrorData> {
        Err(rmcp::ErrorData::internal_error("this tool is broken", None))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Calculator {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// How the upstream answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum UpstreamMode {
    /// Sessions, answers as event streams, a GET event stream.
    Sessions,
    /// No sessions, JSON answers.
    StatelessJson,
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    pub url: String,
    stop: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn start_upstream(mode: UpstreamMode) -> Result<Upstream> {
    let stop = CancellationToken::new();
    let config =
        StreamableHttpServerConfig::default().with_sse_keep_alive(None).with_cancellation_token(stop.child_token());
    let config = match mode {
        UpstreamMode::Sessions => config,
        UpstreamMode::StatelessJson => config.with_legacy_session_mode(false).with_json_response(true),
    };
    let service: StreamableHttpService<Calculator, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(Calculator::new()), Default::default(), config);
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let until = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await;
    });
    Ok(Upstream { url: format!("http://{addr}/mcp"), stop })
}

/// A holder of a token.
#[derive(Clone)]
pub struct Holder {
    pub secret: Secret,
    pub token_id: TokenId,
    pub subject_id: Uuid,
    pub kind: &'static str,
    pub label: String,
}

impl Holder {
    pub fn token(&self) -> &str {
        self.secret.expose()
    }
}

/// A workspace with an owner, a member and a bot, recorded in a real store.
pub struct World {
    pub store: Arc<dyn EventStore>,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub owner_account: AccountId,
    pub member: Holder,
    pub bot: Holder,
}

fn random_secret(kind: SecretKind) -> Secret {
    let mut random = [0u8; 32];
    random[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    random[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    Secret::generate(kind, random)
}

fn metadata(account: AccountId) -> Metadata {
    Metadata {
        actor: Actor::Account { account_id: account.as_uuid() },
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        recorded_at: Utc::now(),
    }
}

impl World {
    /// A workspace whose upstream is `upstream_url`.
    pub async fn new(store: Arc<dyn EventStore>, upstream_url: &str) -> Result<World> {
        let workspace_id = WorkspaceId(Uuid::new_v4());
        let name = format!("ws-{}", &Uuid::new_v4().simple().to_string()[..10]);
        let owner_account = AccountId(Uuid::new_v4());
        let owner_secret = random_secret(SecretKind::MemberToken);
        let member_secret = random_secret(SecretKind::MemberToken);
        let bot_secret = random_secret(SecretKind::BotToken);
        let member = Holder {
            secret: member_secret.clone(),
            token_id: TokenId(Uuid::new_v4()),
            subject_id: Uuid::new_v4(),
            kind: "member",
            label: format!("alice@{name}.example.com"),
        };
        let bot = Holder {
            secret: bot_secret.clone(),
            token_id: TokenId(Uuid::new_v4()),
            subject_id: Uuid::new_v4(),
            kind: "bot",
            label: "ci-bot".into(),
        };
        let now = Utc::now();
        let events = vec![
            Event::WorkspaceCreated(WorkspaceCreated {
                workspace_id,
                name: name.clone(),
                plan: Plan::Pro,
                owner_account_id: owner_account,
                owner_email: Email::parse(&format!("owner@{name}.example.com"))?,
                owner_member_id: MemberId(Uuid::new_v4()),
                owner_token: IssuedToken::of(TokenId(Uuid::new_v4()), &owner_secret),
                created_at: now,
            }),
            Event::InvitationAccepted(InvitationAccepted {
                workspace_id,
                invitation_id: InvitationId(Uuid::new_v4()),
                member_id: MemberId(member.subject_id),
                account_id: AccountId(Uuid::new_v4()),
                email: Email::parse(&member.label)?,
                role: Role::Member,
                token: IssuedToken::of(member.token_id, &member_secret),
                accepted_at: now,
            }),
            Event::BotCreated(BotCreated {
                workspace_id,
                bot_id: BotId(bot.subject_id),
                name: bot.label.clone(),
                token: IssuedToken::of(bot.token_id, &bot_secret),
                created_by: owner_account,
                created_at: now,
            }),
            Event::UpstreamSet(UpstreamSet {
                workspace_id,
                url: upstream_url.to_owned(),
                set_by: owner_account,
                set_at: now,
            }),
        ];
        let world = World { store, workspace_id, name, owner_account, member, bot };
        for event in events {
            world.append(event).await?;
        }
        Ok(world)
    }

    pub async fn append(&self, event: Event) -> Result<rollcall_core::envelope::Position> {
        let result = self
            .store
            .append(
                &workspace_stream(&self.name),
                ExpectedRevision::Any,
                vec![event.to_new_event(Uuid::now_v7(), metadata(self.owner_account))],
            )
            .await?;
        Ok(result.position)
    }

    /// Records the member's removal (which revokes the token) in the log.
    pub async fn remove_member(&self) -> Result<rollcall_core::envelope::Position> {
        self.append(Event::MemberRemoved(MemberRemoved {
            workspace_id: self.workspace_id,
            member_id: MemberId(self.member.subject_id),
            email: Email::parse(&self.member.label)?,
            token_id: self.member.token_id,
            token_hash: self.member.secret.hash(),
            removed_by: self.owner_account,
            reason: RemovalReason::Removed,
            removed_at: Utc::now(),
        }))
        .await
    }

    pub async fn revoke_bot(&self) -> Result<rollcall_core::envelope::Position> {
        self.append(Event::BotRevoked(BotRevoked {
            workspace_id: self.workspace_id,
            bot_id: BotId(self.bot.subject_id),
            token_id: self.bot.token_id,
            token_hash: self.bot.secret.hash(),
            revoked_by: self.owner_account,
            revoked_at: Utc::now(),
        }))
        .await
    }

    /// Every event of a holder's calls stream, decoded.
    pub async fn calls_of(&self, holder: &Holder) -> Result<Vec<(RecordedEvent, Event)>> {
        let recorded = self.store.read_stream(&calls_stream(self.workspace_id, holder.token_id), 0, 10_000).await?;
        recorded
            .into_iter()
            .map(|r| {
                let event = Event::from_recorded(&r)?;
                Ok((r, event))
            })
            .collect()
    }
}

/// The Redis every Redis test uses: `REDIS_URL` or 127.0.0.1:6379.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub async fn redis_connection(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let connection = tokio::time::timeout(Duration::from_secs(3), client.get_multiplexed_async_connection())
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| {
            format!("cannot connect to redis at {url}: start one with `redis-server --port 6379` or set REDIS_URL")
        })?;
    Ok(connection)
}

/// Writes a token into Redis exactly as the token projection does.
pub async fn redis_put_token(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    world: &World,
    holder: &Holder,
) -> Result<()> {
    let key = format!("{prefix}token:{}", holder.secret.hash().to_hex());
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("workspace_id")
        .arg(world.workspace_id.to_string())
        .arg("workspace")
        .arg(&world.name)
        .arg("kind")
        .arg(holder.kind)
        .arg("subject_id")
        .arg(holder.subject_id.to_string())
        .arg("token_id")
        .arg(holder.token_id.to_string())
        .arg("label")
        .arg(&holder.label)
        .arg("status")
        .arg("active")
        .query_async(redis)
        .await?;
    // The projection's checkpoint marks the view as built.
    let _: () = redis::cmd("SET").arg(format!("{prefix}checkpoint:tokens")).arg("1").query_async(redis).await?;
    Ok(())
}

/// Revokes a token in Redis exactly as the token projection does: status then PUBLISH.
pub async fn redis_revoke(redis: &mut redis::aio::MultiplexedConnection, prefix: &str, holder: &Holder) -> Result<()> {
    let hash = holder.secret.hash().to_hex();
    let _: () = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(format!("{prefix}token:{hash}"))
        .arg("status")
        .arg("revoked")
        .ignore()
        .cmd("PUBLISH")
        .arg(format!("{prefix}revocations"))
        .arg(&hash)
        .ignore()
        .query_async(redis)
        .await?;
    Ok(())
}

pub fn unique_prefix() -> String {
    format!("rollcall-test-{}:", &Uuid::new_v4().simple().to_string()[..12])
}

/// Options for tests: short summary windows and sweeps.
pub fn test_options() -> GatewayOptions {
    GatewayOptions { rate_limited_summary_ms: 300, sweep_interval_ms: 200, ..GatewayOptions::default() }
}

/// A gateway serving on an ephemeral port; stops when dropped.
pub struct RunningGateway {
    pub base: String,
    pub gateway: Gateway,
    stop: CancellationToken,
}

impl RunningGateway {
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn serve_gateway(
    authority: Arc<dyn TokenAuthority>,
    store: Arc<dyn EventStore>,
    options: GatewayOptions,
) -> Result<RunningGateway> {
    let upstreams = StoreUpstreams::follow(store.clone()).await?;
    let gateway = Gateway::new(authority, upstreams, store, options)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let until = stop.clone();
    let app = router(gateway.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await;
    });
    Ok(RunningGateway { base: format!("http://{addr}"), gateway, stop })
}

/// A gateway checking tokens in process, following the world's store.
pub async fn in_process_gateway(
    world: &World,
    options: GatewayOptions,
) -> Result<(RunningGateway, Arc<InProcessAuthority>)> {
    let authority = InProcessAuthority::follow(world.store.clone(), options.rate_limit).await?;
    let running = serve_gateway(authority.clone(), world.store.clone(), options).await?;
    Ok((running, authority))
}

/// A gateway checking tokens in Redis under `prefix`.
pub async fn redis_gateway(world: &World, url: &str, prefix: &str, options: GatewayOptions) -> Result<RunningGateway> {
    let mut config = RedisAuthorityConfig::new(url);
    config.prefix = prefix.to_owned();
    config.limit = options.rate_limit;
    let authority = Arc::new(RedisAuthority::connect(config)?);
    serve_gateway(authority, world.store.clone(), options).await
}

pub fn new_store() -> Arc<dyn EventStore> {
    Arc::new(MemoryStore::new())
}

/// A `tools/call` JSON-RPC request.
pub fn tool_call(id: u64, a: i64, b: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "sum", "arguments": {"a": a, "b": b}}})
}

/// Posts a JSON-RPC message to a stateless upstream through the gateway.
pub async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Result<reqwest::Response> {
    Ok(http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(body)
        .send()
        .await?)
}
