//! The log thread: group commit with one `write` and one `fdatasync` per group.
//!
//! One thread takes every queued append at once (one lock per group, not per append), checks it
//! against maps only it owns (stream revisions, event ids), encodes the group, writes it with
//! one `write`, makes it durable with one `fdatasync`, publishes it to the index and the head
//! watch, and only then answers its appends. Appends queued meanwhile form the next group.
//!
//! It is one thread, not a writer and a syncer: encoding a group is short next to its sync, and
//! every hand-off between threads is a wake-up that, on a busy machine, waits for a core. The
//! gateway's wait for a durable record is mostly such waits.
//!
//! Segments are preallocated: the thread extends the active segment with zeros (synced) ahead
//! of the appends, which then overwrite blocks the file system has already allocated and sized.
//! Their `fdatasync` flushes data only, without a journal commit for a new file size, which
//! makes it about twice as fast on ext4. A sealed segment is cut back to its records; the
//! active one may end in zeros, which the scan on open reads as the end of the log.
//!
//! Every request's memory goes back to the appending task with its answer, so the thread does
//! not free what another thread allocated (which costs a lock in the allocator).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

use rollcall_core::envelope::{NewEvent, Position};
use tokio::sync::oneshot;

use super::format::{self, SEGMENT_HEADER_BYTES};
use super::hash::SeededHash;
use super::index::{IdMap, SegmentMeta, StoredId};
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
    pub reply: oneshot::Sender<Reply>,
}

/// The answer to a [`Request`], sent once its group is durable (or has failed).
pub(crate) struct Reply {
    /// What the append did.
    pub result: Result<AppendResult, StoreError>,
    /// The request's stream name and events, handed back so that the appending task frees
    /// them: freeing memory another thread allocated costs the writer a lock in the allocator.
    pub returned: (String, Vec<NewEvent>),
}

/// The bounded queue of appends between the appending tasks and the writer thread.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
    appends_max: usize,
}

struct QueueState {
    requests: Vec<Request>,
    closed: bool,
    /// The writer is waiting on `wake`; only then does a push pay for a notification.
    writer_idle: bool,
}

impl Queue {
    /// An empty queue of at most `appends_max` appends.
    pub(crate) fn new(appends_max: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState { requests: Vec::new(), closed: false, writer_idle: false }),
            wake: Condvar::new(),
            appends_max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Nothing panics while holding the lock, and the state is valid after every statement.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an append; fails when the queue is full or the writer has stopped.
    pub(crate) fn push(&self, request: Request) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.closed {
            return Err(StoreError::WriterFailed("the log writer has stopped".into()));
        }
        if state.requests.len() >= self.appends_max {
            return Err(StoreError::Overloaded("the append queue is full".into()));
        }
        state.requests.push(request);
        let idle = std::mem::replace(&mut state.writer_idle, false);
        drop(state);
        if idle {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Refuses new appends; the writer stops once it has answered the queued ones.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        drop(state);
        self.wake.notify_one();
    }

    /// Refuses new appends and drops the queued ones, whose callers then learn that the writer
    /// stopped before answering: for when the writer is gone.
    fn abandon(&self) {
        let mut state = self.lock();
        state.closed = true;
        let queued = std::mem::take(&mut state.requests);
        drop(state);
        drop(queued);
    }

    /// Waits until appends are queued and moves all of them into `into` (empty on entry).
    /// Returns `false` once the queue is closed and empty.
    fn take(&self, into: &mut Vec<Request>) -> bool {
        let mut state = self.lock();
        loop {
            if !state.requests.is_empty() {
                std::mem::swap(&mut state.requests, into);
                return true;
            }
            if state.closed {
                return false;
            }
            state.writer_idle = true;
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// How far ahead of the appends the active segment is filled with zeros.
const PREALLOCATE_BYTES: u64 = 1 << 20;

/// The writer's state; it alone writes segment files.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub options: EmbeddedOptions,
    pub dir: PathBuf,
    /// The segment being appended to.
    pub active: Arc<File>,
    /// Bytes of records in the active segment (written; synced once acknowledged).
    pub active_len: u64,
    /// The active segment's file size: records, then zeros, all synced.
    pub allocated: u64,
    /// The position the next event gets.
    pub next_position: u64,
    /// Stream name to number, including streams of groups not yet durable.
    pub streams: HashMap<String, u32, SeededHash>,
    /// Per stream number, the revision its next event gets.
    pub next_revision: Vec<u64>,
    /// Every event id stored, including those of groups not yet durable.
    pub ids: IdMap,
}

/// What a written group still needs before it is durable.
enum Durability {
    /// A sync of this file, the segment the group ends in (earlier segments were synced when
    /// they were sealed).
    Pending(Arc<File>),
    /// Nothing: it was synced on its own (the one-sync-per-append baseline) or writes nothing.
    Synced,
    /// It cannot be: writing it failed, and so does every append from then on.
    Failed,
}

/// A group written to the page cache, waiting to be made durable and answered.
pub(crate) struct Written {
    durability: Durability,
    requests: Vec<Request>,
    /// Per request, its answer.
    results: Vec<Result<AppendResult, StoreError>>,
    /// Per event written: stream number, revision and offset in its segment.
    events: Vec<(u32, u64, u64)>,
    /// Streams the group creates, with their numbers.
    new_streams: Vec<(String, u32)>,
    /// Segments the group started: first position and path.
    new_segments: Vec<(u64, PathBuf)>,
    /// Bytes of the active segment once the group is in.
    active_len: u64,
}

impl Writer {
    /// Runs until the queue is closed and drained.
    pub(crate) fn run(mut self, queue: Arc<Queue>) {
        // Should the thread panic (a bug), appends must fail rather than wait forever.
        let _guard = AbandonOnExit { queue: queue.clone(), shared: self.shared.clone() };
        let mut buf = Vec::with_capacity(1 << 20);
        let mut taken: Vec<Request> = Vec::new();
        let mut written = Vec::new();
        while queue.take(&mut taken) {
            let mut requests = taken.drain(..);
            loop {
                let mut group = Vec::new();
                let mut events = 0;
                for next in requests.by_ref() {
                    events += next.events.len();
                    group.push(next);
                    if self.options.sync == SyncPolicy::EveryAppend || events >= self.options.group_commit_events_max {
                        break;
                    }
                }
                if group.is_empty() {
                    break;
                }
                buf.clear();
                written.push(self.write_group(group, &mut buf));
                if buf.capacity() > (64 << 20) {
                    buf = Vec::with_capacity(1 << 20);
                }
            }
            complete(&self.shared, &mut written);
            // Between groups, while nobody waits on this thread: zeros for the next appends.
            if self.allocated - self.active_len < PREALLOCATE_BYTES / 2
                && !self.shared.failed.load(Ordering::Acquire)
                && let Err(e) = self.preallocate(self.active_len)
            {
                self.fail("preallocating the log", e);
            }
        }
    }

    /// Extends the active segment with synced zeros to hold at least `end` bytes, and up to
    /// [`PREALLOCATE_BYTES`] past it within the segment size limit.
    fn preallocate(&mut self, end: u64) -> std::io::Result<()> {
        let target = end.max((end + PREALLOCATE_BYTES).min(self.options.segment_bytes_max));
        if target <= self.allocated {
            return Ok(());
        }
        let zeros = vec![0u8; usize::try_from(target - self.allocated).map_err(std::io::Error::other)?];
        self.active.write_all_at(&zeros, self.allocated)?;
        self.active.sync_data()?;
        self.allocated = target;
        Ok(())
    }

    /// Records a fatal failure; every later append is refused with it.
    fn fail(&self, what: &str, e: std::io::Error) {
        self.shared.fail(format!("{what} failed ({e}); restart the process to recover from the log on disk"));
    }

    /// Checks and encodes a group, writes it to the page cache, and returns it to be synced.
    ///
    /// The writer's own maps take each request's effect at once, so later requests (of this
    /// group or the next) see earlier ones. They are never rolled back: when a write or a sync
    /// fails, the log refuses everything from then on.
    fn write_group(&mut self, requests: Vec<Request>, buf: &mut Vec<u8>) -> Written {
        let mut group = Written {
            durability: Durability::Failed,
            results: Vec::with_capacity(requests.len()),
            events: Vec::with_capacity(requests.len()),
            new_streams: Vec::new(),
            new_segments: Vec::new(),
            active_len: self.active_len,
            requests,
        };
        if self.shared.failed.load(Ordering::Acquire) {
            return group;
        }
        let mut buf_start_len = self.active_len;
        for request in &group.requests {
            let stream_no = self.streams.get(request.stream.as_str()).copied();
            let last_revision = stream_no.map(|s| self.next_revision[s as usize] - 1);
            let ids = &self.ids;
            let decision = decide(&request.stream, request.expected, &request.events, last_revision, |id| {
                ids.get(id).map(|stored| IdLocation {
                    same_stream: Some(stored.stream) == stream_no,
                    revision: stored.revision,
                    position: Position::from_sequence(stored.position),
                })
            });
            let first_revision = match decision {
                Err(e) => {
                    group.results.push(Err(e));
                    continue;
                }
                Ok(Decision::Duplicate(result)) => {
                    group.results.push(Ok(result));
                    continue;
                }
                Ok(Decision::Write { first_revision }) => first_revision,
            };
            let batch_bytes: u64 = request.events.iter().map(|e| format::record_bytes(&request.stream, e) as u64).sum();
            let in_segment = buf_start_len + buf.len() as u64;
            if in_segment > SEGMENT_HEADER_BYTES
                && in_segment + batch_bytes > self.options.segment_bytes_max
                && let Err(e) = self.roll(buf, &mut buf_start_len, &mut group.new_segments)
            {
                self.fail("rolling over to a new segment", e);
                return group;
            }
            let stream_no = stream_no.unwrap_or_else(|| {
                let s = self.next_revision.len() as u32;
                self.streams.insert(request.stream.clone(), s);
                self.next_revision.push(0);
                group.new_streams.push((request.stream.clone(), s));
                s
            });
            let last = request.events.len() - 1;
            for (i, event) in request.events.iter().enumerate() {
                let position = self.next_position;
                self.next_position += 1;
                let revision = first_revision + i as u64;
                group.events.push((stream_no, revision, buf_start_len + buf.len() as u64));
                format::encode(buf, position, revision, (last - i) as u16, &request.stream, event);
                self.ids.insert(event.id, StoredId { stream: stream_no, revision, position });
            }
            let last_revision = first_revision + last as u64;
            self.next_revision[stream_no as usize] = last_revision + 1;
            group.results.push(Ok(AppendResult {
                next_expected_revision: last_revision,
                position: Position::from_sequence(self.next_position - 1),
            }));
        }
        group.durability = Durability::Synced;
        if !buf.is_empty() {
            let end = buf_start_len + buf.len() as u64;
            if end > self.allocated
                && let Err(e) = self.preallocate(end)
            {
                self.fail("preallocating the log", e);
                group.durability = Durability::Failed;
                return group;
            }
            if let Err(e) = self.active.write_all_at(buf, buf_start_len) {
                self.fail("writing the log", e);
                group.durability = Durability::Failed;
                return group;
            }
            self.active_len = end;
            group.durability = Durability::Pending(self.active.clone());
            if self.options.sync == SyncPolicy::EveryAppend {
                // The naive baseline: this append's own sync, before the next one is written.
                group.durability = match self.active.sync_data() {
                    Ok(()) => Durability::Synced,
                    Err(e) => {
                        self.fail("syncing the log", e);
                        Durability::Failed
                    }
                };
            }
        }
        group.active_len = self.active_len;
        group
    }

    /// Seals the active segment (writing what is buffered, cutting the zeros after it and
    /// syncing) and starts a new one.
    fn roll(
        &mut self,
        buf: &mut Vec<u8>,
        buf_start_len: &mut u64,
        new_segments: &mut Vec<(u64, PathBuf)>,
    ) -> std::io::Result<()> {
        let sealed_len = *buf_start_len + buf.len() as u64;
        self.active.write_all_at(buf, *buf_start_len)?;
        self.active.set_len(sealed_len)?;
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
        self.active = Arc::new(file);
        self.active_len = SEGMENT_HEADER_BYTES;
        self.allocated = SEGMENT_HEADER_BYTES;
        // Offsets already staged for the old segment stay as they are; new ones start after
        // the new header.
        buf.clear();
        *buf_start_len = SEGMENT_HEADER_BYTES;
        new_segments.push((first_position, path));
        Ok(())
    }
}

/// Makes written groups durable with one sync per file, publishes them and answers them.
fn complete(shared: &Shared, taken: &mut Vec<Written>) {
    {
        // One sync per file covers every group taken (each group names the segment it ends in;
        // earlier segments were synced when they were sealed).
        let mut failed =
            shared.failed.load(Ordering::Acquire) || taken.iter().any(|g| matches!(g.durability, Durability::Failed));
        let mut synced: Option<&Arc<File>> = None;
        for group in taken.iter().rev() {
            let Durability::Pending(file) = &group.durability else { continue };
            if failed || synced.is_some_and(|s| Arc::ptr_eq(s, file)) {
                continue;
            }
            let result = if shared.sync_faults.take() {
                Err(std::io::Error::other("injected sync failure"))
            } else {
                file.sync_data()
            };
            if let Err(e) = result {
                shared
                    .fail(format!("syncing the log failed ({e}); restart the process to recover from the log on disk"));
                failed = true;
            }
            synced = Some(file);
        }
        if failed {
            // A failed sync may have dropped the group's pages: nothing taken is known durable.
            let message = shared.failure_message();
            for group in taken.drain(..) {
                answer_all_failed(group.requests, &message);
            }
            return;
        }
        publish(shared, taken);
        for group in taken.drain(..) {
            // Only a failed group lacks answers, and failed groups were answered above.
            debug_assert_eq!(group.results.len(), group.requests.len());
            for (request, result) in group.requests.into_iter().zip(group.results) {
                let Request { stream, events, reply, .. } = request;
                // A caller that stopped waiting has nothing to be told.
                let _ = reply.send(Reply { result, returned: (stream, events) });
            }
        }
    }
}

/// Makes durable groups visible to readers and subscribers.
fn publish(shared: &Shared, groups: &mut [Written]) {
    let mut index = shared.index.write().unwrap_or_else(|p| p.into_inner());
    for group in groups.iter_mut() {
        let mut opened = Vec::new();
        for (first_position, path) in group.new_segments.drain(..) {
            // The file was created and synced by the writer; reopening it for reading only
            // fails if the directory vanished, which the next write would report as well.
            if let Ok(file) = File::open(&path) {
                opened.push(SegmentMeta { first_position, file: Arc::new(file), len: SEGMENT_HEADER_BYTES });
            }
        }
        if !opened.is_empty() {
            // Every segment before the new ones is sealed: its length is its file size.
            let last = index.segments.len() - 1;
            let sealed_len = index.segments[last].file.metadata().map(|m| m.len()).unwrap_or(index.segments[last].len);
            index.segments[last].len = sealed_len;
            let count = opened.len();
            for (i, meta) in opened.into_iter().enumerate() {
                let len = if i + 1 == count {
                    group.active_len
                } else {
                    meta.file.metadata().map(|m| m.len()).unwrap_or(meta.len)
                };
                index.segments.push(SegmentMeta { len, ..meta });
            }
        }
        // The writer checked revisions and ids; a mismatch here is a bug.
        for (name, stream) in group.new_streams.drain(..) {
            if let Err(e) = index.add_stream(name, stream) {
                panic!("embedded log index out of step with the writer: {e}");
            }
        }
        index.offsets.reserve(group.events.len());
        for &(stream, revision, offset) in &group.events {
            if let Err(e) = index.push_numbered(stream, revision, offset) {
                panic!("embedded log index out of step with the writer: {e}");
            }
        }
        if let Some(last) = index.segments.last_mut() {
            last.len = group.active_len;
        }
    }
    let head = index.head();
    drop(index);
    shared.head.send_replace(Position::from_sequence(head));
}

/// Fails the log and drops the queued appends when the log thread ends, normally (the queue is
/// closed and drained by then) or by a panic (appends written but not answered are dropped with
/// it, and their callers learn that no answer is coming).
struct AbandonOnExit {
    queue: Arc<Queue>,
    shared: Arc<Shared>,
}

impl Drop for AbandonOnExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.fail("the log thread stopped on a bug; restart the process".into());
        }
        self.queue.abandon();
    }
}

/// Answers every request of a failed group with the failure.
fn answer_all_failed(requests: Vec<Request>, message: &str) {
    for request in requests {
        let Request { stream, events, reply, .. } = request;
        let result = Err(StoreError::WriterFailed(message.to_owned()));
        let _ = reply.send(Reply { result, returned: (stream, events) });
    }
}
