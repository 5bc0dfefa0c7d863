//! `--store URL`: the same append workload on a server backend, beside the embedded log.
//!
//! `postgres://...` or `postgresql://...` (optionally `?schema=NAME`; by default a fresh schema
//! per run, dropped by nobody: point it at a scratch database). KurrentDB is measured with the
//! contract suite's URL form only in builds with the `kurrentdb` feature, which this harness
//! does not enable.

use std::sync::Arc;

use anyhow::Context;
use rollcall_store::EventStore;
use serde_json::{Value, json};

use crate::append;
use crate::workload::TokenStream;

/// A server-backed store for the benchmark, and its name in the report.
pub struct BenchStore {
    /// The store.
    pub store: Arc<dyn EventStore>,
    /// `postgres`.
    pub backend: &'static str,
}

/// Opens the store named by `--store`.
pub async fn open(spec: &str) -> anyhow::Result<BenchStore> {
    let scheme = spec.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            let (url, schema) = take_parameter(spec, "schema");
            let schema = schema.unwrap_or_else(|| format!("bench_{}", uuid::Uuid::new_v4().simple()));
            let options = rollcall_store_postgres::PostgresOptions::with_schema(schema);
            let store = rollcall_store_postgres::PostgresStore::connect(&url, options)
                .await
                .context("cannot open the postgresql store given with --store")?;
            Ok(BenchStore { store: Arc::new(store), backend: "postgres" })
        }
        _ => anyhow::bail!("--store takes a postgres://... URL (the embedded log is always measured)"),
    }
}

/// Runs the append workload on `store`; the same fields as the embedded log's figures.
pub async fn append_report(
    store: &BenchStore,
    tokens: Arc<Vec<TokenStream>>,
    events: u64,
    tasks: usize,
) -> anyhow::Result<Value> {
    let run = append::run_append(store.store.clone(), tokens, events, tasks).await?;
    let caught_up = append::catch_up(&*store.store, run.events).await?;
    Ok(json!({
        "backend": store.backend,
        "events": run.events,
        "tasks": tasks,
        "elapsed_s": run.elapsed.as_secs_f64(),
        "events_per_s": run.events_per_s().round(),
        "payload_mb_per_s": (run.payload_bytes as f64 / run.elapsed.as_secs_f64() / 1_000_000.0 * 100.0).round() / 100.0,
        "catch_up_events_per_s": (run.events as f64 / caught_up.as_secs_f64()).round(),
    }))
}

/// Removes `name=value` from a URL's query; returns the URL without it and the value.
fn take_parameter(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), None) };
    let mut value = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((key, v)) if key == name => value = Some(v.to_owned()),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    (url, value)
}
