//! The one-process server: store, projectors, accounts index, mailer, expiry sweep and the HTTP
//! listener, started together and stopped together.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::serve::ListenerExt;
use chrono::Utc;
use futures::future::BoxFuture;
use rollcall_analytics::{InProcessAnalytics, RedisAnalytics};
use rollcall_projection::{Projector, ProjectorConfig, ProjectorHandle, connect_redis};
use rollcall_store::{EmbeddedLog, EmbeddedOptions, EventStore};
use rollcall_tokens::{InProcessTokens, RedisTokens};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::directory::Directory;
use crate::follow::Follower;
use crate::mail::{MailTransport, Mailer, RetryPolicy};
use crate::password::{PasswordHashing, PasswordParams};
use crate::service::{Service, ServiceConfig, ServiceParts};
use crate::views::{AnalyticsUsage, ProjectionWatch, ProjectorWatch, RedisCheckpointWatch};

/// The token validity projection's name.
const TOKENS: &str = "tokens";
/// The analytics projection's name.
const ANALYTICS: &str = "analytics";

/// Pending invitations the expiry sweep records per round at most.
pub const SWEEP_INVITATIONS_MAX: usize = 500;

/// Builds extra routes (e.g. the gateway's) once the server's parts are running.
pub type RouterHook = Box<dyn FnOnce(Runtime) -> BoxFuture<'static, anyhow::Result<Router>> + Send>;

/// Who runs the token and analytics projectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProjectorMode {
    /// This process runs them (in process, or into `redis_url`): `rollcall serve`.
    #[default]
    Own,
    /// Another process (`rollcall project`) writes them into `redis_url`; this process only
    /// reads them and follows their checkpoints in Redis: `rollcall api`. Needs `redis_url`.
    ReadOnly,
}

/// Everything `rollcall serve` and `rollcall api` configure.
pub struct ServeConfig {
    /// Data directory: the embedded log (`<data_dir>/log`), the outbox, delivery statuses.
    pub data_dir: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// A shared event store (PostgreSQL, KurrentDB...); `None` opens the embedded log.
    pub store: Option<Arc<dyn EventStore>>,
    /// Redis for the token and analytics projections; `None` keeps them in process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// SMTP server for invitation emails; `None` writes them to `<data_dir>/outbox`.
    pub smtp_url: Option<String>,
    /// Sender of invitation emails.
    pub mail_from: String,
    /// Retries of failed sends.
    pub mail_retry: RetryPolicy,
    /// The URL users reach the server at, for accept links; `None` derives it from `listen`.
    pub public_url: Option<String>,
    /// Cost of password hashing.
    pub password: PasswordParams,
    /// Command retries and waits (its `public_url` is replaced by the one above).
    pub service: ServiceConfig,
    /// How often pending invitations past their expiry are recorded as expired.
    pub expiry_sweep_interval_ms: u64,
    /// Batching of the projectors.
    pub projector: ProjectorConfig,
    /// Extra routes served on the same listener (the gateway), built from the running parts.
    pub extra_routes: Vec<RouterHook>,
    /// Whether this process runs the token and analytics projectors or only reads them.
    pub projectors: ProjectorMode,
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            data_dir: PathBuf::from("./rollcall-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            store: None,
            redis_url: None,
            redis_prefix: "rollcall:".into(),
            smtp_url: None,
            mail_from: "Rollcall <rollcall@localhost>".into(),
            mail_retry: RetryPolicy::default(),
            public_url: None,
            password: PasswordParams::default(),
            service: ServiceConfig::default(),
            expiry_sweep_interval_ms: 60_000,
            projector: ProjectorConfig::default(),
            extra_routes: Vec::new(),
            projectors: ProjectorMode::Own,
        }
    }
}

/// The running parts, for extensions that serve beside the API (the gateway).
#[derive(Clone)]
pub struct Runtime {
    /// The event store.
    pub store: Arc<dyn EventStore>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Redis, when the projections live there.
    pub redis_url: Option<String>,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// Every projector this process runs, by projection name (`members`, `tokens`,
    /// `analytics`; only `members` with [`ProjectorMode::ReadOnly`]).
    pub projectors: HashMap<String, ProjectorHandle>,
    /// In-process read models by projection name, to downcast: `tokens` is an
    /// `rollcall_tokens::InProcessTokens` (absent with Redis), `analytics` an
    /// `rollcall_analytics::InProcessAnalytics` (absent with Redis).
    pub views: HashMap<String, Arc<dyn Any + Send + Sync>>,
    /// The API's service (accounts, workspaces).
    pub service: Arc<Service>,
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    service: Arc<Service>,
}

impl Server {
    /// Opens the store, starts the projectors, the accounts index, the mailer and the sweep,
    /// and starts serving. Returns once the listener is bound.
    pub async fn start(config: ServeConfig) -> anyhow::Result<Server> {
        let ServeConfig {
            data_dir,
            listen,
            store,
            redis_url,
            redis_prefix,
            smtp_url,
            mail_from,
            mail_retry,
            public_url,
            password,
            service: service_config,
            expiry_sweep_interval_ms,
            projector,
            extra_routes,
            projectors: mode,
        } = config;
        if mode == ProjectorMode::ReadOnly && redis_url.is_none() {
            anyhow::bail!("reading the projections written by `rollcall project` needs their redis: pass --redis URL");
        }
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let (store, embedded) = match store {
            Some(store) => (store, None),
            None => {
                let log = Arc::new(
                    EmbeddedLog::open(data_dir.join("log"), EmbeddedOptions::default())
                        .await
                        .with_context(|| format!("cannot open the event log in {}", data_dir.join("log").display()))?,
                );
                (log.clone() as Arc<dyn EventStore>, Some(log))
            }
        };
        let head = store.head().await.context("cannot read the head of the event log")?;

        let mut projectors = HashMap::new();
        let mut views: HashMap<String, Arc<dyn Any + Send + Sync>> = HashMap::new();
        let spawn = |projection| Projector::spawn(store.clone(), projection, projector);
        let members = rollcall_members::Members::new();
        projectors.insert("members".to_owned(), spawn(members.projection()));
        views.insert("members".into(), Arc::new(members));
        let watch = |handle: &ProjectorHandle| -> Arc<dyn ProjectionWatch> {
            Arc::new(ProjectorWatch { handle: handle.clone(), caught_up_at: head })
        };
        let (tokens_watch, usage): (Arc<dyn ProjectionWatch>, Arc<AnalyticsUsage>) = match (&redis_url, mode) {
            (Some(url), ProjectorMode::ReadOnly) => {
                let conn = connect_redis(url).await.with_context(|| format!("cannot connect to Redis at {url}"))?;
                let tokens = RedisCheckpointWatch::spawn(conn.clone(), &redis_prefix, TOKENS, head);
                let analytics_watch = RedisCheckpointWatch::spawn(conn.clone(), &redis_prefix, ANALYTICS, head);
                let analytics = RedisAnalytics::new(conn, &redis_prefix);
                (
                    Arc::new(tokens),
                    Arc::new(AnalyticsUsage { view: Arc::new(analytics), watch: Arc::new(analytics_watch) }),
                )
            }
            (Some(url), ProjectorMode::Own) => {
                let conn = connect_redis(url).await.with_context(|| format!("cannot connect to Redis at {url}"))?;
                let tokens = RedisTokens::new(conn.clone(), &redis_prefix);
                projectors.insert(TOKENS.into(), spawn(Arc::new(tokens)));
                let analytics = RedisAnalytics::new(conn, &redis_prefix);
                projectors.insert(ANALYTICS.into(), spawn(Arc::new(analytics.clone())));
                let usage = AnalyticsUsage { view: Arc::new(analytics), watch: watch(&projectors[ANALYTICS]) };
                (watch(&projectors[TOKENS]), Arc::new(usage))
            }
            (None, _) => {
                let tokens = InProcessTokens::new();
                projectors.insert(TOKENS.into(), spawn(tokens.projection()));
                views.insert(TOKENS.into(), Arc::new(tokens));
                let analytics = InProcessAnalytics::new();
                projectors.insert(ANALYTICS.into(), spawn(analytics.projection()));
                views.insert(ANALYTICS.into(), Arc::new(analytics.clone()));
                let usage = AnalyticsUsage { view: Arc::new(analytics), watch: watch(&projectors[ANALYTICS]) };
                (watch(&projectors[TOKENS]), Arc::new(usage))
            }
        };

        let directory = Arc::new(Directory::new());
        let (directory_follower, directory_task) = Follower::spawn(store.clone(), directory.clone(), "accounts")
            .await
            .context("cannot follow the event log")?;

        let transport = match &smtp_url {
            Some(url) => MailTransport::Smtp(url.clone()),
            None => MailTransport::Outbox(data_dir.join("outbox")),
        };
        let mailer = Mailer::new(&transport, &mail_from, mail_retry, Some(data_dir.join("mail-deliveries.json")))?;
        let passwords = PasswordHashing::new(password)?;

        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}: pick another address with --listen"))?;
        let local_addr = listener.local_addr()?;
        let public_url = public_url.unwrap_or_else(|| format!("http://{local_addr}"));
        let service = Arc::new(Service::new(ServiceParts {
            store: store.clone(),
            directory,
            directory_follower,
            tokens: tokens_watch,
            usage,
            mailer: mailer.clone(),
            passwords,
            config: ServiceConfig { public_url: public_url.trim_end_matches('/').to_owned(), ..service_config },
        }));

        let runtime = Runtime {
            store: store.clone(),
            data_dir: data_dir.clone(),
            redis_url: redis_url.clone(),
            redis_prefix: redis_prefix.clone(),
            projectors: projectors.clone(),
            views,
            service: service.clone(),
        };
        let mut app = crate::http::router(service.clone());
        for hook in extra_routes {
            app = app.merge(hook(runtime.clone()).await?);
        }
        drop(runtime);

        let sweep =
            tokio::spawn(sweep_expired(service.clone(), Duration::from_millis(expiry_sweep_interval_ms.max(10))));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // TCP_NODELAY: `rollcall serve` relays MCP event streams, whose small writes would
            // otherwise wait for the client's delayed acknowledgements (see the gateway's
            // `without_nagle`).
            let listener = listener.tap_io(|stream: &mut tokio::net::TcpStream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
                }
            });
            let served = axum::serve(listener, app.into_make_service())
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            // In-flight requests (and their appends) have finished; stop the background parts.
            sweep.abort();
            let _ = sweep.await;
            mailer.shutdown().await;
            directory_task.abort();
            let _ = directory_task.await;
            for handle in projectors.values() {
                handle.stop().await;
            }
            drop(projectors);
            if let Some(log) = embedded {
                close_log(log).await;
            }
            served.context("the HTTP server failed")
        });
        tracing::info!(%local_addr, %public_url, "rollcall is listening");
        Ok(Server { local_addr, stop: Some(stop), task, service })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The service behind the routes.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Stops accepting, lets in-flight requests finish, stops the background parts and closes
    /// the log.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Server { task, service, .. } = self;
        drop(service);
        task.await.context("the server task panicked")?
    }
}

/// Runs the server until `shutdown` completes, then shuts down cleanly.
pub async fn run(config: ServeConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let server = Server::start(config).await?;
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await
}

async fn sweep_expired(service: Arc<Service>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let expired = service.expire_invitations(Utc::now(), SWEEP_INVITATIONS_MAX).await;
        if expired > 0 {
            tracing::info!(expired, "recorded expired invitations");
        }
    }
}

/// Closes the embedded log once every other holder (router, followers) has let go of it.
async fn close_log(log: Arc<EmbeddedLog>) {
    let mut log = log;
    for _ in 0..100 {
        match Arc::try_unwrap(log) {
            Ok(owned) => {
                owned.close().await;
                return;
            }
            Err(shared) => {
                log = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    tracing::warn!("the event log is still in use at shutdown; it closes when its last user ends");
}
