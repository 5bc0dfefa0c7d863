//! `replay --projections`: rebuilds the member list, the token view and the analytics from a
//! log of realistic traffic, in process and into Redis, next to a bare read of the same log.
//!
//! The log holds about 50 workspaces of 20 members and 2 bots each, their invitations and
//! acceptances, a few removals, and then tool calls and their completions (with some denials
//! and rate-limit windows) in bursts per token, as a gateway appends them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use rollcall_analytics::{InProcessAnalytics, RedisAnalytics};
use rollcall_core::Plan;
use rollcall_core::events::Role;
use rollcall_members::Members;
use rollcall_projection::history::{HistoryBuilder, Step};
use rollcall_projection::{Projection, bench, connect_redis};
use rollcall_store::{EmbeddedLog, EmbeddedOptions, EventStore};
use rollcall_tokens::{InProcessTokens, RedisTokens};
use serde_json::json;

/// Workspaces in the generated log.
pub const WORKSPACES: usize = 50;
/// Members per workspace (besides the owner).
pub const MEMBERS_PER_WORKSPACE: usize = 20;
/// Activities (a call and its completion, a denial or a rate-limit window) per append.
pub const BURST_ACTIVITIES: usize = 25;
/// Appends in flight at once while filling the log (group commit batches them).
pub const APPENDS_IN_FLIGHT_MAX: usize = 64;

/// What to run.
#[derive(Clone, Debug)]
pub struct ProjectionsArgs {
    /// Events in the log (about; the last burst may overshoot).
    pub events: u64,
    /// The log's folder (a fresh temporary one when `None`); an existing log with enough
    /// events is reused as is.
    pub data_dir: Option<PathBuf>,
    /// Redis for the Redis targets.
    pub redis_url: String,
    /// Events per page read, and so per batch applied.
    pub page_events: usize,
}

impl Default for ProjectionsArgs {
    fn default() -> ProjectionsArgs {
        ProjectionsArgs {
            events: 1_000_000,
            data_dir: None,
            redis_url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
            page_events: bench::REBUILD_PAGE_EVENTS,
        }
    }
}

/// Runs the benchmark and returns its figures as JSON.
pub async fn run(args: &ProjectionsArgs) -> anyhow::Result<serde_json::Value> {
    let temp;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("create a temporary folder for the log")?;
            temp.path().to_path_buf()
        }
    };
    let log = Arc::new(EmbeddedLog::open(&dir, EmbeddedOptions::default()).await.context("open the log")?);
    let fill_started = std::time::Instant::now();
    if log.head().await?.sequence() < args.events {
        fill(log.clone(), args.events).await?;
    }
    let fill_s = fill_started.elapsed().as_secs_f64();
    let store: Arc<dyn EventStore> = log.clone();

    let read = bench::read_log(&*store, args.page_events).await?;

    let (tokens, analytics, members) = (InProcessTokens::new(), InProcessAnalytics::new(), Members::new());
    let in_process_targets: Vec<Arc<dyn Projection>> =
        vec![tokens.projection(), analytics.projection(), members.projection()];
    let in_process = bench::rebuild_all(store.clone(), &in_process_targets, args.page_events).await?;
    let subjects = analytics.snapshot().map_or(0, |s| s.subjects.len());
    let token_count = tokens.snapshot().map_or(0, |s| s.tokens.len());
    drop(in_process_targets);
    drop((tokens, analytics, members));

    let conn = connect_redis(&args.redis_url).await.with_context(|| {
        format!(
            "connect to redis at {}: start one with `redis-server --daemonize yes --port 6379 --save \"\" --appendonly no`",
            args.redis_url
        )
    })?;
    let prefix = format!("bench:{}:", std::process::id());
    let redis_tokens = RedisTokens::new(conn.clone(), &prefix);
    let redis_analytics = RedisAnalytics::new(conn, &prefix);
    let redis_targets: Vec<Arc<dyn Projection>> =
        vec![Arc::new(redis_tokens.clone()), Arc::new(redis_analytics.clone())];
    let redis = bench::rebuild_all(store.clone(), &redis_targets, args.page_events).await?;
    redis_tokens.target().delete_all().await?;
    redis_analytics.target().delete_all().await?;

    Ok(json!({
        "events": read.events_read,
        "fill_s": fill_s,
        "log_read_events_per_s": read.events_per_s,
        "log_read_s": read.elapsed.as_secs_f64(),
        "in_process_events_per_s": in_process.events_per_s,
        "in_process_s": in_process.elapsed.as_secs_f64(),
        "in_process_projections": ["members", "tokens", "analytics"],
        "redis_events_per_s": redis.events_per_s,
        "redis_s": redis.elapsed.as_secs_f64(),
        "redis_projections": ["tokens", "analytics"],
        "events_decoded": in_process.events_decoded,
        "tokens": token_count,
        "subjects_with_usage": subjects,
    }))
}

/// Writes the membership history, then bursts of tool activity, until about `events`.
async fn fill(log: Arc<EmbeddedLog>, events: u64) -> anyhow::Result<()> {
    let mut history = HistoryBuilder::new(
        Utc.with_ymd_and_hms(2025, 1, 6, 8, 0, 0).single().context("a valid start time")?,
        WORKSPACES * (MEMBERS_PER_WORKSPACE + 1),
    );
    let mut written = 0u64;
    let append = |step: Step, log: Arc<EmbeddedLog>| async move { step.append(&*log).await };
    for w in 0..WORKSPACES {
        let owner = w * (MEMBERS_PER_WORKSPACE + 1);
        let mut steps = vec![history.create_workspace(&format!("team-{w:02}"), Plan::Business, owner)];
        for m in 1..=MEMBERS_PER_WORKSPACE {
            steps.push(history.invite(w, owner + m, if m == 1 { Role::Admin } else { Role::Member }));
            steps.push(history.accept(w, 0));
        }
        for bot in 0..2u8 {
            steps.push(history.random_op(6, w as u8, bot));
        }
        // A workspace's steps depend on each other (expected revisions): append them in order.
        for step in steps.into_iter().flatten() {
            written += step.events.len() as u64;
            append(step, log.clone()).await?;
        }
    }
    let mut round = 0u64;
    while written < events {
        let mut in_flight = Vec::with_capacity(APPENDS_IN_FLIGHT_MAX);
        for _ in 0..APPENDS_IN_FLIGHT_MAX {
            round += 1;
            let w = (round.wrapping_mul(7919) % WORKSPACES as u64) as usize;
            let b = (round.wrapping_mul(2_654_435_761) >> 13) as u8;
            let kind = 13 + (round % 3) as u8;
            let Some(mut burst) = history.activity(w, kind, b) else { continue };
            for _ in 1..BURST_ACTIVITIES {
                if let Some(more) = history.activity(w, kind, b) {
                    burst.events.extend(more.events);
                }
            }
            written += burst.events.len() as u64;
            in_flight.push(tokio::spawn(append(burst, log.clone())));
        }
        for task in in_flight {
            task.await.context("an append task failed")??;
        }
        // Now and then someone leaves, so revocations and denials are part of the traffic.
        if round.is_multiple_of(APPENDS_IN_FLIGHT_MAX as u64 * 20) {
            let w = (round % WORKSPACES as u64) as usize;
            let person = w * (MEMBERS_PER_WORKSPACE + 1) + 2 + (round as usize / 1000) % (MEMBERS_PER_WORKSPACE - 1);
            if let Some(step) = history.remove(w, person) {
                written += step.events.len() as u64;
                append(step, log.clone()).await?;
            }
        }
    }
    Ok(())
}
