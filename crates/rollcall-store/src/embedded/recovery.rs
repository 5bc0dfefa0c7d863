//! Reading a data directory back: the scan on open, `inspect` and `repair`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::format::{self, Body, Frame, SEGMENT_HEADER_BYTES};
use super::index::Index;
use super::lock::DirLock;
use crate::error::StoreError;

/// How a segment file ended when it was scanned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SegmentStatus {
    /// Every record is whole and checks out.
    Clean,
    /// The last segment ends in a partly written append, which opening the log truncates.
    TornTail {
        /// Where the partial append starts.
        offset: u64,
        /// What was found there.
        reason: String,
    },
    /// A damaged record; the log refuses to open until it is repaired.
    Corrupt {
        /// Byte offset of the damaged record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// Not scanned, because an earlier segment is damaged.
    NotScanned,
}

/// One segment in an [`Report`].
#[derive(Clone, Debug, Serialize)]
pub struct SegmentReport {
    /// File name within the data directory.
    pub name: String,
    /// File size.
    pub file_bytes: u64,
    /// Whole events found.
    pub events: u64,
    /// Position of its first event (named by the file).
    pub first_position: u64,
    /// Bytes that hold whole, checked appends.
    pub valid_bytes: u64,
    /// How it ended.
    pub status: SegmentStatus,
}

/// What `inspect` found in a data directory.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The data directory.
    pub dir: PathBuf,
    /// Every segment, in order.
    pub segments: Vec<SegmentReport>,
    /// Whole events before any damage.
    pub events: u64,
    /// Distinct streams among them.
    pub streams: u64,
    /// Whether the log opens without repair (a torn tail is truncated on open and is not damage).
    pub healthy: bool,
}

/// What `repair` did.
#[derive(Clone, Debug, Serialize)]
pub struct RepairReport {
    /// The data directory.
    pub dir: PathBuf,
    /// Whether anything had to be repaired.
    pub repaired: bool,
    /// Where the damaged segments were moved, if anywhere.
    pub damaged_dir: Option<PathBuf>,
    /// The segment files moved aside (the first one's good prefix was copied back in place).
    pub moved_segments: Vec<String>,
    /// Events kept in the log.
    pub events_kept: u64,
    /// The first position lost, if any were.
    pub first_lost_position: Option<u64>,
}

/// Where the scan stopped at damage.
pub(crate) struct Corruption {
    pub segment: usize,
    pub offset: u64,
    pub reason: String,
    /// Bytes of the damaged segment before the append holding the damage.
    pub good_len: u64,
}

/// The outcome of scanning a data directory.
pub(crate) struct Scan {
    pub index: Index,
    pub segments: Vec<SegmentReport>,
    pub corruption: Option<Corruption>,
}

impl Scan {
    pub(crate) fn corrupt_error(&self) -> Option<StoreError> {
        self.corruption.as_ref().map(|c| StoreError::Corrupt {
            segment: self.segments[c.segment].name.clone(),
            offset: c.offset,
            reason: c.reason.clone(),
        })
    }
}

/// The segment files of a directory, in position order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, String)>, StoreError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = format::parse_segment_file_name(name)
            && entry.file_type()?.is_file()
        {
            segments.push((first, name.to_owned()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Scans every segment in order, building the index, and stops at the first damage.
pub(crate) fn scan(dir: &Path) -> Result<Scan, StoreError> {
    let listed = list_segments(dir)?;
    let mut scan = Scan { index: Index::default(), segments: Vec::new(), corruption: None };
    for (i, (first_position, name)) in listed.iter().enumerate() {
        let bytes = fs::read(dir.join(name))?;
        let mut report = SegmentReport {
            name: name.clone(),
            file_bytes: bytes.len() as u64,
            events: 0,
            first_position: *first_position,
            valid_bytes: 0,
            status: SegmentStatus::NotScanned,
        };
        if scan.corruption.is_none() {
            let is_last = i + 1 == listed.len();
            match scan_segment(&mut scan.index, &bytes, *first_position, is_last) {
                Ok(end) => {
                    report.events = end.events;
                    report.valid_bytes = end.valid_len;
                    report.status = match end.torn {
                        Some((offset, reason)) => SegmentStatus::TornTail { offset, reason },
                        None => SegmentStatus::Clean,
                    };
                }
                Err(bad) => {
                    report.events = bad.events;
                    report.valid_bytes = bad.good_len;
                    report.status = SegmentStatus::Corrupt { offset: bad.offset, reason: bad.reason.clone() };
                    scan.corruption =
                        Some(Corruption { segment: i, offset: bad.offset, reason: bad.reason, good_len: bad.good_len });
                }
            }
        }
        scan.segments.push(report);
    }
    Ok(scan)
}

struct SegmentEnd {
    events: u64,
    valid_len: u64,
    torn: Option<(u64, String)>,
}

struct BadSegment {
    offset: u64,
    reason: String,
    good_len: u64,
    events: u64,
}

fn scan_segment(index: &mut Index, bytes: &[u8], first_position: u64, is_last: bool) -> Result<SegmentEnd, BadSegment> {
    let bad = |offset: usize, reason: String, good_len: usize, events: u64| BadSegment {
        offset: offset as u64,
        reason,
        good_len: good_len as u64,
        events,
    };
    let header = SEGMENT_HEADER_BYTES as usize;
    if bytes.len() < header {
        if is_last {
            // Created, then the process died before its header reached the disk.
            return Ok(SegmentEnd { events: 0, valid_len: 0, torn: Some((0, "segment header incomplete".into())) });
        }
        return Err(bad(0, "segment header incomplete".into(), 0, 0));
    }
    if bytes[..header] != format::segment_header(first_position) {
        return Err(bad(0, "segment header does not match its file name".into(), 0, 0));
    }
    if first_position != index.head() + 1 {
        let reason =
            format!("segment starts at position {first_position} but the log before it ends at {}", index.head());
        return Err(bad(0, reason, 0, 0));
    }
    let mut offset = header;
    let mut valid_len = header;
    let mut events = 0u64;
    // Records of the append being read; indexed only once the whole append has been seen.
    let mut batch: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    let mut expect_remaining: Option<u16> = None;
    while offset < bytes.len() {
        let position = index.head() + 1 + batch.len() as u64;
        let problem = match format::frame_at(bytes, offset) {
            Frame::Valid { body, next } => match Body::parse(&bytes[body.clone()]) {
                Err(reason) => return Err(bad(offset, reason, valid_len, events)),
                Ok(b) => {
                    if b.position != position {
                        let reason = format!("record has position {}, expected {position}", b.position);
                        return Err(bad(offset, reason, valid_len, events));
                    }
                    if expect_remaining.is_some_and(|r| r != b.batch_remaining) {
                        return Err(bad(offset, "append is missing records".into(), valid_len, events));
                    }
                    batch.push((offset, body));
                    if b.batch_remaining == 0 {
                        for (record_offset, body) in batch.drain(..) {
                            let b = Body::parse(&bytes[body]).map_err(|r| bad(record_offset, r, valid_len, events))?;
                            index
                                .push(b.stream, b.revision, b.id, record_offset as u64)
                                .map_err(|reason| bad(record_offset, reason, valid_len, events))?;
                            events += 1;
                        }
                        valid_len = next;
                        expect_remaining = None;
                    } else {
                        expect_remaining = Some(b.batch_remaining - 1);
                    }
                    offset = next;
                    continue;
                }
            },
            Frame::Incomplete => "record runs past the end of the file".to_string(),
            Frame::BadLength(len) => format!("record length {len} is impossible"),
            Frame::BadChecksum => "record checksum does not match".to_string(),
        };
        // Nothing but zeros after the last whole append: the room the writer preallocated, not
        // damage. (A sealed segment is cut back to its records before the next one is created;
        // were its zeros kept, the next segment's first position still has to follow on.)
        if batch.is_empty() && bytes[offset..].iter().all(|&b| b == 0) {
            return Ok(SegmentEnd { events, valid_len: valid_len as u64, torn: None });
        }
        // A damaged record followed by a later whole record is damage in the middle of the log,
        // never a torn write: acknowledged events come after it.
        if !is_last || later_record_exists(bytes, offset, position + 1) {
            return Err(bad(offset, problem, valid_len, events));
        }
        let torn_at = batch.first().map_or(offset, |(o, _)| *o);
        return Ok(SegmentEnd { events, valid_len: valid_len as u64, torn: Some((torn_at as u64, problem)) });
    }
    if let Some((first, _)) = batch.first() {
        if !is_last {
            return Err(bad(*first, "append is missing records at the end of the segment".into(), valid_len, events));
        }
        let reason = "the last append was only partly written".to_string();
        return Ok(SegmentEnd { events, valid_len: valid_len as u64, torn: Some((*first as u64, reason)) });
    }
    Ok(SegmentEnd { events, valid_len: valid_len as u64, torn: None })
}

/// Whether a whole record with this position exists at or after `from`.
fn later_record_exists(bytes: &[u8], from: usize, position: u64) -> bool {
    // The position sits 32 bytes into a frame: 8 bytes of frame header and 24 of body.
    let needle = position.to_le_bytes();
    let start = from + 32;
    if bytes.len() < start + 8 {
        return false;
    }
    bytes[start..]
        .windows(8)
        .enumerate()
        .any(|(i, w)| w == needle && matches!(format::frame_at(bytes, from + i), Frame::Valid { .. }))
}

/// Scans a data directory without changing it and reports what it holds.
///
/// It takes no lock, so it can look at the directory of a running process; a tail being
/// written at that moment may show as torn.
pub fn inspect(dir: &Path) -> Result<Report, StoreError> {
    let scan = scan(dir)?;
    Ok(Report {
        dir: dir.to_path_buf(),
        events: scan.index.head(),
        streams: scan.index.stream_positions.len() as u64,
        healthy: scan.corruption.is_none(),
        segments: scan.segments,
    })
}

/// Repairs a damaged log: keeps every whole append before the first damage, and moves the
/// damaged segment and every later one into a `damaged-<timestamp>/` folder. Nothing is deleted.
///
/// Refuses with [`StoreError::Locked`] while a process has the log open.
pub fn repair(dir: &Path) -> Result<RepairReport, StoreError> {
    let _lock = DirLock::acquire(dir)?;
    let scan = scan(dir)?;
    let Some(corruption) = &scan.corruption else {
        return Ok(RepairReport {
            dir: dir.to_path_buf(),
            repaired: false,
            damaged_dir: None,
            moved_segments: Vec::new(),
            events_kept: scan.index.head(),
            first_lost_position: None,
        });
    };
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let damaged_dir = dir.join(format!("damaged-{stamp}"));
    fs::create_dir(&damaged_dir)?;
    let mut moved = Vec::new();
    for report in &scan.segments[corruption.segment..] {
        fs::rename(dir.join(&report.name), damaged_dir.join(&report.name))?;
        moved.push(report.name.clone());
    }
    sync_dir(&damaged_dir)?;
    let damaged = &scan.segments[corruption.segment];
    if corruption.good_len >= SEGMENT_HEADER_BYTES {
        // The good prefix goes back in place through a temporary file, so a crash during the
        // repair leaves either no segment or a whole one.
        let mut prefix = vec![0u8; corruption.good_len as usize];
        let mut source = File::open(damaged_dir.join(&damaged.name))?;
        std::io::Read::read_exact(&mut source, &mut prefix)?;
        let temp = dir.join(format!("{}.repair", damaged.name));
        let mut out = OpenOptions::new().write(true).create_new(true).open(&temp)?;
        out.write_all(&prefix)?;
        out.sync_all()?;
        fs::rename(&temp, dir.join(&damaged.name))?;
    }
    sync_dir(dir)?;
    Ok(RepairReport {
        dir: dir.to_path_buf(),
        repaired: true,
        damaged_dir: Some(damaged_dir),
        moved_segments: moved,
        events_kept: scan.index.head(),
        first_lost_position: Some(scan.index.head() + 1),
    })
}

/// Makes a directory's entries (new, renamed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}
