//! The domain's integration tests: given / when / then for every rule, the laws as property
//! tests, and the event catalogue against its JSON Schemas.

mod fixtures;
mod laws;
mod rules;
mod schemas;
