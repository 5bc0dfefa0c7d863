//! The one table of API errors: every failure maps to an HTTP status and a stable code.
//!
//! Bad input is the caller's problem and the message says what to do. An internal failure
//! answers "something went wrong" and the cause goes to the log, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rollcall_core::error::{DomainError, ErrorClass};
use rollcall_store::StoreError;
use serde_json::json;

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal by the domain (`decide`), with its own code.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Input refused before it reached the domain (query, path, plan name, password...).
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The body is not the JSON this endpoint takes (syntax, unknown or missing fields, types).
    #[error("the request body is not valid: {0}")]
    InvalidBody(String),
    /// The body is over the limit.
    #[error("the request body is larger than {limit_bytes} bytes: send less")]
    BodyTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// No usable account token.
    #[error("{0}")]
    InvalidToken(String),
    /// Signed in but not allowed to see this (the workspace exists and the caller is a member).
    #[error("only {needed} can {action}")]
    Forbidden {
        /// What was attempted.
        action: &'static str,
        /// Who may.
        needed: &'static str,
    },
    /// The stream kept changing under the command; nothing was written.
    #[error("{0} kept changing while this request was handled and nothing was written: retry")]
    Contended(String),
    /// The event was recorded but the token projection did not reflect it in time.
    #[error(
        "the {what} is recorded (log position {position}), but the token validity view has not applied it within {timeout_ms} ms, so a gateway may still accept the token for a moment: check the projector (rollcall project status) and list the members again"
    )]
    ProjectionLagging {
        /// What was recorded.
        what: &'static str,
        /// Where.
        position: String,
        /// How long we waited.
        timeout_ms: u64,
    },
    /// A read model the answer needs is not available (being built, or Redis unreachable).
    #[error("a read model is not available right now ({0}): retry shortly")]
    ViewUnavailable(String),
    /// The store refused for load; the client should retry.
    #[error("the event store is busy: retry shortly")]
    Overloaded,
    /// No such route.
    #[error("no such endpoint: see /api/v1/openapi.json for the API")]
    NoRoute,
    /// Wrong method on a route.
    #[error("this endpoint does not take that method: see /api/v1/openapi.json")]
    MethodNotAllowed,
    /// Anything else: logged, never shown.
    #[error("something went wrong")]
    Internal(String),
}

/// One row of the error table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorRow {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
}

impl ApiError {
    /// The HTTP status and stable code of this error: the one table.
    pub fn row(&self) -> ErrorRow {
        let row = |status, code| ErrorRow { status, code };
        match self {
            ApiError::Domain(e) => row(class_status(e.class()), e.code()),
            ApiError::Invalid { code, .. } => row(StatusCode::BAD_REQUEST, code),
            ApiError::InvalidBody(_) => row(StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::BodyTooLarge { .. } => row(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::InvalidToken(_) => row(StatusCode::UNAUTHORIZED, "invalid_token"),
            ApiError::Forbidden { .. } => row(StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Contended(_) => row(StatusCode::CONFLICT, "concurrent_update"),
            ApiError::ProjectionLagging { .. } => row(StatusCode::SERVICE_UNAVAILABLE, "projection_lagging"),
            ApiError::ViewUnavailable(_) => row(StatusCode::SERVICE_UNAVAILABLE, "view_unavailable"),
            ApiError::Overloaded => row(StatusCode::SERVICE_UNAVAILABLE, "store_overloaded"),
            ApiError::NoRoute => row(StatusCode::NOT_FOUND, "no_such_endpoint"),
            ApiError::MethodNotAllowed => row(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Internal(_) => row(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// An input error with its code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid { code, message: message.into() }
    }

    /// An internal error; the cause is logged when the response is built.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }
}

/// The HTTP status of a class of domain refusal.
pub fn class_status(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::Invalid => StatusCode::BAD_REQUEST,
        ErrorClass::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorClass::Forbidden => StatusCode::FORBIDDEN,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Conflict => StatusCode::CONFLICT,
        ErrorClass::Gone => StatusCode::GONE,
        // A plan limit is a conflict with the workspace's current state; the code says which.
        ErrorClass::Limit => StatusCode::CONFLICT,
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::WrongExpectedRevision { stream, .. } => ApiError::Contended(stream),
            StoreError::Overloaded(_) => ApiError::Overloaded,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ErrorRow { status, code } = self.row();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "something went wrong".to_owned()
            }
            other => other.to_string(),
        };
        (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
    }
}
