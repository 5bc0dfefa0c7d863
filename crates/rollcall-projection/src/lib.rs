//! Rollcall's projection runtime: subscribe, batch, checkpoint atomically, rebuild, report lag.
//!
//! A [`Projection`] turns batches of events into effects on a read model and stores its
//! checkpoint (the position of the last event it reflects) in the same atomic write, so that
//! at-least-once delivery gives exactly-once effects: the [`Projector`] skips every event at or
//! below the checkpoint. Every read model has two generations: `Live`, which readers see, and
//! `Staging`, where a rebuild from zero happens before it replaces `Live` in one atomic switch,
//! so that readers never see a half-built view.
//!
//! Two targets are provided: [`InProcess`] (a state behind one lock, swapped whole) and
//! [`RedisTarget`] (batched effects and the checkpoint in one Lua script). With several
//! projector processes, [`LeasedProjectors`] lets only the holder of a lease in Redis write,
//! and every write is fenced by that lease.

pub mod bench;
pub mod error;
pub mod event;
pub mod history;
pub mod lease;
pub mod memory;
pub mod projection;
pub mod projector;
pub mod redis_target;

pub use error::ProjectionError;
pub use event::ProjectedEvent;
pub use lease::{Fence, Lease, LeaseConfig, LeasedProjectors, LeasedStatus, Role};
pub use memory::{InProcess, LiveHook, ViewState};
pub use projection::{Generation, Projection};
pub use projector::{Phase, Projector, ProjectorConfig, ProjectorHandle, ProjectorStatus};
pub use redis_target::{RedisOps, RedisTarget, connect_redis, format_position, parse_position};
