//! Integration tests of the KurrentDB backend against a real server.
//!
//! They exist only when `KURRENTDB_URL` is set at build time (see the crate docs):
//! `KURRENTDB_URL=esdb://127.0.0.1:2113?tls=false cargo test -p rollcall-store-kurrentdb --features kurrentdb`.

#[cfg(kurrentdb_url)]
mod contract;
