//! The realistic workload: `ToolCalled` events from members of many workspaces.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rollcall_store::{Actor, Metadata, NewEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who called a tool: `{"kind":"member","member_id":...}` or `{"kind":"bot","bot_id":...}`.
///
/// A flat struct rather than an internally tagged enum: serde decodes it in one pass without
/// buffering the object, which matters at millions of events per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Caller {
    /// Member or bot.
    pub kind: CallerKind,
    /// The member, when a member called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<Uuid>,
    /// The bot, when a bot called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<Uuid>,
}

/// The kind of caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    /// A human member.
    Member,
    /// A bot.
    Bot,
}

/// A decoded `ToolCalled` payload that borrows its strings from the payload bytes (copying
/// only a string with escapes in it): what a reader that only looks at the events needs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ToolCalledRef<'a> {
    /// The workspace.
    pub workspace_id: Uuid,
    /// Who called.
    pub caller: Caller,
    /// The token used.
    pub token_id: Uuid,
    /// The tool's name.
    #[serde(borrow)]
    pub tool: Cow<'a, str>,
    /// The JSON-RPC request id.
    #[serde(borrow)]
    pub request_id: Cow<'a, str>,
    /// Size of the call's arguments.
    pub arguments_bytes: u64,
    /// When the gateway saw the call.
    pub called_at: DateTime<Utc>,
}

/// One member's token: the stream its calls go to.
#[derive(Clone, Debug)]
pub struct TokenStream {
    /// The workspace.
    pub workspace_id: Uuid,
    /// The member.
    pub member_id: Uuid,
    /// The token.
    pub token_id: Uuid,
    /// `calls-<workspace_id>-<token_id>`.
    pub stream: String,
    /// Per tool of [`TOOLS`], the start of its `ToolCalled` payloads, serialized once: every
    /// field up to the request id, which with the rest differs per call.
    payload_starts: Vec<Vec<u8>>,
}

/// `count` token streams spread over `count / 20` workspaces.
pub fn token_streams(count: usize) -> Vec<TokenStream> {
    let workspaces: Vec<Uuid> = (0..count.div_ceil(20).max(1)).map(|_| Uuid::new_v4()).collect();
    (0..count)
        .map(|i| {
            let workspace_id = workspaces[i % workspaces.len()];
            let token_id = Uuid::new_v4();
            let mut token = TokenStream {
                workspace_id,
                member_id: Uuid::new_v4(),
                token_id,
                stream: format!("calls-{workspace_id}-{token_id}"),
                payload_starts: Vec::new(),
            };
            token.payload_starts = TOOLS.iter().map(|tool| token.payload_start(tool)).collect();
            token
        })
        .collect()
}

/// The tools the workload calls, in turn.
pub const TOOLS: [&str; 4] = ["search_issues", "get_issue", "list_pull_requests", "create_comment"];

/// Bytes reserved for one payload, enough for every `ToolCalled` this workload writes.
const PAYLOAD_BYTES: usize = 384;

/// A random (version 4) id from the thread's user-space generator: the system call behind
/// `Uuid::new_v4` costs more than the rest of building an event.
pub fn random_id() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

impl TokenStream {
    /// The JSON of this token's `ToolCalled` payloads up to the value of `request_id`, which
    /// follows `tool` (serde writes fields in declaration order).
    fn payload_start(&self, tool: &str) -> Vec<u8> {
        let start = serde_json::json!({
            "workspace_id": self.workspace_id,
            "caller": Caller { kind: CallerKind::Member, member_id: Some(self.member_id), bot_id: None },
            "token_id": self.token_id,
            "tool": tool,
        });
        let mut bytes = format!(
            r#"{{"workspace_id":{},"caller":{},"token_id":{},"tool":{},"request_id":""#,
            start["workspace_id"], start["caller"], start["token_id"], start["tool"]
        )
        .into_bytes();
        bytes.reserve(PAYLOAD_BYTES.saturating_sub(bytes.len()));
        bytes
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `n` as exactly `width` decimal digits (`n` fits).
fn push_fixed(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut digits = [b'0'; 9];
    let mut n = n;
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Appends `at` in RFC 3339 with nanoseconds, as a JSON string: what serde writes, built
/// without the formatting machinery, which cost more than the rest of the event.
fn push_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(at.year()).unwrap_or(0).min(9999);
    out.push(b'"');
    push_fixed(out, year, 4);
    out.push(b'-');
    push_fixed(out, at.month(), 2);
    out.push(b'-');
    push_fixed(out, at.day(), 2);
    out.push(b'T');
    push_fixed(out, at.hour(), 2);
    out.push(b':');
    push_fixed(out, at.minute(), 2);
    out.push(b':');
    push_fixed(out, at.second(), 2);
    out.push(b'.');
    push_fixed(out, at.nanosecond() % 1_000_000_000, 9);
    out.extend_from_slice(b"Z\"");
}

/// The `ToolCalled` payload of call `n` on `token`, as JSON: the token's serialized start, then
/// the fields that differ per call.
pub fn tool_called_payload(token: &TokenStream, n: u64, request_id: Uuid, called_at: DateTime<Utc>) -> Vec<u8> {
    let mut data = Vec::with_capacity(PAYLOAD_BYTES);
    data.extend_from_slice(&token.payload_starts[(n % TOOLS.len() as u64) as usize]);
    data.extend_from_slice(request_id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
    data.extend_from_slice(br#"","arguments_bytes":"#);
    push_decimal(&mut data, 64 + n % 512);
    data.extend_from_slice(br#","called_at":"#);
    push_timestamp(&mut data, called_at);
    data.push(b'}');
    data
}

/// One `ToolCalled` event for a token: fresh ids, the current time, call `n`'s tool.
pub fn tool_called(token: &TokenStream, n: u64) -> NewEvent {
    let now = Utc::now();
    NewEvent {
        id: random_id(),
        event_type: "ToolCalled".to_owned(),
        schema_version: 1,
        data: Bytes::from(tool_called_payload(token, n, random_id(), now)),
        metadata: Metadata {
            actor: Actor::Member { workspace_id: token.workspace_id, member_id: token.member_id },
            correlation_id: random_id(),
            causation_id: None,
            recorded_at: now,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;

    /// The `ToolCalled` payload, schema version 1, as serde writes it: what the builder must match.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ToolCalled {
        /// The workspace.
        pub workspace_id: Uuid,
        /// Who called.
        pub caller: Caller,
        /// The token used.
        pub token_id: Uuid,
        /// The tool's name.
        pub tool: String,
        /// The JSON-RPC request id.
        pub request_id: String,
        /// Size of the call's arguments (never the arguments themselves).
        pub arguments_bytes: u64,
        /// When the gateway saw the call.
        pub called_at: DateTime<Utc>,
    }

    #[test]
    fn built_payloads_are_what_serde_writes() {
        let tokens = token_streams(3);
        let at = Utc::now();
        for n in 0..8u64 {
            let token = &tokens[n as usize % 3];
            let request_id = random_id();
            let built = tool_called_payload(token, n, request_id, at);
            let expected = ToolCalled {
                workspace_id: token.workspace_id,
                caller: Caller { kind: CallerKind::Member, member_id: Some(token.member_id), bot_id: None },
                token_id: token.token_id,
                tool: TOOLS[(n % 4) as usize].to_owned(),
                request_id: request_id.to_string(),
                arguments_bytes: 64 + n % 512,
                called_at: at,
            };
            let decoded: ToolCalled = serde_json::from_slice(&built).expect("the built payload parses");
            assert_eq!(decoded, expected);
            let borrowed: ToolCalledRef<'_> = serde_json::from_slice(&built).expect("the built payload parses");
            assert!(matches!(borrowed.request_id, Cow::Borrowed(_)), "strings without escapes are borrowed");
            assert_eq!(borrowed.request_id, expected.request_id);
            assert_eq!(borrowed.called_at, expected.called_at);
            // The same fields and nothing else; the time is compared above, since serde trims
            // trailing zeros of the fraction and the builder does not.
            let mut as_value: serde_json::Value = serde_json::from_slice(&built).expect("the built payload is JSON");
            let mut serde_value = serde_json::to_value(&expected).expect("serializes");
            as_value["called_at"].take();
            serde_value["called_at"].take();
            assert_eq!(as_value, serde_value);
        }
    }

    #[test]
    fn timestamps_keep_leading_zeros() {
        let at = DateTime::from_timestamp(1_736_150_405, 7_000).expect("in range");
        let mut out = Vec::new();
        push_timestamp(&mut out, at);
        assert_eq!(out, br#""2025-01-06T08:00:05.000007000Z""#);
    }
}
