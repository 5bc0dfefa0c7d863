//! Integration tests of the analytics projection.

mod crash;
mod queries;
