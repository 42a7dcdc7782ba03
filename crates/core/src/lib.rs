//! session-audio core: every decision and every HTTP exchange, with no napi dependency so that
//! `cargo test` links and runs it. The binding crate only converts JS values to these types.
//!
//! One request, top to bottom: `http::serve` frames it (trace, panic catch, record); `get` and
//! `post` are the README's numbered steps; `state` holds what lives across requests, among it the
//! services `identity` (who is calling) and `convex::Sessions` (Convex as the caller). Each concern
//! has its folder: http, identity, convex, playback (GET), upload (POST), storage, media, support,
//! telemetry. See docs/architecture.md for the map.

// The two routes, and what lives across requests.
pub mod get;
pub mod post;
pub mod state;

// Each concern in its own folder.
pub mod convex;
pub mod http;
pub mod identity;
pub mod media;
pub mod playback;
pub mod storage;
pub mod support;
pub mod telemetry;
pub mod upload;

// Settings and the one error type.
pub mod config;
pub mod error;

#[cfg(test)]
mod tests;

// What the binding crate (src/) uses, and nothing else: it reaches no module path of its own.
pub use config::{Config, BLOB_TOKEN_OPTION};
pub use error::Error;
pub use get::get;
pub use http::request::Request;
pub use http::response::{Body, Response};
pub use http::serve::Misconfigured;
pub use media::finalise::final_header_of;
pub use media::{container_of, Container};
pub use playback::body::{Batch, BodyStream, Chunk, Crossing, Poll};
pub use post::post;
pub use state::State;
pub use storage::sweep::{sweep, SweepConfig};
pub use telemetry::{scrub, RecordSink, RequestRecord};
pub use upload::ingress::{CHANNEL_CHUNKS, MAX_CHUNK_BYTES};

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
