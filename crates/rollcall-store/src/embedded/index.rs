//! The in-memory index of the embedded log, rebuilt from the segments on open.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use rollcall_core::envelope::Position;
use uuid::Uuid;

use crate::decide::IdLocation;

/// One segment file as the readers see it.
pub(crate) struct SegmentMeta {
    /// Position of its first event.
    pub first_position: u64,
    /// A read handle.
    pub file: Arc<File>,
    /// Bytes durably written and indexed; readers never look past this.
    pub len: u64,
}

/// Where every event is, which stream holds which events, and which ids are taken.
#[derive(Default)]
pub(crate) struct Index {
    /// Segments in position order (empty while scanning).
    pub segments: Vec<SegmentMeta>,
    /// `offsets[p - 1]` is the byte offset of the record at position `p` in its segment.
    pub offsets: Vec<u64>,
    /// Stream name to its number.
    pub streams: HashMap<String, u32>,
    /// Per stream number, the positions of its events in revision order.
    pub stream_positions: Vec<Vec<u64>>,
    /// Event id to its stream number and revision.
    pub ids: HashMap<Uuid, (u32, u64)>,
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

    /// The last revision of a stream, `None` when it does not exist.
    pub fn last_revision(&self, stream: Option<u32>) -> Option<u64> {
        stream.map(|s| self.stream_positions[s as usize].len() as u64 - 1)
    }

    /// Where an id is stored, relative to the stream `stream`.
    pub fn lookup(&self, id: &Uuid, stream: Option<u32>) -> Option<IdLocation> {
        self.ids.get(id).map(|&(s, revision)| IdLocation {
            same_stream: Some(s) == stream,
            revision,
            position: Position::from_sequence(self.stream_positions[s as usize][revision as usize]),
        })
    }

    /// Records the next event of the log; fails if it does not follow on from what is there.
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
        if self.ids.insert(id, (s, revision)).is_some() {
            return Err(format!("event id {id} at position {position} is stored twice"));
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
