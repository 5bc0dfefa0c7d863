//! Events as projections see them: decoded once, with the envelope fields projections use.

use chrono::{DateTime, Utc};
use rollcall_core::catalogue::current_version;
use rollcall_core::envelope::{Position, RecordedEvent};
use rollcall_core::events::Event;

use crate::error::ProjectionError;

/// A decoded event with its place in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectedEvent {
    /// Its global position.
    pub position: Position,
    /// The stream it belongs to.
    pub stream: String,
    /// When the writer recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The event.
    pub event: Event,
}

impl ProjectedEvent {
    /// Decodes a recorded event (upcasting older schema versions).
    pub fn decode(recorded: &RecordedEvent) -> Result<ProjectedEvent, ProjectionError> {
        let event = match decode_hot(recorded) {
            Some(event) => event,
            None => Event::from_recorded(recorded)
                .map_err(|source| ProjectionError::Decode { position: recorded.position, source })?,
        };
        Ok(ProjectedEvent {
            position: recorded.position,
            stream: recorded.stream.clone(),
            recorded_at: recorded.metadata.recorded_at,
            event,
        })
    }
}

/// Decodes the high-volume event types straight from their bytes when they are at the current
/// schema version (no upcasting to do), skipping the intermediate JSON tree. Anything else, or
/// anything that does not parse, goes through the general path, which reports errors properly.
fn decode_hot(recorded: &RecordedEvent) -> Option<Event> {
    let data = &recorded.data[..];
    let current = current_version(&recorded.event_type) == Some(recorded.schema_version);
    if !current {
        return None;
    }
    match recorded.event_type.as_str() {
        "ToolCalled" => wire::tool_called(data),
        "ToolCallCompleted" => wire::tool_call_completed(data),
        "AccessDenied" => wire::access_denied(data),
        "RateLimited" => wire::rate_limited(data),
        _ => None,
    }
}

/// Borrowing mirrors of the hot payloads, decoded in one pass: strings are borrowed from the
/// payload until the event is built, the caller and the outcome are read as flat objects
/// instead of through serde's buffering of internally tagged enums, and timestamps in the
/// canonical form the writers produce (`2025-01-06T08:00:00.123456789Z`) are read without the
/// general RFC 3339 parser.
///
/// Each accepts a subset of what the general decoder accepts and builds the same value from
/// it; anything outside the subset (an unusual timestamp, an extra field, a `null` where a
/// value was due) returns `None` and takes the general path, so the two never disagree.
mod wire {
    use std::borrow::Cow;

    use chrono::{DateTime, NaiveDate, Utc};
    use rollcall_core::events::{self, CallOutcome, Caller, DenialReason, Event};
    use rollcall_core::{BotId, MemberId, TokenId, WorkspaceId};
    use serde::de::{Deserializer, Visitor};
    use serde::{Deserialize, de};
    use uuid::Uuid;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ToolCalled<'a> {
        workspace_id: WorkspaceId,
        caller: FlatCaller,
        token_id: TokenId,
        #[serde(borrow)]
        tool: Cow<'a, str>,
        #[serde(borrow)]
        request_id: Cow<'a, str>,
        arguments_bytes: u64,
        called_at: Time,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ToolCallCompleted<'a> {
        workspace_id: WorkspaceId,
        caller: FlatCaller,
        token_id: TokenId,
        #[serde(borrow)]
        tool: Cow<'a, str>,
        #[serde(borrow)]
        request_id: Cow<'a, str>,
        outcome: FlatOutcome,
        duration_ms: u64,
        completed_at: Time,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AccessDenied {
        workspace_id: WorkspaceId,
        caller: FlatCaller,
        token_id: TokenId,
        reason: DenialReason,
        denied_at: Time,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RateLimited {
        workspace_id: WorkspaceId,
        caller: FlatCaller,
        token_id: TokenId,
        refused: u64,
        window_start: Time,
        window_end: Time,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum CallerKind {
        Member,
        Bot,
    }

    /// [`Caller`] as the flat object it is stored as.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FlatCaller {
        kind: CallerKind,
        member_id: Option<Uuid>,
        bot_id: Option<Uuid>,
    }

    impl FlatCaller {
        fn caller(&self) -> Option<Caller> {
            match (&self.kind, self.member_id, self.bot_id) {
                (CallerKind::Member, Some(id), None) => Some(Caller::Member { member_id: MemberId(id) }),
                (CallerKind::Bot, None, Some(id)) => Some(Caller::Bot { bot_id: BotId(id) }),
                _ => None,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum OutcomeStatus {
        Ok,
        Error,
        UpstreamUnavailable,
    }

    /// [`CallOutcome`] as the flat object it is stored as.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FlatOutcome {
        status: OutcomeStatus,
        /// `None` when absent, `Some(None)` when `null`.
        #[serde(default, deserialize_with = "present")]
        code: Option<Option<i64>>,
    }

    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        Option::<i64>::deserialize(d).map(Some)
    }

    impl FlatOutcome {
        fn outcome(&self) -> Option<CallOutcome> {
            match (&self.status, self.code) {
                (OutcomeStatus::Ok, None) => Some(CallOutcome::Ok),
                (OutcomeStatus::Error, Some(code)) => Some(CallOutcome::Error { code }),
                (OutcomeStatus::UpstreamUnavailable, None) => Some(CallOutcome::UpstreamUnavailable),
                _ => None,
            }
        }
    }

    /// A timestamp in the canonical UTC form; anything else fails (and takes the general path).
    struct Time(DateTime<Utc>);

    impl<'de> Deserialize<'de> for Time {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
            struct Canonical;
            impl Visitor<'_> for Canonical {
                type Value = Time;

                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a timestamp like 2025-01-06T08:00:00.123Z")
                }

                fn visit_str<E: de::Error>(self, text: &str) -> Result<Time, E> {
                    parse_canonical_utc(text).map(Time).ok_or_else(|| E::custom("not a canonical UTC timestamp"))
                }
            }
            d.deserialize_str(Canonical)
        }
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits]Z`.
    pub(super) fn parse_canonical_utc(text: &str) -> Option<DateTime<Utc>> {
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| {
            b[range].iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        // A leap second (60) is rare enough to leave to the general parser.
        if second > 59 {
            return None;
        }
        let nanos = match (b[19], b.len()) {
            (b'Z', 20) => 0,
            (b'.', len) if (22..=30).contains(&len) && b[len - 1] == b'Z' => {
                let digits = len - 21;
                number(20..len - 1)? * 10u32.pow(9 - digits as u32)
            }
            _ => return None,
        };
        let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
        Some(date.and_hms_nano_opt(hour, minute, second, nanos)?.and_utc())
    }

    pub(super) fn tool_called(data: &[u8]) -> Option<Event> {
        let w: ToolCalled<'_> = serde_json::from_slice(data).ok()?;
        Some(Event::ToolCalled(events::ToolCalled {
            workspace_id: w.workspace_id,
            caller: w.caller.caller()?,
            token_id: w.token_id,
            tool: w.tool.into_owned(),
            request_id: w.request_id.into_owned(),
            arguments_bytes: w.arguments_bytes,
            called_at: w.called_at.0,
        }))
    }

    pub(super) fn tool_call_completed(data: &[u8]) -> Option<Event> {
        let w: ToolCallCompleted<'_> = serde_json::from_slice(data).ok()?;
        Some(Event::ToolCallCompleted(events::ToolCallCompleted {
            workspace_id: w.workspace_id,
            caller: w.caller.caller()?,
            token_id: w.token_id,
            tool: w.tool.into_owned(),
            request_id: w.request_id.into_owned(),
            outcome: w.outcome.outcome()?,
            duration_ms: w.duration_ms,
            completed_at: w.completed_at.0,
        }))
    }

    pub(super) fn access_denied(data: &[u8]) -> Option<Event> {
        let w: AccessDenied = serde_json::from_slice(data).ok()?;
        Some(Event::AccessDenied(events::AccessDenied {
            workspace_id: w.workspace_id,
            caller: w.caller.caller()?,
            token_id: w.token_id,
            reason: w.reason,
            denied_at: w.denied_at.0,
        }))
    }

    pub(super) fn rate_limited(data: &[u8]) -> Option<Event> {
        let w: RateLimited = serde_json::from_slice(data).ok()?;
        Some(Event::RateLimited(events::RateLimited {
            workspace_id: w.workspace_id,
            caller: w.caller.caller()?,
            token_id: w.token_id,
            refused: w.refused,
            window_start: w.window_start.0,
            window_end: w.window_end.0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use rollcall_core::catalogue::current_version;
    use rollcall_core::events::Event;

    use super::{decode_hot, wire};

    fn recorded(event_type: &str, data: &str) -> rollcall_core::envelope::RecordedEvent {
        rollcall_core::envelope::RecordedEvent {
            id: uuid::Uuid::nil(),
            stream: "calls-test".into(),
            revision: 0,
            position: rollcall_core::envelope::Position::from_sequence(1),
            event_type: event_type.into(),
            schema_version: current_version(event_type).expect("a known type"),
            data: bytes::Bytes::copy_from_slice(data.as_bytes()),
            metadata: rollcall_core::envelope::Metadata {
                actor: rollcall_core::envelope::Actor::System,
                correlation_id: uuid::Uuid::nil(),
                causation_id: None,
                recorded_at: Utc::now(),
            },
        }
    }

    const W: &str = "0b6f3c1e-54c4-4f5e-9b1a-3f0f7a2f6d11";
    const M: &str = "6d0b0f3e-8f4a-4b8e-a5c1-1c2d3e4f5a6b";
    const T: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

    /// Payloads the fast path may or may not take; whatever it returns must equal the general
    /// decoder's answer, and it must take the canonical ones.
    fn cases() -> Vec<(&'static str, String, bool)> {
        let caller = format!(r#"{{"kind":"member","member_id":"{M}"}}"#);
        let bot = format!(r#"{{"kind":"bot","bot_id":"{M}"}}"#);
        let called = |caller: &str, tool: &str, at: &str| {
            format!(
                r#"{{"workspace_id":"{W}","caller":{caller},"token_id":"{T}","tool":{tool},"request_id":"r-1","arguments_bytes":120,"called_at":{at}}}"#
            )
        };
        let completed = |outcome: &str, at: &str| {
            format!(
                r#"{{"workspace_id":"{W}","caller":{caller},"token_id":"{T}","tool":"get_issue","request_id":"7","outcome":{outcome},"duration_ms":42,"completed_at":{at}}}"#
            )
        };
        vec![
            ("ToolCalled", called(&caller, r#""search_issues""#, r#""2025-01-06T08:00:00.123456789Z""#), true),
            ("ToolCalled", called(&bot, r#""search_issues""#, r#""2025-01-06T08:00:00Z""#), true),
            ("ToolCalled", called(&caller, r#""with \"escapes\" \u00e9""#, r#""2025-01-06T08:00:00.5Z""#), true),
            ("ToolCalled", called(&caller, r#""x""#, r#""2024-02-29T23:59:59.000001Z""#), true),
            ("ToolCalled", called(&caller, r#""x""#, r#""2025-01-06T08:00:00+00:00""#), false),
            ("ToolCalled", called(&caller, r#""x""#, r#""2025-01-06T09:00:00+01:00""#), false),
            ("ToolCalled", called(&caller, r#""x""#, r#""2025-01-06t08:00:00z""#), false),
            ("ToolCalled", called(&caller, r#""x""#, r#""2016-12-31T23:59:60Z""#), false),
            ("ToolCalled", called(&caller, r#""x""#, r#""2025-02-30T08:00:00Z""#), false),
            ("ToolCalled", called(&caller, r#""x""#, r#""2025-01-06T08:00:00.1234567891Z""#), false),
            ("ToolCalled", called(&caller, r#""x""#, r#""2025-01-06T08:00:00.Z""#), false),
            ("ToolCalled", called(&caller, r#""x""#, r#""2025-01-06T08:00""#), false),
            ("ToolCalled", called(&caller, r#""x""#, "12"), false),
            (
                "ToolCalled",
                called(
                    &format!(r#"{{"kind":"member","member_id":"{M}","bot_id":"{M}"}}"#),
                    r#""x""#,
                    r#""2025-01-06T08:00:00Z""#,
                ),
                false,
            ),
            (
                "ToolCalled",
                called(
                    &format!(r#"{{"kind":"member","member_id":"{M}","extra":1}}"#),
                    r#""x""#,
                    r#""2025-01-06T08:00:00Z""#,
                ),
                false,
            ),
            (
                "ToolCalled",
                called(r#"{"kind":"member","member_id":null}"#, r#""x""#, r#""2025-01-06T08:00:00Z""#),
                false,
            ),
            ("ToolCalled", called(r#"{"kind":"robot","bot_id":null}"#, r#""x""#, r#""2025-01-06T08:00:00Z""#), false),
            ("ToolCalled", called(&caller, "null", r#""2025-01-06T08:00:00Z""#), false),
            ("ToolCallCompleted", completed(r#"{"status":"ok"}"#, r#""2025-01-06T08:00:01.25Z""#), true),
            ("ToolCallCompleted", completed(r#"{"status":"error","code":-32000}"#, r#""2025-01-06T08:00:01Z""#), true),
            ("ToolCallCompleted", completed(r#"{"status":"error","code":null}"#, r#""2025-01-06T08:00:01Z""#), true),
            ("ToolCallCompleted", completed(r#"{"status":"error"}"#, r#""2025-01-06T08:00:01Z""#), false),
            ("ToolCallCompleted", completed(r#"{"status":"upstream_unavailable"}"#, r#""2025-01-06T08:00:01Z""#), true),
            ("ToolCallCompleted", completed(r#"{"status":"ok","code":1}"#, r#""2025-01-06T08:00:01Z""#), false),
            ("ToolCallCompleted", completed(r#"{"status":"later"}"#, r#""2025-01-06T08:00:01Z""#), false),
            (
                "AccessDenied",
                format!(
                    r#"{{"workspace_id":"{W}","caller":{caller},"token_id":"{T}","reason":"revoked","denied_at":"2025-01-06T08:00:02Z"}}"#
                ),
                true,
            ),
            (
                "RateLimited",
                format!(
                    r#"{{"workspace_id":"{W}","caller":{bot},"token_id":"{T}","refused":3,"window_start":"2025-01-06T08:00:00Z","window_end":"2025-01-06T08:01:00.000Z"}}"#
                ),
                true,
            ),
            (
                "RateLimited",
                format!(
                    r#"{{"workspace_id":"{W}","caller":{bot},"token_id":"{T}","refused":3,"window_start":"2025-01-06T08:00:00Z","window_end":"2025-01-06T08:01:00Z","more":true}}"#
                ),
                false,
            ),
        ]
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_decoder() {
        for (event_type, data, canonical) in cases() {
            let event = recorded(event_type, &data);
            let general = Event::from_recorded(&event).ok();
            let fast = decode_hot(&event);
            if canonical {
                assert!(fast.is_some(), "the fast path takes {data}");
            }
            if let Some(fast) = fast {
                assert_eq!(Some(fast), general, "same event from {data}");
            }
        }
    }

    #[test]
    fn canonical_timestamps_parse_to_what_chrono_reads() {
        for text in [
            "2025-01-06T08:00:00Z",
            "1970-01-01T00:00:00.000000001Z",
            "2000-02-29T12:34:56.7Z",
            "9999-12-31T23:59:59.999999999Z",
            "2025-06-30T00:00:00.120Z",
        ] {
            let expected: DateTime<Utc> = serde_json::from_str(&format!("\"{text}\"")).expect("chrono reads it");
            assert_eq!(wire::parse_canonical_utc(text), Some(expected), "{text}");
        }
        for text in ["2025-13-01T00:00:00Z", "2025-01-06 08:00:00Z", "2025-01-06T24:00:00Z", "+2025-01-06T08:00:00Z"] {
            assert_eq!(wire::parse_canonical_utc(text), None, "{text}");
        }
    }

    #[test]
    fn serialized_events_take_the_fast_path() {
        let at = Utc::now();
        let event = rollcall_core::events::ToolCalled {
            workspace_id: rollcall_core::WorkspaceId(uuid::Uuid::new_v4()),
            caller: rollcall_core::Caller::Bot { bot_id: rollcall_core::BotId(uuid::Uuid::new_v4()) },
            token_id: rollcall_core::TokenId(uuid::Uuid::new_v4()),
            tool: "list_pull_requests".into(),
            request_id: "42".into(),
            arguments_bytes: 7,
            called_at: at,
        };
        let data = serde_json::to_string(&event).expect("serializes");
        let fast = decode_hot(&recorded("ToolCalled", &data));
        assert_eq!(fast, Some(Event::ToolCalled(event)));
    }
}
