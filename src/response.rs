//! `NativeResponse`: a core response as the JS face wraps it in `new Response(...)`.

use std::sync::Arc;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use session_audio_core::{self as core, Body};

use crate::body_reader::BodyReader;

/// A response for the JS face to wrap in `new Response(...)`.
#[napi(object, object_from_js = false)]
pub struct NativeResponse {
    pub status: u32,
    pub headers: Vec<Vec<String>>,
    /// A small body held in full (JSON refusals).
    #[napi(ts_type = "Uint8Array")]
    pub body: Option<Buffer>,
    /// A streamed body (audio); pulled by the JS face's `ReadableStream`.
    pub stream: Option<BodyReader>,
}

impl From<core::Response> for NativeResponse {
    fn from(resp: core::Response) -> Self {
        let headers = resp.headers.into_iter().map(|(k, v)| vec![k, v]).collect();
        let (body, stream) = match resp.body {
            Body::Empty => (None, None),
            Body::Bytes(b) => (Some(Buffer::from(b.to_vec())), None),
            Body::Stream(s) => {
                let abort = s.abort_handle();
                (None, Some(BodyReader { inner: Arc::new(tokio::sync::Mutex::new(s)), abort }))
            }
        };
        NativeResponse { status: resp.status as u32, headers, body, stream }
    }
}
