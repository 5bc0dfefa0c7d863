//! Projection errors.

use rollcall_core::catalogue::DecodeError;
use rollcall_core::envelope::Position;
use rollcall_store::StoreError;

/// What can go wrong projecting events into a read model.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read model's checkpoint is not where the projector left it: the model was lost
    /// (e.g. Redis restarted empty) or another projector writes to it. The projector rebuilds.
    #[error(
        "the read model of {projection} is at {found:?}, expected {expected:?}: it was lost or is written by another projector, so it will be rebuilt"
    )]
    CheckpointMismatch {
        /// The projection.
        projection: String,
        /// The checkpoint the projector expected.
        expected: Option<Position>,
        /// The checkpoint found in the read model.
        found: Option<Position>,
    },
    /// Redis failed or could not be reached.
    #[error("redis error: {0}; check that redis is running and reachable")]
    Redis(#[from] redis::RedisError),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be decoded.
    #[error("cannot decode the event at position {position}: {source}")]
    Decode {
        /// Where.
        position: Position,
        /// Why.
        source: DecodeError,
    },
    /// The read model holds a value this code cannot read.
    #[error("the read model holds a malformed value ({0}); rebuild the projection")]
    Malformed(String),
    /// A wait for a position timed out.
    #[error(
        "the {projection} projection did not reach position {position} within {timeout_ms} ms (it is at {checkpoint:?}); check the projector's status and retry"
    )]
    WaitTimeout {
        /// The projection.
        projection: String,
        /// The position waited for.
        position: Position,
        /// Where the projection was when the wait ended.
        checkpoint: Option<Position>,
        /// How long the wait was.
        timeout_ms: u64,
    },
    /// The view is not built yet, or is being rebuilt after it was lost.
    #[error("the {0} view is not available yet (it is being built); retry shortly")]
    Unavailable(String),
    /// A write was refused because this projector no longer holds the projector lease: another
    /// instance took over. Nothing was written.
    #[error("the {projection} projector no longer holds the projector lease (held by {holder:?}); it stands by")]
    Fenced {
        /// The projection.
        projection: String,
        /// Who holds the lease now, if anyone.
        holder: Option<String>,
    },
    /// The projector has stopped.
    #[error("the {0} projector has stopped; restart it")]
    Stopped(String),
}
