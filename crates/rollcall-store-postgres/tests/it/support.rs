//! Fresh schemas on the test database, dropped when a test ends.

use rollcall_store_postgres::{PostgresOptions, PostgresStore};
use tokio_postgres::NoTls;
use uuid::Uuid;

/// The test database: `DATABASE_URL`, else the local server's `test` database.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn start_hint(url: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "cannot reach PostgreSQL at {url} ({error}): start it with \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or set DATABASE_URL"
    )
}

/// A new, unused schema name.
pub fn fresh_schema() -> String {
    format!("t_{}", Uuid::new_v4().simple())
}

/// A plain connection to the test database, for looking behind the store's back.
pub async fn raw_client() -> tokio_postgres::Client {
    let url = database_url();
    let (client, connection) =
        tokio_postgres::connect(&url, NoTls).await.unwrap_or_else(|e| panic!("{}", start_hint(&url, &e)));
    tokio::spawn(connection);
    client
}

/// Drops its schema when dropped, so tests leave nothing behind.
pub struct SchemaGuard {
    schema: String,
}

impl SchemaGuard {
    pub fn new(schema: &str) -> SchemaGuard {
        SchemaGuard { schema: schema.to_owned() }
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // Drop cannot await; a thread with its own runtime can, without touching the test's.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&database_url(), NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}", self.schema);
        }
    }
}

/// Connects a store to a fresh schema, with options adjusted by `tune`.
pub async fn store_with(tune: impl FnOnce(&mut PostgresOptions)) -> (PostgresStore, SchemaGuard) {
    let schema = fresh_schema();
    let mut options = PostgresOptions::with_schema(&schema);
    // Tests run side by side on one server: keep each store's footprint small.
    options.pool_size = 6;
    tune(&mut options);
    let guard = SchemaGuard::new(&schema);
    let url = database_url();
    let store = PostgresStore::connect(&url, options).await.unwrap_or_else(|e| panic!("{}", start_hint(&url, &e)));
    (store, guard)
}

/// Connects a store to a fresh schema with the default options.
pub async fn store() -> (PostgresStore, SchemaGuard) {
    store_with(|_| {}).await
}
