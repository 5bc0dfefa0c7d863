//! Append throughput: concurrent appenders of ~300-byte events to `calls-*` streams with
//! `ExpectedRevision::Any`, into a fresh schema that is dropped afterwards.
//!
//! `cargo run --release -p rollcall-store-postgres --example throughput -- [appenders] [seconds] [group_commit_appends_max]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use rollcall_store::{Actor, EventStore, ExpectedRevision, Metadata, NewEvent};
use rollcall_store_postgres::{PostgresOptions, PostgresStore};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let appenders: usize = args.get(1).map_or(Ok(256), |a| a.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(10), |a| a.parse())?;
    let group: usize = args.get(3).map_or(Ok(64), |a| a.parse())?;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let mut options = PostgresOptions::with_schema(&schema);
    options.group_commit_appends_max = group;
    let store = Arc::new(PostgresStore::connect(&url, options).await?);

    let payload = Bytes::from(format!(
        r#"{{"workspace_id":"{}","member_id":"{}","tool":"search_documents","duration_ms":42,"status":"ok","request_bytes":1834,"response_bytes":20411,"client":"claude-desktop/1.0","pad":"{}"}}"#,
        Uuid::new_v4(),
        Uuid::new_v4(),
        "x".repeat(60)
    ));
    let appended = Arc::new(AtomicU64::new(0));
    let latencies_us = Arc::new(std::sync::Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..appenders)
        .map(|a| {
            let (store, payload, appended, latencies_us) =
                (store.clone(), payload.clone(), appended.clone(), latencies_us.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    let event = NewEvent {
                        id: Uuid::new_v4(),
                        event_type: "ToolCalled".into(),
                        schema_version: 1,
                        data: payload.clone(),
                        metadata: Metadata {
                            actor: Actor::System,
                            correlation_id: Uuid::new_v4(),
                            causation_id: None,
                            recorded_at: Utc::now(),
                        },
                    };
                    let started = Instant::now();
                    store.append(&format!("calls-{a}"), ExpectedRevision::Any, vec![event]).await?;
                    mine.push(started.elapsed().as_micros() as u64);
                    appended.fetch_add(1, Ordering::Relaxed);
                }
                latencies_us.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.extend(mine);
                anyhow::Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies_us.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    let n = appended.load(Ordering::Relaxed);
    println!(
        "appenders={appenders} group_commit_appends_max={group} events={n} seconds={elapsed:.1} events_per_s={:.0} p50_ms={:.1} p99_ms={:.1}",
        n as f64 / elapsed,
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0
    );
    drop(store);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await?;
    Ok(())
}
