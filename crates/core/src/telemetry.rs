//! Observability: one `tracing` span and one record per request, the `Server-Timing` header,
//! a JSON log line per finished request, an optional user callback, and Sentry events for 5xx.
//!
//! What is never recorded anywhere: tokens, cookies, `Authorization`, the Blob token, audio URLs'
//! query strings. Records carry a hash of the user id, not the id. Sentry messages go through
//! `scrub` (and `before_send` runs it again), so even an upstream's error text cannot leak a secret.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// One finished request, as logged and as handed to the `onRequest` callback.
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
}

pub type RecordSink = Arc<dyn Fn(&RequestRecord) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn parse(raw: Option<&str>) -> Result<LogLevel, String> {
        Ok(match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("info") => LogLevel::Info,
            Some("off") | Some("0") | Some("none") => LogLevel::Off,
            Some("error") => LogLevel::Error,
            Some("warn") => LogLevel::Warn,
            Some("debug") | Some("trace") => LogLevel::Debug,
            Some(other) => {
                return Err(format!("SESSION_AUDIO_LOG must be off, error, warn, info or debug, got {other:?}"))
            }
        })
    }
}

/// Install the process-wide JSON log subscriber once. Next.js may load the addon in several
/// workers and re-create handlers on hot reload; the first configuration wins for the process
/// (a global subscriber cannot be replaced), and if the host already installed one we leave it.
pub fn install_logging(level: LogLevel) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let max = match level {
            LogLevel::Off => return,
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
        };
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(true)
            .with_writer(std::io::stderr)
            .with_max_level(max)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Where the process-wide settings and sinks live; one per `State`.
pub struct Telemetry {
    pub server_timing: bool,
    sink: Option<RecordSink>,
    sentry: Option<Arc<sentry::Client>>,
}

impl Telemetry {
    pub fn new(server_timing: bool, sink: Option<RecordSink>, sentry: Option<Arc<sentry::Client>>) -> Telemetry {
        Telemetry { server_timing, sink, sentry }
    }

    pub fn sentry(&self) -> Option<&Arc<sentry::Client>> {
        self.sentry.as_ref()
    }

    /// Start tracing a request.
    pub fn start(
        &self,
        route: &'static str,
        method: &str,
        headers: &[(String, String)],
        session_id: Option<&str>,
    ) -> Trace {
        let request_id = request_id_from(headers);
        let span = tracing::info_span!("request", request_id = %request_id, route, method, session_id);
        Trace {
            inner: Arc::new(Mutex::new(TraceState {
                request_id,
                method: method.to_string(),
                route,
                session_id: session_id.map(str::to_string),
                user_hash: None,
                phases: Vec::new(),
                current_phase: "start",
                finished: false,
            })),
            started: Instant::now(),
            span,
        }
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
        let mut st = trace.lock();
        if st.finished {
            return;
        }
        st.finished = true;
        let record = RequestRecord {
            request_id: st.request_id.clone(),
            method: st.method.clone(),
            route: st.route,
            session_id: st.session_id.clone(),
            user_hash: st.user_hash.clone(),
            status,
            error_code: error
                .map(|e| e.code().to_string())
                .or_else(|| mid_stream_failure.map(|_| "upstream_failed_mid_stream".to_string())),
            bytes,
            duration_ms: ms(trace.started.elapsed()),
            phases: st.phases.iter().map(|(n, d)| (*n, ms(*d))).collect(),
        };
        let phase = st.current_phase;
        drop(st);
        let _enter = trace.span.enter();
        let phases = serde_json::to_string(&record.phases).unwrap_or_default();
        if status >= 500 || mid_stream_failure.is_some() {
            tracing::error!(target: "session_audio", request_id = %record.request_id, method = %record.method, route = record.route,
                session_id = record.session_id.as_deref(), user_hash = record.user_hash.as_deref(), status, error_code = record.error_code.as_deref(),
                bytes, duration_ms = record.duration_ms, phases = %phases, phase, detail = %scrub(&error.map(|e| e.to_string()).or(mid_stream_failure.map(str::to_string)).unwrap_or_default()),
                "request failed");
        } else {
            tracing::info!(target: "session_audio", request_id = %record.request_id, method = %record.method, route = record.route,
                session_id = record.session_id.as_deref(), user_hash = record.user_hash.as_deref(), status, error_code = record.error_code.as_deref(),
                bytes, duration_ms = record.duration_ms, phases = %phases, "request finished");
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

fn report_event(client: &sentry::Client, record: &RequestRecord, code: &str, detail: &str, phase: &str) {
    use sentry::protocol::{Event, Level};
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
        event.user = Some(sentry::User { id: Some(h.clone()), ..Default::default() });
    }
    // Non-blocking: the transport queues and a background thread sends.
    client.capture_event(event, None);
}

struct TraceState {
    request_id: String,
    method: String,
    route: &'static str,
    session_id: Option<String>,
    user_hash: Option<String>,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, TraceState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn request_id(&self) -> String {
        self.lock().request_id.clone()
    }

    pub fn set_user(&self, user_id: &str) {
        self.lock().user_hash = Some(hash_user(user_id));
    }

    /// Time `fut` as phase `name`.
    pub async fn phase<T>(&self, name: &'static str, fut: impl std::future::Future<Output = T>) -> T {
        self.lock().current_phase = name;
        let start = Instant::now();
        let out = fut.await;
        self.record(name, start.elapsed());
        out
    }

    pub fn record(&self, name: &'static str, took: Duration) {
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

/// Remove secrets from free text: JWTs, bearer values, Clerk keys, Blob tokens, cookie values and
/// URL query strings.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&scrub_word(word));
    }
    out
}

fn scrub_word(word: &str) -> String {
    let secretish = |w: &str| {
        let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-' && c != '.');
        w.starts_with("eyJ")
            || w.starts_with("sk_live_")
            || w.starts_with("sk_test_")
            || w.starts_with("vercel_blob_rw_")
            || w.starts_with("vercel_blob_client_")
    };
    if secretish(word) {
        return "[redacted]".into();
    }
    // URLs: keep scheme, host and path; drop the query string (signed URLs carry credentials).
    if let Some(start) = word.find("://") {
        if let Some(q) = word[start..].find('?') {
            let cut = start + q;
            let end = word[cut..].find(['"', '\'', ')', ',']).map_or(word.len(), |e| cut + e);
            return format!("{}?[redacted]{}", &word[..cut], &word[end..]);
        }
    }
    // Cookie pairs and key=value secrets.
    if let Some((k, _)) = word.split_once('=') {
        let key = k.trim_start_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_').to_ascii_lowercase();
        if key.starts_with("__session")
            || key.starts_with("__client")
            || key.contains("token")
            || key.contains("secret")
        {
            return format!("{k}=[redacted]");
        }
    }
    word.to_string()
}

/// A Sentry transport over our own HTTP client: a bounded queue and one background thread, so
/// capturing never blocks a request and a Sentry outage changes nothing for users.
pub struct QueueTransport {
    tx: std::sync::mpsc::SyncSender<sentry::Envelope>,
}

const SENTRY_QUEUE: usize = 64;

impl QueueTransport {
    pub fn new(dsn: &sentry::types::Dsn) -> QueueTransport {
        let (tx, rx) = std::sync::mpsc::sync_channel::<sentry::Envelope>(SENTRY_QUEUE);
        let url = dsn.envelope_api_url().to_string();
        let auth = dsn.to_auth(Some(concat!("session-audio/", env!("CARGO_PKG_VERSION")))).to_string();
        let _ = std::thread::Builder::new().name("session-audio-sentry".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            // Everything, the client included, inside the runtime: reqwest needs its reactor.
            rt.block_on(async move {
                let Ok(http) = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build() else {
                    return;
                };
                while let Ok(envelope) = rx.recv() {
                    let mut body = Vec::new();
                    if envelope.to_writer(&mut body).is_err() {
                        continue;
                    }
                    let send = http
                        .post(&url)
                        .header("X-Sentry-Auth", &auth)
                        .header("Content-Type", "application/x-sentry-envelope")
                        .body(body)
                        .send();
                    // Failures are dropped: reporting must never become the problem.
                    let _ = send.await;
                }
            });
        });
        QueueTransport { tx }
    }
}

impl sentry::Transport for QueueTransport {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        // Full queue (Sentry down or slow): drop the event rather than wait.
        let _ = self.tx.try_send(envelope);
    }
}

/// A Sentry client for `dsn`, or an error naming the setting.
pub fn sentry_client(dsn: &str, environment: Option<String>) -> Result<Arc<sentry::Client>, String> {
    let dsn: sentry::types::Dsn = dsn.parse().map_err(|e| format!("SENTRY_DSN is not a DSN: {e}"))?;
    let transport = Arc::new(QueueTransport::new(&dsn));
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(concat!("session-audio@", env!("CARGO_PKG_VERSION")).into());
    options.environment = environment.map(Into::into);
    options.default_integrations = false;
    options.send_default_pii = false;
    options.transport = Some(Arc::new(transport));
    options.before_send = Some(Arc::new(|mut event| {
        event.message = event.message.map(|m| scrub(&m));
        event.request = None; // never attach request data (headers carry tokens and cookies)
        Some(event)
    }));
    Ok(Arc::new(sentry::Client::from_config(options)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_table() {
        let table: &[(&str, &str)] = &[
            ("plain words stay", "plain words stay"),
            ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.sig here", "token [redacted] here"),
            ("Authorization: Bearer sk_test_abc123", "Authorization: Bearer [redacted]"),
            ("key sk_live_xyz", "key [redacted]"),
            ("blob vercel_blob_rw_store_secret!", "blob [redacted]"),
            ("cookie __session=abc.def", "cookie __session=[redacted]"),
            (
                "GET https://s.private.blob.vercel-storage.com/a.webm?token=xyz&sig=1 failed",
                "GET https://s.private.blob.vercel-storage.com/a.webm?[redacted] failed",
            ),
            ("\"https://x.example/a?b=c\",", "\"https://x.example/a?[redacted]\","),
            ("https://x.example/no-query", "https://x.example/no-query"),
            ("access_token=abc", "access_token=[redacted]"),
        ];
        for (input, want) in table {
            assert_eq!(scrub(input), *want, "{input}");
        }
    }

    #[test]
    fn request_id_table() {
        let hv = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
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

    #[test]
    fn log_levels() {
        assert_eq!(LogLevel::parse(None).unwrap(), LogLevel::Info);
        assert_eq!(LogLevel::parse(Some("OFF")).unwrap(), LogLevel::Off);
        assert_eq!(LogLevel::parse(Some("debug")).unwrap(), LogLevel::Debug);
        assert!(LogLevel::parse(Some("loud")).is_err());
    }

    #[tokio::test]
    async fn phases_accumulate_and_render_as_server_timing() {
        let t = Telemetry::new(true, None, None);
        let trace = t.start("get", "GET", &[], Some("s1"));
        trace.phase("auth", tokio::time::sleep(Duration::from_millis(2))).await;
        trace.record("lookup", Duration::from_micros(1500));
        trace.record("lookup", Duration::from_micros(500));
        let st = trace.server_timing();
        assert!(st.starts_with("auth;dur="), "{st}");
        assert!(st.ends_with(", lookup;dur=2.0"), "{st}");
    }

    #[test]
    fn finish_emits_one_record_with_the_hash_and_error_code() {
        let seen: Arc<Mutex<Vec<RequestRecord>>> = Arc::default();
        let sink_seen = seen.clone();
        let t = Telemetry::new(
            true,
            Some(Arc::new(move |r: &RequestRecord| sink_seen.lock().unwrap().push(r.clone()))),
            None,
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
