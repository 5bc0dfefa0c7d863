//! Integration tests of the projection runtime, across the three projections.

mod laws;
mod lease;
mod lost;
mod projector;
mod support;
