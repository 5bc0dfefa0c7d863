//! Rollcall's admin HTTP API (axum), accounts and invitation emails, and the one-process server.
//!
//! Handlers are thin: [`service::Service`] loads a stream, folds it, calls the pure `decide` of
//! `rollcall-core` and appends with the expected revision. [`error::ApiError`] is the one table
//! of error codes. [`server`] assembles the store, the projectors, the accounts index, the mailer
//! and the expiry sweep behind one listener.

pub mod audit;
pub mod directory;
pub mod error;
pub mod extract;
pub mod follow;
pub mod http;
pub mod mail;
pub mod openapi;
pub mod password;
pub mod server;
pub mod service;
pub mod views;

pub use error::ApiError;
pub use http::router;
pub use mail::{Delivery, MailTransport, Mailer, RetryPolicy};
pub use password::PasswordParams;
pub use server::{ProjectorMode, Runtime, ServeConfig, Server, run};
pub use service::{Service, ServiceConfig};
