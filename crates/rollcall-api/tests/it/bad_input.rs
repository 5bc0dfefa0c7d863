use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, code};

#[tokio::test]
async fn every_bad_input_is_a_4xx_with_a_code_and_writes_nothing() {
    let app = TestApp::start().await;
    let owner = app.sign_up("owner@acme.test").await;
    app.create_workspace(&owner, "acme", "starter").await;
    let head = app.head().await;

    let cases = [
        (Method::POST, "/api/v1/workspaces", json!({ "name": "beta", "plan": "platinum" }), 400, "invalid_plan"),
        (
            Method::POST,
            "/api/v1/workspaces",
            json!({ "name": "Not A Name!", "plan": "pro" }),
            400,
            "invalid_workspace_name",
        ),
        (Method::POST, "/api/v1/workspaces", json!({ "name": "acme", "plan": "pro" }), 409, "workspace_name_taken"),
        (Method::POST, "/api/v1/workspaces", json!({ "name": "beta" }), 400, "invalid_body"),
        (
            Method::POST,
            "/api/v1/workspaces",
            json!({ "name": "beta", "plan": "pro", "seats": 1000 }),
            400,
            "invalid_body",
        ),
        (Method::POST, "/api/v1/workspaces", json!({ "name": 7, "plan": "pro" }), 400, "invalid_body"),
        (Method::POST, "/api/v1/workspaces/acme/invitations", json!({ "email": "not an email" }), 400, "invalid_email"),
        (
            Method::POST,
            "/api/v1/workspaces/acme/invitations",
            json!({ "email": "a@b.test", "role": "owner" }),
            400,
            "invalid_role",
        ),
        (
            Method::POST,
            "/api/v1/workspaces/acme/invitations",
            json!({ "email": "a@b.test", "expires_in_hours": 0 }),
            400,
            "invalid_expiry",
        ),
        (
            Method::POST,
            "/api/v1/workspaces/nowhere/invitations",
            json!({ "email": "a@b.test" }),
            404,
            "workspace_not_found",
        ),
        (
            Method::POST,
            "/api/v1/workspaces/acme/invitations",
            json!({ "email": "owner@acme.test" }),
            409,
            "already_member",
        ),
        (Method::PUT, "/api/v1/workspaces/acme/plan", json!({ "plan": "gold" }), 400, "invalid_plan"),
        (Method::PUT, "/api/v1/workspaces/acme/upstream", json!({ "url": "ftp://x" }), 400, "invalid_upstream"),
        (Method::POST, "/api/v1/workspaces/acme/bots", json!({ "name": "no spaces" }), 400, "invalid_bot_name"),
        (Method::DELETE, "/api/v1/workspaces/acme/members/nobody@acme.test", json!(null), 404, "not_a_member"),
        (Method::DELETE, "/api/v1/workspaces/acme/members/not-an-email", json!(null), 400, "invalid_email"),
        (Method::DELETE, "/api/v1/workspaces/acme/invitations/not-a-uuid", json!(null), 404, "invitation_not_found"),
        (Method::POST, "/api/v1/offboard", json!({ "email": "x" }), 400, "invalid_email"),
        (Method::GET, "/api/v1/workspaces/acme/audit?limit=5000", json!(null), 400, "invalid_query"),
        (Method::GET, "/api/v1/workspaces/acme/audit?since=yesterday", json!(null), 400, "invalid_query"),
        (Method::GET, "/api/v1/workspaces/acme/audit?type=Nope", json!(null), 400, "invalid_query"),
    ];
    for (method, path, body, status, expected) in cases {
        let body = if body.is_null() { None } else { Some(body) };
        let (got, answer) = app.call(method.clone(), path, Some(&owner), body).await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {answer}");
        assert_eq!(code(&answer), expected, "{method} {path}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }

    // Malformed JSON, the wrong content type, an oversized body.
    let (status, answer) = app
        .raw(Method::POST, "/api/v1/workspaces", Some(&owner), Some(Body::from("{\"name\": ")), "application/json")
        .await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "invalid_body"));
    let (status, answer) =
        app.raw(Method::POST, "/api/v1/workspaces", Some(&owner), Some(Body::from("name=acme")), "text/plain").await;
    assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "invalid_body"));
    let huge = format!("{{\"name\": \"beta\", \"plan\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, answer) =
        app.raw(Method::POST, "/api/v1/workspaces", Some(&owner), Some(Body::from(huge)), "application/json").await;
    assert_eq!((status, code(&answer)), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"));

    assert_eq!(app.head().await, head, "no bad input wrote anything");
    // The server is unaffected.
    let (status, _) = app.call(Method::GET, "/api/v1/workspaces/acme", Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK);
    app.shutdown().await;
}
