//! The OpenAPI 3.1 document of the admin API, written by hand next to the routes it describes.
//! A test checks that every route of the router appears here and nothing else does.

use serde_json::{Map, Value, json};

/// Every operation: method, path (under `/api/v1`), summary, request body schema, success
/// status and response schema, and whether it needs an account token.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<Value>,
    status: &'static str,
    answer: Value,
    auth: bool,
}

/// The operations, for tests that compare them with the router.
pub fn operations() -> Vec<(&'static str, &'static str)> {
    ops().into_iter().map(|op| (op.method, op.path)).collect()
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in ops() {
        let mut operation = json!({
            "summary": op.summary,
            "responses": {
                op.status: { "description": "success", "content": { "application/json": { "schema": op.answer } } },
                "default": { "description": "an error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
        if let Some(body) = op.body {
            operation["requestBody"] =
                json!({ "required": true, "content": { "application/json": { "schema": body } } });
        }
        if !op.auth {
            operation["security"] = json!([]);
        }
        let params: Vec<Value> = path_params(op.path)
            .into_iter()
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .chain(query_params(op.path, op.method))
            .collect();
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        item[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Rollcall admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accounts, workspaces, members, invitations, bots, analytics and the audit log. Errors are {\"error\": {\"code\", \"message\"}} with a stable code. Request bodies are JSON, at most 64 KiB, and unknown fields are refused."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "accountToken": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "accountToken": { "type": "http", "scheme": "bearer", "description": "an account API token, mwa_..." }
            },
            "schemas": schemas()
        }
    })
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

fn query_params(path: &str, method: &str) -> Vec<Value> {
    let q = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    let text = json!({ "type": "string" });
    match (method, path) {
        ("get", "/workspaces/{ws}/analytics") => vec![q("member", "one member's usage, by email", text)],
        ("get", "/workspaces/{ws}/audit") => vec![
            q("member", "only events about this member, by email", text.clone()),
            q("type", "only this event type", text.clone()),
            q("since", "RFC 3339 time or date, inclusive", text.clone()),
            q("until", "RFC 3339 time or date, exclusive", text.clone()),
            q("after", "next_after of the previous page", text),
            q(
                "limit",
                "events per page, 1 to 1000 (default 100)",
                json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
            ),
        ],
        _ => Vec::new(),
    }
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn obj(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": properties })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn ops() -> Vec<Op> {
    let s = || json!({ "type": "string" });
    let email = || json!({ "type": "string", "format": "email" });
    let b = || json!({ "type": "boolean" });
    let op =
        |method, path, summary, body, status, answer, auth| Op { method, path, summary, body, status, answer, auth };
    vec![
        op(
            "post",
            "/accounts",
            "sign up; answers a first account token, shown once",
            Some(r("Credentials")),
            "201",
            r("AccountToken"),
            false,
        ),
        op(
            "post",
            "/login",
            "log in; answers a new account token",
            Some(r("Credentials")),
            "200",
            r("AccountToken"),
            false,
        ),
        op("get", "/me", "the signed-in account and its workspaces", None, "200", r("Me"), true),
        op(
            "post",
            "/workspaces",
            "create a workspace; answers the owner's member token, shown once",
            Some(obj(&["name", "plan"], json!({ "name": s(), "plan": r("Plan") }))),
            "201",
            r("CreatedWorkspace"),
            true,
        ),
        op("get", "/workspaces", "the caller's workspaces", None, "200", array(r("WorkspaceSummary")), true),
        op("get", "/workspaces/{ws}", "one workspace", None, "200", r("Workspace"), true),
        op(
            "delete",
            "/workspaces/{ws}",
            "delete a workspace and revoke every token (owner only)",
            None,
            "200",
            obj(&["workspace", "deleted"], json!({ "workspace": s(), "deleted": b() })),
            true,
        ),
        op(
            "put",
            "/workspaces/{ws}/plan",
            "change the plan, or preview the change with dry_run",
            Some(obj(&["plan"], json!({ "plan": r("Plan"), "dry_run": b() }))),
            "200",
            r("PlanChange"),
            true,
        ),
        op(
            "post",
            "/workspaces/{ws}/invitations",
            "invite an address; emails it the code and answers the code too",
            Some(obj(
                &["email"],
                json!({ "email": email(), "role": { "enum": ["member", "admin"] }, "expires_in_hours": { "type": "integer", "minimum": 1, "maximum": 2160 } }),
            )),
            "201",
            r("Invitation"),
            true,
        ),
        op(
            "get",
            "/workspaces/{ws}/invitations",
            "every invitation with its status and email delivery",
            None,
            "200",
            array(r("InvitationRow")),
            true,
        ),
        op(
            "post",
            "/workspaces/{ws}/invitations/{id}/resend",
            "send again with a new code and expiry",
            Some(obj(&[], json!({ "expires_in_hours": { "type": "integer", "minimum": 1, "maximum": 2160 } }))),
            "200",
            r("Invitation"),
            true,
        ),
        op(
            "delete",
            "/workspaces/{ws}/invitations/{id}",
            "cancel a pending invitation",
            None,
            "200",
            obj(&["invitation_id", "status"], json!({ "invitation_id": s(), "status": { "const": "cancelled" } })),
            true,
        ),
        op(
            "post",
            "/invitations/accept",
            "accept an invitation as the invited account; answers the member token, shown once",
            Some(obj(&["code"], json!({ "code": s() }))),
            "200",
            obj(
                &["workspace", "member_id", "role", "token"],
                json!({ "workspace": s(), "member_id": s(), "role": r("Role"), "token": s() }),
            ),
            true,
        ),
        op(
            "get",
            "/workspaces/{ws}/members",
            "members and bots; a plain member sees their own row only",
            None,
            "200",
            array(r("MemberRow")),
            true,
        ),
        op(
            "delete",
            "/workspaces/{ws}/members/{email}",
            "remove a member; answers once no gateway accepts the token",
            None,
            "200",
            obj(
                &["workspace", "email", "member_id", "token_status"],
                json!({ "workspace": s(), "email": email(), "member_id": s(), "token_status": { "const": "revoked" } }),
            ),
            true,
        ),
        op(
            "post",
            "/offboard",
            "remove an address from every workspace the caller manages",
            Some(obj(&["email"], json!({ "email": email(), "dry_run": b() }))),
            "200",
            r("Offboarding"),
            true,
        ),
        op(
            "post",
            "/workspaces/{ws}/bots",
            "create a bot; answers its token, shown once",
            Some(obj(&["name"], json!({ "name": s() }))),
            "201",
            obj(&["bot_id", "name", "token"], json!({ "bot_id": s(), "name": s(), "token": s() })),
            true,
        ),
        op("get", "/workspaces/{ws}/bots", "bots with usage", None, "200", array(r("BotRow")), true),
        op(
            "delete",
            "/workspaces/{ws}/bots/{name}",
            "revoke a bot and its token",
            None,
            "200",
            obj(
                &["bot_id", "name", "token_status"],
                json!({ "bot_id": s(), "name": s(), "token_status": { "const": "revoked" } }),
            ),
            true,
        ),
        op(
            "put",
            "/workspaces/{ws}/upstream",
            "set the upstream MCP server URL",
            Some(obj(&["url"], json!({ "url": { "type": "string", "format": "uri" } }))),
            "200",
            obj(&["workspace", "upstream"], json!({ "workspace": s(), "upstream": s() })),
            true,
        ),
        op(
            "get",
            "/workspaces/{ws}/analytics",
            "usage: totals, top tools, humans and bots, per member or bot",
            None,
            "200",
            r("Analytics"),
            true,
        ),
        op(
            "get",
            "/workspaces/{ws}/audit",
            "the workspace's events from the log, a page at a time",
            None,
            "200",
            obj(
                &["events", "next_after"],
                json!({ "events": array(r("AuditEvent")), "next_after": { "type": ["string", "null"] } }),
            ),
            true,
        ),
        op("get", "/openapi.json", "this document", None, "200", json!({ "type": "object" }), false),
    ]
}

fn schemas() -> Value {
    let s = || json!({ "type": "string" });
    let ns = || json!({ "type": ["string", "null"] });
    let t = || json!({ "type": "string", "format": "date-time" });
    let nt = || json!({ "type": ["string", "null"], "format": "date-time" });
    let n = || json!({ "type": "integer", "minimum": 0 });
    let nn = || json!({ "type": ["integer", "null"], "minimum": 0 });
    let delivery = json!({ "enum": ["queued", "delivered", "retrying", "not_delivered"] });
    json!({
        "Error": obj(&["error"], json!({ "error": obj(&["code", "message"], json!({ "code": s(), "message": s() })) })),
        "Plan": { "enum": ["free", "starter", "pro", "business", "enterprise"] },
        "Role": { "enum": ["owner", "admin", "member"] },
        "TokenStatus": { "enum": ["active", "revoked"] },
        "Credentials": obj(&["email", "password"], json!({ "email": s(), "password": { "type": "string", "minLength": 10 } })),
        "AccountToken": obj(&["account_id", "email", "token"], json!({ "account_id": s(), "email": s(), "token": s() })),
        "Me": obj(&["account_id", "email", "workspaces"], json!({ "account_id": s(), "email": s(),
            "workspaces": array(obj(&["workspace", "role"], json!({ "workspace": s(), "role": r("Role") }))) })),
        "CreatedWorkspace": obj(&["workspace", "id", "plan", "seats", "owner_token"], json!({ "workspace": s(), "id": s(), "plan": r("Plan"), "seats": nn(), "owner_token": s() })),
        "WorkspaceSummary": obj(&["workspace", "id", "plan", "role"], json!({ "workspace": s(), "id": s(), "plan": r("Plan"), "role": r("Role") })),
        "Workspace": obj(&["workspace", "id", "plan", "seats", "seats_used", "upstream", "role"], json!({ "workspace": s(), "id": s(), "plan": r("Plan"), "seats": nn(), "seats_used": n(), "upstream": ns(), "role": r("Role") })),
        "PlanChange": obj(&["from", "to", "seats_used", "seats_limit", "over_limit", "bots_active", "allowed", "applied"], json!({
            "from": r("Plan"), "to": r("Plan"), "seats_used": n(), "seats_limit": nn(),
            "over_limit": array(obj(&["kind", "email"], json!({ "kind": { "enum": ["member", "invitation"] }, "email": s() }))),
            "bots_active": n(), "allowed": { "type": "boolean" }, "applied": { "type": "boolean" } })),
        "Invitation": obj(&["invitation_id", "email", "expires_at", "accept_url", "code", "delivery"], json!({
            "invitation_id": s(), "email": s(), "role": r("Role"), "expires_at": t(), "accept_url": s(), "code": s(),
            "has_account": { "type": "boolean" }, "delivery": delivery.clone() })),
        "InvitationRow": obj(&["invitation_id", "email", "role", "status", "invited_at", "expires_at", "delivery"], json!({
            "invitation_id": s(), "email": s(), "role": r("Role"), "status": { "enum": ["pending", "accepted", "cancelled", "expired"] },
            "invited_at": t(), "expires_at": t(), "delivery": delivery })),
        "MemberRow": obj(&["member_id", "email", "role", "kind", "joined_at", "last_active_at", "token_status", "tool_calls"], json!({
            "member_id": s(), "email": ns(), "name": s(), "role": { "enum": ["owner", "admin", "member", "bot"] }, "kind": { "enum": ["human", "bot"] },
            "joined_at": t(), "last_active_at": nt(), "token_status": r("TokenStatus"), "tool_calls": n() })),
        "BotRow": obj(&["bot_id", "name", "created_at", "token_status", "tool_calls", "last_active_at"], json!({
            "bot_id": s(), "name": s(), "created_at": t(), "token_status": r("TokenStatus"), "tool_calls": n(), "last_active_at": nt() })),
        "Offboarding": obj(&["email", "dry_run", "steps", "applied", "failed"], json!({
            "email": s(), "dry_run": { "type": "boolean" },
            "steps": array(json!({ "type": "object", "required": ["action", "workspace"], "properties": { "action": { "enum": ["remove_member", "cancel_invitation", "skip"] }, "workspace": s(), "invitation_id": s(), "reason": s() } })),
            "applied": array(json!({ "type": "object" })), "failed": array(json!({ "type": "object" })) })),
        "Analytics": obj(&["workspace", "member", "totals", "humans", "bots", "top_tools", "subjects"], json!({
            "workspace": s(), "member": ns(),
            "totals": obj(&["tool_calls", "errors", "rate_limited", "denied"], json!({ "tool_calls": n(), "errors": n(), "rate_limited": n(), "denied": n() })),
            "humans": obj(&["tool_calls"], json!({ "tool_calls": n() })), "bots": obj(&["tool_calls"], json!({ "tool_calls": n() })),
            "top_tools": array(obj(&["tool", "calls"], json!({ "tool": s(), "calls": n() }))),
            "subjects": array(obj(&["kind", "id", "email", "name", "tool_calls", "errors", "rate_limited", "denied", "last_active_at", "tools"], json!({
                "kind": { "enum": ["human", "bot"] }, "id": s(), "email": ns(), "name": ns(), "tool_calls": n(), "errors": n(),
                "rate_limited": n(), "denied": n(), "last_active_at": nt(), "tools": { "type": "object", "additionalProperties": n() } }))) })),
        "AuditEvent": obj(&["id", "type", "schema_version", "stream", "revision", "position", "recorded_at", "actor", "correlation_id", "causation_id", "data"], json!({
            "id": s(), "type": s(), "schema_version": n(), "stream": s(), "revision": n(),
            "position": { "type": "string", "description": "a log position: n, or commit/prepare" },
            "recorded_at": t(), "actor": { "type": "object" }, "correlation_id": s(), "causation_id": ns(), "data": { "type": "object" } })),
    })
}
