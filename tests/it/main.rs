//! End-to-end tests: `rollcall serve` on a temporary data directory, and the `rollcall` CLI
//! driving it as real processes; and the split deployment (`rollcall api`, `gateway`,
//! `project`) over PostgreSQL and Redis; and the MCP gateway in both, with real MCP clients.
//!
//! Each test starts its own server on a free port, so the tests run in parallel.

mod email;
mod flows;
mod gateway;
mod persistence;
mod redis;
mod seats;
mod secrets;
mod split;

use serde_json::Value;

/// The row of `email` in a member (or invitation) list.
fn row<'a>(list: &'a Value, email: &str) -> Option<&'a Value> {
    list.as_array().expect("a list").iter().find(|item| item["email"] == email)
}

/// The string field `name` of `value`.
fn text<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or_else(|| panic!("no string {name} in {value}"))
}
