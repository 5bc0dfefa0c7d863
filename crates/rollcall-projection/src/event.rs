//! Events as projections see them: decoded once, with the envelope fields projections use.

use chrono::{DateTime, Utc};
use rollcall_core::catalogue::current_version;
use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_core::events::Event;

use crate::error::ProjectionError;

/// A decoded event with its place in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectedEvent {
    /// Its global position.
    pub position: Position,
    /// The stream it belongs to.
    pub stream: String,
    /// When the writer recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The event.
    pub event: Event,
}

impl ProjectedEvent {
    /// Decodes a recorded event (upcasting older schema versions).
    pub fn decode(recorded: &RecordedEvent) -> Result<ProjectedEvent, ProjectionError> {
        let event = match decode_hot(recorded) {
            Some(event) => event,
            None => Event::from_recorded(recorded)
                .map_err(|source| ProjectionError::Decode { position: recorded.position, source })?,
        };
        Ok(ProjectedEvent {
            position: recorded.position,
            stream: recorded.stream.clone(),
            recorded_at: recorded.metadata.recorded_at,
            event,
        })
    }
}

/// Decodes the high-volume event types straight from their bytes when they are at the current
/// schema version (no upcasting to do), skipping the intermediate JSON tree. Anything else, or
/// anything that does not parse, goes through the general path, which reports errors properly.
fn decode_hot(recorded: &RecordedEvent) -> Option<Event> {
    let data = &recorded.data[..];
    let current = current_version(&recorded.event_type) == Some(recorded.schema_version);
    if !current {
        return None;
    }
    match recorded.event_type.as_str() {
        "ToolCalled" => serde_json::from_slice(data).ok().map(Event::ToolCalled),
        "ToolCallCompleted" => serde_json::from_slice(data).ok().map(Event::ToolCallCompleted),
        "AccessDenied" => serde_json::from_slice(data).ok().map(Event::AccessDenied),
        "RateLimited" => serde_json::from_slice(data).ok().map(Event::RateLimited),
        _ => None,
    }
}
