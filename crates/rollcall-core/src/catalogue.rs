//! Turning typed events into envelopes and back, stream names, and upcasting.
//!
//! Rule: a published schema version never changes. A change to a payload is a new version
//! (bump the number in `events.rs`, add `schemas/<Type>.v<N>.json`) plus a step in [`upcast`]
//! that turns the old JSON into the new shape, so old logs keep replaying.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::email::Email;
use crate::envelope::{Metadata, NewEvent, RecordedEvent};
use crate::events::{EVENT_TYPES, Event};
use crate::ids::{TokenId, WorkspaceId};

/// Why a stored event could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type is not in the catalogue (written by a newer Rollcall?).
    #[error("unknown event type {0:?}: upgrade Rollcall to read this log")]
    UnknownType(String),
    /// The version is newer than this code knows.
    #[error(
        "event type {event_type} has schema version {version}, newer than this Rollcall knows ({known}): upgrade Rollcall"
    )]
    FutureVersion {
        /// The type.
        event_type: String,
        /// The stored version.
        version: u32,
        /// The newest version this code knows.
        known: u32,
    },
    /// The payload does not match its schema.
    #[error("event {event_type} has a malformed payload: {reason}")]
    Payload {
        /// The type.
        event_type: String,
        /// What serde said.
        reason: String,
    },
}

/// The stream of one workspace's membership aggregate.
pub fn workspace_stream(name: &str) -> String {
    format!("workspace-{name}")
}

/// Prefix shared by every workspace stream.
pub const WORKSPACE_STREAM_PREFIX: &str = "workspace-";
/// Prefix shared by every account stream.
pub const ACCOUNT_STREAM_PREFIX: &str = "account-";
/// Prefix shared by every tool-call stream.
pub const CALLS_STREAM_PREFIX: &str = "calls-";

/// The stream of the account registered under an address. Keyed by the address's hash so that
/// the stream name itself enforces one account per address and carries no personal data.
pub fn account_stream(email: &Email) -> String {
    let digest = Sha256::digest(email.as_str().as_bytes());
    format!("account-{}", &hex::encode(digest)[..32])
}

/// The stream of one token's tool calls. High volume, so apart from the aggregate.
pub fn calls_stream(workspace_id: WorkspaceId, token_id: TokenId) -> String {
    format!("calls-{workspace_id}-{token_id}")
}

/// The newest schema version of an event type this code knows.
pub fn current_version(event_type: &str) -> Option<u32> {
    EVENT_TYPES.iter().find(|(t, _)| *t == event_type).map(|(_, v)| *v)
}

impl Event {
    /// Wraps the event in an envelope ready to append.
    pub fn to_new_event(&self, id: Uuid, metadata: Metadata) -> NewEvent {
        NewEvent {
            id,
            event_type: self.event_type().to_owned(),
            schema_version: self.schema_version(),
            data: Bytes::from(self.to_json_bytes()),
            metadata,
        }
    }

    /// Decodes a stored event, upcasting old versions.
    pub fn decode(event_type: &str, schema_version: u32, data: &[u8]) -> Result<Event, DecodeError> {
        let known = current_version(event_type).ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
        if schema_version > known {
            return Err(DecodeError::FutureVersion {
                event_type: event_type.to_owned(),
                version: schema_version,
                known,
            });
        }
        let value: serde_json::Value = serde_json::from_slice(data)
            .map_err(|e| DecodeError::Payload { event_type: event_type.to_owned(), reason: e.to_string() })?;
        let value = upcast(event_type, schema_version, value)?;
        Event::from_current_json(event_type, value)
    }

    /// Decodes a recorded event.
    pub fn from_recorded(recorded: &RecordedEvent) -> Result<Event, DecodeError> {
        Event::decode(&recorded.event_type, recorded.schema_version, &recorded.data)
    }
}

/// Brings a payload of an older schema version up to the current one, one version at a time.
///
/// Every event type is at version 1 today, so there are no steps yet; a step is added here, as
/// `("Type", 1) => { ...; version = 2 }`, when a version 2 is published.
pub fn upcast(
    event_type: &str,
    schema_version: u32,
    value: serde_json::Value,
) -> Result<serde_json::Value, DecodeError> {
    let known = current_version(event_type).ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
    if schema_version == 0 {
        return Err(DecodeError::Payload {
            event_type: event_type.to_owned(),
            reason: "schema version 0 does not exist".into(),
        });
    }
    let version = schema_version;
    // Each step rewrites `value` and bumps `version` (none are needed yet).
    if version != known {
        return Err(DecodeError::Payload {
            event_type: event_type.to_owned(),
            reason: format!("no upcaster from version {version} to {known}"),
        });
    }
    Ok(value)
}
