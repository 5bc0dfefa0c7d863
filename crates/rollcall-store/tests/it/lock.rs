//! One process per data directory: a second open is refused, and a killed holder leaves no
//! stale lock.

use anyhow::{Context, ensure};
use rollcall_store::{EmbeddedLog, EmbeddedOptions, StoreError};

use crate::crash::start_writer;

#[tokio::test]
async fn second_open_in_the_same_process_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await?;
    let second = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await;
    match second {
        Err(StoreError::Locked { pid, .. }) => ensure!(pid == std::process::id().to_string()),
        Err(other) => anyhow::bail!("expected Locked, got {other}"),
        Ok(_) => anyhow::bail!("a second open must be refused"),
    }
    log.close().await;
    EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await.context("open after close")?.close().await;
    Ok(())
}

#[tokio::test]
async fn open_held_by_another_process_is_refused_until_it_is_killed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut child, _out) = start_writer(dir.path(), 1)?;
    match EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await {
        Err(StoreError::Locked { pid, .. }) => ensure!(pid == child.id().to_string(), "the error names the holder"),
        Err(other) => anyhow::bail!("expected Locked, got {other}"),
        Ok(_) => anyhow::bail!("a second process must be refused"),
    }
    ensure!(matches!(rollcall_store::embedded::repair(dir.path()), Err(StoreError::Locked { .. })));
    child.kill()?;
    child.wait()?;
    let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).await.context("open after SIGKILL")?;
    log.close().await;
    Ok(())
}
