//! The authorisation matrix: owner, admin, member, outsider, another workspace's admin and the
//! unauthenticated, against every endpoint of a workspace. Refusals write nothing.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, code};

const OK: u16 = 200;
const FORBIDDEN: u16 = 403;
const NOT_FOUND: u16 = 404;

#[tokio::test]
async fn every_role_against_every_endpoint() {
    let app = TestApp::start().await;
    let owner = app.sign_up("owner@acme.test").await;
    app.create_workspace(&owner, "acme", "pro").await;
    let admin = app.join(&owner, "acme", "admin@acme.test", "admin").await;
    let member = app.join(&owner, "acme", "member@acme.test", "member").await;
    let outsider = app.sign_up("outsider@else.test").await;
    let other_owner = app.sign_up("owner@globex.test").await;
    app.create_workspace(&other_owner, "globex", "pro").await;
    let other_admin = app.join(&other_owner, "globex", "admin@globex.test", "admin").await;
    let pending = app.invite(&owner, "acme", "pending@acme.test", "member").await;
    let pending_id = pending["invitation_id"].as_str().unwrap().to_owned();
    let (status, _) =
        app.call(Method::POST, "/api/v1/workspaces/acme/bots", Some(&owner), Some(json!({ "name": "ci" }))).await;
    assert_eq!(status, StatusCode::CREATED);

    // Reads: (method, path, body, [owner, admin, member, outsider, other admin]).
    let reads: Vec<(Method, String, Option<Value>, [u16; 5])> = vec![
        (Method::GET, "/api/v1/workspaces/acme".into(), None, [OK, OK, OK, NOT_FOUND, NOT_FOUND]),
        (Method::GET, "/api/v1/workspaces/acme/members".into(), None, [OK, OK, OK, NOT_FOUND, NOT_FOUND]),
        (Method::GET, "/api/v1/workspaces/acme/invitations".into(), None, [OK, OK, FORBIDDEN, NOT_FOUND, NOT_FOUND]),
        (Method::GET, "/api/v1/workspaces/acme/bots".into(), None, [OK, OK, FORBIDDEN, NOT_FOUND, NOT_FOUND]),
        (Method::GET, "/api/v1/workspaces/acme/analytics".into(), None, [OK, OK, OK, NOT_FOUND, NOT_FOUND]),
        (Method::GET, "/api/v1/workspaces/acme/audit".into(), None, [OK, OK, FORBIDDEN, NOT_FOUND, NOT_FOUND]),
        (
            Method::PUT,
            "/api/v1/workspaces/acme/plan".into(),
            Some(json!({ "plan": "starter", "dry_run": true })),
            [OK, OK, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
    ];
    let callers = [&owner, &admin, &member, &outsider, &other_admin];
    let head = app.head().await;
    for (method, path, body, expected) in &reads {
        for (caller, want) in callers.iter().zip(expected) {
            let (status, answer) = app.call(method.clone(), path, Some(caller), body.clone()).await;
            assert_eq!(status.as_u16(), *want, "{method} {path}: {answer}");
            if *want == NOT_FOUND {
                assert_eq!(code(&answer), "workspace_not_found", "no existence leak: {answer}");
            }
        }
        let (status, answer) = app.call(method.clone(), path, None, body.clone()).await;
        assert_eq!((status, code(&answer)), (StatusCode::UNAUTHORIZED, "not_signed_in"));
    }
    assert_eq!(app.head().await, head, "reads and dry runs write nothing");

    // A member sees only their own row and their own usage.
    let (_, rows) = app.call(Method::GET, "/api/v1/workspaces/acme/members", Some(&member), None).await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["email"], "member@acme.test");
    let (_, rows) = app.call(Method::GET, "/api/v1/workspaces/acme/members", Some(&admin), None).await;
    assert_eq!(rows.as_array().unwrap().len(), 4, "owner, admin, member and the bot: {rows}");
    let (status, answer) =
        app.call(Method::GET, "/api/v1/workspaces/acme/analytics?member=admin@acme.test", Some(&member), None).await;
    assert_eq!((status, code(&answer)), (StatusCode::FORBIDDEN, "forbidden"));
    let (_, own) = app.call(Method::GET, "/api/v1/workspaces/acme/analytics", Some(&member), None).await;
    assert_eq!(own["member"], "member@acme.test");

    // Writes refused: [admin, member, outsider, other admin] (owner and admin successes are
    // covered by the flows).
    let writes: Vec<(Method, String, Option<Value>, [u16; 4])> = vec![
        (
            Method::POST,
            "/api/v1/workspaces/acme/invitations".into(),
            Some(json!({ "email": "new@acme.test" })),
            [0, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
        (
            Method::POST,
            "/api/v1/workspaces/acme/bots".into(),
            Some(json!({ "name": "x" })),
            [0, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
        (
            Method::PUT,
            "/api/v1/workspaces/acme/upstream".into(),
            Some(json!({ "url": "https://mcp.example.com/mcp" })),
            [0, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
        (
            Method::DELETE,
            "/api/v1/workspaces/acme/members/member@acme.test".into(),
            None,
            [0, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
        (
            Method::DELETE,
            format!("/api/v1/workspaces/acme/invitations/{pending_id}"),
            None,
            [0, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/acme/invitations/{pending_id}/resend"),
            None,
            [0, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
        (Method::DELETE, "/api/v1/workspaces/acme/bots/ci".into(), None, [0, FORBIDDEN, NOT_FOUND, NOT_FOUND]),
        (
            Method::PUT,
            "/api/v1/workspaces/acme/plan".into(),
            Some(json!({ "plan": "business", "dry_run": false })),
            [FORBIDDEN, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
        (Method::DELETE, "/api/v1/workspaces/acme".into(), None, [FORBIDDEN, FORBIDDEN, NOT_FOUND, NOT_FOUND]),
        // An admin may not remove the owner, nor another admin (only the owner may).
        (
            Method::DELETE,
            "/api/v1/workspaces/acme/members/owner@acme.test".into(),
            None,
            [409, FORBIDDEN, NOT_FOUND, NOT_FOUND],
        ),
    ];
    let callers = [&admin, &member, &outsider, &other_admin];
    for (method, path, body, expected) in &writes {
        for (caller, want) in callers.iter().zip(expected) {
            if *want == 0 {
                continue;
            }
            let (status, answer) = app.call(method.clone(), path, Some(caller), body.clone()).await;
            assert_eq!(status.as_u16(), *want, "{method} {path}: {answer}");
        }
        let (status, _) = app.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.head().await, head, "refused writes write nothing");

    // Offboarding only reaches the caller's own workspaces: the other admin cannot touch acme.
    let (status, plan) = app
        .call(
            Method::POST,
            "/api/v1/offboard",
            Some(&other_admin),
            Some(json!({ "email": "member@acme.test", "dry_run": false })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["steps"], json!([]));
    assert_eq!(app.head().await, head);
    app.shutdown().await;
}
