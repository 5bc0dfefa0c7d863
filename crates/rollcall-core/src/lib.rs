//! Rollcall's membership domain.
//!
//! Everything here is pure: no IO, no clock, no randomness. Time, ids and random bytes come in
//! as inputs, so replaying the log is deterministic and every rule is testable as
//! given / when / then.

pub mod envelope;
