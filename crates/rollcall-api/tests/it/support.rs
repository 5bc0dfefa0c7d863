//! A server over an in-memory store, driven through `router().oneshot(request)`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use rollcall_api::mail::RetryPolicy;
use rollcall_api::server::RouterHook;
use rollcall_api::{PasswordParams, ServeConfig, Server};
use rollcall_core::envelope::Position;
use rollcall_core::token::TokenHash;
use rollcall_store::{EventStore, MemoryStore};
use rollcall_tokens::{InProcessTokens, TokenCheck};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Cheap argon2 for tests; production uses the OWASP default.
pub const TEST_PASSWORD_PARAMS: PasswordParams = PasswordParams { memory_kib: 64, iterations: 1, parallelism: 1 };
/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub server: Option<Server>,
    pub router: Router,
    pub store: MemoryStore,
    pub dir: tempfile::TempDir,
    pub tokens: Arc<OnceLock<InProcessTokens>>,
}

pub struct Options {
    pub smtp_url: Option<String>,
    pub retry: RetryPolicy,
    pub sweep_interval_ms: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            smtp_url: None,
            retry: RetryPolicy { attempts_max: 3, backoff_base_ms: 50, backoff_max_ms: 200, attempt_timeout_ms: 5_000 },
            sweep_interval_ms: 60_000,
        }
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestApp {
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = Arc::new(OnceLock::new());
        let seen = tokens.clone();
        // The extension point the gateway uses: it receives the running parts.
        let hook: RouterHook = Box::new(move |runtime| {
            Box::pin(async move {
                let view = runtime.views["tokens"].clone().downcast::<InProcessTokens>().expect("in-process tokens");
                let _ = seen.set((*view).clone());
                Ok(Router::new())
            })
        });
        let config = ServeConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            store: Some(Arc::new(store.clone())),
            smtp_url: options.smtp_url,
            mail_retry: options.retry,
            public_url: Some("https://rollcall.example.com".into()),
            password: TEST_PASSWORD_PARAMS,
            expiry_sweep_interval_ms: options.sweep_interval_ms,
            extra_routes: vec![hook],
            ..ServeConfig::default()
        };
        let server = Server::start(config).await.expect("server starts");
        let router = rollcall_api::router(server.service().clone());
        let app = TestApp { server: Some(server), router, store, dir, tokens };
        app.wait_ready().await;
        app
    }

    pub async fn wait_ready(&self) {
        for _ in 0..500 {
            let (status, _) = self.call(Method::GET, "/healthz", None, None).await;
            if status == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server never became ready");
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    pub async fn head(&self) -> Position {
        self.store.head().await.expect("head")
    }

    pub fn token_check(&self, token: &str) -> TokenCheck {
        self.tokens.get().expect("tokens view captured").check_now(&TokenHash::of(token))
    }

    /// Sends a request; `body` is JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| Body::from(serde_json::to_vec(&b).expect("json")));
        self.raw(method, path, token, body, "application/json").await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Body>,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request.header(header::CONTENT_TYPE, content_type).body(body),
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// Signs up and returns the account token.
    pub async fn sign_up(&self, email: &str) -> String {
        let (status, body) = self
            .call(Method::POST, "/api/v1/accounts", None, Some(json!({ "email": email, "password": PASSWORD })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn create_workspace(&self, token: &str, name: &str, plan: &str) -> Value {
        let (status, body) = self
            .call(Method::POST, "/api/v1/workspaces", Some(token), Some(json!({ "name": name, "plan": plan })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn invite(&self, token: &str, ws: &str, email: &str, role: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/invitations"),
                Some(token),
                Some(json!({ "email": email, "role": role })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn accept(&self, token: &str, code: &str) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/v1/invitations/accept", Some(token), Some(json!({ "code": code }))).await
    }

    /// Signs up `email` and makes it a member of `ws` with `role`; returns its account token.
    pub async fn join(&self, owner: &str, ws: &str, email: &str, role: &str) -> String {
        let token = self.sign_up(email).await;
        let invitation = self.invite(owner, ws, email, role).await;
        let (status, body) = self.accept(&token, invitation["code"].as_str().expect("code")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        token
    }

    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"))
}

/// Polls until `check` holds, for up to `timeout_ms`.
pub async fn eventually(timeout_ms: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
