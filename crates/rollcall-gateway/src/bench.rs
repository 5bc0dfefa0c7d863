//! The gateway benchmark: a fast local upstream MCP server, load of `tools/call` from many
//! concurrent clients directly, through nginx as a plain reverse proxy, and through the gateway
//! with Redis; then 10,000 open event streams through the gateway and its resident memory.
//!
//! The gateway runs in a child process (`rollcall-bench serve-gateway`) so that its memory and
//! CPU are its own, as nginx's are.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rollcall_core::{Secret, SecretKind, TokenId, WorkspaceId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{FixedUpstreams, Gateway, GatewayOptions, RedisAuthority, RedisAuthorityConfig, UpstreamProtocol, router};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Seconds of load per measurement.
    pub duration_s: u64,
    /// Concurrent clients at peak load.
    pub concurrency: usize,
    /// Event streams to hold open for the memory measurement.
    pub streams: usize,
    /// Tokens the load is spread over (each stays far below its rate limit).
    pub tokens: usize,
    /// The executable that serves the gateway (`serve-gateway`); defaults to this one.
    pub gateway_exe: Option<PathBuf>,
    /// Where the gateway appends its events.
    pub store: BenchStore,
}

/// The event store of the benchmarked gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchStore {
    /// The embedded log with group commit and fsync: the default deployment.
    Embedded,
    /// In memory: shows what durability costs.
    Memory,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            duration_s: 5,
            concurrency: 64,
            streams: 10_000,
            tokens: 10_000,
            gateway_exe: None,
            store: BenchStore::Embedded,
        }
    }
}

/// Settings of the gateway child process.
#[derive(Clone, Debug)]
pub struct ServeGateway {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Redis URL.
    pub redis: String,
    /// Redis key prefix.
    pub prefix: String,
    /// The benchmark workspace.
    pub workspace_id: WorkspaceId,
    /// Its upstream.
    pub upstream: String,
    /// HTTP version towards the upstream.
    pub protocol: UpstreamProtocol,
    /// The embedded log's directory; `None` keeps the log in memory.
    pub store_dir: Option<PathBuf>,
}

/// Serves a gateway over an in-memory store until killed (the benchmark's child process).
pub async fn serve_gateway(settings: ServeGateway) -> Result<()> {
    let store: Arc<dyn rollcall_store::EventStore> = match &settings.store_dir {
        Some(dir) => {
            Arc::new(rollcall_store::EmbeddedLog::open(dir, rollcall_store::EmbeddedOptions::default()).await?)
        }
        None => Arc::new(rollcall_store::MemoryStore::new()),
    };
    let mut redis = RedisAuthorityConfig::new(&settings.redis);
    redis.prefix = settings.prefix;
    let options = GatewayOptions { upstream_protocol: settings.protocol, ..GatewayOptions::default() };
    redis.limit = options.rate_limit;
    let authority = Arc::new(RedisAuthority::connect(redis)?);
    let upstreams = Arc::new(FixedUpstreams::new().with(settings.workspace_id, settings.upstream));
    let gateway = Gateway::new(authority, upstreams, store, options)?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    axum::serve(crate::without_nagle(listener), router(gateway).into_make_service()).await?;
    Ok(())
}

/// Runs every measurement and returns the figures as JSON.
pub async fn run(options: BenchOptions) -> Result<Value> {
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("cannot raise the open-files limit")?;
    let load_at_start = load_average_1m();
    let upstream = start_upstream().await?;
    let upstream_url = format!("http://{upstream}/mcp");
    let redis = PrivateRedis::start()?;
    let mut redis_connection = redis.wait_ready().await?;
    let prefix = "rollcall-bench:".to_owned();
    let workspace_id = WorkspaceId(Uuid::new_v4());
    let tokens = put_tokens(&mut redis_connection, &prefix, workspace_id, options.tokens).await?;
    let tokens = Arc::new(tokens);
    let nginx = Nginx::start(upstream)?;
    let exe = match &options.gateway_exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()?,
    };
    let gateway = GatewayProcess::start(
        &exe,
        &redis.url(),
        &prefix,
        workspace_id,
        &upstream_url,
        UpstreamProtocol::Http1,
        options.store,
    )?;
    for url in [&upstream_url, &nginx.url(), &gateway.url()] {
        wait_http(url, &tokens[0]).await.with_context(|| format!("{url} did not come up"))?;
    }

    let duration = Duration::from_secs(options.duration_s);
    let concurrency = options.concurrency;
    // Warm up every path's connection pools.
    for url in [&upstream_url, &nginx.url(), &gateway.url()] {
        closed_loop(url, &tokens, concurrency, Duration::from_millis(500)).await?;
    }
    let processes = Processes { nginx: nginx.child.id(), gateway: gateway.child.id(), redis: redis.child.id() };
    let cpu = processes.cpu();
    let direct = closed_loop(&upstream_url, &tokens, concurrency, duration).await?;
    let cpu_direct = processes.cpu().since(&cpu);
    let via_nginx = closed_loop(&nginx.url(), &tokens, concurrency, duration).await?;
    let cpu_nginx = processes.cpu().since(&cpu_direct.end);
    // Counts from here on are the gateway measurement's alone.
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut redis_connection).await?;
    let via_gateway = closed_loop(&gateway.url(), &tokens, concurrency, duration).await?;
    let cpu_gateway = processes.cpu().since(&cpu_nginx.end);
    let (script_calls, redis_usec_per_check) = script_stats(&mut redis_connection).await?;
    let round_trips = script_calls as f64 / via_gateway.requests.max(1) as f64;

    let half_rate = via_gateway.rps() / 2.0;
    let direct_half = paced_loop(&upstream_url, &tokens, half_rate, concurrency, duration).await?;
    // nginx at the same rate is the control: what one more process hop costs on this machine.
    let nginx_half = paced_loop(&nginx.url(), &tokens, half_rate, concurrency, duration).await?;
    let stages_before = Stages::read(&gateway.base()).await?;
    let gateway_half = paced_loop(&gateway.url(), &tokens, half_rate, concurrency, duration).await?;
    let stages = Stages::read(&gateway.base()).await?.since(&stages_before);
    let added_p99_ms = gateway_half.p99_ms() - direct_half.p99_ms();
    drop(gateway);

    let streams_gateway = GatewayProcess::start(
        &exe,
        &redis.url(),
        &prefix,
        workspace_id,
        &upstream_url,
        UpstreamProtocol::H2c,
        options.store,
    )?;
    wait_http(&streams_gateway.url(), &tokens[0]).await?;
    let (opened, rss_mib) = open_streams(&streams_gateway, &tokens, options.streams).await?;

    let ratio = via_gateway.rps() / via_nginx.rps().max(1.0);
    Ok(json!({
        "load_average_1m": {"start": load_at_start, "end": load_average_1m()},
        "direct": direct.summary(),
        "nginx": via_nginx.summary(),
        "gateway": via_gateway.summary(),
        "gateway_to_nginx_ratio": round3(ratio),
        "load_50pct": {
            "rate_rps": round3(half_rate),
            "direct": direct_half.summary(),
            "nginx": nginx_half.summary(),
            "gateway": gateway_half.summary(),
            "nginx_added_p99_ms": round3(nginx_half.p99_ms() - direct_half.p99_ms()),
            "gateway_stages": stages.summary(),
        },
        "cpu_us_per_request": {
            "direct": cpu_direct.per_request(direct.requests),
            "nginx": cpu_nginx.per_request(via_nginx.requests),
            "gateway": cpu_gateway.per_request(via_gateway.requests),
        },
        "added_p99_ms": round3(added_p99_ms),
        "redis_round_trips_per_request": round3(round_trips),
        "redis_usec_per_check": round3(redis_usec_per_check),
        "rss_mib_10k_streams": round3(rss_mib),
        "streams_opened": opened,
        "settings": {
            "duration_s": options.duration_s,
            "concurrency": concurrency,
            "tokens": options.tokens,
            "open_files_limit": nofile,
            "store": match options.store {
                BenchStore::Embedded => "embedded log, group commit with fsync (in the gateway process)",
                BenchStore::Memory => "memory (in the gateway process)",
            },
            "upstream_protocol_for_streams": "h2c",
        },
        "goals": {
            "gateway_to_nginx_ratio_min": 0.7,
            "added_p99_ms_max": 2.0,
            "redis_round_trips_per_request": 1.0,
            "rss_mib_10k_streams_max": 256.0,
            "met": ratio >= 0.7 && added_p99_ms <= 2.0 && (round_trips - 1.0).abs() < 0.01 && rss_mib < 256.0,
        },
    }))
}

/// The gateway's own latency histograms (`/metrics`), which split its added latency into its
/// parts: the token check, the wait for a call's durable record, the upstream's answer, and the
/// whole request as the gateway sees it.
struct Stages(Vec<Stage>);

/// One histogram: cumulative buckets (upper bound in seconds, count) and the sum in seconds.
struct Stage {
    name: &'static str,
    buckets: Vec<(f64, u64)>,
    sum_s: f64,
}

const STAGES: [(&str, &str); 4] = [
    ("check", "rollcall_gateway_check_seconds"),
    ("record", "rollcall_gateway_record_seconds"),
    ("upstream", "rollcall_gateway_upstream_seconds"),
    ("request", "rollcall_gateway_request_seconds"),
];

impl Stages {
    async fn read(base: &str) -> Result<Stages> {
        let text = reqwest::get(format!("{base}/metrics")).await?.text().await?;
        Ok(Stages(
            STAGES
                .iter()
                .map(|(name, metric)| {
                    let (buckets, sum_s) = histogram(&text, metric);
                    Stage { name, buckets, sum_s }
                })
                .collect(),
        ))
    }

    fn since(self, start: &Stages) -> Stages {
        Stages(
            self.0
                .into_iter()
                .zip(&start.0)
                .map(|(now, then)| Stage {
                    name: now.name,
                    buckets: now
                        .buckets
                        .into_iter()
                        .map(|(le, n)| {
                            let before = then.buckets.iter().find(|(l, _)| *l == le).map_or(0, |(_, m)| *m);
                            (le, n.saturating_sub(before))
                        })
                        .collect(),
                    sum_s: now.sum_s - then.sum_s,
                })
                .collect(),
        )
    }

    fn summary(&self) -> Value {
        let stages = self.0.iter().map(|stage| {
            let count = stage.buckets.last().map_or(0, |(_, n)| *n);
            // The upper bound of the bucket that holds each percentile.
            let at_most = |p: f64| {
                stage
                    .buckets
                    .iter()
                    .find(|(_, n)| *n as f64 >= p * count as f64)
                    .map(|(le, _)| *le * 1000.0)
                    .filter(|v| v.is_finite())
                    .map(round3)
            };
            let summary = json!({
                "mean_ms": round3(stage.sum_s * 1000.0 / count.max(1) as f64),
                "p50_ms_at_most": at_most(0.5),
                "p99_ms_at_most": at_most(0.99),
                "count": count,
            });
            (stage.name.to_owned(), summary)
        });
        Value::Object(stages.collect())
    }
}

/// A Prometheus histogram's cumulative buckets (upper bound in seconds, count) and its sum.
fn histogram(text: &str, name: &str) -> (Vec<(f64, u64)>, f64) {
    let bucket_prefix = format!("{name}_bucket{{le=\"");
    let sum_prefix = format!("{name}_sum ");
    let mut buckets = Vec::new();
    let mut sum = 0.0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&bucket_prefix)
            && let Some((le, count)) = rest.split_once("\"} ")
        {
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            buckets.push((le, count.parse().unwrap_or(0)));
        } else if let Some(value) = line.strip_prefix(&sum_prefix) {
            sum = value.parse().unwrap_or(0.0);
        }
    }
    (buckets, sum)
}

/// The processes whose CPU time the benchmark accounts for.
struct Processes {
    nginx: u32,
    gateway: u32,
    redis: u32,
}

/// CPU time used so far, in clock ticks, by each process of a measurement.
#[derive(Clone, Copy, Default)]
struct CpuTicks {
    /// This process: the load generator and the upstream.
    load_and_upstream: u64,
    /// nginx's master and workers.
    nginx: u64,
    gateway: u64,
    redis: u64,
}

/// CPU ticks spent during one measurement, and the reading it ended at.
struct CpuSpent {
    spent: CpuTicks,
    end: CpuTicks,
}

impl Processes {
    fn cpu(&self) -> CpuTicks {
        let nginx_workers: u64 = children_of(self.nginx).iter().map(|pid| process_ticks(*pid)).sum();
        CpuTicks {
            load_and_upstream: process_ticks(std::process::id()),
            nginx: process_ticks(self.nginx) + nginx_workers,
            gateway: process_ticks(self.gateway),
            redis: process_ticks(self.redis),
        }
    }
}

impl CpuTicks {
    fn since(self, start: &CpuTicks) -> CpuSpent {
        CpuSpent {
            spent: CpuTicks {
                load_and_upstream: self.load_and_upstream.saturating_sub(start.load_and_upstream),
                nginx: self.nginx.saturating_sub(start.nginx),
                gateway: self.gateway.saturating_sub(start.gateway),
                redis: self.redis.saturating_sub(start.redis),
            },
            end: self,
        }
    }
}

impl CpuSpent {
    /// Microseconds of CPU per request, by process: what each request costs the machine.
    fn per_request(&self, requests: u64) -> Value {
        let us = |ticks: u64| round3(ticks as f64 * 1e6 / CLOCK_TICKS_PER_S / requests.max(1) as f64);
        let spent = &self.spent;
        let total = spent.load_and_upstream + spent.nginx + spent.gateway + spent.redis;
        json!({
            "load_and_upstream": us(spent.load_and_upstream),
            "nginx": us(spent.nginx),
            "gateway": us(spent.gateway),
            "redis": us(spent.redis),
            "total": us(total),
        })
    }
}

/// Linux's `USER_HZ`, the unit of the CPU times in `/proc/<pid>/stat`, is 100 on every
/// architecture Linux supports.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// The fields of `/proc/<pid>/stat` after the command name (which may contain spaces), counted
/// from 0: the state is 0, the parent 1, user and system CPU time 11 and 12.
fn stat_fields(pid: u32) -> Vec<String> {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Vec::new() };
    stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
}

/// User plus system CPU time of a process (all its threads), in clock ticks; 0 if it is gone.
fn process_ticks(pid: u32) -> u64 {
    let fields = stat_fields(pid);
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// The processes whose parent is `pid` (nginx's workers).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| stat_fields(*child).get(1).and_then(|parent| parent.parse().ok()) == Some(pid))
        .collect()
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Latencies of one measurement.
struct Measurement {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Measurement {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }

    fn p99_ms(&self) -> f64 {
        self.percentile_ms(0.99)
    }

    fn summary(&self) -> Value {
        json!({
            "rps": round3(self.rps()),
            "p50_ms": round3(self.percentile_ms(0.5)),
            "p99_ms": round3(self.p99_ms()),
            "requests": self.requests,
            "errors": self.errors,
        })
    }

    fn from_parts(parts: Vec<(u64, Vec<u32>)>, elapsed: Duration) -> Measurement {
        let mut latencies_us = Vec::new();
        let mut errors = 0;
        for (e, l) in parts {
            errors += e;
            latencies_us.extend(l);
        }
        latencies_us.sort_unstable();
        Measurement { requests: latencies_us.len() as u64, errors, elapsed, latencies_us }
    }
}

fn call_body(id: u64) -> Bytes {
    Bytes::from(
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "answer", "arguments": {"q": "life"}}})
            .to_string(),
    )
}

async fn one_call(http: &reqwest::Client, url: &str, token: &str, id: u64) -> Result<()> {
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(call_body(id))
        .send()
        .await?;
    let status = response.status();
    let _ = response.bytes().await?;
    if !status.is_success() {
        bail!("status {status}");
    }
    Ok(())
}

/// `concurrency` clients, each sending the next request when the last answered.
async fn closed_loop(
    url: &str,
    tokens: &Arc<Vec<String>>,
    concurrency: usize,
    duration: Duration,
) -> Result<Measurement> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).tcp_nodelay(true).build()?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let http = http.clone();
        let url = url.to_owned();
        let tokens = tokens.clone();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(65_536);
            let mut errors = 0u64;
            let mut i = worker;
            while Instant::now() < deadline {
                let token = &tokens[i % tokens.len()];
                let sent = Instant::now();
                match one_call(&http, &url, token, i as u64).await {
                    Ok(()) => latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(_) => errors += 1,
                }
                i += concurrency;
            }
            (errors, latencies)
        });
    }
    let parts = workers.join_all().await;
    Ok(Measurement::from_parts(parts, started.elapsed()))
}

/// Requests at a fixed total rate from `concurrency` paced clients: each sends on its own
/// schedule and never more than one request at a time, so an overloaded target cannot make the
/// load generator spiral into thousands of connections.
async fn paced_loop(
    url: &str,
    tokens: &Arc<Vec<String>>,
    rate: f64,
    concurrency: usize,
    duration: Duration,
) -> Result<Measurement> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).tcp_nodelay(true).build()?;
    let interval = Duration::from_secs_f64(concurrency as f64 / rate.max(1.0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let http = http.clone();
        let url = url.to_owned();
        let tokens = tokens.clone();
        // Spread the workers' schedules over one interval.
        let mut next = tokio::time::Instant::now() + interval.mul_f64(worker as f64 / concurrency as f64);
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(16_384);
            let mut errors = 0u64;
            let mut i = worker;
            while Instant::now() < deadline {
                tokio::time::sleep_until(next).await;
                next += interval;
                let token = &tokens[i % tokens.len()];
                let sent = Instant::now();
                match one_call(&http, &url, token, i as u64).await {
                    Ok(()) => latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(_) => errors += 1,
                }
                i += concurrency;
            }
            (errors, latencies)
        });
    }
    let parts = workers.join_all().await;
    Ok(Measurement::from_parts(parts, started.elapsed()))
}

/// Opens `count` event streams through the gateway, each on its own connection, and reads the
/// gateway's resident memory while they are open.
async fn open_streams(gateway: &GatewayProcess, tokens: &Arc<Vec<String>>, count: usize) -> Result<(usize, f64)> {
    let url = gateway.url();
    let mut held = Vec::with_capacity(count);
    let mut batch = tokio::task::JoinSet::new();
    let mut failures = 0usize;
    for i in 0..count {
        let url = url.clone();
        let token = tokens[i % tokens.len()].clone();
        batch.spawn(async move {
            // One client per stream: one connection per stream, as separate MCP clients have.
            let http = reqwest::Client::builder().http1_only().build()?;
            let response = http.get(&url).bearer_auth(&token).header("accept", "text/event-stream").send().await?;
            if !response.status().is_success() {
                bail!("status {}", response.status());
            }
            let mut body = response.bytes_stream();
            // The first event proves the stream is relayed end to end.
            let first = tokio::time::timeout(Duration::from_secs(10), body.next()).await?;
            if !matches!(first, Some(Ok(_))) {
                bail!("the stream ended before its first event");
            }
            Ok((http, body))
        });
        if batch.len() >= 256 {
            while let Some(r) = batch.join_next().await {
                match r? {
                    Ok(stream) => held.push(stream),
                    Err(_) => failures += 1,
                }
            }
        }
    }
    while let Some(r) = batch.join_next().await {
        match r? {
            Ok(stream) => held.push(stream),
            Err(_) => failures += 1,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_mib = gateway.rss_mib()?;
    if failures > 0 {
        tracing::warn!(failures, "some event streams could not be opened");
    }
    let opened = held.len();
    drop(held);
    Ok((opened, rss_mib))
}

async fn wait_http(url: &str, token: &str) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if one_call(&http, url, token, 0).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no successful call to {url}")
}

/// Writes `count` member tokens into Redis exactly as the token projection does.
async fn put_tokens(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    workspace_id: WorkspaceId,
    count: usize,
) -> Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(count);
    let mut pipe = redis::pipe();
    for _ in 0..count {
        let mut random = [0u8; 32];
        random[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        random[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        let secret = Secret::generate(SecretKind::MemberToken, random);
        pipe.cmd("HSET")
            .arg(format!("{prefix}token:{}", secret.hash().to_hex()))
            .arg("workspace_id")
            .arg(workspace_id.to_string())
            .arg("workspace")
            .arg("bench")
            .arg("kind")
            .arg("member")
            .arg("subject_id")
            .arg(Uuid::new_v4().to_string())
            .arg("token_id")
            .arg(TokenId(Uuid::new_v4()).to_string())
            .arg("label")
            .arg("bench@example.com")
            .arg("status")
            .arg("active")
            .ignore();
        tokens.push(secret.expose().to_owned());
    }
    pipe.cmd("SET").arg(format!("{prefix}checkpoint:tokens")).arg("1").ignore();
    let _: () = pipe.query_async(redis).await?;
    Ok(tokens)
}

/// Script calls (`evalsha` and `eval`) since Redis's statistics were reset, and Redis's own
/// time per script call in microseconds, from one `INFO commandstats`.
async fn script_stats(redis: &mut redis::aio::MultiplexedConnection) -> Result<(u64, f64)> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(redis).await?;
    let (mut calls, mut usec) = (0u64, 0.0f64);
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_evalsha:").or_else(|| line.strip_prefix("cmdstat_eval:")) else {
            continue;
        };
        let field = |name: &str| rest.split(',').find_map(|kv| kv.strip_prefix(name)).unwrap_or("0");
        let these: u64 = field("calls=").parse().unwrap_or(0);
        calls += these;
        usec += field("usec=").parse::<f64>().unwrap_or(0.0);
    }
    Ok((calls, if calls == 0 { 0.0 } else { usec / calls as f64 }))
}

type UpstreamBody = BoxBody<Bytes, Infallible>;

/// A minimal, fast MCP server: `tools/call` answers JSON, GET opens an event stream that stays
/// open. HTTP/1.1 and HTTP/2 (h2c) on one port.
async fn start_upstream() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(100_000);
                let service = hyper::service::service_fn(upstream_answer);
                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(addr)
}

async fn upstream_answer(request: Request<Incoming>) -> Result<Response<UpstreamBody>, Infallible> {
    let response = match *request.method() {
        Method::POST => {
            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let id =
                serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("id").cloned()).unwrap_or(Value::Null);
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "42"}], "isError": false}});
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(answer.to_string())).boxed())
        }
        Method::GET => {
            let first =
                futures::stream::once(async { Ok::<_, Infallible>(Frame::data(Bytes::from_static(b": open\n\n"))) });
            let stream = first.chain(futures::stream::pending());
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(stream)))
        }
        _ => Response::builder().body(Full::new(Bytes::new()).boxed()),
    };
    Ok(response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed())))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A redis-server of the benchmark's own, so its command statistics count only the gateway.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start() -> Result<PrivateRedis> {
        let port = free_port()?;
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
        let client = redis::Client::open(self.url())?;
        for _ in 0..100 {
            if let Ok(connection) = client.get_multiplexed_async_connection().await {
                return Ok(connection);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("redis-server did not start on port {}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx as a plain reverse proxy with keep-alive to the upstream, as one would deploy it.
struct Nginx {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Result<Nginx> {
        let dir = TempDir::new("rollcall-bench-nginx")?;
        let port = free_port()?;
        let path = dir.path.display();
        let config = format!(
            "worker_processes auto;\npid {path}/nginx.pid;\nerror_log {path}/error.log warn;\n\
             events {{ worker_connections 20000; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {path}/body;\n  proxy_temp_path {path}/proxy;\n\
             fastcgi_temp_path {path}/fastcgi;\n  uwsgi_temp_path {path}/uwsgi;\n  scgi_temp_path {path}/scgi;\n\
             upstream mcp {{ server {upstream}; keepalive 256; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://mcp;\n\
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
        );
        let conf = dir.path.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start nginx: install it (apt-get install -y nginx)")?;
        Ok(Nginx { child, port, _dir: dir })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: a killed master leaves its workers running.
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The 1-minute load average, from `/proc/loadavg`: figures on a shared machine mean little
/// without it.
fn load_average_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// The gateway in a child process.
struct GatewayProcess {
    child: Child,
    port: u16,
    _store: TempDir,
}

impl GatewayProcess {
    fn start(
        exe: &std::path::Path,
        redis: &str,
        prefix: &str,
        workspace_id: WorkspaceId,
        upstream: &str,
        protocol: UpstreamProtocol,
        store_kind: BenchStore,
    ) -> Result<GatewayProcess> {
        let port = free_port()?;
        let store = TempDir::new("rollcall-bench-log")?;
        let store_args: Vec<std::ffi::OsString> = match store_kind {
            BenchStore::Embedded => vec!["--store-dir".into(), store.path.clone().into()],
            BenchStore::Memory => Vec::new(),
        };
        let protocol = match protocol {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::H2c => "h2c",
        };
        let child = Command::new(exe)
            .args(["serve-gateway", "--listen", &format!("127.0.0.1:{port}"), "--redis", redis, "--prefix", prefix])
            .args([
                "--workspace-id",
                &workspace_id.to_string(),
                "--upstream",
                upstream,
                "--upstream-protocol",
                protocol,
            ])
            .args(store_args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the gateway from {}", exe.display()))?;
        Ok(GatewayProcess { child, port, _store: store })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc status")?;
        Ok(kib / 1024.0)
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!("{name}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
