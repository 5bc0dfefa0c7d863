//! The event store: the contract every backend implements, the in-memory backend for tests, the
//! embedded log (the default ground state), and the contract suite any backend runs.

pub mod contract;
pub(crate) mod decide;
pub mod embedded;
pub mod error;
pub mod limits;
pub mod memory;
pub mod store;
pub(crate) mod subscription;

pub use embedded::{EmbeddedLog, EmbeddedOptions, SyncFaults, SyncPolicy};
pub use error::StoreError;
pub use limits::Limits;
pub use memory::MemoryStore;
pub use rollcall_core::envelope::{Actor, Metadata, NewEvent, Position, RecordedEvent};
pub use store::{AppendResult, EventFilter, EventStore, ExpectedRevision, Subscription};
