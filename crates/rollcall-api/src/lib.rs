//! Rollcall's admin HTTP API (axum), accounts and invitation emails.
