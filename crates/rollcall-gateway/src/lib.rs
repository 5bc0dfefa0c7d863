//! Rollcall's MCP gateway: per-token authentication, rate limits, tool-call events, instant revocation.
