//! `--store URL`: which event store a process opens.
//!
//! - `postgres://...` or `postgresql://...`: PostgreSQL. `?schema=NAME` picks the schema (default
//!   `rollcall`); the other query parameters go to the driver.
//! - `kurrentdb://...`, `kurrentdb+discover://...`, `esdb://...`, `esdb+discover://...`:
//!   KurrentDB (binaries built with `--features kurrentdb`). `?namespace=NAME` puts every stream
//!   under a prefix, so several deployments can share one server.
//! - anything else: the directory of an embedded log, which one process at a time may open.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rollcall_store::{EmbeddedLog, EmbeddedOptions, EventStore};

/// Where the event log is, as parsed from `--store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// PostgreSQL: the driver's URL (without `schema`) and the schema.
    Postgres {
        /// The URL handed to the driver.
        url: String,
        /// The schema holding the tables.
        schema: String,
    },
    /// KurrentDB: the connection string (without `namespace`) and the stream namespace.
    KurrentDb {
        /// The connection string handed to the client.
        url: String,
        /// The prefix of every stream name on the server (empty: none).
        namespace: String,
    },
    /// The embedded log in this directory.
    Embedded(PathBuf),
}

/// The schema PostgreSQL stores use when the URL names none.
pub const DEFAULT_POSTGRES_SCHEMA: &str = "rollcall";

impl StoreSpec {
    /// Parses `--store`.
    pub fn parse(spec: &str) -> anyhow::Result<StoreSpec> {
        let spec = spec.trim();
        if spec.is_empty() {
            anyhow::bail!("--store is empty: pass postgres://..., kurrentdb://..., esdb://... or a directory");
        }
        let scheme = spec.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => {
                let (url, schema) = take_parameter(spec, "schema");
                Ok(StoreSpec::Postgres { url, schema: schema.unwrap_or_else(|| DEFAULT_POSTGRES_SCHEMA.to_owned()) })
            }
            Some("kurrentdb" | "kurrentdb+discover" | "esdb" | "esdb+discover") => {
                let (url, namespace) = take_parameter(spec, "namespace");
                Ok(StoreSpec::KurrentDb { url, namespace: namespace.unwrap_or_default() })
            }
            Some(other) => anyhow::bail!(
                "--store {other}://... is not a store this binary knows: use postgres://, kurrentdb://, esdb:// or a directory"
            ),
            None => Ok(StoreSpec::Embedded(PathBuf::from(spec))),
        }
    }

    /// Where the store is, without credentials, for logs.
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Postgres { schema, .. } => format!("postgresql (schema {schema})"),
            StoreSpec::KurrentDb { namespace, .. } if namespace.is_empty() => "kurrentdb".to_owned(),
            StoreSpec::KurrentDb { namespace, .. } => format!("kurrentdb (namespace {namespace})"),
            StoreSpec::Embedded(dir) => format!("embedded log in {}", dir.display()),
        }
    }
}

/// An open event store, and the embedded log behind it when it is one (closed on `close`).
pub struct OpenStore {
    /// The store.
    pub store: Arc<dyn EventStore>,
    embedded: Option<Arc<EmbeddedLog>>,
}

impl OpenStore {
    /// Closes the embedded log once every other user has let go of it; nothing to do for
    /// server backends.
    pub async fn close(self) {
        let OpenStore { store, embedded } = self;
        drop(store);
        let Some(mut log) = embedded else { return };
        for _ in 0..100 {
            match Arc::try_unwrap(log) {
                Ok(owned) => {
                    owned.close().await;
                    return;
                }
                Err(shared) => {
                    log = shared;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
        tracing::warn!("the event log is still in use at shutdown; it closes when its last user ends");
    }
}

/// Opens the store named by `--store`.
pub async fn open_store(spec: &str) -> anyhow::Result<OpenStore> {
    let parsed = StoreSpec::parse(spec)?;
    let described = parsed.describe();
    let opened = match parsed {
        StoreSpec::Postgres { url, schema } => {
            let options = rollcall_store_postgres::PostgresOptions::with_schema(schema);
            let store = rollcall_store_postgres::PostgresStore::connect(&url, options)
                .await
                .with_context(|| format!("cannot open the {described}"))?;
            OpenStore { store: Arc::new(store), embedded: None }
        }
        StoreSpec::KurrentDb { url, namespace } => {
            open_kurrentdb(&url, namespace).await.with_context(|| format!("cannot open the {described}"))?
        }
        StoreSpec::Embedded(dir) => {
            let log = EmbeddedLog::open(&dir, EmbeddedOptions::default())
                .await
                .with_context(|| format!("cannot open the event log in {}", dir.display()))?;
            let log = Arc::new(log);
            OpenStore { store: log.clone(), embedded: Some(log) }
        }
    };
    tracing::info!(store = %described, "event store open");
    Ok(opened)
}

#[cfg(feature = "kurrentdb")]
async fn open_kurrentdb(url: &str, namespace: String) -> anyhow::Result<OpenStore> {
    let options = rollcall_store_kurrentdb::KurrentDbOptions::with_namespace(namespace);
    let store = rollcall_store_kurrentdb::KurrentDbStore::connect(url, options).await?;
    Ok(OpenStore { store: Arc::new(store), embedded: None })
}

#[cfg(not(feature = "kurrentdb"))]
async fn open_kurrentdb(_url: &str, _namespace: String) -> anyhow::Result<OpenStore> {
    anyhow::bail!(
        "this rollcall was built without KurrentDB support: build it with `cargo build --release -p rollcall-cli --features kurrentdb`"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_their_backend() {
        assert_eq!(
            StoreSpec::parse("postgres://u@h:5432/db?schema=t1&sslmode=disable").unwrap(),
            StoreSpec::Postgres { url: "postgres://u@h:5432/db?sslmode=disable".into(), schema: "t1".into() }
        );
        assert_eq!(
            StoreSpec::parse("postgresql://u@h/db").unwrap(),
            StoreSpec::Postgres { url: "postgresql://u@h/db".into(), schema: DEFAULT_POSTGRES_SCHEMA.into() }
        );
        assert_eq!(
            StoreSpec::parse("esdb://h:2113?tls=false&namespace=dev-").unwrap(),
            StoreSpec::KurrentDb { url: "esdb://h:2113?tls=false".into(), namespace: "dev-".into() }
        );
        for url in ["kurrentdb://h:2113?tls=false", "esdb+discover://h:2113", "kurrentdb+discover://h"] {
            assert!(matches!(StoreSpec::parse(url).unwrap(), StoreSpec::KurrentDb { .. }), "{url}");
        }
        assert_eq!(StoreSpec::parse("./data/log").unwrap(), StoreSpec::Embedded(PathBuf::from("./data/log")));
        assert!(StoreSpec::parse("mysql://h/db").is_err());
        assert!(StoreSpec::parse("  ").is_err());
    }

    #[test]
    fn descriptions_carry_no_credentials() {
        let spec = StoreSpec::parse("postgres://admin:hunter2@h/db?schema=s").unwrap();
        assert!(!spec.describe().contains("hunter2"));
    }

    #[cfg(not(feature = "kurrentdb"))]
    #[tokio::test]
    async fn kurrentdb_without_the_feature_says_how_to_build() {
        let error = open_store("esdb://127.0.0.1:2113?tls=false").await.err().expect("refused");
        assert!(format!("{error:#}").contains("--features kurrentdb"), "{error:#}");
    }
}
