//! The routes under `/api/v1`, `/healthz` and `/accept`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Duration as Ttl, Utc};
use rollcall_core::events::{Event, RemovalReason, Role};
use rollcall_core::ids::{BotId, InvitationId, MemberId};
use rollcall_core::offboard::{OffboardStep, plan_offboarding};
use rollcall_core::token::{Secret, SecretKind};
use rollcall_core::workspace::{
    INVITATION_TTL_DEFAULT, InvitationStatus, TokenStatus, WorkspaceCommand, WorkspaceState,
};
use rollcall_core::{DomainError, Email, IssuedToken, Plan, TokenId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use crate::audit;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, BODY_BYTES_MAX, OptionalJson};
use crate::mail::{Delivery, InvitationEmail};
use crate::service::{Caller, Service, new_secret, not_found};
use crate::views::Usage;

/// Longest request handling time before a 408-style timeout.
pub const REQUEST_TIMEOUT_MS: u64 = 60_000;

/// The whole HTTP surface of the admin API over a service.
pub fn router(service: Arc<Service>) -> Router {
    let api = Router::new()
        .route("/accounts", post(sign_up))
        .route("/login", post(log_in))
        .route("/me", get(me))
        .route("/workspaces", post(create_workspace).get(list_workspaces))
        .route("/workspaces/{ws}", get(show_workspace).delete(delete_workspace))
        .route("/workspaces/{ws}/plan", put(set_plan))
        .route("/workspaces/{ws}/invitations", post(invite).get(list_invitations))
        .route("/workspaces/{ws}/invitations/{id}/resend", post(resend))
        .route("/workspaces/{ws}/invitations/{id}", delete(cancel))
        .route("/invitations/accept", post(accept))
        .route("/workspaces/{ws}/members", get(list_members))
        .route("/workspaces/{ws}/members/{email}", delete(remove_member))
        .route("/offboard", post(offboard))
        .route("/workspaces/{ws}/bots", post(create_bot).get(list_bots))
        .route("/workspaces/{ws}/bots/{name}", delete(revoke_bot))
        .route("/workspaces/{ws}/upstream", put(set_upstream))
        .route("/workspaces/{ws}/analytics", get(analytics))
        .route("/workspaces/{ws}/audit", get(audit::audit))
        .route("/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/accept", get(accept_page))
        .fallback(|| async { ApiError::NoRoute })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(REQUEST_TIMEOUT_MS),
        ))
        // Spans name the path only: query strings may carry invitation codes (`/accept?code=`).
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(service)
}

type Svc = State<Arc<Service>>;
type ApiResult<T> = Result<T, ApiError>;

// ---- accounts ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Serialize)]
struct AccountAnswer {
    account_id: Uuid,
    email: Email,
    token: String,
}

async fn sign_up(
    State(service): Svc,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult<(StatusCode, Json<AccountAnswer>)> {
    let email = Email::parse(&body.email).map_err(DomainError::from)?;
    let caller = Caller::system();
    let (account_id, email, secret) = service.sign_up(&caller, email, body.password).await?;
    let answer = AccountAnswer { account_id: account_id.as_uuid(), email, token: secret.expose().to_owned() };
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn log_in(State(service): Svc, ApiJson(body): ApiJson<Credentials>) -> ApiResult<Json<AccountAnswer>> {
    let (account_id, email, secret) = service.log_in(&Caller::system(), &body.email, body.password).await?;
    Ok(Json(AccountAnswer { account_id: account_id.as_uuid(), email, token: secret.expose().to_owned() }))
}

async fn me(State(service): Svc, auth: Auth) -> ApiResult<Json<Value>> {
    let account = auth.account();
    let workspaces: Vec<Value> = service
        .directory()
        .workspaces_of(account.account_id)
        .into_iter()
        .map(|(workspace, role)| json!({ "workspace": workspace, "role": role }))
        .collect();
    Ok(Json(json!({ "account_id": account.account_id, "email": account.email, "workspaces": workspaces })))
}

// ---- workspaces ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWorkspace {
    name: String,
    plan: String,
}

async fn create_workspace(
    State(service): Svc,
    auth: Auth,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plan = parse_plan(&body.plan)?;
    let owner = auth.account().clone();
    let workspace_id = rollcall_core::WorkspaceId(Uuid::now_v7());
    let owner_member_id = MemberId(Uuid::now_v7());
    let secret = new_secret(SecretKind::MemberToken);
    let owner_token = IssuedToken::of(TokenId(Uuid::now_v7()), &secret);
    let name = body.name.clone();
    let executed = service
        .execute(&auth.0, &body.name, |_| {
            Ok(WorkspaceCommand::Create {
                workspace_id,
                name: name.clone(),
                plan,
                owner: owner.clone(),
                owner_member_id,
                owner_token: owner_token.clone(),
            })
        })
        .await?;
    service.await_issue(executed.position).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "workspace": body.name,
            "id": workspace_id,
            "plan": plan,
            "seats": plan.seats(),
            "owner_token": secret.expose(),
        })),
    ))
}

async fn list_workspaces(State(service): Svc, auth: Auth) -> ApiResult<Json<Vec<Value>>> {
    let mut out = Vec::new();
    for (name, role) in service.directory().workspaces_of(auth.account().account_id) {
        let (state, _) = service.load_workspace(&name).await?;
        if !state.is_live() {
            continue;
        }
        out.push(json!({ "workspace": name, "id": state.workspace_id, "plan": state.plan, "role": role }));
    }
    Ok(Json(out))
}

async fn show_workspace(State(service): Svc, auth: Auth, ApiPath(ws): ApiPath<String>) -> ApiResult<Json<Value>> {
    let (state, role) = service.visible_workspace(auth.account(), &ws).await?;
    let plan = state.plan.expect("a live workspace has a plan");
    Ok(Json(json!({
        "workspace": state.name,
        "id": state.workspace_id,
        "plan": plan,
        "seats": plan.seats(),
        "seats_used": state.seats_used(Utc::now()),
        "upstream": state.upstream,
        "role": role,
    })))
}

async fn delete_workspace(State(service): Svc, auth: Auth, ApiPath(ws): ApiPath<String>) -> ApiResult<Json<Value>> {
    let executed = service.execute(&auth.0, &ws, |_| Ok(WorkspaceCommand::Delete)).await?;
    service.await_revocation(executed.position, "deletion").await?;
    Ok(Json(json!({ "workspace": ws, "deleted": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPlan {
    plan: String,
    #[serde(default)]
    dry_run: bool,
}

async fn set_plan(
    State(service): Svc,
    auth: Auth,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<SetPlan>,
) -> ApiResult<Json<Value>> {
    let plan = parse_plan(&body.plan)?;
    let (state, role) = service.visible_workspace(auth.account(), &ws).await?;
    require_manager(role, "preview plan changes")?;
    let preview = state.preview_plan_change(plan, Utc::now());
    let mut applied = false;
    if !body.dry_run {
        let executed = service.execute(&auth.0, &ws, |_| Ok(WorkspaceCommand::ChangePlan { plan })).await?;
        applied = !executed.events.is_empty();
    }
    Ok(Json(json!({
        "from": preview.from,
        "to": preview.to,
        "seats_used": preview.seats_used,
        "seats_limit": preview.seats_limit,
        "over_limit": preview.over_limit,
        "bots_active": preview.bots_active,
        "allowed": preview.allowed(),
        "applied": applied,
    })))
}

// ---- invitations ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    email: String,
    role: Option<String>,
    expires_in_hours: Option<i64>,
}

async fn invite(
    State(service): Svc,
    auth: Auth,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<Invite>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let email = Email::parse(&body.email).map_err(DomainError::from)?;
    let role = match body.role.as_deref().map(str::trim) {
        None | Some("member") => Role::Member,
        Some("admin") => Role::Admin,
        Some(_) => return Err(DomainError::InvalidRole.into()),
    };
    let ttl = ttl_of(body.expires_in_hours)?;
    let invitation_id = InvitationId(Uuid::now_v7());
    let code = new_secret(SecretKind::InvitationCode);
    let code_hash = code.hash();
    let executed = service
        .execute(&auth.0, &ws, |_| {
            Ok(WorkspaceCommand::Invite { invitation_id, email: email.clone(), role, code_hash, ttl })
        })
        .await?;
    let expires_at = executed
        .events
        .iter()
        .find_map(|e| match e {
            Event::MemberInvited(i) => Some(i.expires_at),
            _ => None,
        })
        .ok_or_else(|| ApiError::internal("an invitation recorded no MemberInvited event"))?;
    let has_account = service.directory().account_by_email(&email).is_some();
    let accept_url = service.accept_url(&code, has_account);
    let delivery = send_invitation(
        &service,
        auth.account().email.clone(),
        &ws,
        invitation_id,
        &email,
        role,
        expires_at,
        &code,
        has_account,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "invitation_id": invitation_id,
            "email": email,
            "role": role,
            "expires_at": expires_at,
            "accept_url": accept_url,
            "code": code.expose(),
            "has_account": has_account,
            "delivery": delivery,
        })),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn send_invitation(
    service: &Service,
    invited_by: Email,
    workspace: &str,
    invitation_id: InvitationId,
    to: &Email,
    role: Role,
    expires_at: DateTime<Utc>,
    code: &Secret,
    has_account: bool,
) -> Delivery {
    let email = InvitationEmail {
        invitation_id,
        to: to.clone(),
        workspace: workspace.to_owned(),
        invited_by,
        role,
        expires_at,
        code: code.clone(),
        has_account,
        accept_url: service.accept_url(code, has_account),
    };
    service.mailer().send(email).await
}

async fn list_invitations(
    State(service): Svc,
    auth: Auth,
    ApiPath(ws): ApiPath<String>,
) -> ApiResult<Json<Vec<Value>>> {
    let (state, role) = service.visible_workspace(auth.account(), &ws).await?;
    require_manager(role, "list invitations")?;
    let now = Utc::now();
    let list = state
        .invitations
        .iter()
        .map(|i| {
            let status = match i.status {
                InvitationStatus::Pending if now >= i.expires_at => InvitationStatus::Expired,
                other => other,
            };
            json!({
                "invitation_id": i.invitation_id,
                "email": i.email,
                "role": i.role,
                "status": status,
                "invited_at": i.invited_at,
                "expires_at": i.expires_at,
                "delivery": service.mailer().delivery(i.invitation_id),
            })
        })
        .collect();
    Ok(Json(list))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Resend {
    expires_in_hours: Option<i64>,
}

async fn resend(
    State(service): Svc,
    auth: Auth,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    OptionalJson(body): OptionalJson<Resend>,
) -> ApiResult<Json<Value>> {
    let invitation_id = parse_invitation_id(&id)?;
    let ttl = ttl_of(body.expires_in_hours)?;
    let code = new_secret(SecretKind::InvitationCode);
    let code_hash = code.hash();
    let executed =
        service.execute(&auth.0, &ws, |_| Ok(WorkspaceCommand::Resend { invitation_id, code_hash, ttl })).await?;
    let invitation = executed
        .before
        .invitations
        .iter()
        .find(|i| i.invitation_id == invitation_id)
        .ok_or_else(|| ApiError::internal("a resent invitation is missing from the state"))?;
    let expires_at = executed
        .events
        .iter()
        .find_map(|e| match e {
            Event::InvitationResent(r) => Some(r.expires_at),
            _ => None,
        })
        .ok_or_else(|| ApiError::internal("a resend recorded no InvitationResent event"))?;
    let has_account = service.directory().account_by_email(&invitation.email).is_some();
    let delivery = send_invitation(
        &service,
        auth.account().email.clone(),
        &ws,
        invitation_id,
        &invitation.email,
        invitation.role,
        expires_at,
        &code,
        has_account,
    )
    .await;
    Ok(Json(json!({
        "invitation_id": invitation_id,
        "email": invitation.email,
        "expires_at": expires_at,
        "accept_url": service.accept_url(&code, has_account),
        "code": code.expose(),
        "delivery": delivery,
    })))
}

async fn cancel(
    State(service): Svc,
    auth: Auth,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let invitation_id = parse_invitation_id(&id)?;
    service.execute(&auth.0, &ws, |_| Ok(WorkspaceCommand::Cancel { invitation_id })).await?;
    service.mailer().forget_retries(invitation_id);
    Ok(Json(json!({ "invitation_id": invitation_id, "status": "cancelled" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Accept {
    code: String,
}

async fn accept(State(service): Svc, auth: Auth, ApiJson(body): ApiJson<Accept>) -> ApiResult<Json<Value>> {
    let code = Secret::parse_kind(&body.code, SecretKind::InvitationCode).map_err(|e| {
        ApiError::invalid("invalid_code", format!("{e}: pass the mwi_... code from the invitation email"))
    })?;
    let ws = service.directory().workspace_of_code(&code.hash()).ok_or(DomainError::InvitationCodeUnknown)?;
    let member_id = MemberId(Uuid::now_v7());
    let secret = new_secret(SecretKind::MemberToken);
    let token = IssuedToken::of(TokenId(Uuid::now_v7()), &secret);
    let code_hash = code.hash();
    let executed = service
        .execute(&auth.0, &ws, |_| Ok(WorkspaceCommand::Accept { code_hash, member_id, token: token.clone() }))
        .await
        .map_err(|error| match error {
            // The code led here, so the workspace exists; a deleted one has no live invitation.
            ApiError::Domain(DomainError::WorkspaceNotFound { .. }) => DomainError::InvitationCodeUnknown.into(),
            other => other,
        })?;
    let accepted = executed
        .events
        .iter()
        .find_map(|e| match e {
            Event::InvitationAccepted(a) => Some(a.clone()),
            _ => None,
        })
        .ok_or_else(|| ApiError::internal("an acceptance recorded no InvitationAccepted event"))?;
    service.mailer().forget_retries(accepted.invitation_id);
    service.await_issue(executed.position).await;
    Ok(Json(json!({
        "workspace": ws,
        "member_id": member_id,
        "role": accepted.role,
        "token": secret.expose(),
    })))
}

// ---- members ----

async fn list_members(State(service): Svc, auth: Auth, ApiPath(ws): ApiPath<String>) -> ApiResult<Json<Vec<Value>>> {
    let (state, role) = service.visible_workspace(auth.account(), &ws).await?;
    let own = auth.account().account_id;
    let mut rows = Vec::new();
    for member in &state.members {
        if role == Role::Member && member.account_id != own {
            continue;
        }
        let usage = service.usage().usage(member.member_id.as_uuid()).await?;
        rows.push(json!({
            "member_id": member.member_id,
            "email": member.email,
            "role": member.role,
            "kind": "human",
            "joined_at": member.joined_at,
            "last_active_at": usage.last_active_at,
            "token_status": token_status(member.removed_at),
            "tool_calls": usage.tool_calls,
        }));
    }
    if role != Role::Member {
        for bot in &state.bots {
            let usage = service.usage().usage(bot.bot_id.as_uuid()).await?;
            rows.push(json!({
                "member_id": bot.bot_id,
                "email": Value::Null,
                "name": bot.name,
                "role": "bot",
                "kind": "bot",
                "joined_at": bot.created_at,
                "last_active_at": usage.last_active_at,
                "token_status": token_status(bot.revoked_at),
                "tool_calls": usage.tool_calls,
            }));
        }
    }
    Ok(Json(rows))
}

async fn remove_member(
    State(service): Svc,
    auth: Auth,
    ApiPath((ws, email)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let email = Email::parse(&email).map_err(DomainError::from)?;
    let executed = service
        .execute(&auth.0, &ws, |_| {
            Ok(WorkspaceCommand::Remove { email: email.clone(), reason: RemovalReason::Removed })
        })
        .await?;
    let member_id = executed.events.iter().find_map(|e| match e {
        Event::MemberRemoved(r) => Some(r.member_id),
        _ => None,
    });
    service.await_revocation(executed.position, "removal").await?;
    Ok(Json(json!({ "workspace": ws, "email": email, "member_id": member_id, "token_status": "revoked" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Offboard {
    email: String,
    #[serde(default)]
    dry_run: bool,
}

async fn offboard(State(service): Svc, auth: Auth, ApiJson(body): ApiJson<Offboard>) -> ApiResult<Json<Value>> {
    let email = Email::parse(&body.email).map_err(DomainError::from)?;
    let caller = auth.account().account_id;
    let mut states: Vec<WorkspaceState> = Vec::new();
    for (name, role) in service.directory().workspaces_of(caller) {
        if matches!(role, Role::Owner | Role::Admin) {
            states.push(service.load_workspace(&name).await?.0);
        }
    }
    let steps = plan_offboarding(&states, caller, &email, Utc::now());
    let mut applied = Vec::new();
    let mut failed = Vec::new();
    let mut last_position = None;
    if !body.dry_run {
        for step in &steps {
            let outcome = match step {
                OffboardStep::RemoveMember { workspace } => {
                    let email = email.clone();
                    service
                        .execute(&auth.0, workspace, move |_| {
                            Ok(WorkspaceCommand::Remove { email: email.clone(), reason: RemovalReason::Offboarded })
                        })
                        .await
                }
                OffboardStep::CancelInvitation { workspace, invitation_id } => {
                    let invitation_id = *invitation_id;
                    let outcome =
                        service.execute(&auth.0, workspace, |_| Ok(WorkspaceCommand::Cancel { invitation_id })).await;
                    service.mailer().forget_retries(invitation_id);
                    outcome
                }
                OffboardStep::Skip { .. } => continue,
            };
            match outcome {
                Ok(executed) => {
                    last_position = last_position.max(executed.position);
                    applied.push(serde_json::to_value(step).map_err(ApiError::internal)?);
                }
                Err(error) => {
                    let row = error.row();
                    let mut value = serde_json::to_value(step).map_err(ApiError::internal)?;
                    value["error"] = json!({ "code": row.code, "message": error.to_string() });
                    failed.push(value);
                }
            }
        }
        service.await_revocation(last_position, "offboarding").await?;
    }
    Ok(Json(json!({ "email": email, "dry_run": body.dry_run, "steps": steps, "applied": applied, "failed": failed })))
}

// ---- bots ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBot {
    name: String,
}

async fn create_bot(
    State(service): Svc,
    auth: Auth,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<CreateBot>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bot_id = BotId(Uuid::now_v7());
    let secret = new_secret(SecretKind::BotToken);
    let token = IssuedToken::of(TokenId(Uuid::now_v7()), &secret);
    let name = body.name.clone();
    let executed = service
        .execute(&auth.0, &ws, |_| Ok(WorkspaceCommand::CreateBot { bot_id, name: name.clone(), token: token.clone() }))
        .await?;
    service.await_issue(executed.position).await;
    Ok((StatusCode::CREATED, Json(json!({ "bot_id": bot_id, "name": body.name, "token": secret.expose() }))))
}

async fn list_bots(State(service): Svc, auth: Auth, ApiPath(ws): ApiPath<String>) -> ApiResult<Json<Vec<Value>>> {
    let (state, role) = service.visible_workspace(auth.account(), &ws).await?;
    require_manager(role, "list bots")?;
    let mut rows = Vec::new();
    for bot in &state.bots {
        let usage = service.usage().usage(bot.bot_id.as_uuid()).await?;
        rows.push(json!({
            "bot_id": bot.bot_id,
            "name": bot.name,
            "created_at": bot.created_at,
            "token_status": token_status(bot.revoked_at),
            "tool_calls": usage.tool_calls,
            "last_active_at": usage.last_active_at,
        }));
    }
    Ok(Json(rows))
}

async fn revoke_bot(
    State(service): Svc,
    auth: Auth,
    ApiPath((ws, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let executed = service.execute(&auth.0, &ws, |_| Ok(WorkspaceCommand::RevokeBot { name: name.clone() })).await?;
    let bot_id = executed.events.iter().find_map(|e| match e {
        Event::BotRevoked(r) => Some(r.bot_id),
        _ => None,
    });
    service.await_revocation(executed.position, "bot revocation").await?;
    Ok(Json(json!({ "bot_id": bot_id, "name": name, "token_status": "revoked" })))
}

// ---- upstream, analytics ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetUpstream {
    url: String,
}

async fn set_upstream(
    State(service): Svc,
    auth: Auth,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<SetUpstream>,
) -> ApiResult<Json<Value>> {
    let url = body.url.trim().to_owned();
    service.execute(&auth.0, &ws, |_| Ok(WorkspaceCommand::SetUpstream { url: url.clone() })).await?;
    Ok(Json(json!({ "workspace": ws, "upstream": url })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyticsQuery {
    member: Option<String>,
}

/// How many tools the analytics answer ranks.
const TOP_TOOLS_MAX: usize = 10;

async fn analytics(
    State(service): Svc,
    auth: Auth,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(query): ApiQuery<AnalyticsQuery>,
) -> ApiResult<Json<Value>> {
    let (state, role) = service.visible_workspace(auth.account(), &ws).await?;
    let wanted = match query.member.as_deref() {
        Some(text) => Some(Email::parse(text).map_err(DomainError::from)?),
        None => None,
    };
    let wanted = if role == Role::Member {
        // A member sees their own usage only.
        match wanted {
            Some(email) if email != auth.account().email => {
                return Err(ApiError::Forbidden { action: "see other members' usage", needed: "an owner or admin" });
            }
            _ => Some(auth.account().email.clone()),
        }
    } else {
        wanted
    };
    if let Some(email) = &wanted
        && !state.members.iter().any(|m| &m.email == email)
    {
        return Err(DomainError::NotAMember { email: email.clone(), workspace: state.name.clone() }.into());
    }
    let mut subjects = Vec::new();
    for member in state.members.iter().filter(|m| wanted.as_ref().is_none_or(|w| &m.email == w)) {
        let usage = service.usage().usage(member.member_id.as_uuid()).await?;
        subjects.push(("human", json!(member.member_id), json!(member.email), Value::Null, usage));
    }
    if wanted.is_none() {
        for bot in &state.bots {
            let usage = service.usage().usage(bot.bot_id.as_uuid()).await?;
            subjects.push(("bot", json!(bot.bot_id), Value::Null, json!(bot.name), usage));
        }
    }
    let mut tools: BTreeMap<String, u64> = BTreeMap::new();
    let mut totals = Usage::default();
    let (mut human_calls, mut bot_calls) = (0u64, 0u64);
    let mut rows = Vec::new();
    for (kind, id, email, name, usage) in subjects {
        for (tool, calls) in &usage.tools {
            *tools.entry(tool.clone()).or_default() += calls;
        }
        totals.tool_calls += usage.tool_calls;
        totals.errors += usage.errors;
        totals.rate_limited += usage.rate_limited;
        totals.denied += usage.denied;
        if kind == "human" {
            human_calls += usage.tool_calls;
        } else {
            bot_calls += usage.tool_calls;
        }
        rows.push(json!({
            "kind": kind,
            "id": id,
            "email": email,
            "name": name,
            "tool_calls": usage.tool_calls,
            "errors": usage.errors,
            "rate_limited": usage.rate_limited,
            "denied": usage.denied,
            "last_active_at": usage.last_active_at,
            "tools": usage.tools,
        }));
    }
    let mut top: Vec<(String, u64)> = tools.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(TOP_TOOLS_MAX);
    Ok(Json(json!({
        "workspace": state.name,
        "member": wanted,
        "totals": {
            "tool_calls": totals.tool_calls,
            "errors": totals.errors,
            "rate_limited": totals.rate_limited,
            "denied": totals.denied,
        },
        "humans": { "tool_calls": human_calls },
        "bots": { "tool_calls": bot_calls },
        "top_tools": top.into_iter().map(|(tool, calls)| json!({ "tool": tool, "calls": calls })).collect::<Vec<_>>(),
        "subjects": rows,
    })))
}

// ---- health, accept page ----

async fn healthz(State(service): Svc) -> Response {
    if service.is_ready() {
        (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "starting" }))).into_response()
    }
}

#[derive(Deserialize)]
struct AcceptPage {
    code: Option<String>,
    signup: Option<String>,
}

async fn accept_page(ApiQuery(query): ApiQuery<AcceptPage>) -> Response {
    let code = query.code.as_deref().and_then(|c| Secret::parse_kind(c, SecretKind::InvitationCode).ok());
    let signup = query.signup.is_some();
    let body = match code {
        // The code is only echoed back once it has the shape of a code (base62 after the
        // prefix), so nothing a link carries can inject markup.
        Some(code) => {
            let signup_step = if signup {
                "<li>You have no Rollcall account for the invited address yet. Sign up first, with that address:\
                 <pre>rollcall account signup --email YOUR-ADDRESS --password-stdin</pre></li>"
            } else {
                "<li>Sign in with the invited address: <pre>rollcall login --email YOUR-ADDRESS --password-stdin</pre></li>"
            };
            format!(
                "<h1>You are invited to a Rollcall workspace</h1><ol>{signup_step}\
                 <li>Accept the invitation: <pre>rollcall invite accept {}</pre></li></ol>\
                 <p>The command prints your personal workspace token, shown once: paste it into your MCP client.</p>",
                code.expose()
            )
        }
        None => "<h1>This invitation link is incomplete</h1><p>Copy the whole link from the invitation email, \
                 or ask for the invitation to be resent.</p>"
            .to_owned(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Rollcall invitation</title></head>\
         <body>{body}</body></html>"
    );
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    // The page carries a secret: keep it out of caches and referrers.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

// ---- helpers ----

fn parse_plan(text: &str) -> ApiResult<Plan> {
    text.parse::<Plan>().map_err(|e| ApiError::invalid("invalid_plan", e.to_string()))
}

fn parse_invitation_id(text: &str) -> ApiResult<InvitationId> {
    text.parse::<Uuid>().map(InvitationId).map_err(|_| DomainError::InvitationNotFound.into())
}

fn ttl_of(hours: Option<i64>) -> ApiResult<Ttl> {
    match hours {
        None => Ok(INVITATION_TTL_DEFAULT),
        Some(h) if !(1..=24 * 90).contains(&h) => Err(DomainError::InvalidExpiry { hours: h }.into()),
        Some(h) => Ok(Ttl::hours(h)),
    }
}

fn require_manager(role: Role, action: &'static str) -> ApiResult<()> {
    match role {
        Role::Owner | Role::Admin => Ok(()),
        Role::Member => Err(ApiError::Forbidden { action, needed: "an owner or admin" }),
    }
}

fn token_status(revoked_at: Option<DateTime<Utc>>) -> TokenStatus {
    if revoked_at.is_some() { TokenStatus::Revoked } else { TokenStatus::Active }
}

/// The workspace a caller may read, or "not found".
pub(crate) async fn manager_view(
    service: &Service,
    caller: &Auth,
    ws: &str,
    action: &'static str,
) -> ApiResult<WorkspaceState> {
    let (state, role) = service.visible_workspace(caller.account(), ws).await.map_err(|_| not_found(ws))?;
    require_manager(role, action)?;
    Ok(state)
}
