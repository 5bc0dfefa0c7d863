//! Integration tests of the admin API: handlers through `router().oneshot`, over an in-memory
//! store with the real projectors, plus email delivery to a real SMTP server.

mod accounts;
mod bad_input;
mod invitations;
mod mail;
mod matrix;
mod members;
mod restart;
mod support;
