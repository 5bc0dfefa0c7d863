//! The projector: subscribes from the checkpoint, batches, applies, rebuilds, reports lag.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_store::{EventFilter, EventStore};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::ProjectionError;
use crate::event::ProjectedEvent;
use crate::projection::{Generation, Projection};

/// How a projector batches and how often it checks on its read model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectorConfig {
    /// Most events in one atomic batch.
    pub batch_events_max: usize,
    /// How long a partial batch waits for more events before it is written, when live.
    pub flush_interval_ms: u64,
    /// How often an idle projector checks that its read model still holds its checkpoint
    /// (a Redis restarted empty is noticed within this interval) and refreshes the head.
    pub verify_interval_ms: u64,
    /// How long to wait before retrying after an error (store or Redis unreachable).
    pub retry_interval_ms: u64,
}

impl Default for ProjectorConfig {
    fn default() -> ProjectorConfig {
        ProjectorConfig {
            batch_events_max: 1000,
            flush_interval_ms: 5,
            verify_interval_ms: 1000,
            retry_interval_ms: 500,
        }
    }
}

/// What a projector is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading its checkpoint.
    Starting,
    /// Building a fresh generation from zero; readers still see the previous one (or
    /// "unavailable" if it was lost).
    Rebuilding {
        /// Where the rebuild is.
        at: Position,
        /// The head when the rebuild started; it switches over once there.
        target: Position,
    },
    /// Following the log.
    Live,
    /// Waiting to retry after an error.
    Retrying,
    /// Stopped.
    Stopped,
}

/// A projector's position, lag and health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectorStatus {
    /// The projection.
    pub projection: String,
    /// What it is doing.
    pub phase: Phase,
    /// The live view's checkpoint (`None`: not available yet).
    pub checkpoint: Option<Position>,
    /// The head of the log when last looked at.
    pub head: Position,
    /// `head - checkpoint`, in events (positions of single-sequence backends).
    pub lag_events: u64,
    /// Time since a batch was last applied, if one was.
    pub since_last_applied_ms: Option<u64>,
    /// Events applied (decoded or skipped) since the projector started.
    pub events_applied: u64,
    /// Rebuilds since the projector started.
    pub rebuilds: u64,
    /// The last error, if the projector is retrying.
    pub last_error: Option<String>,
}

enum Command {
    Rebuild,
}

struct Shared {
    name: String,
    status: Mutex<StatusInner>,
    checkpoint: watch::Sender<Option<Position>>,
}

struct StatusInner {
    phase: Phase,
    head: Position,
    last_applied: Option<Instant>,
    events_applied: u64,
    rebuilds: u64,
    last_error: Option<String>,
}

/// Control of a running projector: status, read-your-writes waits, rebuilds, stop.
#[derive(Clone)]
pub struct ProjectorHandle {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// Runs projections.
pub struct Projector;

impl Projector {
    /// Spawns a projector for `projection` over `store` on the current tokio runtime.
    ///
    /// It resumes from the live checkpoint; with none (never built, or lost) it rebuilds from
    /// zero into the staging generation and switches over when caught up.
    pub fn spawn(
        store: Arc<dyn EventStore>,
        projection: Arc<dyn Projection>,
        config: ProjectorConfig,
    ) -> ProjectorHandle {
        let (checkpoint, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            name: projection.name().to_owned(),
            status: Mutex::new(StatusInner {
                phase: Phase::Starting,
                head: Position::START,
                last_applied: None,
                events_applied: 0,
                rebuilds: 0,
                last_error: None,
            }),
            checkpoint,
        });
        // A small queue: the only command is "rebuild", and repeated requests may be dropped.
        let (commands, receiver) = mpsc::channel(4);
        let config = ProjectorConfig { batch_events_max: config.batch_events_max.max(1), ..config };
        let runner = Runner { store, projection, config, shared: shared.clone(), commands: receiver };
        let task = tokio::spawn(runner.run());
        ProjectorHandle { shared, commands, task: Arc::new(Mutex::new(Some(task))) }
    }
}

impl ProjectorHandle {
    /// The projection's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The live view's checkpoint, as last written by this projector.
    pub fn checkpoint(&self) -> Option<Position> {
        *self.shared.checkpoint.borrow()
    }

    /// Position, lag and health.
    pub fn status(&self) -> ProjectorStatus {
        let checkpoint = self.checkpoint();
        let inner = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
        let at = checkpoint.unwrap_or(Position::START);
        ProjectorStatus {
            projection: self.shared.name.clone(),
            phase: inner.phase.clone(),
            checkpoint,
            head: inner.head.max(at),
            lag_events: inner.head.commit.saturating_sub(at.commit),
            since_last_applied_ms: inner.last_applied.map(|t| t.elapsed().as_millis() as u64),
            events_applied: inner.events_applied,
            rebuilds: inner.rebuilds,
            last_error: inner.last_error.clone(),
        }
    }

    /// Waits until the live view reflects every event up to `position` (read your writes).
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<(), ProjectionError> {
        let mut receiver = self.shared.checkpoint.subscribe();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|c| c.is_some_and(|c| c >= position))).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ProjectionError::Stopped(self.shared.name.clone())),
            Err(_) => Err(ProjectionError::WaitTimeout {
                projection: self.shared.name.clone(),
                position,
                checkpoint: self.checkpoint(),
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// Asks for a rebuild from zero; readers keep the current view until the new one is ready.
    pub fn request_rebuild(&self) {
        // A full queue already holds a rebuild request, which is all this one asks for.
        let _ = self.commands.try_send(Command::Rebuild);
    }

    /// Stops the projector at once (whatever batch is in flight is either written whole or not
    /// at all) and waits for it to end.
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.shared.status.lock().unwrap_or_else(|e| e.into_inner()).phase = Phase::Stopped;
    }
}

/// Why a run of the loop ended.
enum Exit {
    RebuildRequested,
    Lost(ProjectionError),
    Failed(ProjectionError),
}

impl From<ProjectionError> for Exit {
    fn from(e: ProjectionError) -> Exit {
        match e {
            e @ ProjectionError::CheckpointMismatch { .. } => Exit::Lost(e),
            e => Exit::Failed(e),
        }
    }
}

struct Runner {
    store: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    config: ProjectorConfig,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
}

impl Runner {
    async fn run(mut self) {
        let mut force_rebuild = false;
        loop {
            self.set_phase(Phase::Starting);
            let result = match self.projection.checkpoint(Generation::Live).await {
                Ok(Some(position)) if !force_rebuild => {
                    self.shared.checkpoint.send_replace(Some(position));
                    self.follow(Generation::Live, position, None).await.map(|_| ())
                }
                Ok(_) => self.rebuild().await,
                Err(e) => Err(Exit::Failed(e)),
            };
            force_rebuild = false;
            match result {
                Ok(()) => {}
                Err(Exit::RebuildRequested) => force_rebuild = true,
                Err(Exit::Lost(e)) => {
                    tracing::warn!(projection = %self.shared.name, error = %e, "read model lost; rebuilding");
                    self.shared.checkpoint.send_replace(None);
                }
                Err(Exit::Failed(e)) => {
                    tracing::warn!(projection = %self.shared.name, error = %e, "projector failed; retrying");
                    {
                        let mut status = self.status();
                        status.phase = Phase::Retrying;
                        status.last_error = Some(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(self.config.retry_interval_ms)).await;
                }
            }
        }
    }

    /// Builds the staging generation from zero up to the head, then promotes it and follows.
    async fn rebuild(&mut self) -> Result<(), Exit> {
        self.status().rebuilds += 1;
        self.projection.reset_staging().await?;
        let target = self.store.head().await.map_err(ProjectionError::from)?;
        self.set_phase(Phase::Rebuilding { at: Position::START, target });
        let reached = self.follow(Generation::Staging, Position::START, Some(target)).await?;
        let position = self.projection.promote_staging().await?;
        debug_assert_eq!(position, reached, "the promoted checkpoint is the one staging reached");
        self.shared.checkpoint.send_replace(Some(position));
        tracing::info!(projection = %self.shared.name, %position, "rebuild complete");
        self.follow(Generation::Live, position, None).await.map(|_| ())
    }

    /// Applies events after `from` to a generation until `stop_at` (if any) is reached.
    async fn follow(
        &mut self,
        generation: Generation,
        from: Position,
        stop_at: Option<Position>,
    ) -> Result<Position, Exit> {
        if generation == Generation::Live {
            self.set_phase(Phase::Live);
        }
        let mut subscription = self.store.subscribe(from, EventFilter::all()).await.map_err(ProjectionError::from)?;
        let mut checkpoint = from;
        let mut seen = from;
        let mut batch: Vec<RecordedEvent> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        let verify_interval = Duration::from_millis(self.config.verify_interval_ms.max(1));
        loop {
            if stop_at.is_some_and(|target| checkpoint >= target) {
                return Ok(checkpoint);
            }
            let wake = deadline.unwrap_or_else(|| tokio::time::Instant::now() + verify_interval);
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(Command::Rebuild) => return Err(Exit::RebuildRequested),
                    // Every handle is gone: nobody can stop or query this projector, keep going.
                    None => std::future::pending::<()>().await,
                },
                item = tokio::time::timeout_at(wake, subscription.next()) => match item {
                    Ok(Some(Ok(event))) => {
                        // At-least-once delivery: anything at or below what was seen is a duplicate.
                        if event.position <= seen {
                            continue;
                        }
                        seen = event.position;
                        batch.push(event);
                        deadline.get_or_insert_with(|| {
                            tokio::time::Instant::now() + Duration::from_millis(self.config.flush_interval_ms)
                        });
                        let at_target = stop_at.is_some_and(|target| seen >= target);
                        if batch.len() >= self.config.batch_events_max || at_target {
                            checkpoint = self.flush(generation, checkpoint, &mut batch).await?;
                            deadline = None;
                        }
                    }
                    Ok(Some(Err(e))) => return Err(Exit::Failed(e.into())),
                    Ok(None) => {
                        return Err(Exit::Failed(ProjectionError::Store(rollcall_store::StoreError::SubscriptionClosed(
                            "the subscription ended".into(),
                        ))));
                    }
                    Err(_elapsed) if !batch.is_empty() => {
                        checkpoint = self.flush(generation, checkpoint, &mut batch).await?;
                        deadline = None;
                    }
                    Err(_elapsed) => {
                        // Idle: make sure the read model still holds what this projector wrote.
                        let found = self.projection.checkpoint(generation).await?;
                        if found != Some(checkpoint) {
                            return Err(Exit::Lost(ProjectionError::CheckpointMismatch {
                                projection: self.shared.name.clone(),
                                expected: Some(checkpoint),
                                found,
                            }));
                        }
                        let head = self.store.head().await.map_err(ProjectionError::from)?;
                        self.status().head = head;
                    }
                },
            }
        }
    }

    /// Decodes and applies one batch with its checkpoint; returns the new checkpoint.
    async fn flush(
        &mut self,
        generation: Generation,
        checkpoint: Position,
        batch: &mut Vec<RecordedEvent>,
    ) -> Result<Position, Exit> {
        let to = batch.last().map_or(checkpoint, |e| e.position);
        let mut decoded = Vec::with_capacity(batch.len());
        for recorded in batch.iter().filter(|e| self.projection.wants(&e.event_type)) {
            decoded.push(ProjectedEvent::decode(recorded)?);
        }
        self.projection.apply(generation, checkpoint, &decoded, to).await?;
        let head = self.store.head().await.map_err(ProjectionError::from)?;
        {
            let mut status = self.status();
            status.events_applied += batch.len() as u64;
            status.last_applied = Some(Instant::now());
            status.head = head;
            status.last_error = None;
            if let Phase::Rebuilding { at, .. } = &mut status.phase {
                *at = to;
            }
        }
        batch.clear();
        if generation == Generation::Live {
            self.shared.checkpoint.send_replace(Some(to));
        }
        Ok(to)
    }

    fn status(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.shared.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_phase(&self, phase: Phase) {
        self.status().phase = phase;
    }
}
