//! `RequestRecord`: a finished request as the `onRequest` option receives it. Its TypeScript
//! declaration is generated from here (`binding.d.ts`) and re-exported by `index.d.ts`.

use std::collections::HashMap;

use napi::bindgen_prelude::Status;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use session_audio_core as core;

/// One finished request, as handed to the `onRequest` option. Never contains tokens, cookies or the
/// user id itself.
#[napi(object, object_from_js = false)]
pub struct RequestRecord {
    pub request_id: String,
    pub method: String,
    /// Which handler answered.
    #[napi(ts_type = "'get' | 'post'")]
    pub route: String,
    pub session_id: Option<String>,
    /// First 16 hex digits of SHA-256 of the Clerk user id (never the id itself).
    pub user_hash: Option<String>,
    pub status: u32,
    pub error_code: Option<String>,
    /// Bytes sent (GET) or received (POST).
    pub bytes: f64,
    pub duration_ms: f64,
    /// Milliseconds per phase: auth, token, lookup, upstream, transfer, entitlements, storage, mutation.
    pub phases: HashMap<String, f64>,
    /// Uploads: `'measured'` from the container, or `'declared'` where the container does not say.
    #[napi(ts_type = "'measured' | 'declared'")]
    pub duration_source: Option<String>,
    /// Log lines this process has dropped so far (a process-wide total, not this request's): the
    /// JSON log goes to stderr through a bounded queue, and a line that finds it full, or that
    /// stderr refuses, is dropped rather than let logging slow or fail a request.
    pub log_lines_dropped: f64,
}

impl From<&core::RequestRecord> for RequestRecord {
    fn from(r: &core::RequestRecord) -> Self {
        RequestRecord {
            request_id: r.request_id.clone(),
            method: r.method.clone(),
            route: r.route.to_string(),
            session_id: r.session_id.clone(),
            user_hash: r.user_hash.clone(),
            status: r.status as u32,
            error_code: r.error_code.clone(),
            bytes: r.bytes as f64,
            duration_ms: r.duration_ms,
            phases: r.phases.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            duration_source: r.duration_source.map(str::to_string),
            log_lines_dropped: r.log_lines_dropped as f64,
        }
    }
}

/// Weak (does not keep Node alive), not callee-handled (the callback gets the record only).
pub type RecordCallback = ThreadsafeFunction<RequestRecord, (), RequestRecord, Status, false, true>;
