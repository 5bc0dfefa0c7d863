//! Integration tests of the PostgreSQL event store, against a real server.

mod contract;
mod gap;
mod migrations;
mod roundtrip;
mod support;
