//! The frame around every request: start the trace, catch a panic, then stamp the answer (request
//! id, `Server-Timing`) and emit the request's record, now or when its streamed body ends. Also the
//! handler set of a deployment that cannot serve (`Misconfigured`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tracing::Instrument;

use crate::config::TelemetryConfig;
use crate::error::{Error, Result};
use crate::http::request::{valid_session_id, Request};
use crate::http::response::{Body, Response};
use crate::telemetry::{Phase, RecordSink, Telemetry, Trace};

/// Run one handler inside its trace. This is the one place a panic is caught: it becomes a
/// `500 internal_error` with a record and a Sentry event like any 5xx, never an unwind into Node,
/// which would take the whole server down. Finishing the request (its headers, record, log line,
/// callback) runs inside a catch too: a panic there is still a `500`, only without its record.
/// `received` reports the request bytes read (POST).
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
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        crate::http::request::test_panic_in_finish(req);
        finalize(telemetry, &trace, result, received())
    }))
    .unwrap_or_else(|_| unfinished(&trace))
}

/// The answer when finishing a request panicked: a plain `500` with its request id, nothing else
/// attempted (what panicked was the record, the log line or the callback).
fn unfinished(trace: &Trace) -> Response {
    let mut resp = Error::Internal("panic while finishing the request".into()).render();
    if let Ok(id) = std::panic::catch_unwind(AssertUnwindSafe(|| trace.request_id())) {
        resp.headers.push(("x-request-id".into(), id));
    }
    resp
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
                // Runs where the body ends (a JS read): a panic must not unwind there either.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    trace.record(Phase::Transfer, started.elapsed());
                    telemetry.finish(&trace, status, None, bytes, failure.as_deref());
                }));
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
