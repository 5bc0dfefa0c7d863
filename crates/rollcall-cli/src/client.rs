//! A small client of the admin HTTP API (`/api/v1`).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Longest time one request may take. `member remove` waits for the token projection and
/// `offboard` touches every workspace, so this is generous.
const REQUEST_TIMEOUT_MS: u64 = 120_000;
/// Longest time to wait for a connection.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Largest answer accepted from the server.
const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// An error the API answered with: its HTTP status, stable code and message.
#[derive(Debug)]
pub struct ApiError {
    /// The API's stable error code.
    pub code: String,
    /// The API's message, which says what to do.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

/// The admin API of one server, with or without an account token.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Api {
    /// A client of the server at `server` (for example `http://127.0.0.1:7070`).
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Api> {
        let base = Url::parse(server)
            .with_context(|| format!("{server:?} is not a server URL: pass one such as http://127.0.0.1:7070 with --server or ROLLCALL_SERVER"))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            bail!("{server:?} is not an http(s) URL: pass one such as http://127.0.0.1:7070");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .user_agent(concat!("rollcall-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api { http, base, token })
    }

    /// Whether this client carries an account token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `GET /api/v1/<segments>?<query>`.
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.call(Method::GET, segments, query, None).await
    }

    /// `POST /api/v1/<segments>` with a JSON body.
    pub async fn post(&self, segments: &[&str], body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, segments, &[], Some(body)).await
    }

    /// `PUT /api/v1/<segments>` with a JSON body.
    pub async fn put(&self, segments: &[&str], body: Value) -> anyhow::Result<Value> {
        self.call(Method::PUT, segments, &[], Some(body)).await
    }

    /// `DELETE /api/v1/<segments>`.
    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<Value> {
        self.call(Method::DELETE, segments, &[], None).await
    }

    /// The URL of `/api/v1/<segments>`, each segment percent-encoded (emails go in paths).
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| anyhow!("{} cannot carry a path", self.base))?;
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = self.url(segments, query)?;
        // The path is logged, never the body or headers: bodies carry passwords and codes.
        tracing::debug!(%method, path = url.path(), "request");
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(token) = &self.token {
            // `bearer_auth` marks the header sensitive, so it never shows in debug output.
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|error| {
            if error.is_connect() {
                anyhow!(
                    "cannot reach the rollcall server at {}: start it with `rollcall serve`, or point --server / ROLLCALL_SERVER at it",
                    self.base
                )
            } else if error.is_timeout() {
                anyhow!("the server at {} did not answer in time: try again", self.base)
            } else {
                anyhow!("{method} {} failed: {error}", url.path())
            }
        })?;
        let status = response.status();
        tracing::debug!(%status, path = url.path(), "response");
        if let Some(length) = response.content_length()
            && length > RESPONSE_BYTES_MAX as u64
        {
            bail!("the server's answer is {length} bytes, more than the {RESPONSE_BYTES_MAX} accepted");
        }
        let bytes = response.bytes().await.context("cannot read the server's answer")?;
        if bytes.len() > RESPONSE_BYTES_MAX {
            bail!("the server's answer is larger than the {RESPONSE_BYTES_MAX} bytes accepted");
        }
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return match value {
                Some(value) => Ok(value),
                None if bytes.is_empty() => Ok(Value::Null),
                None => bail!("the server answered {status} with something that is not JSON"),
            };
        }
        let error = value.as_ref().and_then(|v| v.get("error"));
        let code = error.and_then(|e| e.get("code")).and_then(Value::as_str);
        let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
        match (code, message) {
            (Some(code), Some(message)) => Err(ApiError { code: code.to_owned(), message: message.to_owned() }.into()),
            _ if status == StatusCode::UNAUTHORIZED && self.token.is_none() => {
                bail!("not logged in to {}: run `rollcall login --email EMAIL` or set ROLLCALL_TOKEN", self.base)
            }
            _ => {
                let text = String::from_utf8_lossy(&bytes);
                let text: String = text.chars().take(200).collect();
                bail!("the server answered {status}: {text}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_in_paths_are_percent_encoded() {
        let api = Api::new("http://127.0.0.1:7070/", None).unwrap();
        let url = api.url(&["workspaces", "acme", "members", "a+b/c@example.com"], &[]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:7070/api/v1/workspaces/acme/members/a+b%2Fc@example.com");
    }

    #[test]
    fn a_base_path_is_kept() {
        let api = Api::new("https://example.com/rollcall", None).unwrap();
        let url = api.url(&["me"], &[("after", "1".into())]).unwrap();
        assert_eq!(url.as_str(), "https://example.com/rollcall/api/v1/me?after=1");
    }

    #[test]
    fn only_http_urls_are_servers() {
        assert!(Api::new("ftp://example.com", None).is_err());
        assert!(Api::new("127.0.0.1:7070", None).is_err());
    }
}
