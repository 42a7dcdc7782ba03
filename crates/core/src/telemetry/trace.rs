//! One request's trace: its id, the span, the phase timings (`Server-Timing`) and the record it
//! becomes when it finishes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One finished request, as logged and as handed to the `onRequest` callback.
/// The timed phases of a request, in `Server-Timing`, the request record and the log line. The
/// README lists every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// verifying the session token
    Auth,
    /// the caller's Convex token from Clerk (JWT template)
    Token,
    /// the session query
    Lookup,
    /// the entitlements query
    Entitlements,
    /// Vercel Blob: the upload, head, the first bytes
    Storage,
    /// a client upload read whole through the duration meter
    Measure,
    /// a provisional client upload's rewrite after the read: the first part with the final header
    /// region, the last part, the multipart completion (docs/stop-to-transcribing.md, C)
    Rewrite,
    /// attachAudio
    Mutation,
    /// the session re-read after an unclear attach
    Reread,
    /// the audio storage's response headers (GET)
    Upstream,
    /// the body, until its last byte went out
    Transfer,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Auth => "auth",
            Phase::Token => "token",
            Phase::Lookup => "lookup",
            Phase::Entitlements => "entitlements",
            Phase::Storage => "storage",
            Phase::Measure => "measure",
            Phase::Rewrite => "rewrite",
            Phase::Mutation => "mutation",
            Phase::Reread => "reread",
            Phase::Upstream => "upstream",
            Phase::Transfer => "transfer",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub request_id: String,
    pub method: String,
    pub route: &'static str,
    pub session_id: Option<String>,
    /// First 16 hex digits of SHA-256 of the Clerk user id.
    pub user_hash: Option<String>,
    pub status: u16,
    pub error_code: Option<String>,
    /// Bytes sent to the client (GET) or received from it (POST).
    pub bytes: u64,
    pub duration_ms: f64,
    /// Time spent in each phase, in order: auth, token, lookup, upstream (first byte), transfer,
    /// entitlements, storage, mutation.
    pub phases: Vec<(&'static str, f64)>,
    /// An upload's duration: `"measured"` from the container, or `"declared"` where it does not say.
    pub duration_source: Option<&'static str>,
    /// Log lines this process dropped so far, process-wide (`logging::dropped_lines`): stderr could
    /// not take them as fast as they came, or refused them.
    pub log_lines_dropped: u64,
}

pub type RecordSink = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

struct TraceState {
    request_id: String,
    method: String,
    route: &'static str,
    session_id: Option<String>,
    user_hash: Option<String>,
    duration_source: Option<&'static str>,
    phases: Vec<(&'static str, Duration)>,
    current_phase: &'static str,
    finished: bool,
}

/// The per-request trace; cheap to clone into the body stream that finishes the request later.
#[derive(Clone)]
pub struct Trace {
    inner: Arc<Mutex<TraceState>>,
    started: Instant,
    pub span: tracing::Span,
}

impl Trace {
    pub fn start(route: &'static str, method: &str, headers: &[(String, String)], session_id: Option<&str>) -> Trace {
        let request_id = request_id_from(headers);
        let span = tracing::info_span!("request", request_id = %request_id, route, method, session_id);
        Trace {
            inner: Arc::new(Mutex::new(TraceState {
                request_id,
                method: method.to_string(),
                route,
                session_id: session_id.map(str::to_string),
                user_hash: None,
                duration_source: None,
                phases: Vec::new(),
                current_phase: "start",
                finished: false,
            })),
            started: Instant::now(),
            span,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TraceState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn request_id(&self) -> String {
        self.lock().request_id.clone()
    }

    /// Where an upload's recorded duration came from (`Settled::source`).
    pub fn set_duration_source(&self, source: &'static str) {
        self.lock().duration_source = Some(source);
    }

    pub fn set_user(&self, user_id: &str) {
        self.lock().user_hash = Some(hash_user(user_id));
    }

    /// Time `fut` as phase `name`.
    pub async fn phase<T>(&self, phase: Phase, fut: impl std::future::Future<Output = T>) -> T {
        let name = phase.as_str();
        self.lock().current_phase = name;
        let start = Instant::now();
        let out = fut.await;
        self.record(phase, start.elapsed());
        out
    }

    pub fn record(&self, phase: Phase, took: Duration) {
        let name = phase.as_str();
        let mut st = self.lock();
        st.current_phase = name;
        match st.phases.iter_mut().find(|(n, _)| *n == name) {
            Some((_, d)) => *d += took,
            None => st.phases.push((name, took)),
        }
    }

    /// `Server-Timing` for the phases done so far (`auth;dur=0.4, lookup;dur=12.1`).
    pub fn server_timing(&self) -> String {
        self.lock().phases.iter().map(|(n, d)| format!("{n};dur={:.1}", ms(*d))).collect::<Vec<_>>().join(", ")
    }

    /// The record of the finished request and the phase it ended in; `None` if it was already
    /// taken (a request finishes once).
    pub fn finish(&self, status: u16, error_code: Option<String>, bytes: u64) -> Option<(RequestRecord, &'static str)> {
        let mut st = self.lock();
        if st.finished {
            return None;
        }
        st.finished = true;
        let record = RequestRecord {
            request_id: st.request_id.clone(),
            method: st.method.clone(),
            route: st.route,
            session_id: st.session_id.clone(),
            user_hash: st.user_hash.clone(),
            duration_source: st.duration_source,
            status,
            error_code,
            bytes,
            duration_ms: ms(self.started.elapsed()),
            phases: st.phases.iter().map(|(n, d)| (*n, ms(*d))).collect(),
            log_lines_dropped: super::logging::dropped_lines(),
        };
        Some((record, st.current_phase))
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

pub fn hash_user(user_id: &str) -> String {
    let digest = Sha256::digest(user_id.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `x-request-id` if the caller (or a proxy) sent a sane one, else Vercel's `x-vercel-id`, else new.
pub fn request_id_from(headers: &[(String, String)]) -> String {
    let sane = |v: &str| {
        let v = v.trim();
        (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())).then(|| v.to_string())
    };
    for name in ["x-request-id", "x-vercel-id"] {
        if let Some(id) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| sane(v)) {
            return id;
        }
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "sa_{:012x}{:04x}",
        rand::random::<u64>() & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hv;

    #[test]
    fn request_id_table() {
        assert_eq!(request_id_from(&hv(&[("X-Request-Id", "abc-1")])), "abc-1");
        assert_eq!(request_id_from(&hv(&[("x-vercel-id", "fra1::iad1::xyz")])), "fra1::iad1::xyz");
        assert_eq!(request_id_from(&hv(&[("x-request-id", "r1"), ("x-vercel-id", "v1")])), "r1");
        let generated = request_id_from(&hv(&[("x-request-id", "bad id with spaces")]));
        assert!(generated.starts_with("sa_") && generated.len() == 19, "{generated}");
        assert_ne!(request_id_from(&[]), request_id_from(&[]));
    }

    #[test]
    fn user_hash_is_stable_and_not_the_id() {
        assert_eq!(hash_user("user_1"), hash_user("user_1"));
        assert_eq!(hash_user("user_1").len(), 16);
        assert!(!hash_user("user_1").contains("user"));
        assert_ne!(hash_user("user_1"), hash_user("user_2"));
    }

    #[tokio::test]
    async fn phases_accumulate_and_render_as_server_timing() {
        let trace = Trace::start("get", "GET", &[], Some("s1"));
        trace.phase(Phase::Auth, tokio::time::sleep(Duration::from_millis(2))).await;
        trace.record(Phase::Lookup, Duration::from_micros(1500));
        trace.record(Phase::Lookup, Duration::from_micros(500));
        let st = trace.server_timing();
        assert!(st.starts_with("auth;dur="), "{st}");
        assert!(st.ends_with(", lookup;dur=2.0"), "{st}");
    }
}
