//! Connection options.

use rollcall_store::Limits;

/// How [`crate::PostgresStore`] connects and behaves.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The schema holding the store's tables; created on connect. Lowercase letters, digits and
    /// underscores, starting with a letter or underscore, at most 63 bytes.
    pub schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Most appends with `ExpectedRevision::Any` that share one transaction (group commit);
    /// 1 turns group commit off.
    pub group_commit_appends_max: usize,
    /// Most events one group-commit transaction carries.
    pub group_commit_events_max: usize,
    /// Appends with `ExpectedRevision::Any` waiting for a group-commit transaction at most;
    /// further callers wait for room.
    pub group_commit_queue_appends_max: usize,
    /// How often a caught-up subscription looks for new events.
    pub poll_interval_ms: u64,
    /// Events buffered per subscription at most (also the page size of its reads).
    pub subscription_buffer_events: usize,
    /// How long `read_all` and `head` wait for transactions that may still write events before
    /// the newest committed ones (see the crate docs), before answering with what is settled.
    pub settle_timeout_ms: u64,
    /// How long a caller waits for a pooled connection, and a new connection may take.
    pub connect_timeout_ms: u64,
    /// Limits on appends and reads.
    pub limits: Limits,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            schema: "rollcall".to_owned(),
            pool_size: 16,
            group_commit_appends_max: 64,
            group_commit_events_max: 4096,
            group_commit_queue_appends_max: 4096,
            poll_interval_ms: 10,
            subscription_buffer_events: 512,
            settle_timeout_ms: 5_000,
            connect_timeout_ms: 30_000,
            limits: Limits::default(),
        }
    }
}

impl PostgresOptions {
    /// The defaults with another schema.
    pub fn with_schema(schema: impl Into<String>) -> PostgresOptions {
        PostgresOptions { schema: schema.into(), ..PostgresOptions::default() }
    }
}

/// Whether a schema name is safe to put into SQL unquoted.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}
