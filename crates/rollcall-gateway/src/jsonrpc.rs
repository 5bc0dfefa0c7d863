//! Just enough JSON-RPC 2.0 to validate what clients send, find tool calls, and find the
//! responses that end them.
//!
//! Messages are read with borrowed structs over the original bytes (only `jsonrpc`, `method`,
//! `id`, `params.name` and the size of `params.arguments` on the way in; `id`, `error.code` and
//! `result.isError` on the way out) and the original bytes are what gets forwarded: a tree of
//! `Value`s per message, and writing parts of it out again, is work a proxy does not need.

use std::borrow::Cow;
use std::collections::HashMap;

use rollcall_core::events::CallOutcome;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// A `tools/call` request found in a client's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ToolCallRequest {
    /// The JSON-RPC id as text.
    pub request_id: String,
    /// The tool's name.
    pub tool: String,
    /// Size of the arguments as JSON, in bytes.
    pub arguments_bytes: u64,
}

/// What a parsed client message holds.
pub(crate) struct ClientMessage {
    /// The id of a single request, for answering an error to it.
    pub id: Option<Value>,
    /// Its tool calls.
    pub tool_calls: Vec<ToolCallRequest>,
}

/// Longest tool name accepted, in bytes.
const TOOL_NAME_BYTES_MAX: usize = 256;
/// Most messages in one batch.
const BATCH_MESSAGES_MAX: usize = 100;

/// A field that may be present with any JSON value, `null` included (unlike `Option<T>`, which
/// reads `null` as absent).
type Field<'a> = Option<&'a RawValue>;

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Field<'de>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The fields of a client message the gateway looks at; the rest is skipped unparsed.
#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Field<'a>,
}

/// The fields of `tools/call` params the gateway records.
#[derive(Deserialize)]
struct WireParams<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    name: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    arguments: Field<'a>,
}

/// The fields of a server response that give a call's outcome.
#[derive(Deserialize)]
struct WireResponse<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    method: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Field<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Field<'a>,
}

#[derive(Deserialize)]
struct WireResult<'a> {
    #[serde(default, borrow, rename = "isError", deserialize_with = "present")]
    is_error: Field<'a>,
}

#[derive(Deserialize)]
struct WireError<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    code: Field<'a>,
}

/// Parses and validates a client's POST body.
pub(crate) fn parse_client_message(body: &[u8]) -> Result<ClientMessage, GatewayError> {
    let parse_error = |e: serde_json::Error| GatewayError::Parse(e.to_string());
    match first_byte(body) {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(parse_error)?;
            if items.is_empty() {
                return Err(GatewayError::InvalidRequest("an empty batch".into()));
            }
            if items.len() > BATCH_MESSAGES_MAX {
                return Err(GatewayError::InvalidRequest(format!(
                    "a batch of {} messages, over the limit of {BATCH_MESSAGES_MAX}",
                    items.len()
                )));
            }
            let mut tool_calls = Vec::new();
            for item in items {
                if first_byte(item.get().as_bytes()) != Some(b'{') {
                    return Err(GatewayError::InvalidRequest("each message must be a JSON object".into()));
                }
                let message: WireMessage<'_> = serde_json::from_str(item.get()).map_err(parse_error)?;
                if let Some(call) = check_message(&message)? {
                    tool_calls.push(call);
                }
            }
            Ok(ClientMessage { id: None, tool_calls })
        }
        Some(b'{') => {
            let message: WireMessage<'_> = serde_json::from_slice(body).map_err(parse_error)?;
            let call = check_message(&message)?;
            let id = match message.id {
                Some(id) => Some(serde_json::from_str::<Value>(id.get()).map_err(parse_error)?),
                None => None,
            };
            Ok(ClientMessage { id, tool_calls: call.into_iter().collect() })
        }
        _ => {
            // Not JSON at all is a parse error; JSON of another kind is an invalid request.
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(parse_error)?;
            Err(GatewayError::InvalidRequest("the message must be a JSON object".into()))
        }
    }
}

/// Checks one message; returns its tool call, if it is one.
fn check_message(message: &WireMessage<'_>) -> Result<Option<ToolCallRequest>, GatewayError> {
    if message.jsonrpc.and_then(string_of).as_deref() != Some("2.0") {
        return Err(GatewayError::InvalidRequest("`jsonrpc` must be \"2.0\"".into()));
    }
    match message.method {
        Some(method) => {
            let Some(method) = string_of(method) else {
                return Err(GatewayError::InvalidRequest("`method` must be a string".into()));
            };
            let id = match message.id {
                Some(id) => Some(
                    id_text(id)
                        .ok_or_else(|| GatewayError::InvalidRequest("`id` must be a string or a number".into()))?,
                ),
                None => None,
            };
            if method != "tools/call" {
                return Ok(None);
            }
            let Some(id) = id else {
                return Err(GatewayError::InvalidRequest("`tools/call` must be a request with an `id`".into()));
            };
            tool_call(id, message.params).map(Some)
        }
        None => {
            // A response to a server request (sampling, elicitation): it needs an id and a
            // result or an error.
            if message.id.is_none() || (message.result.is_none() && message.error.is_none()) {
                return Err(GatewayError::InvalidRequest(
                    "a message needs a `method`, or an `id` with a `result` or an `error`".into(),
                ));
            }
            Ok(None)
        }
    }
}

fn tool_call(request_id: String, params: Field<'_>) -> Result<ToolCallRequest, GatewayError> {
    let missing = || GatewayError::InvalidRequest("`tools/call` needs `params.name`".into());
    let params = params.filter(|p| first_byte(p.get().as_bytes()) == Some(b'{')).ok_or_else(missing)?;
    let params: WireParams<'_> = serde_json::from_str(params.get()).map_err(|e| GatewayError::Parse(e.to_string()))?;
    let tool = params.name.and_then(string_of).ok_or_else(missing)?;
    if tool.len() > TOOL_NAME_BYTES_MAX {
        return Err(GatewayError::InvalidRequest(format!("the tool name is over {TOOL_NAME_BYTES_MAX} bytes")));
    }
    // The size the client sent, as it sent it.
    let arguments_bytes = params.arguments.map_or(0, |a| a.get().len() as u64);
    Ok(ToolCallRequest { request_id, tool: tool.into_owned(), arguments_bytes })
}

fn first_byte(json: &[u8]) -> Option<u8> {
    json.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// A JSON string's value (borrowed unless it has escapes); `None` for any other JSON.
fn string_of(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'_, str>>(raw.get()).ok()
}

/// A JSON-RPC id as text: strings as they are, numbers in decimal; `None` for other JSON.
fn id_text(raw: &RawValue) -> Option<String> {
    match raw.get().as_bytes().first() {
        Some(b'"') => string_of(raw).map(Cow::into_owned),
        Some(b'-' | b'0'..=b'9') => serde_json::from_str::<serde_json::Number>(raw.get()).ok().map(|n| n.to_string()),
        _ => None,
    }
}

/// Finds, in a server message (one object or a batch, as JSON text), the responses to pending
/// calls, and removes those calls from `pending`, returning each with its outcome. Text that is
/// not such a message ends no call.
pub(crate) fn take_outcomes<T>(message: &[u8], pending: &mut HashMap<String, T>) -> Vec<(T, CallOutcome)> {
    let mut found = Vec::new();
    match first_byte(message) {
        Some(b'{') => {
            if let Ok(response) = serde_json::from_slice::<WireResponse<'_>>(message) {
                take_one(&response, pending, &mut found);
            }
        }
        Some(b'[') => {
            if let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(message) {
                for item in items {
                    if first_byte(item.get().as_bytes()) != Some(b'{') {
                        continue;
                    }
                    if let Ok(response) = serde_json::from_str::<WireResponse<'_>>(item.get()) {
                        take_one(&response, pending, &mut found);
                    }
                }
            }
        }
        _ => {}
    }
    found
}

fn take_one<T>(response: &WireResponse<'_>, pending: &mut HashMap<String, T>, found: &mut Vec<(T, CallOutcome)>) {
    if response.method.is_some() {
        return;
    }
    let Some(id) = response.id.and_then(id_text) else { return };
    let Some(call) = pending.remove(&id) else { return };
    found.push((call, outcome_of(response)));
}

fn outcome_of(response: &WireResponse<'_>) -> CallOutcome {
    if let Some(error) = response.error {
        let code = serde_json::from_str::<WireError<'_>>(error.get())
            .ok()
            .and_then(|e| e.code)
            .and_then(|c| serde_json::from_str::<i64>(c.get()).ok());
        return CallOutcome::Error { code };
    }
    // A tool that ran and failed answers a result with `isError`.
    let is_error = response
        .result
        .filter(|r| first_byte(r.get().as_bytes()) == Some(b'{'))
        .and_then(|r| serde_json::from_str::<WireResult<'_>>(r.get()).ok())
        .and_then(|r| r.is_error)
        .is_some_and(|flag| flag.get() == "true");
    if is_error {
        return CallOutcome::Error { code: None };
    }
    CallOutcome::Ok
}

/// Splits a server-sent event stream into the JSON of each event's data, incrementally.
pub(crate) struct SseScanner {
    line: Vec<u8>,
    data: Vec<u8>,
    event_bytes_max: usize,
    overflow: bool,
}

impl SseScanner {
    /// A scanner that ignores events larger than `event_bytes_max`.
    pub(crate) fn new(event_bytes_max: usize) -> SseScanner {
        SseScanner { line: Vec::new(), data: Vec::new(), event_bytes_max, overflow: false }
    }

    /// Feeds a chunk; calls `on_event` with the data of each event it completes (events over
    /// the size limit are skipped).
    pub(crate) fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&[u8])) {
        for &byte in chunk {
            if byte != b'\n' {
                if self.line.len() < self.event_bytes_max {
                    self.line.push(byte);
                } else {
                    self.overflow = true;
                }
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.is_empty() {
                if !self.overflow && !self.data.is_empty() {
                    on_event(&self.data);
                }
                self.data.clear();
                self.overflow = false;
            } else if let Some(rest) = self.line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                if self.data.len() + rest.len() + 1 > self.event_bytes_max {
                    self.overflow = true;
                } else {
                    if !self.data.is_empty() {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(rest);
                }
            }
            self.line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tool_calls_and_rejects_garbage() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"sum","arguments":{"a":1}}}"#;
        let message = parse_client_message(body).unwrap();
        assert_eq!(
            message.tool_calls,
            vec![ToolCallRequest { request_id: "7".into(), tool: "sum".into(), arguments_bytes: 7 }]
        );
        assert!(matches!(parse_client_message(b"{nope"), Err(GatewayError::Parse(_))));
        assert!(matches!(parse_client_message(br#"{"id":1,"method":"x"}"#), Err(GatewayError::InvalidRequest(_))));
        assert!(matches!(parse_client_message(b"[]"), Err(GatewayError::InvalidRequest(_))));
        assert!(matches!(
            parse_client_message(br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse_client_message(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(parse_client_message(b"42"), Err(GatewayError::InvalidRequest(_))));
        assert!(matches!(parse_client_message(b"[1]"), Err(GatewayError::InvalidRequest(_))));
        let batch = br#"[{"jsonrpc":"2.0","id":"a\"b","method":"tools/call","params":{"name":"x","arguments":[1, 2]}},
                        {"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        let message = parse_client_message(batch).unwrap();
        assert_eq!(message.id, None);
        assert_eq!(
            message.tool_calls,
            vec![ToolCallRequest { request_id: "a\"b".into(), tool: "x".into(), arguments_bytes: 6 }]
        );
    }

    #[test]
    fn finds_outcomes_in_responses() {
        let mut pending = HashMap::from([("1".to_owned(), 1), ("2".to_owned(), 2), ("x".to_owned(), 3)]);
        let batch = br#"[{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}},
                         {"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no"}},
                         {"jsonrpc":"2.0","id":"x","method":"sampling/createMessage"}]"#;
        let mut outcomes = take_outcomes(batch, &mut pending);
        outcomes.sort_by_key(|(n, _)| *n);
        assert_eq!(
            outcomes,
            vec![(1, CallOutcome::Error { code: None }), (2, CallOutcome::Error { code: Some(-32601) })]
        );
        let outcomes = take_outcomes(br#"{"jsonrpc":"2.0","id":"x","result":{"isError":false}}"#, &mut pending);
        assert_eq!(outcomes, vec![(3, CallOutcome::Ok)]);
        assert!(pending.is_empty());
    }

    #[test]
    fn sse_scanner_handles_split_chunks() {
        let mut scanner = SseScanner::new(1024);
        let mut found: Vec<Vec<u8>> = Vec::new();
        scanner.feed(b"id: 1\ndata: {\"jsonrpc\":\"2.0\",", |data| found.push(data.to_vec()));
        assert!(found.is_empty());
        scanner.feed(b"\"id\":3,\"result\":{}}\r\n\r\ndata: not json\n\n", |data| found.push(data.to_vec()));
        assert_eq!(found.len(), 2);
        let mut pending = HashMap::from([("3".to_owned(), ())]);
        assert!(take_outcomes(&found[1], &mut pending).is_empty());
        let outcomes = take_outcomes(&found[0], &mut pending);
        assert_eq!(outcomes, vec![((), CallOutcome::Ok)]);
        assert!(pending.is_empty());
    }
}
