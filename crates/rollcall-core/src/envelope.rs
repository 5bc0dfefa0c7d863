//! The envelope every stored event travels in.
//!
//! The envelope is payload-agnostic: the store moves JSON bytes and never interprets them, so a
//! backend can be written and tested without knowing the domain. The domain turns its typed
//! events into [`NewEvent`]s (see `crate::catalogue`) and reads [`RecordedEvent`]s back.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A position in the global order of the log (the `$all` stream).
///
/// Ordered and opaque to callers: keep both halves when checkpointing. The embedded log uses one
/// sequence number for both; PostgreSQL uses the writing transaction's id (`xid8`) and the row's
/// sequence number, the order in which commits become visible; KurrentDB uses its commit and
/// prepare positions. Subscriptions start *after* a position (exclusive), as KurrentDB's do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Position {
    /// Commit position (the embedded log: the global sequence number, from 1).
    pub commit: u64,
    /// Prepare position (the embedded log: equal to `commit`).
    pub prepare: u64,
}

impl Position {
    /// The position before the first event: starting "after" it reads everything.
    pub const START: Position = Position { commit: 0, prepare: 0 };

    /// A position for backends with one global sequence number.
    pub const fn from_sequence(sequence: u64) -> Position {
        Position { commit: sequence, prepare: sequence }
    }

    /// The global sequence number, for single-sequence backends.
    pub const fn sequence(self) -> u64 {
        self.commit
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.commit == self.prepare {
            write!(f, "{}", self.commit)
        } else {
            write!(f, "{}/{}", self.commit, self.prepare)
        }
    }
}

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A signed-up account (owner, admin, member acting through the API or CLI).
    Account {
        /// The account.
        account_id: Uuid,
    },
    /// A workspace member acting through the gateway with their token.
    Member {
        /// The workspace.
        workspace_id: Uuid,
        /// The member.
        member_id: Uuid,
    },
    /// A bot acting through the gateway with its token.
    Bot {
        /// The workspace.
        workspace_id: Uuid,
        /// The bot.
        bot_id: Uuid,
    },
    /// Rollcall itself (expiry sweeps, migrations).
    System,
}

/// What the writer knows about an event besides its payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Who caused it.
    pub actor: Actor,
    /// The id shared by every event caused by one user request.
    pub correlation_id: Uuid,
    /// The event or command id that directly caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// When the writer recorded it (the writer's clock; the domain never reads a clock).
    pub recorded_at: DateTime<Utc>,
}

/// An event about to be appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id; appending the same id to the same stream again is a no-op (idempotent retry).
    pub id: Uuid,
    /// The event type name, e.g. `MemberInvited`.
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The payload, JSON.
    pub data: Bytes,
    /// Actor, correlation, causation and time.
    pub metadata: Metadata,
}

/// An event as stored: the envelope plus the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Unique id given by the writer.
    pub id: Uuid,
    /// The stream it belongs to.
    pub stream: String,
    /// Its revision in the stream, from 0.
    pub revision: u64,
    /// Its position in the global order.
    pub position: Position,
    /// The event type name.
    pub event_type: String,
    /// The schema version of the payload.
    pub schema_version: u32,
    /// The payload, JSON.
    pub data: Bytes,
    /// Actor, correlation, causation and time.
    pub metadata: Metadata,
}
