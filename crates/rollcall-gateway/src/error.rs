//! Every refusal the gateway gives, with its HTTP status, JSON-RPC code and stable code, in one
//! table. Bodies are JSON-RPC error objects so that MCP clients can show the message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall_core::token::SecretError;
use serde_json::{Value, json};

use crate::metrics::Outcome;

/// Why the gateway refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No `Authorization: Bearer` header.
    #[error(
        "this endpoint needs an `Authorization: Bearer <token>` header: configure your MCP client with your workspace token (mwt_...)"
    )]
    MissingToken,
    /// The token's shape or checksum is wrong; refused without any lookup.
    #[error("the bearer token is not a valid Rollcall token: {0}")]
    MalformedToken(SecretError),
    /// A valid secret that is not a workspace token (an invitation code, an account token).
    #[error(
        "the bearer token is not a workspace token: use the member token (mwt_...) or bot token (mwb_...) shown when you joined"
    )]
    WrongTokenKind,
    /// The validity set does not know the token.
    #[error("this token is not known: check that you copied the whole token, or ask a workspace admin to invite you")]
    UnknownToken,
    /// The token was revoked.
    #[error("this token was revoked: ask a workspace admin to invite you again")]
    RevokedToken,
    /// The URL names another workspace than the token's.
    #[error("this token belongs to another workspace: use /mcp or the URL of the token's own workspace")]
    OtherWorkspace,
    /// Over the rate limit.
    #[error("rate limit exceeded ({requests_max} requests per {window_s} s per token): retry in {retry_after_s} s")]
    RateLimited {
        /// Requests allowed per window.
        requests_max: u32,
        /// The window, in seconds.
        window_s: u64,
        /// Seconds until a request is allowed again.
        retry_after_s: u64,
    },
    /// The request body is over the limit.
    #[error("the request body is over the limit of {limit_bytes} bytes: send smaller messages")]
    PayloadTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    Parse(String),
    /// The body is JSON but not a JSON-RPC 2.0 message.
    #[error("the request is not a valid JSON-RPC 2.0 message: {0}")]
    InvalidRequest(String),
    /// The token validity set cannot be reached; the gateway fails closed.
    #[error(
        "the token check is unavailable (the token validity store cannot be reached), so no request is let through: retry shortly"
    )]
    CheckUnavailable,
    /// The tool call could not be recorded, so it is not forwarded.
    #[error("the tool call could not be recorded in the audit log, so it was not forwarded: retry shortly")]
    RecordUnavailable,
    /// The workspace has no upstream MCP server.
    #[error(
        "this workspace has no upstream MCP server: a workspace admin can set one with `rollcall workspace upstream set`"
    )]
    UpstreamNotConfigured,
    /// The upstream could not be reached or did not answer in time.
    #[error("the workspace's upstream MCP server cannot be reached: retry later or ask a workspace admin to check it")]
    UpstreamUnavailable,
    /// Too many event streams are open on this gateway.
    #[error("this gateway has too many open event streams: retry shortly")]
    TooManyStreams,
    /// Anything else: the cause is logged, not shown.
    #[error("something went wrong in the gateway")]
    Internal,
}

impl GatewayError {
    /// HTTP status, JSON-RPC error code and stable code.
    pub fn codes(&self) -> (StatusCode, i64, &'static str) {
        match self {
            GatewayError::MissingToken => (StatusCode::UNAUTHORIZED, -32001, "missing_token"),
            GatewayError::MalformedToken(_) => (StatusCode::UNAUTHORIZED, -32001, "malformed_token"),
            GatewayError::WrongTokenKind => (StatusCode::UNAUTHORIZED, -32001, "wrong_token_kind"),
            GatewayError::UnknownToken => (StatusCode::UNAUTHORIZED, -32001, "unknown_token"),
            GatewayError::RevokedToken => (StatusCode::UNAUTHORIZED, -32001, "revoked_token"),
            GatewayError::OtherWorkspace => (StatusCode::FORBIDDEN, -32002, "other_workspace"),
            GatewayError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, -32003, "rate_limited"),
            GatewayError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, -32600, "payload_too_large"),
            GatewayError::Parse(_) => (StatusCode::BAD_REQUEST, -32700, "parse_error"),
            GatewayError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, -32600, "invalid_request"),
            GatewayError::CheckUnavailable => (StatusCode::SERVICE_UNAVAILABLE, -32004, "token_check_unavailable"),
            GatewayError::RecordUnavailable => (StatusCode::SERVICE_UNAVAILABLE, -32004, "record_unavailable"),
            GatewayError::UpstreamNotConfigured => (StatusCode::BAD_GATEWAY, -32005, "upstream_not_configured"),
            GatewayError::UpstreamUnavailable => (StatusCode::BAD_GATEWAY, -32005, "upstream_unavailable"),
            GatewayError::TooManyStreams => (StatusCode::SERVICE_UNAVAILABLE, -32004, "too_many_streams"),
            GatewayError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, -32603, "internal_error"),
        }
    }

    /// The metrics outcome this refusal counts as.
    pub fn outcome(&self) -> Outcome {
        match self {
            GatewayError::MissingToken
            | GatewayError::MalformedToken(_)
            | GatewayError::WrongTokenKind
            | GatewayError::UnknownToken => Outcome::Unauthorized,
            GatewayError::RevokedToken => Outcome::Revoked,
            GatewayError::OtherWorkspace => Outcome::Forbidden,
            GatewayError::RateLimited { .. } => Outcome::RateLimited,
            GatewayError::PayloadTooLarge { .. } | GatewayError::Parse(_) | GatewayError::InvalidRequest(_) => {
                Outcome::BadRequest
            }
            GatewayError::CheckUnavailable | GatewayError::RecordUnavailable | GatewayError::TooManyStreams => {
                Outcome::Unavailable
            }
            GatewayError::UpstreamNotConfigured | GatewayError::UpstreamUnavailable => Outcome::UpstreamUnavailable,
            GatewayError::Internal => Outcome::Internal,
        }
    }

    /// The response, answering the JSON-RPC request `id` when there was one.
    pub fn to_response(&self, id: Option<Value>) -> Response {
        let (status, code, stable) = self.codes();
        let body = json!({
            "jsonrpc": "2.0",
            "id": id.unwrap_or(Value::Null),
            "error": { "code": code, "message": self.to_string(), "data": { "code": stable } },
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self {
                GatewayError::MissingToken => "Bearer realm=\"rollcall\"",
                _ => "Bearer realm=\"rollcall\", error=\"invalid_token\"",
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let GatewayError::RateLimited { retry_after_s, .. } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        if let GatewayError::PayloadTooLarge { .. } = self {
            // The rest of the body is left unread, so the connection cannot carry another
            // request: say so, or a client reusing it sees its next request cut off.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.to_response(None)
    }
}
