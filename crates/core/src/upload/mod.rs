//! POST's half: every way audio gets into storage and attached to a session.
//!
//! - `flows`: the three things a POST can be (streamed audio, a client-upload grant, a completion);
//! - `pipeline`: the one upload pipeline they share (`Ctx`, admit, attach, the delete rule);
//! - `rules` (declared headers, entitlements, duration), `client_upload` (the JSON events and the
//!   client token), `presign` (presigned URLs), `webhook` (Blob's signature), `attach` (what becomes
//!   of a stored upload), `attach_sign` (the route's signature over the attach): pure, table-tested;
//! - `ingress`: the bytes coming in from JS (limits, idle timeout).

pub mod attach;
pub mod attach_sign;
pub mod client_upload;
pub mod flows;
pub mod ingress;
pub mod pipeline;
pub mod presign;
pub mod rules;
pub mod webhook;
