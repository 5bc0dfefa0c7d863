//! Schema migrations: applied once, whoever starts first.

use rollcall_store_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};

use crate::support::{SchemaGuard, database_url, fresh_schema, raw_client};

async fn applied(schema: &str) -> Vec<(i32, String)> {
    let client = raw_client().await;
    client
        .query(&format!("SELECT version, applied_at::text FROM {schema}.schema_migrations ORDER BY version"), &[])
        .await
        .expect("read schema_migrations")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() -> anyhow::Result<()> {
    let schema = fresh_schema();
    let _guard = SchemaGuard::new(&schema);
    let first = PostgresStore::connect(&database_url(), PostgresOptions::with_schema(&schema)).await?;
    let all: Vec<i32> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(first.migrations_applied(), all.as_slice());
    let before = applied(&schema).await;
    assert_eq!(before.iter().map(|(v, _)| *v).collect::<Vec<_>>(), all);

    let second = PostgresStore::connect(&database_url(), PostgresOptions::with_schema(&schema)).await?;
    assert!(second.migrations_applied().is_empty(), "a current schema needs no migration");
    assert_eq!(applied(&schema).await, before, "nothing was applied again");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_migrate_once() -> anyhow::Result<()> {
    let schema = fresh_schema();
    let _guard = SchemaGuard::new(&schema);
    let starters: Vec<_> = (0..8)
        .map(|_| {
            let schema = schema.clone();
            tokio::spawn(async move {
                let mut options = PostgresOptions::with_schema(schema);
                options.pool_size = 1;
                PostgresStore::connect(&database_url(), options).await
            })
        })
        .collect();
    let mut applied_versions = Vec::new();
    for starter in starters {
        let store = starter.await??;
        applied_versions.extend_from_slice(store.migrations_applied());
    }
    applied_versions.sort_unstable();
    assert_eq!(applied_versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "each migration ran exactly once");
    assert_eq!(applied(&schema).await.len(), SCHEMA_VERSION as usize);
    Ok(())
}

#[tokio::test]
async fn unusable_schema_names_are_refused() {
    for name in ["", "Upper", "1abc", "semi;colon", &"x".repeat(64)] {
        let result = PostgresStore::connect(&database_url(), PostgresOptions::with_schema(name)).await;
        assert!(matches!(result, Err(rollcall_store::StoreError::Invalid(_))), "schema name {name:?} must be refused");
    }
}
