//! The contract between the projector and a read model.

use async_trait::async_trait;
use rollcall_core::envelope::Position;

use crate::error::ProjectionError;
use crate::event::ProjectedEvent;

/// Which copy of a read model a write goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generation {
    /// The copy readers see.
    Live,
    /// The copy a rebuild fills from zero; it replaces `Live` atomically when caught up.
    Staging,
}

/// A read model that can be fed batches of events together with its checkpoint.
///
/// Implementations make each `apply` atomic: the effects of the whole batch and the new
/// checkpoint become visible together, or not at all.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// The projection's name (used in keys, logs and status).
    fn name(&self) -> &str;

    /// Whether events of this type affect the read model. Other events are not decoded, but
    /// still move the checkpoint forward so that lag and waits are measured on the whole log.
    fn wants(&self, event_type: &str) -> bool;

    /// The checkpoint of a generation; `None` when that generation has no marker (never built,
    /// or lost, e.g. Redis restarted empty). A `Live` without a marker is unavailable to readers.
    async fn checkpoint(&self, generation: Generation) -> Result<Option<Position>, ProjectionError>;

    /// Applies `events` (all after `expected`, in order; possibly none) and moves the
    /// checkpoint from `expected` to `to`, atomically. Fails with
    /// [`ProjectionError::CheckpointMismatch`] without writing anything when the generation's
    /// checkpoint is not `expected`.
    async fn apply(
        &self,
        generation: Generation,
        expected: Position,
        events: &[ProjectedEvent],
        to: Position,
    ) -> Result<(), ProjectionError>;

    /// Empties `Staging` and sets its checkpoint to the start of the log.
    async fn reset_staging(&self) -> Result<(), ProjectionError>;

    /// Replaces `Live` by `Staging` atomically and returns the new live checkpoint.
    async fn promote_staging(&self) -> Result<Position, ProjectionError>;
}
