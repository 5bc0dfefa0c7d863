use axum::http::{Method, StatusCode};
use chrono::Utc;
use rollcall_core::catalogue::calls_stream;
use rollcall_core::envelope::{Actor, Metadata};
use rollcall_core::events::{Caller, Event, ToolCalled};
use rollcall_core::{MemberId, TokenId, WorkspaceId};
use rollcall_store::{EventStore, ExpectedRevision};
use rollcall_tokens::TokenCheck;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, code, eventually};

#[tokio::test]
async fn remove_returns_only_once_the_token_is_revoked_and_reinvite_works() {
    let app = TestApp::start().await;
    let owner = app.sign_up("owner@acme.test").await;
    app.create_workspace(&owner, "acme", "pro").await;
    let alice = app.sign_up("alice@acme.test").await;
    let invitation = app.invite(&owner, "acme", "alice@acme.test", "member").await;
    let (_, accepted) = app.accept(&alice, invitation["code"].as_str().unwrap()).await;
    let token = accepted["token"].as_str().unwrap().to_owned();
    assert!(matches!(app.token_check(&token), TokenCheck::Valid(_)));

    let (status, removed) =
        app.call(Method::DELETE, "/api/v1/workspaces/acme/members/alice@acme.test", Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["token_status"], "revoked");
    assert_eq!(removed["member_id"], accepted["member_id"]);
    // No waiting here: the answer came after the token view applied the removal.
    assert!(matches!(app.token_check(&token), TokenCheck::Revoked(_)));

    let (_, rows) = app.call(Method::GET, "/api/v1/workspaces/acme/members", Some(&owner), None).await;
    let alice_row = rows.as_array().unwrap().iter().find(|r| r["email"] == "alice@acme.test").unwrap();
    assert_eq!(alice_row["token_status"], "revoked");
    let (status, me) = app.call(Method::GET, "/api/v1/me", Some(&alice), None).await;
    assert_eq!((status, me["workspaces"].clone()), (StatusCode::OK, json!([])));

    // Re-invite: a new membership and a new token.
    let again = app.invite(&owner, "acme", "alice@acme.test", "member").await;
    let (status, rejoined) = app.accept(&alice, again["code"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rejoined["member_id"], accepted["member_id"]);
    assert!(matches!(app.token_check(rejoined["token"].as_str().unwrap()), TokenCheck::Valid(_)));
    assert!(matches!(app.token_check(&token), TokenCheck::Revoked(_)));
    app.shutdown().await;
}

#[tokio::test]
async fn workspaces_plans_bots_upstream_offboard_and_delete() {
    let app = TestApp::start().await;
    let owner = app.sign_up("owner@acme.test").await;
    let created = app.create_workspace(&owner, "acme", "starter").await;
    assert_eq!(created["seats"], 5);
    assert!(created["owner_token"].as_str().unwrap().starts_with("mwt_"));
    let enterprise = app.create_workspace(&owner, "big", "enterprise").await;
    assert_eq!(enterprise["seats"], Value::Null);
    let (_, list) = app.call(Method::GET, "/api/v1/workspaces", Some(&owner), None).await;
    let names: Vec<_> = list.as_array().unwrap().iter().map(|w| w["workspace"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme", "big"]);

    for email in ["a@acme.test", "b@acme.test"] {
        let token = app.join(&owner, "acme", email, "member").await;
        let invitation = app.invite(&owner, "big", email, "member").await;
        let (status, _) = app.accept(&token, invitation["code"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
    }
    app.invite(&owner, "acme", "c@acme.test", "member").await;

    // Downgrade preview: 4 seats used, Free has 1.
    let (status, preview) = app
        .call(
            Method::PUT,
            "/api/v1/workspaces/acme/plan",
            Some(&owner),
            Some(json!({ "plan": "free", "dry_run": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["seats_used"], 4);
    assert_eq!(preview["allowed"], false);
    assert_eq!(preview["applied"], false);
    assert_eq!(preview["over_limit"].as_array().unwrap().len(), 3);
    let head = app.head().await;
    let (status, refused) =
        app.call(Method::PUT, "/api/v1/workspaces/acme/plan", Some(&owner), Some(json!({ "plan": "free" }))).await;
    assert_eq!((status, code(&refused)), (StatusCode::CONFLICT, "downgrade_over_limit"));
    assert!(refused["error"]["message"].as_str().unwrap().contains("c@acme.test"), "{refused}");
    assert_eq!(app.head().await, head);
    let (status, upgraded) =
        app.call(Method::PUT, "/api/v1/workspaces/acme/plan", Some(&owner), Some(json!({ "plan": "pro" }))).await;
    assert_eq!((status, upgraded["applied"].clone()), (StatusCode::OK, json!(true)));

    // Bots and upstream.
    let (status, bot) =
        app.call(Method::POST, "/api/v1/workspaces/acme/bots", Some(&owner), Some(json!({ "name": "ci" }))).await;
    assert_eq!(status, StatusCode::CREATED);
    let bot_token = bot["token"].as_str().unwrap().to_owned();
    assert!(bot_token.starts_with("mwb_"));
    assert!(matches!(app.token_check(&bot_token), TokenCheck::Valid(_)));
    let (_, bots) = app.call(Method::GET, "/api/v1/workspaces/acme/bots", Some(&owner), None).await;
    assert_eq!(bots[0]["name"], "ci");
    assert_eq!(bots[0]["token_status"], "active");
    let (status, revoked) = app.call(Method::DELETE, "/api/v1/workspaces/acme/bots/ci", Some(&owner), None).await;
    assert_eq!((status, revoked["token_status"].clone()), (StatusCode::OK, json!("revoked")));
    assert!(matches!(app.token_check(&bot_token), TokenCheck::Revoked(_)));
    let (status, upstream) = app
        .call(
            Method::PUT,
            "/api/v1/workspaces/acme/upstream",
            Some(&owner),
            Some(json!({ "url": "https://mcp.example.com/mcp" })),
        )
        .await;
    assert_eq!((status, upstream["upstream"].clone()), (StatusCode::OK, json!("https://mcp.example.com/mcp")));
    let (_, shown) = app.call(Method::GET, "/api/v1/workspaces/acme", Some(&owner), None).await;
    assert_eq!(shown["upstream"], "https://mcp.example.com/mcp");
    assert_eq!(shown["plan"], "pro");

    // Offboard a from everywhere, c's pending invitation too.
    let (status, dry) = app
        .call(Method::POST, "/api/v1/offboard", Some(&owner), Some(json!({ "email": "a@acme.test", "dry_run": true })))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dry["steps"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(dry["applied"], json!([]));
    let (status, done) = app
        .call(Method::POST, "/api/v1/offboard", Some(&owner), Some(json!({ "email": "a@acme.test", "dry_run": false })))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["applied"].as_array().unwrap().len(), 2, "{done}");
    assert_eq!(done["failed"], json!([]));
    let (_, done) = app
        .call(Method::POST, "/api/v1/offboard", Some(&owner), Some(json!({ "email": "c@acme.test", "dry_run": false })))
        .await;
    assert_eq!(done["applied"][0]["action"], "cancel_invitation", "{done}");

    // Delete: every token revoked.
    let owner_token = created["owner_token"].as_str().unwrap();
    let (status, deleted) = app.call(Method::DELETE, "/api/v1/workspaces/acme", Some(&owner), None).await;
    assert_eq!((status, deleted["deleted"].clone()), (StatusCode::OK, json!(true)));
    assert!(matches!(app.token_check(owner_token), TokenCheck::Revoked(_)));
    let (status, gone) = app.call(Method::GET, "/api/v1/workspaces/acme", Some(&owner), None).await;
    assert_eq!((status, code(&gone)), (StatusCode::NOT_FOUND, "workspace_not_found"));
    app.shutdown().await;
}

#[tokio::test]
async fn usage_analytics_and_audit() {
    let app = TestApp::start().await;
    let owner = app.sign_up("owner@acme.test").await;
    let created = app.create_workspace(&owner, "acme", "pro").await;
    let workspace_id = WorkspaceId(created["id"].as_str().unwrap().parse().unwrap());
    let alice_account = app.join(&owner, "acme", "alice@acme.test", "member").await;
    let (_, rows) = app.call(Method::GET, "/api/v1/workspaces/acme/members", Some(&owner), None).await;
    let alice = rows.as_array().unwrap().iter().find(|r| r["email"] == "alice@acme.test").unwrap().clone();
    let member_id = MemberId(alice["member_id"].as_str().unwrap().parse().unwrap());

    // Tool calls as the gateway records them.
    let token_id = TokenId(Uuid::now_v7());
    let stream = calls_stream(workspace_id, token_id);
    for tool in ["search", "search", "fetch"] {
        let event = Event::ToolCalled(ToolCalled {
            workspace_id,
            caller: Caller::Member { member_id },
            token_id,
            tool: tool.into(),
            request_id: Uuid::now_v7().to_string(),
            arguments_bytes: 10,
            called_at: Utc::now(),
        });
        let metadata = Metadata {
            actor: Actor::Member { workspace_id: workspace_id.as_uuid(), member_id: member_id.as_uuid() },
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            recorded_at: Utc::now(),
        };
        app.store
            .append(&stream, ExpectedRevision::Any, vec![event.to_new_event(Uuid::now_v7(), metadata)])
            .await
            .unwrap();
    }
    let counted = eventually(5_000, async || {
        let (_, rows) = app.call(Method::GET, "/api/v1/workspaces/acme/members", Some(&owner), None).await;
        rows.as_array().unwrap().iter().any(|r| r["email"] == "alice@acme.test" && r["tool_calls"] == 3)
    })
    .await;
    assert!(counted, "the member list shows the tool calls");
    let (_, analytics) = app.call(Method::GET, "/api/v1/workspaces/acme/analytics", Some(&owner), None).await;
    assert_eq!(analytics["totals"]["tool_calls"], 3, "{analytics}");
    assert_eq!(analytics["humans"]["tool_calls"], 3);
    assert_eq!(analytics["top_tools"][0], json!({ "tool": "search", "calls": 2 }));
    let (_, one) =
        app.call(Method::GET, "/api/v1/workspaces/acme/analytics?member=alice@acme.test", Some(&owner), None).await;
    assert_eq!(one["subjects"].as_array().unwrap().len(), 1);

    // Audit: everything of the workspace, filters, paging, no secrets.
    let (status, audit) = app.call(Method::GET, "/api/v1/workspaces/acme/audit", Some(&owner), None).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let types: Vec<_> = audit["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["WorkspaceCreated", "MemberInvited", "InvitationAccepted", "ToolCalled", "ToolCalled", "ToolCalled"]
    );
    assert_eq!(audit["next_after"], Value::Null);
    let first = &audit["events"][0];
    assert_eq!(first["actor"]["kind"], "account");
    assert!(first["correlation_id"].is_string() && first["causation_id"].is_string());
    let text = audit.to_string();
    for secret in [owner.as_str(), alice_account.as_str(), created["owner_token"].as_str().unwrap()] {
        assert!(!text.contains(secret), "no secrets in the audit log");
    }

    let (_, page) = app.call(Method::GET, "/api/v1/workspaces/acme/audit?limit=2", Some(&owner), None).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let after = page["next_after"].as_str().unwrap();
    let (_, rest) = app
        .call(Method::GET, &format!("/api/v1/workspaces/acme/audit?after={after}&limit=1000"), Some(&owner), None)
        .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 4);
    let (_, typed) = app.call(Method::GET, "/api/v1/workspaces/acme/audit?type=ToolCalled", Some(&owner), None).await;
    assert_eq!(typed["events"].as_array().unwrap().len(), 3);
    let (_, about) =
        app.call(Method::GET, "/api/v1/workspaces/acme/audit?member=owner@acme.test", Some(&owner), None).await;
    assert_eq!(about["events"].as_array().unwrap().len(), 1, "{about}");
    let (_, later) = app.call(Method::GET, "/api/v1/workspaces/acme/audit?since=2999-01-01", Some(&owner), None).await;
    assert_eq!(later["events"], json!([]));
    app.shutdown().await;
}
