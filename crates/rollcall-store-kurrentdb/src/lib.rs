//! The KurrentDB backend of Rollcall's event store: for deployments that outgrow one machine.
//!
//! Everything lives behind the `kurrentdb` cargo feature, so the default build does not compile
//! the gRPC client; without it this crate is empty.
//!
//! To qualify a KurrentDB version, run the contract suite against a server:
//! `KURRENTDB_URL=esdb://127.0.0.1:2113?tls=false cargo test -p rollcall-store-kurrentdb --features kurrentdb`.
//! Without `KURRENTDB_URL` (or without the feature) the crate has no tests.
//!
//! # Mapping
//!
//! - Streams are KurrentDB streams, named `namespace + stream` (see
//!   [`KurrentDbOptions::namespace`]); names starting with `$` are refused.
//! - Event ids are KurrentDB event ids, so the server recognises retries.
//! - The payload is the event's data, stored as JSON byte for byte; the schema version and the
//!   envelope metadata are the event's custom metadata.
//! - Positions are KurrentDB `$all` positions, commit and prepare as they are.
//! - Subscriptions are catch-up subscriptions to `$all` with a server-side stream-name filter;
//!   event types are filtered in the client. Reads of `$all` skip system events.
//!
//! # Where KurrentDB differs from the contract
//!
//! KurrentDB checks event ids for idempotency only within the stream and near the expected
//! revision; it does not refuse an id that another stream already uses, so
//! `reused_ids_are_refused` may not hold for ids reused across streams.

#[cfg(feature = "kurrentdb")]
mod store;

#[cfg(feature = "kurrentdb")]
pub use store::{KurrentDbOptions, KurrentDbStore};
