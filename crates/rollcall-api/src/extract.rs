//! Extractors whose rejections speak the API's error table.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use rollcall_core::DomainError;
use rollcall_core::workspace::AccountRef;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::service::{Caller, Service};

/// Largest request body accepted, in bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// A JSON body; malformed JSON, unknown or missing fields are a 400 `invalid_body` with serde's
/// message, an oversized body a 413 `body_too_large`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::BodyTooLarge { limit_bytes: BODY_BYTES_MAX };
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::InvalidBody("send the body as JSON with the header Content-Type: application/json".into())
        }
        other => ApiError::InvalidBody(other.body_text()),
    }
}

/// Query parameters; a bad one is a 400 `invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection: QueryRejection| ApiError::invalid("invalid_query", rejection.body_text()))
    }
}

/// Path parameters; a bad one is a 400 `invalid_path`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection: PathRejection| ApiError::invalid("invalid_path", rejection.body_text()))
    }
}

/// An authenticated caller: `Authorization: Bearer mwa_...`.
pub struct Auth(pub Caller);

impl Auth {
    /// The caller's account.
    pub fn account(&self) -> &AccountRef {
        self.0.account.as_ref().expect("an authenticated caller has an account")
    }
}

impl FromRequestParts<Arc<Service>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, service: &Arc<Service>) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(DomainError::NotSignedIn)?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::InvalidToken("the Authorization header is not text: send Bearer mwa_...".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::InvalidToken("send the account token as Authorization: Bearer mwa_...".into()))?;
        let account = service.authenticate(token)?;
        Ok(Auth(Caller::account(account)))
    }
}

/// A JSON body that may be left out entirely (an empty body reads as `T::default()`).
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge { limit_bytes: BODY_BYTES_MAX }
            } else {
                ApiError::InvalidBody(rejection.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes).map(OptionalJson).map_err(|e| ApiError::InvalidBody(e.to_string()))
    }
}
