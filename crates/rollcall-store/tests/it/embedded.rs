//! The contract suite on the embedded log, with a small segment size so roll-over is exercised.

use rollcall_store::contract::Guarded;
use rollcall_store::{EmbeddedLog, EmbeddedOptions};

/// Options that roll segments often, so every case crosses segment boundaries.
pub fn small_segments() -> EmbeddedOptions {
    EmbeddedOptions { segment_bytes_max: 64 * 1024, ..EmbeddedOptions::default() }
}

rollcall_store::contract_suite!(async || {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let log = EmbeddedLog::open(dir.path(), small_segments()).await.expect("open the embedded log");
    Guarded { store: log, guard: dir }
});

/// Retries racing the original append (the same ids, sent again before the first answer) are
/// answered from the writer's view of groups not yet durable, with the original result, and
/// store nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_racing_the_original_store_it_once() -> anyhow::Result<()> {
    use std::sync::Arc;

    use rollcall_store::contract::event;
    use rollcall_store::{EventFilter, EventStore, ExpectedRevision, Position};

    let dir = tempfile::tempdir()?;
    let log = Arc::new(EmbeddedLog::open(dir.path(), small_segments()).await?);
    for round in 0..20 {
        let stream = format!("race-{round}");
        let batch = vec![event("Raced"), event("Raced")];
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (log, stream, batch) = (log.clone(), stream.clone(), batch.clone());
                tokio::spawn(async move { log.append(&stream, ExpectedRevision::Any, batch).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await??);
        }
        anyhow::ensure!(results.windows(2).all(|w| w[0] == w[1]), "every retry gets the original result");
        let stored = log.read_stream(&stream, 0, 100).await?;
        anyhow::ensure!(stored.len() == 2, "round {round}: {} events stored, 2 expected", stored.len());
    }
    let all = log.read_all(Position::START, &EventFilter::all(), 1000).await?;
    anyhow::ensure!(all.len() == 40, "{} events in the log, 40 expected", all.len());
    Ok(())
}

/// A failed `fdatasync` is fatal: the appends it was to cover are answered with `WriterFailed`
/// (never acknowledged), every later append is refused without a retry, and reopening the log
/// recovers exactly what was acknowledged before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_stops_the_writer_for_good() -> anyhow::Result<()> {
    use rollcall_store::contract::event;
    use rollcall_store::{EventFilter, EventStore, ExpectedRevision, Position, StoreError, SyncFaults};

    let dir = tempfile::tempdir()?;
    let faults = SyncFaults::default();
    let log =
        EmbeddedLog::open(dir.path(), EmbeddedOptions { sync_faults: faults.clone(), ..small_segments() }).await?;
    let acknowledged = log.append("before", ExpectedRevision::NoStream, vec![event("Kept")]).await?;

    faults.fail_next(1);
    let failed = log.append("during", ExpectedRevision::Any, vec![event("Lost")]).await;
    assert!(matches!(failed, Err(StoreError::WriterFailed(_))), "the append the failed sync covered: {failed:?}");
    let later = log.append("after", ExpectedRevision::Any, vec![event("Refused")]).await;
    let Err(StoreError::WriterFailed(message)) = later else { panic!("a later append must be refused: {later:?}") };
    assert!(message.contains("restart"), "the refusal says what to do: {message}");
    assert_eq!(log.head().await?, acknowledged.position, "readers never see what was not acknowledged");
    log.close().await;

    let reopened = EmbeddedLog::open(dir.path(), small_segments()).await?;
    let kept = reopened.read_all(Position::START, &EventFilter::all(), 100).await?;
    assert!(kept.iter().any(|e| e.event_type == "Kept"), "the acknowledged event is there");
    assert!(kept.iter().all(|e| e.event_type != "Refused"), "nothing refused was written");
    reopened.append("after", ExpectedRevision::Any, vec![event("Accepted")]).await?;
    Ok(())
}
