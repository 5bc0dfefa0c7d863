//! The PostgreSQL backend of Rollcall's event store.
//!
//! # Layout
//!
//! One schema (named in [`PostgresOptions::schema`]) holds an `events` table and a
//! `schema_migrations` table; [`PostgresStore::connect`] creates and migrates it. Event payloads
//! are stored as `bytea`, so they read back byte for byte.
//!
//! # Global order without gaps
//!
//! A `bigint` identity alone cannot order the log for subscribers: identities are handed out
//! when rows are inserted, not when transactions commit, so a reader can see position 8 while
//! position 7 belongs to a transaction that has not committed yet. A subscriber that moved past 8
//! would never see 7.
//!
//! Every row therefore records the id of its transaction (`tx xid8`, from
//! `pg_current_xact_id()`), and the global order is `(tx, position)`, exposed as
//! [`Position`](rollcall_core::envelope::Position) `{ commit: tx, prepare: position }`.
//! Readers only return rows with `tx < pg_snapshot_xmin(pg_current_snapshot())`: every
//! transaction with a smaller id has ended, and every later transaction gets a larger id, so
//! this prefix of the order never changes again. An open transaction holds back the events
//! after it (in any schema of the cluster, since `xmin` is cluster-wide) until it ends; it
//! never causes one to be skipped.
//!
//! A stream's revisions must follow the global order too. An append takes a transaction-scoped
//! advisory lock per stream before its transaction has an id; the id is assigned at the
//! insert, after the locks are held, so a later writer of the stream gets a larger id.
//!
//! `read_all` and `head` wait (up to [`PostgresOptions::settle_timeout_ms`]) until the newest
//! committed event is settled, so a caller reads its own writes; subscriptions poll every
//! [`PostgresOptions::poll_interval_ms`] instead. `LISTEN/NOTIFY` is not used: a notifying
//! commit takes a cluster-wide lock that would serialise every append's commit.
//!
//! # Group commit
//!
//! Appends with `ExpectedRevision::Any` are queued and a few workers each run whatever is queued
//! (distinct streams, up to [`PostgresOptions::group_commit_appends_max`]) as one statement,
//! one transaction and one WAL flush. Appends with another expectation run on their own.

mod error;
mod migrations;
mod options;
mod store;

pub use migrations::SCHEMA_VERSION;
pub use options::PostgresOptions;
pub use store::PostgresStore;
