//! The frame around every request: start the trace, catch a panic, then stamp the answer (request
//! id, `Server-Timing`) and emit the request's record, now or when its streamed body ends. Also the
//! handler set of a deployment that cannot serve (`Misconfigured`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tracing::Instrument;

use crate::config::TelemetryConfig;
use crate::error::{Error, Result};
use crate::response::{Body, Response};
use crate::telemetry::{RecordSink, Telemetry, Trace};

/// A request as the binding hands it over: plain strings only.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The URL Next gave the route; its path is where Blob's completion webhook is sent back to.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub session_id: Option<String>,
}

/// The route's `[sessionId]`: present, and `[A-Za-z0-9_-]{1,128}` (Convex ids and more). Anything
/// else is refused before any cache, call or log line sees it.
pub fn session_id(req: &Request) -> Result<&str> {
    let id = req.session_id.as_deref().filter(|s| !s.is_empty()).ok_or(Error::MissingSessionId)?;
    if valid_session_id(id) {
        Ok(id)
    } else {
        Err(Error::BadRequest {
            code: "invalid_session_id",
            message: "The session id must be 1 to 128 letters, digits, '-' or '_'.".into(),
        })
    }
}

pub fn valid_session_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Run one handler inside its trace. This is the one place a panic is caught: it becomes a
/// `500 internal_error` with a record and a Sentry event like any 5xx, never an unwind into Node,
/// which would take the whole server down. `received` reports the request bytes read (POST).
pub async fn serve<F>(
    telemetry: &Arc<Telemetry>,
    route: &'static str,
    req: &Request,
    handler: impl FnOnce(Trace) -> F,
    received: impl FnOnce() -> Option<u64>,
) -> Response
where
    F: std::future::Future<Output = Result<Response>>,
{
    // An invalid id never reaches the span or the record.
    let logged_id = req.session_id.as_deref().filter(|id| valid_session_id(id));
    let trace = telemetry.start(route, &req.method, &req.headers, logged_id);
    let span = trace.span.clone();
    let result =
        AssertUnwindSafe(handler(trace.clone())).catch_unwind().instrument(span).await.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(Error::Internal(format!("panic: {what}")))
        });
    finalize(telemetry, &trace, result, received())
}

/// Add the request id and `Server-Timing`, and emit the request's record — now, or when its
/// streamed body is over.
fn finalize(telemetry: &Arc<Telemetry>, trace: &Trace, result: Result<Response>, received: Option<u64>) -> Response {
    let (mut resp, error) = match result {
        Ok(resp) => (resp, None),
        Err(e) => (e.render(), Some(e)),
    };
    resp.headers.push(("x-request-id".into(), trace.request_id()));
    if telemetry.server_timing {
        let timing = trace.server_timing();
        if !timing.is_empty() {
            resp.headers.push(("server-timing".into(), timing));
        }
    }
    match &mut resp.body {
        Body::Stream(stream) => {
            let (telemetry, trace, status, started) =
                (telemetry.clone(), trace.clone(), resp.status, std::time::Instant::now());
            stream.on_finish(Box::new(move |bytes, failure| {
                trace.record("transfer", started.elapsed());
                telemetry.finish(&trace, status, None, bytes, failure.as_deref());
            }));
        }
        Body::Bytes(b) => {
            telemetry.finish(trace, resp.status, error.as_ref(), received.unwrap_or(b.len() as u64), None)
        }
        Body::Empty => telemetry.finish(trace, resp.status, error.as_ref(), received.unwrap_or(0), None),
    }
    resp
}

/// Serves every request of a misconfigured deployment: the 503 naming what to fix, with the same
/// request id, log line and Sentry event as any other 5xx (when `SENTRY_DSN` itself is usable).
pub struct Misconfigured {
    error: Error,
    telemetry: Arc<Telemetry>,
}

impl Misconfigured {
    pub fn new(error: Error, telemetry: &TelemetryConfig, on_record: Option<RecordSink>) -> Misconfigured {
        Misconfigured { error, telemetry: Arc::new(Telemetry::new(telemetry, on_record)) }
    }

    pub fn error(&self) -> &Error {
        &self.error
    }

    pub async fn respond(&self, route: &'static str, req: &Request) -> Response {
        serve(&self.telemetry, route, req, |_| async { Err(self.error.clone()) }, || None).await
    }
}

/// Test builds only: a request header that makes the handler panic, to prove the panic path.
#[cfg(feature = "test-hooks")]
pub(crate) fn test_panic_hook(req: &Request) {
    if req.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("x-session-audio-test-panic") && v == "1") {
        panic!("test-only panic hook");
    }
}

#[cfg(not(feature = "test-hooks"))]
pub(crate) fn test_panic_hook(_req: &Request) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_table() {
        let long = "a".repeat(129);
        let table: [(Option<&str>, Result<(), &str>); 9] = [
            (Some("000000000010000listeningSessions"), Ok(())),
            (Some("k17a-B_9"), Ok(())),
            (Some(&long[..128]), Ok(())),
            (None, Err("missing_session_id")),
            (Some(""), Err("missing_session_id")),
            (Some(&long), Err("invalid_session_id")),
            (Some("../etc"), Err("invalid_session_id")),
            (Some("a b"), Err("invalid_session_id")),
            (Some("é"), Err("invalid_session_id")),
        ];
        for (id, want) in table {
            let req = Request { session_id: id.map(str::to_string), ..Default::default() };
            assert_eq!(session_id(&req).map(|_| ()).map_err(|e| e.code()), want, "{id:?}");
        }
    }
}
