//! session-audio core: every decision and every HTTP exchange, with no napi dependency so that
//! `cargo test` links and runs it. The binding crate only converts JS values to these types.

pub mod auth;
pub mod blob;
pub mod body;
pub mod cache;
pub mod clerk;
pub mod config;
pub mod convex;
pub mod error;
pub mod handler;
pub mod headers;
pub mod media;
pub mod policy;
pub mod response;
pub mod telemetry;
pub mod upload;
pub mod upstream;

pub use body::{BodyStream, Poll};
pub use config::{Config, ENV_KEYS};
pub use error::{Error, Result};
pub use handler::{get, post, Misconfigured, Request, State};
pub use response::{Body, Response};
