//! Integration tests of the event store backends.

mod crash;
mod embedded;
mod lock;
mod memory;
mod order;
mod recovery;
