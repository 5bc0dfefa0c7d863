//! The realistic workload: `ToolCalled` events from members of many workspaces.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rollcall_store::{Actor, Metadata, NewEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who called a tool: `{"kind":"member","member_id":...}` or `{"kind":"bot","bot_id":...}`.
///
/// A flat struct rather than an internally tagged enum: serde decodes it in one pass without
/// buffering the object, which matters at millions of events per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Caller {
    /// Member or bot.
    pub kind: CallerKind,
    /// The member, when a member called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<Uuid>,
    /// The bot, when a bot called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<Uuid>,
}

/// The kind of caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    /// A human member.
    Member,
    /// A bot.
    Bot,
}

/// The `ToolCalled` payload, schema version 1, as the gateway appends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCalled {
    /// The workspace.
    pub workspace_id: Uuid,
    /// Who called.
    pub caller: Caller,
    /// The token used.
    pub token_id: Uuid,
    /// The tool's name.
    pub tool: String,
    /// The JSON-RPC request id.
    pub request_id: String,
    /// Size of the call's arguments (never the arguments themselves).
    pub arguments_bytes: u64,
    /// When the gateway saw the call.
    pub called_at: DateTime<Utc>,
}

/// One member's token: the stream its calls go to.
#[derive(Clone, Debug)]
pub struct TokenStream {
    /// The workspace.
    pub workspace_id: Uuid,
    /// The member.
    pub member_id: Uuid,
    /// The token.
    pub token_id: Uuid,
    /// `calls-<workspace_id>-<token_id>`.
    pub stream: String,
}

/// `count` token streams spread over `count / 20` workspaces.
pub fn token_streams(count: usize) -> Vec<TokenStream> {
    let workspaces: Vec<Uuid> = (0..count.div_ceil(20).max(1)).map(|_| Uuid::new_v4()).collect();
    (0..count)
        .map(|i| {
            let workspace_id = workspaces[i % workspaces.len()];
            let token_id = Uuid::new_v4();
            TokenStream {
                workspace_id,
                member_id: Uuid::new_v4(),
                token_id,
                stream: format!("calls-{workspace_id}-{token_id}"),
            }
        })
        .collect()
}

const TOOLS: [&str; 4] = ["search_issues", "get_issue", "list_pull_requests", "create_comment"];

/// One `ToolCalled` event for a token.
pub fn tool_called(token: &TokenStream, n: u64) -> NewEvent {
    let now = Utc::now();
    let payload = ToolCalled {
        workspace_id: token.workspace_id,
        caller: Caller { kind: CallerKind::Member, member_id: Some(token.member_id), bot_id: None },
        token_id: token.token_id,
        tool: TOOLS[(n % 4) as usize].to_owned(),
        request_id: Uuid::new_v4().to_string(),
        arguments_bytes: 64 + n % 512,
        called_at: now,
    };
    // Serializing a struct of plain fields cannot fail.
    let data = serde_json::to_vec(&payload).unwrap_or_default();
    NewEvent {
        id: Uuid::new_v4(),
        event_type: "ToolCalled".to_owned(),
        schema_version: 1,
        data: Bytes::from(data),
        metadata: Metadata {
            actor: Actor::Member { workspace_id: token.workspace_id, member_id: token.member_id },
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            recorded_at: now,
        },
    }
}
