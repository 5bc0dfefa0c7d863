//! The PostgreSQL backend of Rollcall's event store.
