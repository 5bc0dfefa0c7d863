use axum::http::{Method, StatusCode};
use rollcall_store::EventStore;
use serde_json::json;

use crate::support::{PASSWORD, TestApp, code};

#[tokio::test]
async fn sign_up_log_in_and_me() {
    let app = TestApp::start().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/accounts",
            None,
            Some(json!({ "email": "Alice@Example.com", "password": PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["email"], "alice@example.com");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mwa_"));

    let (status, me) = app.call(Method::GET, "/api/v1/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["workspaces"], json!([]));

    let (status, login) = app
        .call(Method::POST, "/api/v1/login", None, Some(json!({ "email": "alice@example.com", "password": PASSWORD })))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_ne!(login["token"], body["token"], "a login issues a new token");
    let (status, _) = app.call(Method::GET, "/api/v1/me", Some(login["token"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::OK);

    // The password hash never leaves through the audit of account events, and no secret is in the log.
    let events = app.store.read_all(rollcall_core::envelope::Position::START, &Default::default(), 1000).await.unwrap();
    let log = events.iter().map(|e| String::from_utf8_lossy(&e.data).into_owned()).collect::<String>();
    assert!(!log.contains(&token) && !log.contains(PASSWORD));
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_address_and_wrong_password_get_the_same_answer() {
    let app = TestApp::start().await;
    app.sign_up("bob@example.com").await;
    let (s1, wrong) = app
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "email": "bob@example.com", "password": "not the password" })),
        )
        .await;
    let (s2, unknown) = app
        .call(Method::POST, "/api/v1/login", None, Some(json!({ "email": "nobody@example.com", "password": PASSWORD })))
        .await;
    assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(wrong, unknown);
    assert_eq!(code(&wrong), "bad_credentials");
    app.shutdown().await;
}

#[tokio::test]
async fn sign_up_refusals_write_nothing() {
    let app = TestApp::start().await;
    app.sign_up("carol@example.com").await;
    let head = app.head().await;
    for (body, expected) in [
        (json!({ "email": "carol@example.com", "password": PASSWORD }), "account_exists"),
        (json!({ "email": "not-an-email", "password": PASSWORD }), "invalid_email"),
        (json!({ "email": "dave@example.com", "password": "short" }), "weak_password"),
        (json!({ "email": "dave@example.com" }), "invalid_body"),
        (json!({ "email": "dave@example.com", "password": PASSWORD, "admin": true }), "invalid_body"),
    ] {
        let (status, answer) = app.call(Method::POST, "/api/v1/accounts", None, Some(body)).await;
        assert!(status.is_client_error(), "{answer}");
        assert_eq!(code(&answer), expected, "{answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(app.head().await, head, "refused sign-ups write nothing");
    app.shutdown().await;
}

#[tokio::test]
async fn tokens_are_checked() {
    let app = TestApp::start().await;
    let (status, body) = app.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "not_signed_in"));
    let (status, body) = app.call(Method::GET, "/api/v1/me", Some("mwa_garbage"), None).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "invalid_token"));
    let made_up = rollcall_core::Secret::generate(rollcall_core::SecretKind::AccountToken, [9; 32]);
    let (status, body) = app.call(Method::GET, "/api/v1/me", Some(made_up.expose()), None).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "invalid_token"));
    // A member token is not an account token.
    let token = app.sign_up("erin@example.com").await;
    let ws = app.create_workspace(&token, "erin-space", "pro").await;
    let (status, body) = app.call(Method::GET, "/api/v1/me", Some(ws["owner_token"].as_str().unwrap()), None).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "invalid_token"));
    assert!(body["error"]["message"].as_str().unwrap().contains("member token"), "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn healthz_openapi_and_accept_page() {
    let app = TestApp::start().await;
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));

    let (status, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in rollcall_api::openapi::operations() {
        assert!(paths[path][method].is_object(), "{method} {path} is documented");
    }
    assert_eq!(paths.len(), 19, "every path of the contract, no more");

    let code_secret = rollcall_core::Secret::generate(rollcall_core::SecretKind::InvitationCode, [3; 32]);
    let (status, page) =
        app.call(Method::GET, &format!("/accept?code={}&signup=1", code_secret.expose()), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains(&format!("rollcall invite accept {}", code_secret.expose())));
    assert!(page.contains("rollcall account signup"));
    let (_, page) = app.call(Method::GET, "/accept?code=%3Cscript%3E", None, None).await;
    assert!(!page.as_str().unwrap().contains("<script>"));
    assert!(page.as_str().unwrap().contains("incomplete"));

    let (status, body) = app.call(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "no_such_endpoint"));
    app.shutdown().await;
}
