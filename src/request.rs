//! `NativeRequest`: the request fields the handlers read, and their conversion to the core's.

use napi_derive::napi;
use session_audio_core as core;

/// The request fields the handlers read, as the JS face collects them from a Web `Request`.
#[napi(object)]
pub struct NativeRequest {
    pub method: String,
    pub url: String,
    /// `[name, value]` pairs, as `[...request.headers]` gives them.
    pub headers: Vec<Vec<String>>,
    pub session_id: Option<String>,
    /// `process.env.VERCEL_OIDC_TOKEN` when this request arrived: read per request, never from
    /// the handler's snapshot (the token is short-lived and changes).
    pub env_oidc_token: Option<String>,
}

impl From<NativeRequest> for core::Request {
    fn from(req: NativeRequest) -> Self {
        core::Request {
            method: req.method,
            url: req.url,
            // A pair with fewer than two strings is dropped: the JS face always sends two.
            headers: req
                .headers
                .into_iter()
                .filter_map(|pair| {
                    let mut it = pair.into_iter();
                    Some((it.next()?, it.next()?))
                })
                .collect(),
            session_id: req.session_id,
            oidc_env: req.env_oidc_token,
        }
    }
}
