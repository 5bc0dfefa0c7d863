//! Mapping PostgreSQL errors to store errors.

use std::error::Error as _;

use rollcall_store::StoreError;

/// SQLSTATE of a unique violation: a concurrent writer stored the same event id first.
pub(crate) const UNIQUE_VIOLATION: &str = "23505";

/// Describes a PostgreSQL error with its server message and SQLSTATE, or its cause.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (sqlstate {})", db.message(), db.code().code());
    }
    match e.source() {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// Wraps a PostgreSQL error as a backend error.
pub(crate) fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {}", describe(&e)))
}

/// Whether an error is a unique violation (worth one more try: the retry sees the winner).
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| db.code().code() == UNIQUE_VIOLATION)
}

/// Wraps a pool error as a backend error.
pub(crate) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => backend(e),
        other => StoreError::Backend(format!("postgres pool: {other}")),
    }
}
