//! Limits every backend enforces on appends and reads.

use rollcall_core::envelope::NewEvent;

use crate::error::StoreError;

/// Upper bounds on what one append or read may carry.
///
/// Every backend enforces at least these defaults, so a caller that works against one backend
/// works against all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest stream name, in bytes.
    pub stream_name_bytes_max: usize,
    /// Longest event type name, in bytes.
    pub event_type_bytes_max: usize,
    /// Largest event payload, in bytes.
    pub event_bytes_max: usize,
    /// Most events in one append.
    pub batch_events_max: usize,
    /// Most payload bytes in one append.
    pub batch_bytes_max: usize,
    /// Most events one read returns, whatever `max_count` asks for.
    pub read_events_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            stream_name_bytes_max: 256,
            event_type_bytes_max: 128,
            event_bytes_max: 1024 * 1024,
            batch_events_max: 1000,
            batch_bytes_max: 4 * 1024 * 1024,
            read_events_max: 10_000,
        }
    }
}

impl Limits {
    /// Checks one append against the limits, before anything is written.
    pub fn check_append(&self, stream: &str, events: &[NewEvent]) -> Result<(), StoreError> {
        if stream.is_empty() {
            return Err(StoreError::Invalid("the stream name is empty: name the stream".into()));
        }
        if stream.len() > self.stream_name_bytes_max {
            return Err(StoreError::LimitExceeded {
                what: "stream name length in bytes",
                actual: stream.len(),
                limit: self.stream_name_bytes_max,
                hint: "use a shorter stream name",
            });
        }
        if events.is_empty() {
            return Err(StoreError::Invalid("an append needs at least one event".into()));
        }
        if events.len() > self.batch_events_max {
            return Err(StoreError::LimitExceeded {
                what: "events in one append",
                actual: events.len(),
                limit: self.batch_events_max,
                hint: "split the append into smaller batches",
            });
        }
        let mut batch_bytes = 0usize;
        for event in events {
            if event.event_type.is_empty() {
                return Err(StoreError::Invalid("an event type is empty: name the event type".into()));
            }
            if event.event_type.len() > self.event_type_bytes_max {
                return Err(StoreError::LimitExceeded {
                    what: "event type length in bytes",
                    actual: event.event_type.len(),
                    limit: self.event_type_bytes_max,
                    hint: "use a shorter event type name",
                });
            }
            if event.data.len() > self.event_bytes_max {
                return Err(StoreError::LimitExceeded {
                    what: "event payload size in bytes",
                    actual: event.data.len(),
                    limit: self.event_bytes_max,
                    hint: "keep large content out of events and store a reference instead",
                });
            }
            batch_bytes += event.data.len();
        }
        if batch_bytes > self.batch_bytes_max {
            return Err(StoreError::LimitExceeded {
                what: "payload bytes in one append",
                actual: batch_bytes,
                limit: self.batch_bytes_max,
                hint: "split the append into smaller batches",
            });
        }
        Ok(())
    }
}
