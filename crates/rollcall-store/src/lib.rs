//! The event store: the contract every backend implements, the in-memory backend for tests, the
//! embedded log (the default ground state), and the contract suite any backend runs.

pub mod error;
pub mod store;

pub use error::StoreError;
pub use rollcall_core::envelope::{Actor, Metadata, NewEvent, Position, RecordedEvent};
pub use store::{AppendResult, EventFilter, EventStore, ExpectedRevision, Subscription};
