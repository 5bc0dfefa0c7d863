//! The in-memory index of the embedded log, rebuilt from the segments on open.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use uuid::Uuid;

use super::hash::SeededHash;

/// One segment file as the readers see it.
pub(crate) struct SegmentMeta {
    /// Position of its first event.
    pub first_position: u64,
    /// A read handle.
    pub file: Arc<File>,
    /// Bytes durably written and indexed; readers never look past this.
    pub len: u64,
}

/// Where a stored event id is. The writer alone looks ids up, so it owns this map once the
/// log is open.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoredId {
    /// The stream's number.
    pub stream: u32,
    /// Its revision in that stream.
    pub revision: u64,
    /// Its global position.
    pub position: u64,
}

/// Every stored event id.
pub(crate) type IdMap = HashMap<Uuid, StoredId, SeededHash>;

/// Where every event is, which stream holds which events, and (while scanning) which ids are
/// taken.
#[derive(Default)]
pub(crate) struct Index {
    /// Segments in position order (empty while scanning).
    pub segments: Vec<SegmentMeta>,
    /// `offsets[p - 1]` is the byte offset of the record at position `p` in its segment.
    pub offsets: Vec<u64>,
    /// Stream name to its number.
    pub streams: HashMap<String, u32, SeededHash>,
    /// Per stream number, the positions of its events in revision order.
    pub stream_positions: Vec<Vec<u64>>,
    /// Event ids, filled by the scan on open and then handed to the writer (empty after that).
    pub ids: IdMap,
}

impl Index {
    /// The last position in the log, 0 when empty.
    pub fn head(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// The stream's number, if it exists.
    pub fn stream(&self, stream: &str) -> Option<u32> {
        self.streams.get(stream).copied()
    }

    /// Records the next event of the log while scanning it; fails if it does not follow on from
    /// what is there.
    pub fn push(&mut self, stream: &str, revision: u64, id: Uuid, offset: u64) -> Result<(), String> {
        let position = self.head() + 1;
        let s = match self.streams.get(stream) {
            Some(&s) => s,
            None => {
                let s = self.stream_positions.len() as u32;
                self.streams.insert(stream.to_owned(), s);
                self.stream_positions.push(Vec::new());
                s
            }
        };
        let positions = &mut self.stream_positions[s as usize];
        if revision != positions.len() as u64 {
            return Err(format!(
                "event at position {position} has revision {revision} in stream {stream}, expected {}",
                positions.len()
            ));
        }
        if self.ids.insert(id, StoredId { stream: s, revision, position }).is_some() {
            return Err(format!("event id {id} at position {position} is stored twice"));
        }
        positions.push(position);
        self.offsets.push(offset);
        Ok(())
    }

    /// Adds a stream the writer numbered `stream` (the next number).
    pub fn add_stream(&mut self, name: String, stream: u32) -> Result<(), String> {
        if stream as usize != self.stream_positions.len() {
            return Err(format!("stream {name} numbered {stream}, expected {}", self.stream_positions.len()));
        }
        self.streams.insert(name, stream);
        self.stream_positions.push(Vec::new());
        Ok(())
    }

    /// Records the next event of the log, appended by the writer at `revision` of stream number
    /// `stream`; fails if it does not follow on from what is there.
    pub fn push_numbered(&mut self, stream: u32, revision: u64, offset: u64) -> Result<(), String> {
        let position = self.head() + 1;
        let Some(positions) = self.stream_positions.get_mut(stream as usize) else {
            return Err(format!("event at position {position} is in unknown stream number {stream}"));
        };
        if revision != positions.len() as u64 {
            return Err(format!(
                "event at position {position} has revision {revision} in stream number {stream}, expected {}",
                positions.len()
            ));
        }
        positions.push(position);
        self.offsets.push(offset);
        Ok(())
    }

    /// The index of the segment holding `position` (which must exist).
    pub fn segment_of(&self, position: u64) -> usize {
        self.segments.partition_point(|s| s.first_position <= position) - 1
    }

    /// The byte range of the record at `position` within its segment.
    pub fn record_range(&self, segment: usize, position: u64) -> (u64, u64) {
        let start = self.offsets[position as usize - 1];
        let next_in_segment = self.segments.get(segment + 1).is_none_or(|next| next.first_position > position + 1);
        let end = if position < self.head() && next_in_segment {
            self.offsets[position as usize]
        } else {
            self.segments[segment].len
        };
        (start, end)
    }
}
