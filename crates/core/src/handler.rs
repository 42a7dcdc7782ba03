//! The GET handler: the only place that sequences the steps, in the order of the issue.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::{extract_token, Identity, KeyStore};
use crate::body::BodyStream;
use crate::cache::TtlCache;
use crate::clerk::ClerkClient;
use crate::config::{Config, KeySource};
use crate::convex::{parse_session, ConvexClient, SessionDoc};
use crate::error::{AuthFailure, Error, Result};
use crate::headers::{client_response_headers, frame_empty_body, relay_status, upstream_request_headers};
use crate::response::{Body, Response};
use crate::telemetry::{RecordSink, Telemetry, Trace};
use crate::upload::{apply_entitlements, validate_headers, Chunks, Entitlements, UploadBody};
use crate::upstream::UpstreamClient;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use tracing::Instrument;

/// A request as the binding hands it over: plain strings only.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub session_id: Option<String>,
}

/// Everything that lives across requests: built once per configuration and shared.
pub struct State {
    pub config: Config,
    keys: KeyStore,
    clerk: Arc<ClerkClient>,
    convex: ConvexClient,
    upstream: UpstreamClient,
    lookups: TtlCache<(String, String), SessionDoc>,
    /// `None` until `BLOB_READ_WRITE_TOKEN` is configured: GET works without it, POST answers 503.
    blob: std::result::Result<crate::blob::BlobClient, Arc<Error>>,
    pub telemetry: Arc<Telemetry>,
}

impl State {
    pub fn new(config: Config, on_record: Option<RecordSink>) -> Result<State> {
        crate::telemetry::install_logging(config.log_level);
        if config.host_policy.allow_loopback() {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(target: "session_audio", "SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM is on: http://127.0.0.1 / localhost audio URLs listed in SESSION_AUDIO_TRUSTED_HOSTS are allowed. Never enable this in production.");
                // Also when logging is off: this must not go unnoticed.
                eprintln!("session-audio: SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM is on (tests and local development only)");
            });
        }
        let sentry = match &config.sentry_dsn {
            None => None,
            Some(dsn) => Some(
                crate::telemetry::sentry_client(dsn, config.sentry_environment.clone())
                    .map_err(Error::ConfigInvalid)?,
            ),
        };
        let telemetry = Arc::new(Telemetry::new(config.server_timing, on_record, sentry));
        // One client for the services we trust by configuration (Clerk, Convex), pooled; a separate
        // guarded client for the URLs that come from data. Neither reads proxies from the
        // environment: an inherited HTTP(S)_PROXY must not be able to redirect our traffic.
        let services = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(15))
            .user_agent(concat!("session-audio/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        let secret = config.clerk_secret_key.clone().ok_or_else(|| Error::ConfigMissing("CLERK_SECRET_KEY".into()))?;
        let clerk = Arc::new(ClerkClient::new(
            services.clone(),
            config.clerk_api_url.clone(),
            secret,
            config.convex_template.clone(),
        ));
        let keys = match &config.key_source {
            KeySource::Pem(pem) => KeyStore::pem(
                crate::auth::parse_public_key_pem(pem)
                    .map_err(|e| Error::ConfigInvalid(format!("CLERK_JWT_KEY: {e}")))?,
            ),
            KeySource::Jwks => KeyStore::jwks(clerk.clone()),
        };
        let convex = ConvexClient::new(services.clone(), &config.convex_url);
        let upstream = UpstreamClient::new(config.host_policy.allow_loopback(), config.upstream_timeout)?;
        let blob = match &config.blob_token {
            None => Err(Arc::new(Error::ConfigMissing(
                "BLOB_READ_WRITE_TOKEN is not set (the Vercel Blob read-write token uploads are stored with)".into(),
            ))),
            Some(token) => {
                // Uploads stream for as long as the client sends: no whole-request timeout here.
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .user_agent(concat!("session-audio/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| Error::Internal(format!("blob client: {e}")))?;
                crate::blob::BlobClient::new(http, &config.upload.blob_api_url, token.clone()).map_err(Arc::new)
            }
        };
        Ok(State { keys, clerk, convex, upstream, lookups: TtlCache::new(10_000), blob, telemetry, config })
    }

    /// Steps 1: who is calling.
    pub async fn authenticate(&self, req: &Request, trace: &Trace) -> Result<Identity> {
        let who = trace
            .phase("auth", async {
                let token = extract_token(&req.headers).ok_or(Error::Unauthenticated(AuthFailure::Missing))?;
                self.keys.verify(&token, now_secs(), &self.config.authorized_parties).await
            })
            .await?;
        trace.set_user(&who.user_id);
        Ok(who)
    }

    /// Steps 2–3: the caller's session, from cache for a few seconds. A foreign session is
    /// indistinguishable from a missing one.
    pub async fn session_for(&self, who: &Identity, session_id: &str, trace: &Trace) -> Result<SessionDoc> {
        let key = (who.user_id.clone(), session_id.to_string());
        let doc = self
            .lookups
            .get_or_fill(&key, || async {
                let args = serde_json::json!({ "sessionId": session_id });
                let value = self.query_as(who, &self.config.get_query, args, trace).await?;
                let doc = parse_session(value)?.ok_or(Error::SessionNotFound)?;
                Ok((doc, self.config.lookup_ttl))
            })
            .await?;
        if doc.user_id != who.user_id {
            return Err(Error::SessionNotFound);
        }
        Ok(doc)
    }

    pub fn forget_session(&self, user_id: &str, session_id: &str) {
        self.lookups.invalidate(&(user_id.to_string(), session_id.to_string()));
    }

    /// The Convex token for the caller, dropping it from the cache if Convex refuses it.
    async fn convex_token(&self, who: &Identity, trace: &Trace) -> Result<String> {
        trace.phase("token", self.clerk.template_token(&who.session_id, now_secs())).await
    }

    /// Run a query as the caller; on a refused token, forget it so the next request mints anew.
    async fn query_as(
        &self,
        who: &Identity,
        path: &str,
        args: serde_json::Value,
        trace: &Trace,
    ) -> Result<serde_json::Value> {
        let token = self.convex_token(who, trace).await?;
        let phase = if path == self.config.upload.entitlements_query { "entitlements" } else { "lookup" };
        match trace.phase(phase, self.convex.query(path, args, &token)).await {
            Err(Error::ConvexAuthRejected(why)) => {
                self.clerk.forget(&who.session_id);
                Err(Error::ConvexAuthRejected(why))
            }
            other => other,
        }
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// GET and HEAD `/api/listening-sessions/[sessionId]/audio`.
pub async fn get(state: &State, req: Request) -> Response {
    let trace = state.telemetry.start("get", &req.method, &req.headers, req.session_id.as_deref());
    let result = guarded(try_get(state, &req, &trace)).instrument(trace.span.clone()).await;
    finalize(&state.telemetry, &trace, result, None)
}

/// A panic inside a handler becomes a `500 internal_error` (and a Sentry event), never an unwind
/// into Node, which would take the whole server down.
async fn guarded(fut: impl std::future::Future<Output = Result<Response>>) -> Result<Response> {
    AssertUnwindSafe(fut).catch_unwind().await.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(Error::Internal(format!("panic: {what}")))
    })
}

/// Serves every request of a misconfigured deployment: the 503 naming what to fix, with the same
/// request id, log line and Sentry event as any other 5xx (when `SENTRY_DSN` itself is usable).
pub struct Misconfigured {
    error: Error,
    telemetry: Arc<Telemetry>,
}

impl Misconfigured {
    pub fn new(error: Error, get: impl Fn(&str) -> Option<String>, on_record: Option<RecordSink>) -> Misconfigured {
        let level = crate::telemetry::LogLevel::parse(get("SESSION_AUDIO_LOG").as_deref())
            .unwrap_or(crate::telemetry::LogLevel::Info);
        crate::telemetry::install_logging(level);
        let environment = get("SENTRY_ENVIRONMENT").or_else(|| get("VERCEL_ENV"));
        let sentry = get("SENTRY_DSN").and_then(|dsn| crate::telemetry::sentry_client(&dsn, environment).ok());
        Misconfigured { error, telemetry: Arc::new(Telemetry::new(true, on_record, sentry)) }
    }

    pub fn error(&self) -> &Error {
        &self.error
    }

    pub fn respond(&self, route: &'static str, req: &Request) -> Response {
        let trace = self.telemetry.start(route, &req.method, &req.headers, req.session_id.as_deref());
        finalize(&self.telemetry, &trace, Err(self.error.clone()), None)
    }
}

/// Test builds only: a request header that makes the handler panic, to prove the panic path.
#[cfg(feature = "test-hooks")]
fn test_panic_hook(req: &Request) {
    if req.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("x-session-audio-test-panic") && v == "1") {
        panic!("test-only panic hook");
    }
}

#[cfg(not(feature = "test-hooks"))]
fn test_panic_hook(_req: &Request) {}

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

async fn try_get(state: &State, req: &Request, trace: &Trace) -> Result<Response> {
    let head = match req.method.to_ascii_uppercase().as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Error::MethodNotAllowed),
    };
    let session_id = req.session_id.as_deref().filter(|s| !s.is_empty()).ok_or(Error::MissingSessionId)?;
    test_panic_hook(req);
    // 1. identity
    let who = state.authenticate(req, trace).await?;
    // 2–3. Convex token and ownership
    let doc = state.session_for(&who, session_id, trace).await?;
    let audio_url = doc.audio_url.as_deref().filter(|u| !u.is_empty()).ok_or(Error::AudioNotFound)?;
    // 4–5. trusted host, then the upstream with the client's range/conditional headers
    let method = if head { reqwest::Method::HEAD } else { reqwest::Method::GET };
    let local_store = state.config.host_policy.allow_loopback().then_some(&state.config.upload.blob_api_url);
    let bearer = private_blob_bearer(audio_url, state.config.blob_token.as_deref(), local_store);
    let resp = trace
        .phase(
            "upstream",
            state.upstream.fetch(
                &state.config.host_policy,
                method,
                audio_url,
                &upstream_request_headers(&req.headers),
                bearer,
            ),
        )
        .await?;
    let status = relay_status(resp.status().as_u16())?;
    let upstream_headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut headers =
        client_response_headers(&upstream_headers, doc.audio_content_type.as_deref(), state.config.cache_max_age_secs);
    // 6. body: none for HEAD, 304 and 416 (the 416 says all in Content-Range); small bodies read
    // here; everything else streamed.
    let body = if head || status == 304 || status == 416 {
        frame_empty_body(&mut headers, status, head);
        Body::Empty
    } else if fits_in_one_read(resp.content_length()) {
        let bytes = trace
            .phase("transfer", async {
                match tokio::time::timeout(state.upstream.timeout(), resp.bytes()).await {
                    Err(_) => Err(Error::UpstreamTimeout("audio body did not arrive in time".into())),
                    Ok(Err(e)) => Err(Error::UpstreamFailed(format!("audio body: {e}"))),
                    Ok(Ok(b)) => Ok(b),
                }
            })
            .await?;
        Body::Bytes(bytes)
    } else {
        Body::Stream(BodyStream::spawn(resp, state.upstream.timeout()))
    };
    Ok(Response { status, headers, body })
}

/// Bodies up to this size (a seeking `<audio>` element's small Range reads) are read before the
/// response is returned and handed to JS in one piece: a stream would cost JS two or three async
/// round trips into the addon for a few KiB. Bigger or unknown-length bodies are streamed.
pub const ONE_READ_MAX_BYTES: u64 = 64 * 1024;

/// Whether a body of `content_length` is read whole before answering (see `ONE_READ_MAX_BYTES`).
pub fn fits_in_one_read(content_length: Option<u64>) -> bool {
    content_length.is_some_and(|n| n <= ONE_READ_MAX_BYTES)
}

/// POST `/api/listening-sessions/[sessionId]/audio`: the raw audio body, metadata in headers.
/// `body` yields the request body's chunks as JS reads them.
pub async fn post(state: &State, req: Request, body: Chunks) -> Response {
    let trace = state.telemetry.start("post", &req.method, &req.headers, req.session_id.as_deref());
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let result = guarded(try_post(state, &req, body, &trace, &received)).instrument(trace.span.clone()).await;
    finalize(&state.telemetry, &trace, result, Some(received.load(std::sync::atomic::Ordering::SeqCst)))
}

async fn try_post(
    state: &State,
    req: &Request,
    body: Chunks,
    trace: &Trace,
    received: &std::sync::atomic::AtomicU64,
) -> Result<Response> {
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(Error::MethodNotAllowed);
    }
    let blob = state.blob.as_ref().map_err(|e| match &**e {
        Error::ConfigInvalid(m) => Error::ConfigInvalid(m.clone()),
        other => Error::ConfigMissing(configured_message(other)),
    })?;
    let session_id = req.session_id.as_deref().filter(|s| !s.is_empty()).ok_or(Error::MissingSessionId)?;
    test_panic_hook(req);
    // 1. identity, then what the headers promise — all before a byte is read.
    let who = state.authenticate(req, trace).await?;
    let meta = validate_headers(&req.headers, &state.config.upload)?;
    // 2. the session, fresh (state matters here, so no cache), and the user's entitlements.
    let args = serde_json::json!({ "sessionId": session_id });
    let doc = parse_session(state.query_as(&who, &state.config.get_query, args, trace).await?)?
        .filter(|d| d.user_id == who.user_id)
        .ok_or(Error::SessionNotFound)?;
    if doc.status != "recording" {
        return Err(Error::InvalidSessionState(doc.status));
    }
    let ent_value = state.query_as(&who, &state.config.upload.entitlements_query, serde_json::json!({}), trace).await?;
    let ent: Entitlements = serde_json::from_value(ent_value)
        .map_err(|e| Error::ConvexFunction(format!("entitlements have the wrong shape: {e}")))?;
    let limit = apply_entitlements(&meta, &ent, &state.config.upload)?;
    // 3. the first bytes must be the declared container.
    let body = UploadBody::new(body, limit, meta.content_length);
    let head = body.peek_head().await?;
    if !meta.declared.container.matches(&head) {
        return Err(Error::ContentMismatch(meta.declared.container.essence().into()));
    }
    // 4. stream to Blob under a random name.
    let pathname = format!(
        "listening-sessions/{}/{:016x}.{}",
        sanitize_segment(session_id),
        rand::random::<u64>(),
        meta.declared.container.extension()
    );
    let put = blob.put(
        &pathname,
        &meta.declared.normalised,
        state.config.upload.access,
        || body.reqwest_body(),
        &body.polled,
    );
    let stored = trace.phase("storage", put).await;
    received.store(body.received(), std::sync::atomic::Ordering::SeqCst);
    let stored = stored
        // A failure the body itself recorded (limit, short body, client abort) says more than the
        // transport error it caused.
        .map_err(|e| body.failure().unwrap_or(e))?;
    let size = body.received();
    // 5. recording → transcribing, atomically in Convex; on any refusal, no orphan blob stays.
    let attach = serde_json::json!({
        "sessionId": session_id,
        "audioUrl": stored.url,
        "pathname": stored.pathname,
        "contentType": meta.declared.normalised,
        "sizeBytes": size,
        "durationMs": meta.duration_ms,
    });
    let outcome = match state.convex_token(&who, trace).await {
        Ok(token) => {
            trace.phase("mutation", state.convex.mutation(&state.config.upload.attach_mutation, attach, &token)).await
        }
        Err(e) => Err(e),
    };
    state.forget_session(&who.user_id, session_id);
    let refusal = match outcome {
        Ok(crate::convex::Outcome::Value(_)) => None,
        Ok(threw) => Some(match threw.error_code() {
            Some("invalid_session_state") => Error::InvalidSessionState(
                match &threw {
                    crate::convex::Outcome::Threw { data: Some(d), .. } => d.get("status").and_then(|s| s.as_str()),
                    _ => None,
                }
                .unwrap_or("no longer recording")
                .to_string(),
            ),
            Some("session_not_found") => Error::SessionNotFound,
            _ => Error::ConvexFunction(format!("{threw:?}")),
        }),
        Err(e) => Some(e),
    };
    if let Some(err) = refusal {
        if let Err(del) = blob.delete(std::slice::from_ref(&stored.url)).await {
            // The mutation failed and the cleanup too: say so loudly, the blob is an orphan.
            tracing::error!(target: "session_audio", pathname = %stored.pathname, error = %crate::telemetry::scrub(&del.to_string()),
                "could not delete an orphan blob after a failed attach");
        }
        return Err(err);
    }
    let body = serde_json::json!({
        "sessionId": session_id,
        "status": "transcribing",
        "audioUrl": stored.url,
        "pathname": stored.pathname,
        "contentType": meta.declared.normalised,
        "sizeBytes": size,
        "durationMs": meta.duration_ms,
    });
    Ok(Response {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: Body::Bytes(body.to_string().into_bytes().into()),
    })
}

fn configured_message(e: &Error) -> String {
    match e {
        Error::ConfigMissing(m) | Error::ConfigInvalid(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Session ids go into a blob pathname: keep them to a safe alphabet.
fn sanitize_segment(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(64).collect()
}

/// Private Vercel Blob URLs are read with the store's token, as `@vercel/blob`'s `get()` does.
/// In loopback mode (tests, the local Blob emulator), URLs on the emulator itself — the origin of
/// `VERCEL_BLOB_API_URL` — get it too: the emulator enforces private reads the way Vercel does.
fn private_blob_bearer<'a>(audio_url: &str, token: Option<&'a str>, local_store: Option<&url::Url>) -> Option<&'a str> {
    let url = url::Url::parse(audio_url).ok()?;
    let host = url.host_str()?;
    let vercel_private = url.scheme() == "https" && host.ends_with(".private.blob.vercel-storage.com");
    let local = local_store.is_some_and(|store| store.origin() == url.origin());
    if vercel_private || local {
        token
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_only_for_private_blob_hosts() {
        let t = Some("vercel_blob_rw_store_secret");
        let store = url::Url::parse("http://127.0.0.1:9000/api/blob").unwrap();
        assert_eq!(private_blob_bearer("https://s.private.blob.vercel-storage.com/a.webm", t, None), t);
        assert_eq!(private_blob_bearer("http://s.private.blob.vercel-storage.com/a.webm", t, None), None);
        assert_eq!(private_blob_bearer("https://s.public.blob.vercel-storage.com/a.webm", t, None), None);
        assert_eq!(private_blob_bearer("https://evil.example/x.private.blob.vercel-storage.com", t, None), None);
        assert_eq!(private_blob_bearer("http://127.0.0.1:9000/a", t, None), None);
        assert_eq!(private_blob_bearer("http://127.0.0.1:9000/a", t, Some(&store)), t);
        assert_eq!(private_blob_bearer("http://127.0.0.1:9001/a", t, Some(&store)), None);
    }

    #[test]
    fn small_known_bodies_are_read_in_one_go_the_rest_streamed() {
        let table = [
            (None, false),
            (Some(0), true),
            (Some(16 * 1024), true),
            (Some(ONE_READ_MAX_BYTES), true),
            (Some(ONE_READ_MAX_BYTES + 1), false),
            (Some(256 * 1024 * 1024), false),
        ];
        for (len, want) in table {
            assert_eq!(fits_in_one_read(len), want, "{len:?}");
        }
    }
}
