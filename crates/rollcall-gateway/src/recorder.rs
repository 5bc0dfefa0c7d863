//! Recording tool calls and refusals in the event log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rollcall_core::TokenHash;
use rollcall_core::catalogue::calls_stream;
use rollcall_core::envelope::{Actor, Metadata};
use rollcall_core::events::{
    AccessDenied, CallOutcome, DenialReason, Event, RateLimited, ToolCallCompleted, ToolCalled,
};
use rollcall_store::{EventStore, ExpectedRevision, StoreError};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::authority::{TokenInfo, TokenKind};

/// Appends the gateway's events: `ToolCalled`, `ToolCallCompleted`, `AccessDenied` and
/// `RateLimited`, each to the calls stream of the token (`calls-<workspace>-<token>`).
#[derive(Clone)]
pub struct CallRecorder {
    store: Arc<dyn EventStore>,
    refusals: Arc<Mutex<Refusals>>,
    summary_window: chrono::Duration,
    denied_interval: chrono::Duration,
}

/// A tool call accepted by the gateway, as recorded before it is forwarded.
#[derive(Clone, Debug)]
pub struct AcceptedCall {
    /// Whose token.
    pub info: TokenInfo,
    /// The tool's name.
    pub tool: String,
    /// The JSON-RPC id, as text.
    pub request_id: String,
    /// When the gateway accepted it.
    pub called_at: DateTime<Utc>,
    /// The request's correlation id.
    pub correlation_id: Uuid,
    /// The `ToolCalled` event's id (the completion's causation).
    pub event_id: Uuid,
}

#[derive(Default)]
struct Refusals {
    /// Rate-limit refusals counted per token since the window started.
    limited: HashMap<TokenHash, LimitedWindow>,
    /// When each revoked token's last `AccessDenied` was recorded.
    denied: HashMap<TokenHash, DateTime<Utc>>,
}

#[derive(Clone)]
struct LimitedWindow {
    info: TokenInfo,
    refused: u64,
    window_start: DateTime<Utc>,
}

impl CallRecorder {
    /// A recorder over a store. Rate-limit refusals are summarised in one `RateLimited` event
    /// per token per `summary_window`; `AccessDenied` is recorded at most once per token per
    /// `denied_interval`, so a client hammering with a revoked token cannot flood the log.
    pub fn new(store: Arc<dyn EventStore>, summary_window: Duration, denied_interval: Duration) -> CallRecorder {
        CallRecorder {
            store,
            refusals: Arc::new(Mutex::new(Refusals::default())),
            summary_window: chrono::Duration::from_std(summary_window).unwrap_or(chrono::Duration::MAX),
            denied_interval: chrono::Duration::from_std(denied_interval).unwrap_or(chrono::Duration::MAX),
        }
    }

    /// Records a tool call durably; the call must not be forwarded until this returns `Ok`.
    pub async fn tool_called(&self, call: &AcceptedCall, arguments_bytes: u64) -> Result<(), StoreError> {
        let event = Event::ToolCalled(ToolCalled {
            workspace_id: call.info.workspace_id,
            caller: call.info.caller(),
            token_id: call.info.token_id,
            tool: call.tool.clone(),
            request_id: call.request_id.clone(),
            arguments_bytes,
            called_at: call.called_at,
        });
        self.append(&call.info, call.correlation_id, None, call.event_id, event).await
    }

    /// Records how a call ended.
    pub async fn tool_completed(&self, call: &AcceptedCall, outcome: CallOutcome) -> Result<(), StoreError> {
        let completed_at = Utc::now();
        let duration_ms = u64::try_from((completed_at - call.called_at).num_milliseconds()).unwrap_or(0);
        let event = Event::ToolCallCompleted(ToolCallCompleted {
            workspace_id: call.info.workspace_id,
            caller: call.info.caller(),
            token_id: call.info.token_id,
            tool: call.tool.clone(),
            request_id: call.request_id.clone(),
            outcome,
            duration_ms,
            completed_at,
        });
        self.append(&call.info, call.correlation_id, Some(call.event_id), Uuid::now_v7(), event).await
    }

    /// Records a refusal of a revoked token, unless one was recorded for it very recently.
    pub async fn access_denied(&self, hash: &TokenHash, info: &TokenInfo) -> Result<(), StoreError> {
        let now = Utc::now();
        {
            let mut refusals = self.lock();
            if refusals.denied.get(hash).is_some_and(|last| now - *last < self.denied_interval) {
                return Ok(());
            }
            refusals.denied.insert(*hash, now);
        }
        let event = Event::AccessDenied(AccessDenied {
            workspace_id: info.workspace_id,
            caller: info.caller(),
            token_id: info.token_id,
            reason: DenialReason::Revoked,
            denied_at: now,
        });
        self.append(info, Uuid::now_v7(), None, Uuid::now_v7(), event).await
    }

    /// Counts one rate-limit refusal; [`CallRecorder::flush_rate_limited`] records the counts.
    pub fn count_rate_limited(&self, hash: &TokenHash, info: &TokenInfo) {
        let now = Utc::now();
        let mut refusals = self.lock();
        refusals
            .limited
            .entry(*hash)
            .or_insert_with(|| LimitedWindow { info: info.clone(), refused: 0, window_start: now })
            .refused += 1;
    }

    /// Records one `RateLimited` event for every token whose summary window has ended (or for
    /// every token with refusals, with [`Flush::All`] when the gateway is stopping).
    pub async fn flush_rate_limited(&self, flush: Flush) -> Result<(), StoreError> {
        let now = Utc::now();
        let due: Vec<(TokenHash, LimitedWindow)> = {
            let mut refusals = self.lock();
            let keys: Vec<TokenHash> = refusals
                .limited
                .iter()
                .filter(|(_, w)| flush == Flush::All || now - w.window_start >= self.summary_window)
                .map(|(k, _)| *k)
                .collect();
            let due = keys.iter().filter_map(|k| refusals.limited.remove(k).map(|w| (*k, w))).collect();
            // Forget denial times that no longer throttle anything.
            let interval = self.denied_interval;
            refusals.denied.retain(|_, last| now - *last < interval);
            due
        };
        let mut due = due.into_iter();
        while let Some((hash, window)) = due.next() {
            let event = Event::RateLimited(RateLimited {
                workspace_id: window.info.workspace_id,
                caller: window.info.caller(),
                token_id: window.info.token_id,
                refused: window.refused,
                window_start: window.window_start,
                window_end: now,
            });
            if let Err(e) = self.append(&window.info, Uuid::now_v7(), None, Uuid::now_v7(), event).await {
                // Keep the counts for the next flush rather than losing them.
                let mut refusals = self.lock();
                for (hash, window) in std::iter::once((hash, window)).chain(due) {
                    let kept = refusals.limited.entry(hash).or_insert(LimitedWindow { refused: 0, ..window.clone() });
                    kept.refused += window.refused;
                    kept.window_start = kept.window_start.min(window.window_start);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Refusals> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn append(
        &self,
        info: &TokenInfo,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
        event_id: Uuid,
        event: Event,
    ) -> Result<(), StoreError> {
        let metadata = Metadata { actor: actor(info), correlation_id, causation_id, recorded_at: Utc::now() };
        let stream = calls_stream(info.workspace_id, info.token_id);
        self.store.append(&stream, ExpectedRevision::Any, vec![event.to_new_event(event_id, metadata)]).await?;
        Ok(())
    }
}

/// Tool-call outcomes waiting to be appended, at most.
const COMPLETIONS_QUEUED_MAX: usize = 16 * 1024;
/// `ToolCallCompleted` appends in flight at once; concurrent appends share the log's group
/// commits.
const COMPLETION_APPENDS_IN_FLIGHT_MAX: usize = 512;

/// Records tool-call outcomes (`ToolCallCompleted`) off the response path: a bounded queue and
/// one task that appends them, many at a time. Answers are not held back by the log; when the
/// queue is full, the responses that have outcomes to queue wait for room.
#[derive(Clone)]
pub(crate) struct Completions {
    sender: mpsc::Sender<(AcceptedCall, CallOutcome)>,
}

impl Completions {
    /// Starts the appending task; it ends once every sender is dropped and the queue is drained.
    pub(crate) fn start(recorder: CallRecorder) -> Completions {
        let (sender, receiver) = mpsc::channel(COMPLETIONS_QUEUED_MAX);
        tokio::spawn(append_completions(recorder, receiver));
        Completions { sender }
    }

    /// Queues a call's outcome, waiting for room when the queue is full.
    pub(crate) async fn record(&self, call: AcceptedCall, outcome: CallOutcome) {
        if self.sender.send((call, outcome)).await.is_err() {
            tracing::error!("the outcome recorder has stopped; a tool call's outcome is not recorded");
        }
    }

    /// Queues a call's outcome from code that cannot wait (a dropped stream). When the queue
    /// is full, one task per such call waits for room; there is at most one per open stream.
    pub(crate) fn record_now(&self, call: AcceptedCall, outcome: CallOutcome) {
        match self.sender.try_send((call, outcome)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(item)) => {
                let sender = self.sender.clone();
                tokio::spawn(async move {
                    if sender.send(item).await.is_err() {
                        tracing::error!("the outcome recorder has stopped; a tool call's outcome is not recorded");
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the outcome recorder has stopped; a tool call's outcome is not recorded");
            }
        }
    }
}

async fn append_completions(recorder: CallRecorder, mut receiver: mpsc::Receiver<(AcceptedCall, CallOutcome)>) {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            received = receiver.recv(), if open && in_flight.len() < COMPLETION_APPENDS_IN_FLIGHT_MAX => {
                match received {
                    Some((call, outcome)) => {
                        let recorder = recorder.clone();
                        in_flight.push(async move {
                            if let Err(e) = recorder.tool_completed(&call, outcome).await {
                                tracing::error!(error = %e, "cannot record a tool call's outcome");
                            }
                        });
                    }
                    None => open = false,
                }
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
}

/// Which rate-limit summaries to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Only those whose window has ended.
    Due,
    /// All of them (the gateway is stopping).
    All,
}

/// The actor of a token's events.
pub fn actor(info: &TokenInfo) -> Actor {
    match info.kind {
        TokenKind::Member => Actor::Member { workspace_id: info.workspace_id.as_uuid(), member_id: info.subject_id },
        TokenKind::Bot => Actor::Bot { workspace_id: info.workspace_id.as_uuid(), bot_id: info.subject_id },
    }
}

/// The calls stream of a token.
pub fn stream_of(info: &TokenInfo) -> String {
    calls_stream(info.workspace_id, info.token_id)
}
