use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::{TestApp, code};

#[tokio::test]
async fn invite_accept_resend_cancel_expire() {
    let app = TestApp::start().await;
    let owner = app.sign_up("owner@acme.test").await;
    app.create_workspace(&owner, "acme", "starter").await;

    // With an account: the link is the plain accept link.
    let alice = app.sign_up("alice@acme.test").await;
    let invitation = app.invite(&owner, "acme", "Alice@acme.test", "admin").await;
    assert_eq!(invitation["email"], "alice@acme.test");
    assert_eq!(invitation["role"], "admin");
    assert_eq!(invitation["has_account"], true);
    let code_text = invitation["code"].as_str().unwrap().to_owned();
    assert!(code_text.starts_with("mwi_"));
    assert_eq!(invitation["accept_url"], format!("https://rollcall.example.com/accept?code={code_text}"));
    assert_eq!(invitation["delivery"], "delivered");

    // Someone else cannot use it; nothing is written.
    let mallory = app.sign_up("mallory@acme.test").await;
    let head = app.head().await;
    let (status, body) = app.accept(&mallory, &code_text).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "invitation_for_another_address"));
    assert_eq!(app.head().await, head);

    let (status, accepted) = app.accept(&alice, &code_text).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["workspace"], "acme");
    assert_eq!(accepted["role"], "admin");
    let member_token = accepted["token"].as_str().unwrap();
    assert!(member_token.starts_with("mwt_"));
    assert!(matches!(app.token_check(member_token), rollcall_tokens::TokenCheck::Valid(_)));
    let (status, body) = app.accept(&alice, &code_text).await;
    assert_eq!((status, code(&body)), (StatusCode::GONE, "invitation_already_used"));

    // Without an account: the link leads to sign-up first.
    let bob_invite = app.invite(&alice, "acme", "bob@acme.test", "member").await;
    assert_eq!(bob_invite["has_account"], false);
    assert!(bob_invite["accept_url"].as_str().unwrap().ends_with("&signup=1"));
    let bob_id = bob_invite["invitation_id"].as_str().unwrap().to_owned();
    // Resend: a new code; the old one stops working.
    let (status, resent) = app
        .call(Method::POST, &format!("/api/v1/workspaces/acme/invitations/{bob_id}/resend"), Some(&owner), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{resent}");
    assert_ne!(resent["code"], bob_invite["code"]);
    let bob = app.sign_up("bob@acme.test").await;
    let (status, body) = app.accept(&bob, bob_invite["code"].as_str().unwrap()).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "invitation_code_unknown"));
    let (status, _) = app.accept(&bob, resent["code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    // Cancel frees the seat; the code is then refused as cancelled.
    let carol_invite = app.invite(&owner, "acme", "carol@acme.test", "member").await;
    let carol_id = carol_invite["invitation_id"].as_str().unwrap();
    let (status, cancelled) =
        app.call(Method::DELETE, &format!("/api/v1/workspaces/acme/invitations/{carol_id}"), Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    let carol = app.sign_up("carol@acme.test").await;
    let (status, body) = app.accept(&carol, carol_invite["code"].as_str().unwrap()).await;
    assert_eq!((status, code(&body)), (StatusCode::GONE, "invitation_cancelled"));

    // Expiry: the sweep records it, the seat is free and the code refused as expired.
    let dan_invite = app
        .call(
            Method::POST,
            "/api/v1/workspaces/acme/invitations",
            Some(&owner),
            Some(json!({ "email": "dan@acme.test", "expires_in_hours": 1 })),
        )
        .await
        .1;
    let service = app.server.as_ref().unwrap().service().clone();
    assert_eq!(service.expire_invitations(Utc::now() + Duration::hours(2), 100).await, 1);
    let dan = app.sign_up("dan@acme.test").await;
    let (status, body) = app.accept(&dan, dan_invite["code"].as_str().unwrap()).await;
    assert_eq!((status, code(&body)), (StatusCode::GONE, "invitation_expired"));

    let (status, list) = app.call(Method::GET, "/api/v1/workspaces/acme/invitations", Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<_> = list.as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(statuses, ["accepted", "accepted", "cancelled", "expired"]);
    assert!(list.as_array().unwrap().iter().all(|i| i["delivery"] == "delivered"), "{list}");

    // Malformed codes are refused before any lookup.
    let (status, body) = app.accept(&dan, "mwi_nope").await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_code"));
    app.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_invitations_into_starter_give_exactly_four() {
    let app = Arc::new(TestApp::start().await);
    let owner = app.sign_up("owner@race.test").await;
    app.create_workspace(&owner, "race", "starter").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = app.clone();
        let owner = owner.clone();
        tasks.push(tokio::spawn(async move {
            app.call(
                Method::POST,
                "/api/v1/workspaces/race/invitations",
                Some(&owner),
                Some(json!({ "email": format!("person{i}@race.test") })),
            )
            .await
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_eq!(code(&body), "seat_limit_reached", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("starter") && message.contains('5') && message.contains("upgrade"),
                    "{message}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, refused), (4, 46));
    let (_, ws) = app.call(Method::GET, "/api/v1/workspaces/race", Some(&owner), None).await;
    assert_eq!(ws["seats_used"], 5);
    assert_eq!(std::fs::read_dir(app.outbox()).unwrap().count(), 4, "one email per invitation that stands");
}
