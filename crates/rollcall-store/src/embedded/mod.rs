//! The embedded log: the default event store, in segment files in one data directory.
//!
//! - Every event is one record framed with its length and a CRC32C of its body
//!   ([`format`](self) describes the bytes); the payload is stored as the JSON it was given.
//! - One log thread takes every queued append, checks and encodes them, writes them with one
//!   `write` and makes them durable with one `fdatasync`, and only then publishes and
//!   acknowledges them (group commit). A failed write or sync is fatal: the log refuses every
//!   later append with [`StoreError::WriterFailed`] instead of retrying, since after a failed
//!   fsync the kernel may have dropped the dirty pages.
//! - The active segment is preallocated with synced zeros ahead of the appends, so that a sync
//!   flushes data without a journal commit for a new file size; sealed segments are cut back to
//!   their records.
//! - The index (positions, streams, event ids) lives in memory and is rebuilt by scanning the
//!   segments on open. Zeros after the last record of the last segment are its preallocated
//!   room; a torn tail there is truncated; damage anywhere else makes the open fail with
//!   [`StoreError::Corrupt`] until [`repair`] is run.
//! - A `flock` on `LOCK` keeps a second process out of the directory.

mod format;
mod hash;
mod index;
mod lock;
mod recovery;
mod replay;
mod writer;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use rollcall_core::envelope::{NewEvent, Position, RecordedEvent};
use tokio::sync::{oneshot, watch};

pub use recovery::{RepairReport, Report, SegmentReport, SegmentStatus, inspect, repair};
pub use replay::SegmentEvents;

use self::format::{Body, FRAME_HEADER_BYTES, Frame, SEGMENT_HEADER_BYTES};
use self::index::{Index, SegmentMeta};
use self::lock::DirLock;
use self::writer::{Queue, Request, Writer};
use crate::error::StoreError;
use crate::limits::Limits;
use crate::store::{AppendResult, EventFilter, EventStore, ExpectedRevision, Subscription};
use crate::subscription::{self, Page, PageSource};

/// When the writer calls `fdatasync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// One sync covers every append queued at that moment (the default, and the only policy for
    /// production).
    GroupCommit,
    /// One sync per append: the naive baseline the benchmark compares group commit with.
    /// Exactly as durable, much slower.
    EveryAppend,
}

/// How an embedded log is run.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// A segment is sealed and a new one started once it would grow past this size.
    pub segment_bytes_max: u64,
    /// Appends waiting for the writer, at most; past it appends fail with
    /// [`StoreError::Overloaded`].
    pub queue_appends_max: usize,
    /// Events one group commit takes at most.
    pub group_commit_events_max: usize,
    /// When to sync; see [`SyncPolicy`].
    pub sync: SyncPolicy,
    /// Limits on appends and reads.
    pub limits: Limits,
    /// Syncs to fail on purpose, to exercise what a failed `fdatasync` does (tests only; none
    /// by default).
    pub sync_faults: SyncFaults,
}

/// A count of upcoming group syncs that fail as if `fdatasync` had returned an error.
///
/// A real failed sync needs a failing disk; this lets a test drive the same path from the
/// syscall's result onwards: the syncer answers every pending append with `WriterFailed` and the
/// log refuses every later append until it is reopened.
#[derive(Clone, Debug, Default)]
pub struct SyncFaults(Arc<AtomicU64>);

impl SyncFaults {
    /// Makes the next `count` group syncs fail.
    pub fn fail_next(&self, count: u64) {
        self.0.store(count, Ordering::Release);
    }

    /// Whether this sync is to fail (and counts it).
    pub(crate) fn take(&self) -> bool {
        self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
    }
}

impl Default for EmbeddedOptions {
    fn default() -> EmbeddedOptions {
        EmbeddedOptions {
            segment_bytes_max: 64 * 1024 * 1024,
            queue_appends_max: 16 * 1024,
            group_commit_events_max: 16 * 1024,
            sync: SyncPolicy::GroupCommit,
            limits: Limits::default(),
            sync_faults: SyncFaults::default(),
        }
    }
}

/// Positions one read scans at most before it returns what it found (bounds the memory a
/// filtered read holds at once).
const SCAN_POSITIONS_MAX: u64 = 4096;

/// State shared by the handle, the writer thread and subscriptions.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub index: RwLock<Index>,
    pub head: watch::Sender<Position>,
    pub failed: AtomicBool,
    pub failure: Mutex<Option<String>>,
    pub limits: Limits,
    pub sync_faults: SyncFaults,
    _lock: DirLock,
}

/// The embedded log; see the module documentation.
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        // The writer answers what is queued, then stops.
        self.queue.close();
    }
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log in `dir`: locks it, scans it, truncates a torn tail.
    ///
    /// Fails with [`StoreError::Locked`] if another process has it open and with
    /// [`StoreError::Corrupt`] if a record before the tail is damaged.
    pub async fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<EmbeddedLog, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || EmbeddedLog::open_blocking(dir, options))
            .await
            .map_err(|e| StoreError::Backend(format!("opening the log panicked: {e}")))?
    }

    /// [`EmbeddedLog::open`] for callers outside an async context (it still needs a tokio
    /// runtime to be running for appends).
    pub fn open_blocking(dir: PathBuf, options: EmbeddedOptions) -> Result<EmbeddedLog, StoreError> {
        if options.segment_bytes_max < 1024 || options.queue_appends_max == 0 || options.group_commit_events_max == 0 {
            return Err(StoreError::Invalid(
                "embedded options out of range: segment_bytes_max >= 1024, queue_appends_max > 0, group_commit_events_max > 0".into(),
            ));
        }
        std::fs::create_dir_all(&dir)?;
        let lock = DirLock::acquire(&dir)?;
        let scan = recovery::scan(&dir)?;
        if let Some(e) = scan.corrupt_error() {
            return Err(e);
        }
        let mut index = scan.index;
        let mut reports = scan.segments;
        if reports.is_empty() {
            let first = index.head() + 1;
            let path = dir.join(format::segment_file_name(first));
            let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
            file.write_all(&format::segment_header(first))?;
            file.sync_data()?;
            recovery::sync_dir(&dir)?;
            reports.push(SegmentReport {
                name: format::segment_file_name(first),
                file_bytes: SEGMENT_HEADER_BYTES,
                events: 0,
                first_position: first,
                valid_bytes: SEGMENT_HEADER_BYTES,
                status: SegmentStatus::Clean,
            });
        }
        let last = reports.len() - 1;
        for (i, report) in reports.iter().enumerate() {
            let path = dir.join(&report.name);
            let file = File::open(&path)?;
            let len = if i == last { report.valid_bytes.max(SEGMENT_HEADER_BYTES) } else { report.valid_bytes };
            index.segments.push(SegmentMeta { first_position: report.first_position, file: Arc::new(file), len });
        }
        let active_report = &reports[last];
        let active_path = dir.join(&active_report.name);
        let mut active = OpenOptions::new().write(true).open(&active_path)?;
        if let SegmentStatus::TornTail { offset, reason } = &active_report.status {
            tracing::warn!(
                segment = %active_report.name, offset, reason = %reason,
                "truncating the torn tail of the log: the append there was never acknowledged"
            );
            if active_report.valid_bytes < SEGMENT_HEADER_BYTES {
                active.set_len(0)?;
                active.write_all(&format::segment_header(active_report.first_position))?;
            } else {
                active.set_len(active_report.valid_bytes)?;
            }
            active.sync_all()?;
        }
        let active_len = index.segments[last].len;
        // Zeros after the records, if any, were preallocated and synced by an earlier writer.
        let allocated = active.metadata()?.len().max(active_len);
        let head = index.head();
        // The writer alone looks ids up; its own copy of the stream names tracks the streams of
        // a group before they are published.
        let ids = std::mem::take(&mut index.ids);
        let streams = index.streams.clone();
        let next_revision = index.stream_positions.iter().map(|p| p.len() as u64).collect();
        let (head_tx, _) = watch::channel(Position::from_sequence(head));
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            index: RwLock::new(index),
            head: head_tx,
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            limits: options.limits,
            sync_faults: options.sync_faults.clone(),
            _lock: lock,
        });
        let queue = Arc::new(Queue::new(options.queue_appends_max));
        let writer = Writer {
            shared: shared.clone(),
            options,
            dir,
            active: Arc::new(active),
            active_len,
            allocated,
            next_position: head + 1,
            streams,
            next_revision,
            ids,
        };
        let writer_queue = queue.clone();
        let handle = std::thread::Builder::new().name("rollcall-log".into()).spawn(move || writer.run(writer_queue))?;
        Ok(EmbeddedLog { shared, queue, writer: Some(handle) })
    }

    /// Stops the writer after the appends already queued and waits for it, releasing the
    /// directory lock once every subscription is dropped too.
    pub async fn close(mut self) {
        // The writer stops once it has answered what is queued.
        self.queue.close();
        if let Some(writer) = self.writer.take() {
            // The writer only panics on a bug; closing still releases what it can.
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Decodes the whole log on `threads` threads, in chunks of at most `chunk_events`
    /// consecutive events, calling `per_chunk` once per chunk with its events in order; returns
    /// the results in log order.
    ///
    /// This is the fast path for a full replay (a rebuild, an audit): each chunk is read with one
    /// large read and decoded on its own, so both cores work. Events appended after the call
    /// starts are not included.
    pub fn replay_chunks<T, F>(&self, threads: usize, chunk_events: usize, per_chunk: F) -> Result<Vec<T>, StoreError>
    where
        T: Send,
        F: Fn(SegmentEvents) -> T + Sync,
    {
        let chunk_events = chunk_events.max(1) as u64;
        let mut chunks = Vec::new();
        {
            let index = self.shared.read_index();
            let head = index.head();
            let mut position = 1;
            while position <= head {
                let segment = index.segment_of(position);
                let segment_last = index.segments.get(segment + 1).map_or(head, |s| s.first_position - 1);
                let last = segment_last.min(position + chunk_events - 1);
                let (start, _) = index.record_range(segment, position);
                let (_, end) = index.record_range(segment, last);
                chunks.push(replay::Chunk {
                    file: index.segments[segment].file.clone(),
                    segment_first_position: index.segments[segment].first_position,
                    first_position: position,
                    start,
                    end,
                });
                position = last + 1;
            }
        }
        replay::replay(&chunks, threads, per_chunk)
    }
}

impl Shared {
    /// Records a fatal failure of the writer or the syncer; every later append is refused.
    fn fail(&self, message: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        // The first failure is the cause; later ones follow from it.
        if failure.is_none() {
            *failure = Some(message);
        }
        drop(failure);
        self.failed.store(true, Ordering::Release);
    }

    /// What the recorded failure was.
    fn failure_message(&self) -> String {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // The index is only changed by pushes after every check has passed, so even a poisoned
        // lock guards a consistent index.
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads and decodes whole records of one segment from `start` up to `end`.
    fn read_range(file: &File, start: u64, end: u64) -> Result<Vec<u8>, StoreError> {
        let mut bytes = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut bytes, start)?;
        Ok(bytes)
    }

    fn corrupt(&self, segment_first: u64, offset: u64, reason: String) -> StoreError {
        StoreError::Corrupt { segment: format::segment_file_name(segment_first), offset, reason }
    }

    /// Scans positions after `after`, at most [`SCAN_POSITIONS_MAX`], collecting matches.
    fn scan_blocking(&self, after: u64, filter: &EventFilter, max_count: usize) -> Result<Page, StoreError> {
        // The plan: for each segment touched, the file, the record offsets and the range end.
        let mut plan: Vec<(Arc<File>, u64, Vec<u64>, u64)> = Vec::new();
        {
            let index = self.read_index();
            let head = index.head();
            let mut last = head.min(after + SCAN_POSITIONS_MAX);
            if filter.stream_prefixes.is_empty() && filter.event_types.is_empty() {
                // Every position read is returned: read no more than asked for.
                last = last.min(after.saturating_add(max_count.max(1) as u64));
            }
            let mut position = after + 1;
            while position <= last {
                let segment = index.segment_of(position);
                let seg_last = index.segments.get(segment + 1).map_or(head, |s| s.first_position - 1).min(last);
                let offsets = index.offsets[position as usize - 1..seg_last as usize].to_vec();
                let (_, end) = index.record_range(segment, seg_last);
                let meta = &index.segments[segment];
                plan.push((meta.file.clone(), meta.first_position, offsets, end));
                position = seg_last + 1;
            }
        }
        let mut events = Vec::new();
        let mut scanned_to = after;
        // When every event is wanted, payloads share the buffer they were read into instead of
        // being copied one by one; a filtered read copies the few it keeps, so that they do not
        // hold on to the whole buffer.
        let share = filter.stream_prefixes.is_empty() && filter.event_types.is_empty();
        for (file, segment_first, offsets, end) in plan {
            let start = offsets[0];
            let bytes = Bytes::from(Shared::read_range(&file, start, end)?);
            for &offset in &offsets {
                let at = (offset - start) as usize;
                let Frame::Valid { body, .. } = format::frame_at(&bytes, at) else {
                    return Err(self.corrupt(segment_first, offset, "record read back does not check out".into()));
                };
                let b = Body::parse(&bytes[body]).map_err(|r| self.corrupt(segment_first, offset, r))?;
                scanned_to = b.position;
                if filter.matches(b.stream, b.event_type) {
                    let data = if share {
                        bytes.slice(at + FRAME_HEADER_BYTES + b.data.start..at + FRAME_HEADER_BYTES + b.data.end)
                    } else {
                        Bytes::copy_from_slice(b.data_bytes())
                    };
                    events.push(b.to_recorded(data).map_err(|r| self.corrupt(segment_first, offset, r))?);
                    if events.len() >= max_count {
                        return Ok(Page { events, scanned_to: Position::from_sequence(scanned_to) });
                    }
                }
            }
        }
        Ok(Page { events, scanned_to: Position::from_sequence(scanned_to) })
    }

    fn read_stream_blocking(
        &self,
        stream: &str,
        from_revision: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let reads: Vec<(Arc<File>, u64, u64, u64)> = {
            let index = self.read_index();
            let Some(s) = index.stream(stream) else { return Ok(Vec::new()) };
            let positions = &index.stream_positions[s as usize];
            let from = usize::try_from(from_revision).unwrap_or(usize::MAX).min(positions.len());
            positions[from..]
                .iter()
                .take(max_count)
                .map(|&p| {
                    let segment = index.segment_of(p);
                    let (start, end) = index.record_range(segment, p);
                    let meta = &index.segments[segment];
                    (meta.file.clone(), meta.first_position, start, end)
                })
                .collect()
        };
        let mut events = Vec::with_capacity(reads.len());
        for (file, segment_first, start, end) in reads {
            let bytes = Shared::read_range(&file, start, end)?;
            let Frame::Valid { body, .. } = format::frame_at(&bytes, 0) else {
                return Err(self.corrupt(segment_first, start, "record read back does not check out".into()));
            };
            let b = Body::parse(&bytes[body]).map_err(|r| self.corrupt(segment_first, start, r))?;
            let data = Bytes::copy_from_slice(b.data_bytes());
            events.push(b.to_recorded(data).map_err(|r| self.corrupt(segment_first, start, r))?);
        }
        Ok(events)
    }
}

impl PageSource for Shared {
    async fn read_page(
        self: Arc<Self>,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Page, StoreError> {
        let filter = filter.clone();
        blocking(&self, move |s| s.scan_blocking(after.sequence(), &filter, max_count)).await
    }
}

async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || f(&shared))
        .await
        .map_err(|e| StoreError::Backend(format!("a log read panicked: {e}")))?
}

#[async_trait]
impl EventStore for EmbeddedLog {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.shared.limits.check_append(stream, &events)?;
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(StoreError::WriterFailed(self.shared.failure_message()));
        }
        let (reply, response) = oneshot::channel();
        self.queue.push(Request { stream: stream.to_owned(), expected, events, reply })?;
        let reply =
            response.await.map_err(|_| StoreError::WriterFailed("the log writer stopped before answering".into()))?;
        // The request's memory is freed here, on the appending task's thread.
        let writer::Reply { result, returned } = reply;
        drop(returned);
        result
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_revision: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max_count = max_count.min(self.shared.limits.read_events_max);
        let stream = stream.to_owned();
        blocking(&self.shared, move |s| s.read_stream_blocking(&stream, from_revision, max_count)).await
    }

    async fn read_all(
        &self,
        after: Position,
        filter: &EventFilter,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max_count = max_count.min(self.shared.limits.read_events_max);
        let filter = filter.clone();
        blocking(&self.shared, move |s| {
            let mut events = Vec::new();
            let mut after = after.sequence();
            loop {
                let head = s.read_index().head();
                if after >= head || events.len() >= max_count {
                    return Ok(events);
                }
                let page = s.scan_blocking(after, &filter, max_count - events.len())?;
                after = page.scanned_to.sequence();
                events.extend(page.events);
            }
        })
        .await
    }

    async fn subscribe(&self, after: Position, filter: EventFilter) -> Result<Subscription, StoreError> {
        let head = self.shared.head.subscribe();
        Ok(subscription::subscribe(self.shared.clone(), head, after, filter))
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Ok(*self.shared.head.borrow())
    }
}
