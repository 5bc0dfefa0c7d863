//! The on-disk format of the embedded log.
//!
//! A segment file is named after the position of its first event (`00000000000000000001.seg`)
//! and starts with a 16-byte header: the magic `RCLOGv01` and that first position (u64 LE).
//! Records follow back to back, one per event:
//!
//! ```text
//! u32 body length | u32 CRC32C of the body | body
//! ```
//!
//! The body is a fixed 136-byte little-endian header followed by the stream name, the event
//! type and the JSON payload, byte for byte as appended. `batch_remaining` counts the records
//! that follow in the same append, so recovery can drop an append that was only half written.

use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rollcall_core::envelope::{Actor, Metadata, NewEvent, Position, RecordedEvent};
use uuid::Uuid;

/// The first bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"RCLOGv01";
/// Bytes of the segment header: magic and first position.
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 16;
/// Bytes of a record frame header: body length and checksum.
pub(crate) const FRAME_HEADER_BYTES: usize = 8;
/// Bytes of the fixed part of a record body.
pub(crate) const FIXED_BODY_BYTES: usize = 136;
/// The largest body recovery accepts; anything longer is damage, not data.
pub(crate) const BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The segment file name suffix.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";

const RECORD_VERSION: u8 = 1;
const FLAG_HAS_CAUSATION: u8 = 1;

/// The file name of the segment whose first event is at `first_position`.
pub(crate) fn segment_file_name(first_position: u64) -> String {
    format!("{first_position:020}{SEGMENT_SUFFIX}")
}

/// The first position named by a segment file name, if it is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a new segment.
pub(crate) fn segment_header(first_position: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..].copy_from_slice(&first_position.to_le_bytes());
    header
}

/// The encoded size of an event's record, frame included.
pub(crate) fn record_bytes(stream: &str, event: &NewEvent) -> usize {
    FRAME_HEADER_BYTES + FIXED_BODY_BYTES + stream.len() + event.event_type.len() + event.data.len()
}

/// Appends one framed record to `buf`. Lengths were checked against the limits before.
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    position: u64,
    revision: u64,
    batch_remaining: u16,
    stream: &str,
    event: &NewEvent,
) {
    let start = buf.len();
    let body_len = FIXED_BODY_BYTES + stream.len() + event.event_type.len() + event.data.len();
    buf.reserve(FRAME_HEADER_BYTES + body_len);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    let (actor_kind, actor_a, actor_b) = match &event.metadata.actor {
        Actor::System => (0u8, Uuid::nil(), Uuid::nil()),
        Actor::Account { account_id } => (1, *account_id, Uuid::nil()),
        Actor::Member { workspace_id, member_id } => (2, *workspace_id, *member_id),
        Actor::Bot { workspace_id, bot_id } => (3, *workspace_id, *bot_id),
    };
    let flags = if event.metadata.causation_id.is_some() { FLAG_HAS_CAUSATION } else { 0 };
    let recorded = event.metadata.recorded_at;
    buf.extend_from_slice(&[RECORD_VERSION, flags, actor_kind, 0]);
    buf.extend_from_slice(&batch_remaining.to_le_bytes());
    buf.extend_from_slice(&(stream.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(event.event_type.len() as u16).to_le_bytes());
    buf.extend_from_slice(&[0u8; 2]);
    buf.extend_from_slice(&event.schema_version.to_le_bytes());
    buf.extend_from_slice(&(event.data.len() as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&position.to_le_bytes());
    buf.extend_from_slice(&revision.to_le_bytes());
    buf.extend_from_slice(&recorded.timestamp().to_le_bytes());
    buf.extend_from_slice(&recorded.timestamp_subsec_nanos().to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(event.id.as_bytes());
    buf.extend_from_slice(event.metadata.correlation_id.as_bytes());
    buf.extend_from_slice(event.metadata.causation_id.unwrap_or_default().as_bytes());
    buf.extend_from_slice(actor_a.as_bytes());
    buf.extend_from_slice(actor_b.as_bytes());
    debug_assert_eq!(buf.len() - start, FRAME_HEADER_BYTES + FIXED_BODY_BYTES);
    buf.extend_from_slice(stream.as_bytes());
    buf.extend_from_slice(event.event_type.as_bytes());
    buf.extend_from_slice(&event.data);
    let crc = crc32c::crc32c(&buf[start + FRAME_HEADER_BYTES..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What is found at an offset of a segment.
pub(crate) enum Frame {
    /// A record whose checksum matches; the body is `body`, the next record starts at `next`.
    Valid { body: Range<usize>, next: usize },
    /// The file ends inside the frame header or body.
    Incomplete,
    /// The length field is impossible.
    BadLength(usize),
    /// The checksum does not match.
    BadChecksum,
}

/// Reads the frame at `offset` of `bytes`.
pub(crate) fn frame_at(bytes: &[u8], offset: usize) -> Frame {
    let Some(header) = bytes.get(offset..offset + FRAME_HEADER_BYTES) else {
        return Frame::Incomplete;
    };
    let body_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(FIXED_BODY_BYTES..=BODY_BYTES_MAX).contains(&body_len) {
        return Frame::BadLength(body_len);
    }
    let start = offset + FRAME_HEADER_BYTES;
    let end = start + body_len;
    let Some(body) = bytes.get(start..end) else {
        return Frame::Incomplete;
    };
    if crc32c::crc32c(body) != crc {
        return Frame::BadChecksum;
    }
    Frame::Valid { body: start..end, next: end }
}

/// A decoded record body, borrowing its bytes.
pub(crate) struct Body<'a> {
    pub position: u64,
    pub revision: u64,
    pub batch_remaining: u16,
    pub id: Uuid,
    pub stream: &'a str,
    pub event_type: &'a str,
    /// The payload's range within the body.
    pub data: Range<usize>,
    bytes: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn uuid_at(b: &[u8], at: usize) -> Uuid {
    let mut x = [0u8; 16];
    x.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes(x)
}

impl<'a> Body<'a> {
    /// Decodes a body whose checksum already matched; fails on an inconsistent layout.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Body<'a>, String> {
        if bytes.len() < FIXED_BODY_BYTES {
            return Err(format!("record body of {} bytes is shorter than its header", bytes.len()));
        }
        if bytes[0] != RECORD_VERSION {
            return Err(format!("unknown record version {}", bytes[0]));
        }
        let stream_len = u16_at(bytes, 6) as usize;
        let type_len = u16_at(bytes, 8) as usize;
        let data_len = u32_at(bytes, 16) as usize;
        if FIXED_BODY_BYTES + stream_len + type_len + data_len != bytes.len() {
            return Err("record field lengths do not add up to its body length".into());
        }
        let stream_at = FIXED_BODY_BYTES;
        let type_at = stream_at + stream_len;
        let data_at = type_at + type_len;
        let stream = std::str::from_utf8(&bytes[stream_at..type_at]).map_err(|_| "stream name is not utf-8")?;
        let event_type = std::str::from_utf8(&bytes[type_at..data_at]).map_err(|_| "event type is not utf-8")?;
        Ok(Body {
            position: u64_at(bytes, 24),
            revision: u64_at(bytes, 32),
            batch_remaining: u16_at(bytes, 4),
            id: uuid_at(bytes, 56),
            stream,
            event_type,
            data: data_at..bytes.len(),
            bytes,
        })
    }

    /// The full event, with `data` as its payload (a slice or copy of this body's payload).
    pub(crate) fn to_recorded(&self, data: Bytes) -> Result<RecordedEvent, String> {
        let b = self.bytes;
        let actor_a = uuid_at(b, 104);
        let actor_b = uuid_at(b, 120);
        let actor = match b[2] {
            0 => Actor::System,
            1 => Actor::Account { account_id: actor_a },
            2 => Actor::Member { workspace_id: actor_a, member_id: actor_b },
            3 => Actor::Bot { workspace_id: actor_a, bot_id: actor_b },
            other => return Err(format!("unknown actor kind {other}")),
        };
        let secs = u64_at(b, 40) as i64;
        let nanos = u32_at(b, 48);
        let recorded_at: DateTime<Utc> =
            DateTime::from_timestamp(secs, nanos).ok_or_else(|| "recorded_at is out of range".to_string())?;
        Ok(RecordedEvent {
            id: self.id,
            stream: self.stream.to_owned(),
            revision: self.revision,
            position: Position::from_sequence(self.position),
            event_type: self.event_type.to_owned(),
            schema_version: u32_at(b, 12),
            data,
            metadata: Metadata {
                actor,
                correlation_id: uuid_at(b, 72),
                causation_id: if b[1] & FLAG_HAS_CAUSATION != 0 { Some(uuid_at(b, 88)) } else { None },
                recorded_at,
            },
        })
    }

    /// The payload bytes.
    pub(crate) fn data_bytes(&self) -> &'a [u8] {
        &self.bytes[self.data.clone()]
    }
}
