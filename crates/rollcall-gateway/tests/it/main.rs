//! The gateway's integration tests: a real rmcp client and server, a real event store, real
//! Redis.

mod failures;
mod mcp;
mod rate_limit;
mod revocation;
mod support;
