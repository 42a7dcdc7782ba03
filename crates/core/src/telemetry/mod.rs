//! Observability: one `tracing` span and one record per request, the `Server-Timing` header,
//! a JSON log line per finished request, an optional user callback, and Sentry events for 5xx.
//!
//! What is never recorded anywhere: tokens, cookies, `Authorization`, the Blob token, audio URLs'
//! query strings. Records carry a hash of the user id, not the id. Sentry messages go through
//! `scrub` (and `before_send` runs it again), so even an upstream's error text cannot leak a secret.
//!
//! `trace`: the per-request trace and record; `logging`: the JSON log line; `scrub`: secrets out of
//! text; `sentry`: the non-blocking Sentry transport. `Telemetry` ties them together per `State`.

mod logging;
mod scrub;
mod sentry;
pub mod settings;
mod trace;

use std::sync::Arc;

pub use logging::{dropped_lines, install_logging, LogLevel};
pub use scrub::scrub;
pub use trace::{hash_user, request_id_from, Phase, RecordSink, RequestRecord, Trace};

use crate::error::Error;
pub use settings::TelemetryConfig;

/// The settings and sinks of one `State`.
pub struct Telemetry {
    pub server_timing: bool,
    sink: Option<RecordSink>,
    sentry: Option<Arc<::sentry::Client>>,
}

impl Telemetry {
    /// Also installs the process-wide log subscriber (the first configuration wins).
    pub fn new(config: &TelemetryConfig, sink: Option<RecordSink>) -> Telemetry {
        install_logging(config.log_level);
        let sentry = config.sentry_dsn.clone().map(|dsn| sentry::client(dsn, config.sentry_environment.clone()));
        Telemetry { server_timing: config.server_timing, sink, sentry }
    }

    /// Start tracing a request.
    pub fn start(
        &self,
        route: &'static str,
        method: &str,
        headers: &[(String, String)],
        session_id: Option<&str>,
    ) -> Trace {
        Trace::start(route, method, headers, session_id)
    }

    /// Emit the record of a finished request: log line, callback, and a Sentry event for 5xx.
    pub fn finish(
        &self,
        trace: &Trace,
        status: u16,
        error: Option<&Error>,
        bytes: u64,
        mid_stream_failure: Option<&str>,
    ) {
        let error_code = error
            .map(|e| e.code().to_string())
            .or_else(|| mid_stream_failure.map(|_| "upstream_failed_mid_stream".to_string()));
        let Some((record, phase)) = trace.finish(status, error_code, bytes) else { return };
        let _enter = trace.span.enter();
        let phases = serde_json::to_string(&record.phases).unwrap_or_default();
        if status >= 500 || mid_stream_failure.is_some() {
            tracing::error!(target: "session_audio", request_id = %record.request_id, method = %record.method, route = record.route,
                session_id = record.session_id.as_deref(), user_hash = record.user_hash.as_deref(), status, error_code = record.error_code.as_deref(),
                bytes, duration_ms = record.duration_ms, duration_source = record.duration_source, phases = %phases, phase, detail = %scrub(&error.map(|e| e.to_string()).or(mid_stream_failure.map(str::to_string)).unwrap_or_default()),
                "request failed");
        } else {
            tracing::info!(target: "session_audio", request_id = %record.request_id, method = %record.method, route = record.route,
                session_id = record.session_id.as_deref(), user_hash = record.user_hash.as_deref(), status, error_code = record.error_code.as_deref(),
                bytes, duration_ms = record.duration_ms, duration_source = record.duration_source, phases = %phases, "request finished");
        }
        if let Some(sink) = &self.sink {
            sink(&record);
        }
        let report = match (error, mid_stream_failure) {
            (Some(e), _) if e.is_reportable() => Some((e.code().to_string(), e.to_string())),
            (None, Some(detail)) => Some(("upstream_failed_mid_stream".to_string(), detail.to_string())),
            _ => None,
        };
        if let (Some(client), Some((code, detail))) = (&self.sentry, report) {
            report_event(client, &record, &code, &detail, phase);
        }
    }
}

fn report_event(client: &::sentry::Client, record: &RequestRecord, code: &str, detail: &str, phase: &str) {
    use ::sentry::protocol::{Event, Level};
    let mut event = Event {
        level: Level::Error,
        message: Some(scrub(&format!("{code}: {detail}"))),
        logger: Some("session-audio".into()),
        ..Default::default()
    };
    event.tags.insert("error_code".into(), code.into());
    event.tags.insert("request_id".into(), record.request_id.clone());
    event.tags.insert("phase".into(), phase.into());
    event.tags.insert("route".into(), record.route.into());
    event.tags.insert("status".into(), record.status.to_string());
    if let Some(h) = &record.user_hash {
        event.user = Some(::sentry::User { id: Some(h.clone()), ..Default::default() });
    }
    // Non-blocking: the transport queues and a background thread sends.
    client.capture_event(event, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn config() -> TelemetryConfig {
        TelemetryConfig { log_level: LogLevel::Off, server_timing: true, sentry_dsn: None, sentry_environment: None }
    }

    #[test]
    fn finish_emits_one_record_with_the_hash_and_error_code() {
        let seen: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
        let sink_seen = seen.clone();
        let t = Telemetry::new(
            &config(),
            Some(Arc::new(move |r: &RequestRecord| sink_seen.lock().unwrap().push(r.clone()))),
        );
        let trace = t.start("get", "GET", &[("x-request-id".into(), "rid".into())], Some("s1"));
        trace.set_user("user_1");
        t.finish(&trace, 404, Some(&Error::SessionNotFound), 0, None);
        t.finish(&trace, 404, Some(&Error::SessionNotFound), 0, None); // once only
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].request_id, "rid");
        assert_eq!(seen[0].user_hash.as_deref(), Some(hash_user("user_1").as_str()));
        assert_eq!(seen[0].error_code.as_deref(), Some("session_not_found"));
    }
}
