//! The server on the embedded log: a restart on the same data directory brings everything back.

use axum::http::{Method, StatusCode};
use rollcall_api::{ServeConfig, Server};
use serde_json::json;

use crate::support::{PASSWORD, TEST_PASSWORD_PARAMS};

async fn start(dir: &std::path::Path) -> (Server, reqwest_free::Client) {
    let config = ServeConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        password: TEST_PASSWORD_PARAMS,
        ..ServeConfig::default()
    };
    let server = Server::start(config).await.expect("server starts on the embedded log");
    let client = reqwest_free::Client { router: rollcall_api::router(server.service().clone()) };
    for _ in 0..500 {
        if client.call(Method::GET, "/healthz", None, None).await.0 == StatusCode::OK {
            return (server, client);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never ready");
}

#[tokio::test]
async fn restart_on_the_same_data_directory_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = start(dir.path()).await;
    let (_, account) = client
        .call(Method::POST, "/api/v1/accounts", None, Some(json!({ "email": "owner@acme.test", "password": PASSWORD })))
        .await;
    let token = account["token"].as_str().unwrap().to_owned();
    let (status, _) = client
        .call(Method::POST, "/api/v1/workspaces", Some(&token), Some(json!({ "name": "acme", "plan": "starter" })))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, invitation) = client
        .call(
            Method::POST,
            "/api/v1/workspaces/acme/invitations",
            Some(&token),
            Some(json!({ "email": "a@acme.test" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, before) = client.call(Method::GET, "/api/v1/workspaces/acme/members", Some(&token), None).await;
    drop(client);
    server.shutdown().await.expect("clean shutdown");

    let (server, client) = start(dir.path()).await;
    let (status, after) = client.call(Method::GET, "/api/v1/workspaces/acme/members", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "the account token still works: {after}");
    assert_eq!(before, after);
    let (_, list) = client.call(Method::GET, "/api/v1/workspaces/acme/invitations", Some(&token), None).await;
    assert_eq!(list[0]["invitation_id"], invitation["invitation_id"]);
    assert_eq!(list[0]["delivery"], "delivered", "delivery statuses survive a restart");
    drop(client);
    server.shutdown().await.expect("clean shutdown");
}

/// A tiny oneshot client over a router.
mod reqwest_free {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use serde_json::Value;
    use tower::ServiceExt;

    pub struct Client {
        pub router: Router,
    }

    impl Client {
        pub async fn call(
            &self,
            method: Method,
            path: &str,
            token: Option<&str>,
            body: Option<Value>,
        ) -> (StatusCode, Value) {
            let mut request =
                Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
            let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.unwrap();
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }
    }
}
