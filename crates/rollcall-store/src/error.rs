//! Store errors.

use rollcall_core::envelope::Position;

use crate::store::ExpectedRevision;

/// What can go wrong talking to an event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream's revision was not the expected one (someone else appended first).
    #[error("stream {stream} is at {actual:?}, expected {expected:?}: reload and retry")]
    WrongExpectedRevision {
        /// The stream.
        stream: String,
        /// What the writer expected.
        expected: ExpectedRevision,
        /// The stream's actual last revision, `None` if it does not exist.
        actual: Option<u64>,
    },
    /// An input over a limit (event size, batch size, stream name length).
    #[error("{what} is {actual}, over the limit of {limit}: {hint}")]
    LimitExceeded {
        /// What was too large.
        what: &'static str,
        /// Its size.
        actual: usize,
        /// The limit.
        limit: usize,
        /// What to do instead.
        hint: &'static str,
    },
    /// Bad input that is not a size problem.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The store refused because it is overloaded (queue full); retry later.
    #[error("the event store is overloaded ({0}): retry shortly")]
    Overloaded(String),
    /// The log is corrupt; it names where.
    #[error(
        "corrupt log in {segment} at offset {offset}: {reason}; run `rollcall store inspect` and `rollcall store repair` (the repair copies the good prefix aside and deletes nothing)"
    )]
    Corrupt {
        /// Segment file.
        segment: String,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The data directory is locked by another process.
    #[error("the data directory {dir} is in use by another process (pid {pid}): stop it or pick another --data-dir")]
    Locked {
        /// The directory.
        dir: String,
        /// The pid holding the lock, as far as known.
        pid: String,
    },
    /// The writer failed (e.g. fsync failed); the store refuses all further writes.
    #[error("the event store writer has failed and refuses writes until restarted: {0}")]
    WriterFailed(String),
    /// An IO error.
    #[error("event store io error: {0}")]
    Io(#[from] std::io::Error),
    /// A backend error (database, network).
    #[error("event store backend error: {0}")]
    Backend(String),
    /// A subscriber fell too far behind or the subscription was closed.
    #[error("subscription ended: {0}")]
    SubscriptionClosed(String),
    /// Position for diagnostics.
    #[error("position {0} is beyond the head of the log")]
    PositionBeyondHead(Position),
}
