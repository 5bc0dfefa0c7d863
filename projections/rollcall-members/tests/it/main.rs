//! Integration tests of the member-list projection.

mod as_of;
mod list;
