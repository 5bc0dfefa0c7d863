//! Recovery: torn tails are truncated, damage in the middle is refused until repaired, and a
//! repair keeps the good prefix and the damaged copy.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use rollcall_store::contract::event;
use rollcall_store::embedded::{SegmentStatus, inspect, repair};
use rollcall_store::{
    EmbeddedLog, EmbeddedOptions, EventFilter, EventStore, ExpectedRevision, Position, RecordedEvent, StoreError,
};

use crate::embedded::small_segments;

/// Writes `appends` appends of `batch` events each and returns everything read back.
async fn write_log(dir: &Path, appends: usize, batch: usize) -> anyhow::Result<Vec<RecordedEvent>> {
    let log = EmbeddedLog::open(dir, small_segments()).await?;
    for i in 0..appends {
        let events = (0..batch).map(|_| event("Recovered")).collect();
        log.append(&format!("rec-{}", i % 5), ExpectedRevision::Any, events).await?;
    }
    let all = read_all(&log).await?;
    log.close().await;
    Ok(all)
}

async fn read_all(log: &EmbeddedLog) -> anyhow::Result<Vec<RecordedEvent>> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = out.last().map_or(Position::START, |e| e.position);
        let page = log.read_all(after, &EventFilter::all(), 1000).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

fn segments(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|x| x == "seg"));
    files.sort();
    Ok(files)
}

/// Where the records of the last segment end: the writer preallocates zeros after them.
fn records_end(dir: &Path) -> anyhow::Result<u64> {
    Ok(inspect(dir)?.segments.last().context("a segment")?.valid_bytes)
}

fn flip_byte(path: &Path, offset: u64) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(path)?;
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes)?;
    Ok(())
}

fn ids(events: &[RecordedEvent]) -> Vec<uuid::Uuid> {
    events.iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn flipped_byte_mid_log_is_refused_then_repaired() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let written = write_log(dir.path(), 600, 2).await?;
    let files = segments(dir.path())?;
    ensure!(files.len() >= 4, "the test needs several segments, got {}", files.len());
    let victim = files[1].clone();
    let victim_len = std::fs::metadata(&victim)?.len();
    flip_byte(&victim, victim_len / 2)?;
    let damaged_bytes = std::fs::read(&victim)?;

    let err = EmbeddedLog::open(dir.path(), small_segments()).await.err().context("open must fail")?;
    let victim_name = victim.file_name().and_then(|n| n.to_str()).context("name")?.to_owned();
    match &err {
        StoreError::Corrupt { segment, offset, .. } => {
            ensure!(*segment == victim_name, "the error names the damaged segment: {err}");
            ensure!(*offset <= victim_len / 2 && *offset > 0, "the error names the record's offset: {err}");
        }
        other => anyhow::bail!("expected Corrupt, got {other}"),
    }
    let report = inspect(dir.path())?;
    ensure!(!report.healthy);
    ensure!(matches!(report.segments[1].status, SegmentStatus::Corrupt { .. }));

    let repaired = repair(dir.path())?;
    ensure!(repaired.repaired);
    let damaged_dir = repaired.damaged_dir.context("damaged dir")?;
    ensure!(repaired.moved_segments.len() == files.len() - 1, "the damaged segment and all later ones move aside");
    ensure!(std::fs::read(damaged_dir.join(&victim_name))? == damaged_bytes, "the damaged copy is kept as it was");

    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    let kept = read_all(&log).await?;
    ensure!(kept.len() as u64 == repaired.events_kept);
    ensure!(kept.len() > 100 && kept.len() < written.len());
    ensure!(ids(&kept) == ids(&written[..kept.len()]), "the good prefix is kept, in order");
    let r = log.append("after-repair", ExpectedRevision::Any, vec![event("A")]).await?;
    ensure!(r.position.sequence() == kept.len() as u64 + 1);
    log.close().await;
    ensure!(inspect(dir.path())?.healthy);
    Ok(())
}

#[tokio::test]
async fn flipped_byte_in_the_last_segment_before_its_tail_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    write_log(dir.path(), 50, 1).await?;
    let files = segments(dir.path())?;
    let last = files.last().context("a segment")?;
    flip_byte(last, 200)?;
    let err = EmbeddedLog::open(dir.path(), small_segments()).await.err().context("open must fail")?;
    ensure!(matches!(err, StoreError::Corrupt { .. }), "damage followed by whole records is not a torn tail: {err}");
    Ok(())
}

#[tokio::test]
async fn truncated_record_at_the_tail_is_dropped_on_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let written = write_log(dir.path(), 40, 1).await?;
    let files = segments(dir.path())?;
    let last = files.last().context("a segment")?;
    let len = records_end(dir.path())?;
    OpenOptions::new().write(true).open(last)?.set_len(len - 10)?;
    let report = inspect(dir.path())?;
    let tail = report.segments.last().context("a segment")?;
    ensure!(matches!(tail.status, SegmentStatus::TornTail { .. }));
    let valid_bytes = tail.valid_bytes;

    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    let kept = read_all(&log).await?;
    ensure!(ids(&kept) == ids(&written[..written.len() - 1]), "only the torn record is lost");
    let after = event("A");
    let r = log.append("after", ExpectedRevision::Any, vec![after.clone()]).await?;
    ensure!(r.position.sequence() == written.len() as u64);
    log.close().await;
    // The torn bytes were cut off and the new record starts where the whole ones end, so the
    // segment reads back clean with the new event last.
    ensure!(std::fs::metadata(last)?.len() > valid_bytes, "the new append went where the torn one was");
    let report = inspect(dir.path())?;
    ensure!(report.segments.iter().all(|s| s.status == SegmentStatus::Clean), "the log is clean after the append");
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    let reread = read_all(&log).await?;
    ensure!(reread.last().map(|e| e.id) == Some(after.id), "the new event is the last one");
    log.close().await;
    Ok(())
}

#[tokio::test]
async fn partly_written_batch_at_the_tail_is_dropped_whole() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let written = write_log(dir.path(), 10, 5).await?;
    let files = segments(dir.path())?;
    let last = files.last().context("a segment")?;
    // Cut inside the third record of the last five-event append.
    let len = records_end(dir.path())?;
    let record = (len - 16) / 50;
    OpenOptions::new().write(true).open(last)?.set_len(len - record * 3 + 20)?;
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    let kept = read_all(&log).await?;
    ensure!(ids(&kept) == ids(&written[..written.len() - 5]), "a half-written append disappears entirely");
    log.close().await;
    Ok(())
}

#[tokio::test]
async fn garbage_tail_is_dropped_on_open() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let written = write_log(dir.path(), 30, 1).await?;
    let files = segments(dir.path())?;
    let last = files.last().context("a segment")?;
    let len = records_end(dir.path())?;
    let file = OpenOptions::new().write(true).open(last)?;
    file.set_len(len)?;
    file.write_all_at(&[0xab; 300], len)?;
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    ensure!(ids(&read_all(&log).await?) == ids(&written));
    log.close().await;
    ensure!(records_end(dir.path())? == len, "the garbage was truncated");
    let bytes = std::fs::read(last)?;
    ensure!(bytes[len as usize..].iter().all(|&b| b == 0), "nothing but preallocated zeros follows the records");

    // Garbage among the preallocated zeros is a torn tail too.
    file.write_all_at(&[0xcd; 100], len + 50)?;
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    ensure!(ids(&read_all(&log).await?) == ids(&written));
    log.close().await;
    ensure!(records_end(dir.path())? == len);
    Ok(())
}

#[tokio::test]
async fn empty_last_segment_is_recovered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let written = write_log(dir.path(), 30, 1).await?;
    let next = dir.path().join(format!("{:020}.seg", written.len() + 1));
    std::fs::File::create(&next)?;
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    ensure!(ids(&read_all(&log).await?) == ids(&written));
    let r = log.append("after", ExpectedRevision::Any, vec![event("A")]).await?;
    ensure!(r.position.sequence() == written.len() as u64 + 1);
    log.close().await;
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    ensure!(read_all(&log).await?.len() == written.len() + 1);
    log.close().await;
    Ok(())
}

#[tokio::test]
async fn empty_segment_in_the_middle_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    write_log(dir.path(), 1200, 1).await?;
    let files = segments(dir.path())?;
    ensure!(files.len() >= 3);
    OpenOptions::new().write(true).open(&files[1])?.set_len(0)?;
    let err = EmbeddedLog::open(dir.path(), small_segments()).await.err().context("open must fail")?;
    ensure!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn reopen_keeps_streams_ids_and_revisions() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    let batch = vec![event("A"), event("A")];
    let first = log.append("keep", ExpectedRevision::NoStream, batch.clone()).await?;
    log.close().await;
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await?;
    ensure!(log.append("keep", ExpectedRevision::NoStream, batch).await? == first, "idempotency survives a restart");
    let conflict = log.append("keep", ExpectedRevision::Exact(0), vec![event("A")]).await;
    ensure!(matches!(conflict, Err(StoreError::WrongExpectedRevision { actual: Some(1), .. })));
    log.close().await;
    Ok(())
}

#[tokio::test]
async fn preallocated_zeros_after_the_records_are_room_not_damage() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let written = write_log(dir.path(), 600, 2).await?;
    let report = inspect(dir.path())?;
    ensure!(report.healthy && report.segments.iter().all(|s| s.status == SegmentStatus::Clean), "{report:?}");
    let (last, sealed) = report.segments.split_last().context("a segment")?;
    ensure!(!sealed.is_empty(), "the test needs sealed segments");
    ensure!(sealed.iter().all(|s| s.file_bytes == s.valid_bytes), "sealed segments are cut back to their records");
    ensure!(last.file_bytes > last.valid_bytes, "the active segment has room preallocated: {last:?}");

    // Reopened, the log appends where the records end, over the zeros, and reads back whole.
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    ensure!(ids(&read_all(&log).await?) == ids(&written));
    let after = event("A");
    let r = log.append("after", ExpectedRevision::Any, vec![after.clone()]).await?;
    ensure!(r.position.sequence() == written.len() as u64 + 1);
    log.close().await;
    let log = EmbeddedLog::open(dir.path(), small_segments()).await?;
    let reread = read_all(&log).await?;
    ensure!(ids(&reread[..written.len()]) == ids(&written) && reread.last().map(|e| e.id) == Some(after.id));
    log.close().await;
    ensure!(inspect(dir.path())?.healthy);
    Ok(())
}
