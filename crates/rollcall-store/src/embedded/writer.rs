//! The single writer thread: group commit with one `fdatasync` per group.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rollcall_core::envelope::{NewEvent, Position};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::format::{self, SEGMENT_HEADER_BYTES};
use super::index::SegmentMeta;
use super::recovery::sync_dir;
use super::{EmbeddedOptions, Shared, SyncPolicy};
use crate::decide::{Decision, IdLocation, decide};
use crate::error::StoreError;
use crate::store::{AppendResult, ExpectedRevision};

/// One queued append.
pub(crate) struct Request {
    pub stream: String,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// The writer's state; it alone writes segment files and changes the index.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub options: EmbeddedOptions,
    pub dir: PathBuf,
    /// The segment being appended to, positioned at its end.
    pub active: File,
    /// Bytes in the active segment (written, and synced once acknowledged).
    pub active_len: u64,
    /// The position the next event gets.
    pub next_position: u64,
    pub failure: Option<String>,
}

/// A request's answer channel and the answer it gets once its group is durable.
type Reply = (oneshot::Sender<Result<AppendResult, StoreError>>, Result<AppendResult, StoreError>);

/// An index entry waiting for its group's fsync.
struct Staged {
    stream: String,
    first_revision: u64,
    ids: Vec<Uuid>,
}

impl Writer {
    /// Runs until every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut buf = Vec::with_capacity(1 << 20);
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            let mut events = group[0].events.len();
            if self.options.sync == SyncPolicy::GroupCommit {
                while events < self.options.group_commit_events_max {
                    let Ok(next) = rx.try_recv() else { break };
                    events += next.events.len();
                    group.push(next);
                }
            }
            buf.clear();
            self.commit_group(group, &mut buf);
            if buf.capacity() > (64 << 20) {
                buf = Vec::with_capacity(1 << 20);
            }
        }
    }

    fn fail(&mut self, what: &str, e: std::io::Error) -> String {
        let message = format!("{what} failed ({e}); restart the process to recover from the log on disk");
        self.failure = Some(message.clone());
        *self.shared.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
        self.shared.failed.store(true, Ordering::Release);
        message
    }

    fn commit_group(&mut self, group: Vec<Request>, buf: &mut Vec<u8>) {
        if let Some(message) = &self.failure {
            for r in group {
                let _ = r.reply.send(Err(StoreError::WriterFailed(message.clone())));
            }
            return;
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(group.len());
        let mut staged: Vec<Staged> = Vec::new();
        let mut offsets: Vec<u64> = Vec::new();
        let mut new_segments: Vec<(u64, PathBuf)> = Vec::new();
        // The last revision of each stream touched by this group, and the ids it writes.
        let mut pending_streams: HashMap<String, u64> = HashMap::new();
        let mut pending_ids: HashMap<Uuid, (usize, u64, u64)> = HashMap::new();
        let mut buf_start_len = self.active_len;
        {
            let shared = self.shared.clone();
            let index = shared.index.read().unwrap_or_else(|p| p.into_inner());
            for request in group {
                let Request { stream, expected, events, reply } = request;
                let stream_no = index.stream(&stream);
                let last_revision = pending_streams.get(&stream).copied().or_else(|| index.last_revision(stream_no));
                let decision = decide(&stream, expected, &events, last_revision, |id| {
                    if let Some(&(staged_no, revision, position)) = pending_ids.get(id) {
                        let same_stream = staged[staged_no].stream == stream;
                        return Some(IdLocation { same_stream, revision, position: Position::from_sequence(position) });
                    }
                    index.lookup(id, stream_no)
                });
                let first_revision = match decision {
                    Err(e) => {
                        replies.push((reply, Err(e)));
                        continue;
                    }
                    Ok(Decision::Duplicate(result)) => {
                        replies.push((reply, Ok(result)));
                        continue;
                    }
                    Ok(Decision::Write { first_revision }) => first_revision,
                };
                let batch_bytes: u64 = events.iter().map(|e| format::record_bytes(&stream, e) as u64).sum();
                let in_segment = buf_start_len + buf.len() as u64;
                if in_segment > SEGMENT_HEADER_BYTES
                    && in_segment + batch_bytes > self.options.segment_bytes_max
                    && let Err(e) = self.roll(buf, &mut buf_start_len, &mut new_segments)
                {
                    let message = self.fail("rolling over to a new segment", e);
                    drop(index);
                    self.fail_all(replies, message);
                    return;
                }
                let staged_no = staged.len();
                let last = events.len() - 1;
                for (i, event) in events.iter().enumerate() {
                    let position = self.next_position;
                    self.next_position += 1;
                    let revision = first_revision + i as u64;
                    offsets.push(buf_start_len + buf.len() as u64);
                    format::encode(buf, position, revision, (last - i) as u16, &stream, event);
                    pending_ids.insert(event.id, (staged_no, revision, position));
                }
                let last_rev = first_revision + last as u64;
                let result = AppendResult {
                    next_expected_revision: last_rev,
                    position: Position::from_sequence(self.next_position - 1),
                };
                pending_streams.insert(stream.clone(), last_rev);
                staged.push(Staged { stream, first_revision, ids: events.iter().map(|e| e.id).collect() });
                replies.push((reply, Ok(result)));
            }
        }
        if !buf.is_empty() {
            let written = self.active.write_all(buf).and_then(|()| self.active.sync_data());
            if let Err(e) = written {
                let message = self.fail("writing or syncing the log", e);
                self.fail_all(replies, message);
                return;
            }
            self.active_len = buf_start_len + buf.len() as u64;
        }
        self.publish(staged, offsets, new_segments);
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
    }

    /// Answers every request of a failed group with the failure.
    fn fail_all(&mut self, replies: Vec<Reply>, message: String) {
        for (reply, _) in replies {
            let _ = reply.send(Err(StoreError::WriterFailed(message.clone())));
        }
    }

    /// Makes the group visible to readers and subscribers, after its fsync.
    fn publish(&mut self, staged: Vec<Staged>, offsets: Vec<u64>, new_segments: Vec<(u64, PathBuf)>) {
        let mut index = self.shared.index.write().unwrap_or_else(|p| p.into_inner());
        let mut offsets = offsets.into_iter();
        let mut opened = Vec::new();
        for (first_position, path) in new_segments {
            // The file was created and synced by this thread; reopening it for reading only
            // fails if the directory vanished, which the next write would report as well.
            if let Ok(file) = File::open(&path) {
                opened.push(SegmentMeta { first_position, file: Arc::new(file), len: SEGMENT_HEADER_BYTES });
            }
        }
        let rolled = !opened.is_empty();
        if rolled {
            // Every segment before the new ones is sealed: its length is its file size.
            let last = index.segments.len() - 1;
            let sealed_len = index.segments[last].file.metadata().map(|m| m.len()).unwrap_or(index.segments[last].len);
            index.segments[last].len = sealed_len;
            let count = opened.len();
            for (i, meta) in opened.into_iter().enumerate() {
                let len = if i + 1 == count {
                    self.active_len
                } else {
                    meta.file.metadata().map(|m| m.len()).unwrap_or(meta.len)
                };
                index.segments.push(SegmentMeta { len, ..meta });
            }
        }
        for s in staged {
            for (i, id) in s.ids.into_iter().enumerate() {
                let offset = offsets.next().unwrap_or_default();
                // The writer checked the revision and id above; a failure here is a bug.
                if let Err(e) = index.push(&s.stream, s.first_revision + i as u64, id, offset) {
                    panic!("embedded log index out of step with the writer: {e}");
                }
            }
        }
        if let Some(last) = index.segments.last_mut() {
            last.len = self.active_len;
        }
        let head = index.head();
        drop(index);
        self.shared.head.send_replace(Position::from_sequence(head));
    }

    /// Seals the active segment (writing and syncing what is buffered) and starts a new one.
    fn roll(
        &mut self,
        buf: &mut Vec<u8>,
        buf_start_len: &mut u64,
        new_segments: &mut Vec<(u64, PathBuf)>,
    ) -> std::io::Result<()> {
        self.active.write_all(buf)?;
        self.active.sync_data()?;
        let first_position = self.next_position;
        let path = self.dir.join(format::segment_file_name(first_position));
        let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        file.write_all(&format::segment_header(first_position))?;
        file.sync_data()?;
        sync_dir(&self.dir).map_err(|e| match e {
            StoreError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        })?;
        self.active = file;
        self.active_len = SEGMENT_HEADER_BYTES;
        // Offsets already staged for the old segment stay as they are; new ones start after
        // the new header.
        buf.clear();
        *buf_start_len = SEGMENT_HEADER_BYTES;
        new_segments.push((first_position, path));
        Ok(())
    }
}
