//! Integration tests of the token-validity projection.

mod check;
