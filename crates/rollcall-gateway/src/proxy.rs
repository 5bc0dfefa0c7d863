//! The `/mcp` handlers: authenticate, rate-limit, record tool calls, forward, stream back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use rollcall_core::events::CallOutcome;
use rollcall_core::{Secret, SecretKind, TokenHash};
use serde_json::Value;
use uuid::Uuid;

use crate::authority::{TokenInfo, Verdict};
use crate::error::GatewayError;
use crate::gateway::{Gateway, Inner};
use crate::jsonrpc::{self, SseScanner};
use crate::metrics::Outcome;
use crate::recorder::{AcceptedCall, Completions};
use crate::streams::Registration;

/// Request headers forwarded to the upstream. Everything else, notably `Authorization`, cookies
/// and hop-by-hop headers, stays at the gateway.
const FORWARDED_REQUEST_HEADERS: &[&str] =
    &["accept", "content-type", "mcp-session-id", "mcp-protocol-version", "last-event-id"];

/// Response headers passed back to the client.
const FORWARDED_RESPONSE_HEADERS: &[&str] =
    &["content-type", "cache-control", "retry-after", "mcp-session-id", "mcp-protocol-version"];

/// `/mcp`: the workspace is the token's.
pub(crate) async fn mcp(State(gateway): State<Gateway>, request: Request) -> Response {
    handle(&gateway.inner, None, request).await
}

/// `/w/{workspace}/mcp`: the token must belong to the named workspace (name or id).
pub(crate) async fn mcp_in_workspace(
    State(gateway): State<Gateway>,
    Path(workspace): Path<String>,
    request: Request,
) -> Response {
    handle(&gateway.inner, Some(workspace), request).await
}

async fn handle(inner: &Inner, workspace: Option<String>, request: Request) -> Response {
    let started = Instant::now();
    let mut request_id = None;
    let answered = handle_checked(inner, workspace, request, &mut request_id).await;
    inner.metrics.request_latency(started.elapsed());
    match answered {
        Ok(response) => {
            inner.metrics.outcome(Outcome::Ok);
            response
        }
        Err(error) => {
            inner.metrics.outcome(error.outcome());
            if matches!(error, GatewayError::Internal) {
                tracing::error!("internal error answering a gateway request");
            }
            error.to_response(request_id)
        }
    }
}

async fn handle_checked(
    inner: &Inner,
    workspace: Option<String>,
    request: Request,
    request_id: &mut Option<Value>,
) -> Result<Response, GatewayError> {
    let (parts, body) = request.into_parts();
    let hash = bearer_hash(&parts.headers)?;
    let info = check(inner, &hash).await?;
    if let Some(workspace) = workspace
        && workspace != info.workspace
        && workspace != info.workspace_id.to_string()
    {
        return Err(GatewayError::OtherWorkspace);
    }
    let upstream = inner.upstreams.upstream(info.workspace_id).ok_or(GatewayError::UpstreamNotConfigured)?;

    let mut pending: HashMap<String, AcceptedCall> = HashMap::new();
    let body_bytes = if parts.method == Method::POST {
        let body = read_body(inner, &parts.headers, body).await?;
        let message = jsonrpc::parse_client_message(&body)?;
        request_id.clone_from(&message.id);
        let correlation_id = Uuid::now_v7();
        for call in message.tool_calls {
            let accepted = AcceptedCall {
                info: info.clone(),
                tool: call.tool,
                request_id: call.request_id,
                called_at: Utc::now(),
                correlation_id,
                event_id: Uuid::now_v7(),
            };
            // The call is durable in the log before the upstream sees it.
            let started = Instant::now();
            let recorded = inner.recorder.tool_called(&accepted, call.arguments_bytes).await;
            inner.metrics.record_latency(started.elapsed());
            if let Err(e) = recorded {
                tracing::error!(error = %e, "cannot record a tool call; refusing it");
                return Err(GatewayError::RecordUnavailable);
            }
            inner.metrics.tool_call();
            pending.insert(accepted.request_id.clone(), accepted);
        }
        Some(body)
    } else {
        if parts.method == Method::GET && !inner.streams.has_room() {
            return Err(GatewayError::TooManyStreams);
        }
        None
    };

    let mut upstream_request = hyper::Request::new(Full::new(body_bytes.unwrap_or_default()));
    *upstream_request.method_mut() = parts.method;
    *upstream_request.uri_mut() = upstream.parse().map_err(|_| {
        tracing::warn!(workspace_id = %info.workspace_id, "the workspace's upstream url is not a valid http url");
        GatewayError::UpstreamUnavailable
    })?;
    let headers = upstream_request.headers_mut();
    for name in FORWARDED_REQUEST_HEADERS {
        for value in parts.headers.get_all(*name) {
            headers.append(*name, value.clone());
        }
    }
    let response_timeout = Duration::from_millis(inner.options.upstream_response_timeout_ms);
    let forwarded = Instant::now();
    let answered = tokio::time::timeout(response_timeout, inner.http.request(upstream_request)).await;
    inner.metrics.upstream_latency(forwarded.elapsed());
    let upstream_response = match answered {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, workspace_id = %info.workspace_id, "upstream unreachable");
            complete_all(inner, pending, CallOutcome::UpstreamUnavailable).await;
            return Err(GatewayError::UpstreamUnavailable);
        }
        Err(_) => {
            tracing::warn!(workspace_id = %info.workspace_id, "upstream did not answer in time");
            complete_all(inner, pending, CallOutcome::UpstreamUnavailable).await;
            return Err(GatewayError::UpstreamUnavailable);
        }
    };
    relay(inner, hash, upstream_response, pending).await
}

/// Parses the bearer token without any lookup and hashes it.
fn bearer_hash(headers: &HeaderMap) -> Result<TokenHash, GatewayError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(GatewayError::MissingToken)?;
    let value = value.to_str().map_err(|_| GatewayError::MissingToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(GatewayError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(GatewayError::MissingToken);
    }
    let secret = Secret::parse(token).map_err(GatewayError::MalformedToken)?;
    if !matches!(secret.kind(), SecretKind::MemberToken | SecretKind::BotToken) {
        return Err(GatewayError::WrongTokenKind);
    }
    Ok(secret.hash())
}

/// The token check and rate limit, in one call to the authority.
async fn check(inner: &Inner, hash: &TokenHash) -> Result<TokenInfo, GatewayError> {
    let started = Instant::now();
    let timeout = Duration::from_millis(inner.options.check_timeout_ms);
    let verdict = tokio::time::timeout(timeout, inner.authority.check(hash)).await;
    inner.metrics.check_latency(started.elapsed());
    let verdict = match verdict {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "token check failed; refusing the request");
            return Err(GatewayError::CheckUnavailable);
        }
        Err(_) => {
            tracing::warn!("token check timed out; refusing the request");
            return Err(GatewayError::CheckUnavailable);
        }
    };
    match verdict {
        Verdict::Allowed(info) => Ok(info),
        Verdict::Unknown => Err(GatewayError::UnknownToken),
        Verdict::Revoked(info) => {
            let recorder = inner.recorder.clone();
            let hash = *hash;
            tokio::spawn(async move {
                if let Err(e) = recorder.access_denied(&hash, &info).await {
                    tracing::error!(error = %e, "cannot record a refused request of a revoked token");
                }
            });
            Err(GatewayError::RevokedToken)
        }
        Verdict::Limited { info, retry_after_ms } => {
            inner.recorder.count_rate_limited(hash, &info);
            let limit = inner.options.rate_limit;
            Err(GatewayError::RateLimited {
                requests_max: limit.requests_max,
                window_s: limit.window_ms.div_ceil(1000),
                retry_after_s: retry_after_ms.div_ceil(1000).max(1),
            })
        }
    }
}

async fn read_body(inner: &Inner, headers: &HeaderMap, body: Body) -> Result<Bytes, GatewayError> {
    let limit_bytes = inner.options.body_bytes_max;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit_bytes as u64) {
        return Err(GatewayError::PayloadTooLarge { limit_bytes });
    }
    match http_body_util::Limited::new(body, limit_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::PayloadTooLarge { limit_bytes }),
        Err(_) => Err(GatewayError::InvalidRequest("the request body could not be read".into())),
    }
}

/// Records the outcome of every call still pending, in the background.
async fn complete_all(inner: &Inner, pending: HashMap<String, AcceptedCall>, outcome: CallOutcome) {
    for call in pending.into_values() {
        inner.completions.record(call, outcome.clone()).await;
    }
}

async fn relay(
    inner: &Inner,
    hash: TokenHash,
    upstream: hyper::Response<Incoming>,
    mut pending: HashMap<String, AcceptedCall>,
) -> Result<Response, GatewayError> {
    let (upstream_parts, upstream) = upstream.into_parts();
    let status = upstream_parts.status;
    let mut builder = Response::builder().status(status);
    for name in FORWARDED_RESPONSE_HEADERS {
        for value in upstream_parts.headers.get_all(*name) {
            builder = builder.header(*name, value);
        }
    }
    let content_type = upstream_parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let is_sse = content_type.starts_with("text/event-stream");
    let inspect_max = inner.options.inspect_bytes_max;

    if is_sse {
        let registration = inner.streams.register(hash);
        let scanner = (!pending.is_empty()).then(|| SseScanner::new(inspect_max));
        let relay = Relay {
            upstream: BodyDataStream::new(upstream),
            registration,
            scanner,
            pending,
            completions: inner.completions.clone(),
            ended: End::Dropped,
        };
        let body = Body::from_stream(relay.into_stream());
        return builder
            .header("x-accel-buffering", HeaderValue::from_static("no"))
            .body(body)
            .map_err(|_| GatewayError::Internal);
    }

    let small = upstream.size_hint().exact().is_some_and(|length| length <= inspect_max as u64);
    if pending.is_empty() || !small {
        // Nothing to inspect (or too large to): pass the body through as it comes.
        if !pending.is_empty() {
            let outcome = if status.is_success() { CallOutcome::Ok } else { CallOutcome::Error { code: None } };
            complete_all(inner, pending, outcome).await;
        }
        return builder.body(Body::new(upstream)).map_err(|_| GatewayError::Internal);
    }

    let response_timeout = Duration::from_millis(inner.options.upstream_response_timeout_ms);
    let bytes = match tokio::time::timeout(response_timeout, upstream.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => {
            complete_all(inner, pending, CallOutcome::UpstreamUnavailable).await;
            return Err(GatewayError::UpstreamUnavailable);
        }
    };
    for (call, outcome) in jsonrpc::take_outcomes(&bytes, &mut pending) {
        inner.completions.record(call, outcome).await;
    }
    let fallback = if status.is_success() { CallOutcome::Ok } else { CallOutcome::Error { code: None } };
    complete_all(inner, pending, fallback).await;
    if status == StatusCode::ACCEPTED && bytes.is_empty() {
        return builder.body(Body::empty()).map_err(|_| GatewayError::Internal);
    }
    builder.body(Body::from(bytes)).map_err(|_| GatewayError::Internal)
}

/// How a relayed event stream ended, for the outcome of calls still waiting for an answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client went away or the stream was closed by a revocation.
    Dropped,
    /// The upstream ended the stream or failed.
    Upstream,
}

/// An upstream event stream relayed chunk by chunk, closed when its token is revoked.
struct Relay {
    upstream: BodyDataStream<Incoming>,
    registration: Registration,
    scanner: Option<SseScanner>,
    pending: HashMap<String, AcceptedCall>,
    completions: Completions,
    ended: End,
}

impl Relay {
    fn into_stream(self) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures::stream::unfold(self, |mut relay| async move {
            let next = tokio::select! {
                biased;
                () = relay.registration.cancel.cancelled() => return None,
                next = relay.upstream.next() => next,
            };
            match next {
                Some(Ok(chunk)) => {
                    for (call, outcome) in relay.inspect(&chunk) {
                        relay.completions.record(call, outcome).await;
                    }
                    Some((Ok(chunk), relay))
                }
                Some(Err(e)) => {
                    relay.ended = End::Upstream;
                    Some((Err(std::io::Error::other(e)), relay))
                }
                None => {
                    relay.finish(End::Upstream);
                    None
                }
            }
        })
    }

    /// Finds the answers to pending calls in a chunk; returns the calls they end.
    fn inspect(&mut self, chunk: &[u8]) -> Vec<(AcceptedCall, CallOutcome)> {
        let Some(scanner) = self.scanner.as_mut() else { return Vec::new() };
        let pending = &mut self.pending;
        let mut done = Vec::new();
        scanner.feed(chunk, |data| done.extend(jsonrpc::take_outcomes(data, pending)));
        if self.pending.is_empty() {
            // Every call has its answer: the rest of the stream passes without inspection.
            self.scanner = None;
        }
        done
    }
}

impl Relay {
    /// Records the calls still waiting for an answer, with an outcome that says why not.
    fn finish(&mut self, end: End) {
        if self.pending.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let outcome = match end {
            End::Upstream => CallOutcome::UpstreamUnavailable,
            End::Dropped => CallOutcome::Error { code: None },
        };
        for call in std::mem::take(&mut self.pending).into_values() {
            self.completions.record_now(call, outcome.clone());
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.finish(self.ended);
    }
}
