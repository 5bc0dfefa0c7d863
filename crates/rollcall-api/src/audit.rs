//! The audit log of a workspace: its membership stream and its tool-call streams, straight from
//! the log, filtered by member, event type and time, a bounded page at a time.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use rollcall_core::catalogue::{CALLS_STREAM_PREFIX, workspace_stream};
use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_core::events::{Caller as CallCaller, EVENT_TYPES, Event};
use rollcall_core::ids::{InvitationId, MemberId};
use rollcall_core::{DomainError, Email};
use rollcall_store::EventFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Auth};
use crate::http::manager_view;
use crate::service::Service;

/// Events one page returns at most.
pub const AUDIT_PAGE_EVENTS_MAX: usize = 1000;
/// Events one page returns unless asked otherwise.
pub const AUDIT_PAGE_EVENTS_DEFAULT: usize = 100;
/// Events read from the store per request at most; past it the page ends early with a cursor.
pub const AUDIT_SCAN_EVENTS_MAX: usize = 50_000;
/// Events read from the store per round trip.
const AUDIT_READ_EVENTS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    member: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /workspaces/{ws}/audit`.
pub(crate) async fn audit(
    State(service): State<Arc<Service>>,
    auth: Auth,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let state = manager_view(&service, &auth, &ws, "read the audit log").await?;
    let limit = query.limit.unwrap_or(AUDIT_PAGE_EVENTS_DEFAULT);
    if !(1..=AUDIT_PAGE_EVENTS_MAX).contains(&limit) {
        return Err(ApiError::invalid("invalid_query", format!("limit must be between 1 and {AUDIT_PAGE_EVENTS_MAX}")));
    }
    let since = query.since.as_deref().map(|t| parse_time(t, "since")).transpose()?;
    let until = query.until.as_deref().map(|t| parse_time(t, "until")).transpose()?;
    let mut after = query.after.as_deref().map(parse_position).transpose()?.unwrap_or(Position::START);
    let event_types = match &query.event_type {
        Some(t) if !EVENT_TYPES.iter().any(|(known, _)| known == t) => {
            return Err(ApiError::invalid(
                "invalid_query",
                format!(
                    "unknown event type {t:?}: use one of {}",
                    EVENT_TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Some(t) => vec![t.clone()],
        None => Vec::new(),
    };
    let workspace_id = state.workspace_id.expect("a visible workspace exists");
    let own_stream = workspace_stream(&ws);
    let calls_prefix = format!("{CALLS_STREAM_PREFIX}{workspace_id}-");
    let member = match &query.member {
        Some(text) => {
            let email = Email::parse(text).map_err(DomainError::from)?;
            if !state.members.iter().any(|m| m.email == email) && !state.invitations.iter().any(|i| i.email == email) {
                return Err(DomainError::NotAMember { email, workspace: ws.clone() }.into());
            }
            Some(MemberFilter {
                member_ids: state.members.iter().filter(|m| m.email == email).map(|m| m.member_id).collect(),
                invitation_ids: state
                    .invitations
                    .iter()
                    .filter(|i| i.email == email)
                    .map(|i| i.invitation_id)
                    .collect(),
                email,
            })
        }
        None => None,
    };
    let filter = EventFilter { stream_prefixes: vec![own_stream.clone(), calls_prefix.clone()], event_types };
    let mut events = Vec::new();
    let mut scanned = 0usize;
    let mut exhausted = false;
    while events.len() < limit && scanned < AUDIT_SCAN_EVENTS_MAX {
        let page = service.store().read_all(after, &filter, AUDIT_READ_EVENTS).await?;
        if page.is_empty() {
            exhausted = true;
            break;
        }
        for recorded in &page {
            scanned += 1;
            after = recorded.position;
            // The prefix `workspace-acme` also matches `workspace-acme-labs`.
            let ours = recorded.stream == own_stream || recorded.stream.starts_with(&calls_prefix);
            let in_time = since.is_none_or(|s| recorded.metadata.recorded_at >= s)
                && until.is_none_or(|u| recorded.metadata.recorded_at < u);
            if ours && in_time && member.as_ref().is_none_or(|m| m.concerns(recorded)) {
                events.push(envelope_json(recorded));
                if events.len() == limit {
                    break;
                }
            }
        }
        if page.len() < AUDIT_READ_EVENTS && events.len() < limit {
            exhausted = true;
            break;
        }
    }
    let next_after = if exhausted { Value::Null } else { json!(after.to_string()) };
    Ok(Json(json!({ "events": events, "next_after": next_after })))
}

struct MemberFilter {
    email: Email,
    member_ids: HashSet<MemberId>,
    invitation_ids: HashSet<InvitationId>,
}

impl MemberFilter {
    fn concerns(&self, recorded: &RecordedEvent) -> bool {
        let Ok(event) = Event::from_recorded(recorded) else { return false };
        let caller_is = |caller: &CallCaller| matches!(caller, CallCaller::Member { member_id } if self.member_ids.contains(member_id));
        match &event {
            Event::WorkspaceCreated(e) => e.owner_email == self.email,
            Event::MemberInvited(e) => e.email == self.email,
            Event::InvitationResent(e) => self.invitation_ids.contains(&e.invitation_id),
            Event::InvitationCancelled(e) => self.invitation_ids.contains(&e.invitation_id),
            Event::InvitationExpired(e) => self.invitation_ids.contains(&e.invitation_id),
            Event::InvitationAccepted(e) => e.email == self.email,
            Event::MemberRemoved(e) => e.email == self.email,
            Event::ToolCalled(e) => caller_is(&e.caller),
            Event::ToolCallCompleted(e) => caller_is(&e.caller),
            Event::AccessDenied(e) => caller_is(&e.caller),
            Event::RateLimited(e) => caller_is(&e.caller),
            _ => false,
        }
    }
}

/// One event as the audit log shows it; secrets never appear, password hashes are redacted.
pub fn envelope_json(recorded: &RecordedEvent) -> Value {
    let mut data: Value = serde_json::from_slice(&recorded.data).unwrap_or(Value::Null);
    if recorded.event_type == "PasswordSet"
        && let Some(hash) = data.get_mut("password_hash")
    {
        *hash = json!("[redacted]");
    }
    json!({
        "id": recorded.id,
        "type": recorded.event_type,
        "schema_version": recorded.schema_version,
        "stream": recorded.stream,
        "revision": recorded.revision,
        "position": recorded.position.to_string(),
        "recorded_at": recorded.metadata.recorded_at,
        "actor": recorded.metadata.actor,
        "correlation_id": recorded.metadata.correlation_id,
        "causation_id": recorded.metadata.causation_id,
        "data": data,
    })
}

/// Parses a position as the API prints it: `n`, or `commit/prepare`.
pub fn parse_position(text: &str) -> Result<Position, ApiError> {
    let bad = || {
        ApiError::invalid(
            "invalid_query",
            format!("{text:?} is not a log position: pass next_after from the previous page"),
        )
    };
    match text.split_once('/') {
        Some((commit, prepare)) => Ok(Position {
            commit: commit.trim().parse().map_err(|_| bad())?,
            prepare: prepare.trim().parse().map_err(|_| bad())?,
        }),
        None => Ok(Position::from_sequence(text.trim().parse().map_err(|_| bad())?)),
    }
}

fn parse_time(text: &str, what: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(ApiError::invalid(
        "invalid_query",
        format!("{what} must be an RFC 3339 time or a date, e.g. 2026-03-03T12:00:00Z or 2026-03-03"),
    ))
}
