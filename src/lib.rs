//! The napi binding: converts JS values to core types and back, nothing else. All decisions live
//! in `crates/core`. The JS face (`index.js`) turns `NativeResponse` into a Web `Response`.
//!
//! One file per exported type; this file is the table of exports.

#![deny(clippy::all)]

mod body_reader;
mod handler;
mod options;
mod post_call;
mod record;
mod request;
mod response;
mod sweep;
#[cfg(feature = "test-hooks")]
mod test_hooks;

pub use body_reader::BodyReader;
pub use handler::AudioHandler;
pub use options::{env_keys, option_names, AudioOptions};
pub use post_call::PostCall;
pub use record::RequestRecord;
pub use request::NativeRequest;
pub use response::NativeResponse;
pub use sweep::{sweep_orphan_audio, SweepReport};
#[cfg(feature = "test-hooks")]
pub use test_hooks::test_final_header;
