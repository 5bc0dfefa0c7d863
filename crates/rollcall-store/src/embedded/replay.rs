//! Parallel replay of the log in chunks.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use rollcall_core::envelope::RecordedEvent;

use super::format::{self, Body, Frame};
use crate::error::StoreError;

/// The events of one chunk of a segment, in order, decoded from one in-memory copy of it.
///
/// Payloads share that copy (no per-event allocation for them), so an event kept after the
/// replay keeps the segment's buffer alive; copy `data` to keep events for long.
pub struct SegmentEvents {
    bytes: Bytes,
    offset: usize,
    first_position: u64,
    segment_first_position: u64,
    /// File offset of `bytes[0]`.
    base: u64,
    failed: bool,
}

/// A run of consecutive records of one segment.
pub(crate) struct Chunk {
    pub file: Arc<File>,
    pub segment_first_position: u64,
    pub first_position: u64,
    pub start: u64,
    pub end: u64,
}

impl SegmentEvents {
    /// The position of the chunk's first event.
    pub fn first_position(&self) -> u64 {
        self.first_position
    }

    fn corrupt(&mut self, reason: String) -> Option<Result<RecordedEvent, StoreError>> {
        self.failed = true;
        Some(Err(StoreError::Corrupt {
            segment: format::segment_file_name(self.segment_first_position),
            offset: self.base + self.offset as u64,
            reason,
        }))
    }
}

impl Iterator for SegmentEvents {
    type Item = Result<RecordedEvent, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.bytes.len() {
            return None;
        }
        let Frame::Valid { body, next } = format::frame_at(&self.bytes, self.offset) else {
            return self.corrupt("record read back does not check out".into());
        };
        let parsed = Body::parse(&self.bytes[body.clone()]).and_then(|b| {
            let data = self.bytes.slice(body.start + b.data.start..body.start + b.data.end);
            b.to_recorded(data)
        });
        match parsed {
            Ok(event) => {
                self.offset = next;
                Some(Ok(event))
            }
            Err(reason) => self.corrupt(reason),
        }
    }
}

pub(crate) fn replay<T, F>(chunks: &[Chunk], threads: usize, per_chunk: F) -> Result<Vec<T>, StoreError>
where
    T: Send,
    F: Fn(SegmentEvents) -> T + Sync,
{
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T, StoreError>>>> = Mutex::new((0..chunks.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, chunks.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { break };
                    let outcome = read_chunk(chunk).map(&per_chunk);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(outcome);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Backend("a replay thread stopped early".into()))))
        .collect()
}

fn read_chunk(chunk: &Chunk) -> Result<SegmentEvents, StoreError> {
    let mut bytes = vec![0u8; (chunk.end - chunk.start) as usize];
    chunk.file.read_exact_at(&mut bytes, chunk.start)?;
    Ok(SegmentEvents {
        bytes: Bytes::from(bytes),
        offset: 0,
        first_position: chunk.first_position,
        segment_first_position: chunk.segment_first_position,
        base: chunk.start,
        failed: false,
    })
}
