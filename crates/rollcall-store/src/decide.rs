//! The append decision shared by the single-sequence backends: idempotent retries first, then
//! the expected-revision check.

use rollcall_core::envelope::{NewEvent, Position};
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::{AppendResult, ExpectedRevision};

/// Where an already stored event id lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdLocation {
    /// Whether it is in the stream being appended to.
    pub same_stream: bool,
    /// Its revision in its stream.
    pub revision: u64,
    /// Its global position.
    pub position: Position,
}

/// What an append does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write the events, the first one at this revision.
    Write { first_revision: u64 },
    /// The events are already stored: answer with the original result.
    Duplicate(AppendResult),
}

/// Decides an append given the stream's last revision (`None` when it does not exist) and a
/// lookup of stored event ids.
pub(crate) fn decide(
    stream: &str,
    expected: ExpectedRevision,
    events: &[NewEvent],
    last_revision: Option<u64>,
    lookup: impl Fn(&Uuid) -> Option<IdLocation>,
) -> Result<Decision, StoreError> {
    if let Some(first) = lookup(&events[0].id) {
        // A retry must match the original append exactly: same stream, same ids, same order.
        let mut last = first;
        for (i, event) in events.iter().enumerate() {
            match lookup(&event.id) {
                Some(loc) if loc.same_stream && loc.revision == first.revision + i as u64 => last = loc,
                _ => return Err(reused_id(event.id)),
            }
        }
        if !first.same_stream {
            return Err(reused_id(events[0].id));
        }
        return Ok(Decision::Duplicate(AppendResult {
            next_expected_revision: last.revision,
            position: last.position,
        }));
    }
    if let Some(event) = events.iter().find(|e| lookup(&e.id).is_some()) {
        return Err(reused_id(event.id));
    }
    // Most appends carry one event, which cannot repeat itself: skip building the set.
    let mut seen = std::collections::HashSet::with_capacity(if events.len() > 1 { events.len() } else { 0 });
    if events.len() > 1
        && let Some(event) = events.iter().find(|e| !seen.insert(e.id))
    {
        return Err(StoreError::Invalid(format!(
            "event id {} appears twice in one append: give every event its own id",
            event.id
        )));
    }
    let ok = match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => last_revision.is_none(),
        ExpectedRevision::StreamExists => last_revision.is_some(),
        ExpectedRevision::Exact(r) => last_revision == Some(r),
    };
    if !ok {
        return Err(StoreError::WrongExpectedRevision { stream: stream.to_owned(), expected, actual: last_revision });
    }
    Ok(Decision::Write { first_revision: last_revision.map_or(0, |r| r + 1) })
}

fn reused_id(id: Uuid) -> StoreError {
    StoreError::Invalid(format!(
        "event id {id} is already stored by a different append: retry with exactly the same events or use fresh ids"
    ))
}
