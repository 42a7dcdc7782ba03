//! session-audio core: every decision and every HTTP exchange, with no napi dependency so that
//! `cargo test` links and runs it. The binding crate only converts JS values to these types.
//!
//! One request, top to bottom: `serve` frames it (trace, panic catch, record); `get` and `post` are
//! the README's numbered steps; `state` holds what lives across requests and the shared identity and
//! Convex steps. See docs/architecture.md for the map.

// The request path.
pub mod attach;
pub mod attach_sign;
pub mod flows;
pub mod get;
pub mod post;
pub mod serve;
pub mod session;
pub mod state;
pub mod sweep;
pub mod upload;

// Identity: where the token is and the key store (`auth`), the JWT itself (`jwt`).
pub mod auth;
pub mod jwt;
pub mod keys;

// The services we call, each a thin client with no policy inside.
pub mod blob;
pub mod clerk;
pub mod convex;
pub mod upstream;

// Pure decisions, table-tested.
pub mod clerk_refusal;
pub mod client_upload;
pub mod duration;
pub mod headers;
pub mod media;
pub mod policy;
pub mod presign;
pub mod upload_rules;
pub mod webhook;

// Plumbing.
pub mod body;
pub mod breaker;
pub mod cache;
pub mod capped;
pub mod clock;
pub mod config;
pub mod error;
pub mod ingress;
pub mod request;
pub mod response;
pub mod store;
pub mod telemetry;
pub mod turns;

#[cfg(test)]
mod proptests;

pub use body::{BodyStream, Poll};
pub use config::{Config, Rejected, TelemetryConfig};
pub use error::{Error, Result};
pub use get::get;
pub use post::post;
pub use request::Request;
pub use response::{Body, Response};
pub use serve::Misconfigured;
pub use state::State;

/// Sent on every outbound request (Clerk, Convex, Blob, audio storage, Sentry).
pub const USER_AGENT: &str = concat!("session-audio/", env!("CARGO_PKG_VERSION"));

/// Helpers shared by the unit tests of several modules.
#[cfg(test)]
pub(crate) mod testutil {
    /// Header pairs from string slices.
    pub fn hv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}
