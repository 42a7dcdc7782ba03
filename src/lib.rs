//! The napi binding: converts JS values to core types and back, nothing else. All decisions live
//! in `crates/core`. The JS face (`index.js`) turns `NativeResponse` into a Web `Response`.

#![deny(clippy::all)]

mod options;

use std::collections::HashMap;
use std::sync::Arc;

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use session_audio_core::{self as core, Body, Poll};

pub use options::AudioOptions;

/// The request fields the handlers read, as the JS face collects them from a Web `Request`.
#[napi(object)]
pub struct NativeRequest {
    pub method: String,
    pub url: String,
    /// `[name, value]` pairs, as `[...request.headers]` gives them.
    pub headers: Vec<Vec<String>>,
    pub session_id: Option<String>,
}

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

/// Pull side of a streamed upstream body. `tryRead` returns a waiting chunk without a thread hop;
/// `read` waits for the next one; `cancel` closes the upstream connection at once.
#[napi]
pub struct BodyReader {
    inner: Arc<tokio::sync::Mutex<core::BodyStream>>,
    /// Held outside the mutex: a pending `read` holds the lock while the upstream is stalled, and
    /// cancel must still close the connection at once.
    abort: tokio::task::AbortHandle,
}

#[napi]
impl BodyReader {
    /// A chunk if one is buffered, else `null` (call `read`, which also reports the end).
    // Typed as `Uint8Array` (a `Buffer` is one) so the types need no @types/node.
    #[napi(ts_return_type = "Uint8Array | null")]
    pub fn try_read(&self) -> Result<Chunk> {
        let Ok(mut stream) = self.inner.try_lock() else { return Ok(Chunk(None)) };
        match stream.try_next() {
            Poll::Chunk(b) => Ok(Chunk(Some(b))),
            Poll::Pending | Poll::End => Ok(Chunk(None)),
            Poll::Failed(e) => Err(Error::from_reason(format!("audio upstream failed mid-stream: {e}"))),
        }
    }

    /// The next chunk, or `null` at the end. Rejects when the upstream fails mid-stream.
    #[napi(ts_return_type = "Promise<Uint8Array | null>")]
    pub async fn read(&self) -> Result<Chunk> {
        let mut stream = self.inner.lock().await;
        match stream.next().await {
            Poll::Chunk(b) => Ok(Chunk(Some(b))),
            Poll::Pending | Poll::End => Ok(Chunk(None)),
            Poll::Failed(e) => Err(Error::from_reason(format!("audio upstream failed mid-stream: {e}"))),
        }
    }

    /// The client went away. Safe to call more than once, and while a `read` is pending.
    #[napi]
    pub fn cancel(&self) {
        // Aborting the pump drops the upstream response (closing its connection) and its sender,
        // so a pending `read` wakes up and resolves `null`.
        self.abort.abort();
        if let Ok(mut stream) = self.inner.try_lock() {
            stream.cancel();
        }
    }
}

/// One upstream chunk on its way to JS, handed over without copying: the `Buffer` is an external
/// view of hyper's own `Bytes`, which the finalizer drops when V8 collects the `Buffer`. Copying
/// each chunk (`to_vec`) cost a fresh 128–400 KiB allocation per chunk — glibc serves those with
/// mmap, so every chunk paid page faults on first touch (seen in the profile, BENCHMARKS.md).
/// The conversion runs on the JS thread, which is why an async `read` can return it too.
pub struct Chunk(Option<bytes::Bytes>);

impl ToNapiValue for Chunk {
    unsafe fn to_napi_value(raw_env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        let Some(bytes) = val.0 else {
            return unsafe { Null::to_napi_value(raw_env, Null) };
        };
        let env = Env::from_raw(raw_env);
        if bytes.is_empty() {
            // napi refuses an external view of nothing; an empty chunk is harmless to copy.
            let buf = BufferSlice::copy_from(&env, [])?;
            return unsafe { BufferSlice::to_napi_value(raw_env, buf) };
        }
        let ptr = bytes.as_ptr() as *mut u8;
        let len = bytes.len();
        // SAFETY: `ptr..ptr+len` is owned by `bytes`, which moves into the finalizer hint and so
        // lives exactly as long as the JS Buffer. Nothing on the Rust side touches this chunk again,
        // and the consumers of the response body only read it.
        let buf = unsafe { BufferSlice::from_external(&env, ptr, len, bytes, |_, b| drop(b))? };
        unsafe { BufferSlice::to_napi_value(raw_env, buf) }
    }
}

/// A finished request, as handed to the `onRequest` option.
#[napi(object, object_from_js = false)]
pub struct RequestRecord {
    pub request_id: String,
    pub method: String,
    /// `"get"` or `"post"`.
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
    /// Uploads: `"measured"` (from the container) or `"declared"` (the container does not say).
    pub duration_source: Option<String>,
}

impl From<&core::telemetry::RequestRecord> for RequestRecord {
    fn from(r: &core::telemetry::RequestRecord) -> Self {
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
        }
    }
}

/// Weak (does not keep Node alive), not callee-handled (the callback gets the record only).
type RecordCallback = ThreadsafeFunction<RequestRecord, (), RequestRecord, Status, false, true>;

/// One configured handler set. A configuration problem does not throw: it is kept and answered as
/// `503 config_missing` / `config_invalid` on every request, so a misconfigured deployment serves
/// clear errors instead of crashing the route module. (Only misuse of the API throws: an option of
/// the wrong JS type is a `TypeError` from napi, which `createAudioHandlers` surfaces at setup.)
#[napi]
pub struct AudioHandler {
    state: std::result::Result<Arc<core::State>, Arc<core::Misconfigured>>,
}

#[napi]
impl AudioHandler {
    /// `options`: the explicit options; `env`: the values of `envKeys()` in the environment.
    /// Options win, then the environment, then the defaults (the core parses the result once).
    /// `onRequest`: called with each finished request's record (never blocks the request).
    #[napi(constructor)]
    pub fn new(
        options: AudioOptions,
        env: HashMap<String, String>,
        #[napi(ts_arg_type = "((record: RequestRecord) => void) | undefined | null")] on_request: Option<
            RecordCallback,
        >,
    ) -> Self {
        let sink: Option<core::telemetry::RecordSink> = on_request.map(|tsfn| {
            let tsfn = Arc::new(tsfn);
            Arc::new(move |r: &core::telemetry::RequestRecord| {
                tsfn.call(RequestRecord::from(r), ThreadsafeFunctionCallMode::NonBlocking);
            }) as core::telemetry::RecordSink
        });
        // The one place options and the environment meet.
        let lookup = |key: &str| options.setting(key).or_else(|| env.get(key).cloned());
        let state = match core::Config::from_lookup(lookup) {
            Ok(config) => {
                let telemetry = config.telemetry.clone();
                core::State::new(config, sink.clone())
                    .map(Arc::new)
                    .map_err(|e| Arc::new(core::Misconfigured::new(e, &telemetry, sink)))
            }
            Err(rejected) => Err(Arc::new(core::Misconfigured::new(rejected.error, &rejected.telemetry, sink))),
        };
        AudioHandler { state }
    }

    /// The configuration problem, if any (`"config_missing: ..."`), for diagnostics.
    #[napi(getter)]
    pub fn config_error(&self) -> Option<String> {
        self.state.as_ref().err().map(|m| format!("{}: {}", m.error().code(), m.error().public_message()))
    }

    /// GET/HEAD: stream the session's audio to its owner.
    #[napi]
    pub async fn get(&self, req: NativeRequest) -> Result<NativeResponse> {
        let req = Self::core_request(req);
        // A panic is caught inside the core (`serve`), where it is recorded and reported too.
        let resp = match &self.state {
            Ok(state) => core::get(state, req).await,
            Err(m) => m.respond("get", &req).await,
        };
        Ok(to_native(resp))
    }

    /// POST: start an upload. The returned call takes the body's chunks and yields the response.
    #[napi]
    pub fn post(&self, req: NativeRequest) -> PostCall {
        let (tx, rx) = tokio::sync::mpsc::channel(core::ingress::CHANNEL_CHUNKS);
        let (done, response) = tokio::sync::oneshot::channel();
        let req = Self::core_request(req);
        let state = self.state.clone();
        napi::bindgen_prelude::spawn(async move {
            let resp = match state {
                Err(m) => m.respond("post", &req).await,
                Ok(state) => core::post(&state, req, rx).await,
            };
            // Nobody is waiting when the JS side dropped the call: the answer has nowhere to go.
            done.send(resp).ok();
        });
        PostCall { tx: std::sync::Mutex::new(Some(tx)), response: tokio::sync::Mutex::new(Some(response)) }
    }
}

impl AudioHandler {
    fn core_request(req: NativeRequest) -> core::Request {
        core::Request {
            method: req.method,
            url: req.url,
            headers: req
                .headers
                .into_iter()
                .filter_map(|pair| {
                    let mut it = pair.into_iter();
                    Some((it.next()?, it.next()?))
                })
                .collect(),
            session_id: req.session_id,
        }
    }
}

fn to_native(resp: core::Response) -> NativeResponse {
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

/// The native side of one POST: JS writes the request body's chunks in (`tryWrite` without a
/// thread hop while the channel has room, `write` when it is full) and awaits `response()`.
/// The handler reads the body only after every check passed; until then the bounded channel
/// holds JS back, and if the handler refuses, writes report `false` so JS stops reading.
#[napi]
pub struct PostCall {
    tx: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<std::result::Result<bytes::Bytes, String>>>>,
    response: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<core::Response>>>,
}

/// The part of a JS chunk taken in one write: at most `MAX_CHUNK_BYTES`, so that what waits in the
/// channel before the handler reads is bounded in bytes, whatever size the client's chunks are.
fn piece(chunk: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&chunk[..chunk.len().min(core::ingress::MAX_CHUNK_BYTES)])
}

#[napi]
impl PostCall {
    fn sender(&self) -> Option<tokio::sync::mpsc::Sender<std::result::Result<bytes::Bytes, String>>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many bytes of `chunk` were taken (at most 64 KiB: call again with the rest); 0: the
    /// channel is full (await `write`); -1: the handler stopped reading.
    #[napi]
    pub fn try_write(&self, chunk: &[u8]) -> i32 {
        let Some(tx) = self.sender() else { return -1 };
        let piece = piece(chunk);
        let taken = piece.len() as i32;
        match tx.try_send(Ok(piece)) {
            Ok(()) => taken,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => 0,
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => -1,
        }
    }

    /// Wait for room and write the first piece of `chunk`; resolves how many bytes were taken (call
    /// again with the rest), or -1 when the handler stopped reading. The bytes are copied before
    /// this returns, so the caller may reuse its buffer at once.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn write<'env>(&self, env: &'env Env, chunk: &[u8]) -> Result<PromiseRaw<'env, i32>> {
        let piece = piece(chunk);
        let taken = piece.len() as i32;
        let tx = self.sender();
        env.spawn_future(async move {
            Ok(match tx {
                Some(tx) if tx.send(Ok(piece)).await.is_ok() => taken,
                _ => -1,
            })
        })
    }

    /// The body ended normally.
    #[napi]
    pub fn end(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The body failed (client aborted): the upload is abandoned and nothing is stored.
    #[napi]
    pub fn abort(&self, reason: String) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if let Err(tokio::sync::mpsc::error::TrySendError::Full(item)) = tx.try_send(Err(reason)) {
                napi::bindgen_prelude::spawn(async move {
                    // A closed channel means the handler already stopped reading: nothing to abort.
                    tx.send(item).await.ok();
                });
            }
        }
    }

    /// The handler's answer (resolves once, when the upload finished or was refused).
    #[napi]
    pub async fn response(&self) -> Result<NativeResponse> {
        let rx = self.response.lock().await.take().ok_or_else(|| Error::from_reason("response() called twice"))?;
        let resp = rx.await.unwrap_or_else(|_| core::Error::Internal("POST handler vanished".into()).render());
        Ok(to_native(resp))
    }
}

/// The environment variables the handlers read; the JS face snapshots exactly these from
/// `process.env`.
#[napi]
pub fn env_keys() -> Vec<String> {
    options::env_keys().into_iter().map(str::to_string).collect()
}

/// What `sweepOrphanAudio` found and did.
#[napi(object)]
pub struct SweepReport {
    /// Blobs under `listening-sessions/`.
    pub listed: f64,
    /// Referenced by a session.
    pub attached: f64,
    /// Unattached but younger than `olderThanMs` (or of unknown age): left alone.
    pub kept_young: f64,
    /// Unattached and older than `olderThanMs`: deleted, or in a dry run what would be.
    pub orphans: Vec<String>,
    pub deleted: f64,
    pub dry_run: bool,
}

/// Delete (or with `dryRun` only list) the blobs under `listening-sessions/` that no session
/// references and that are older than `olderThanMs`. `options`/`env` as for the handlers.
#[napi]
pub async fn sweep_orphan_audio(
    options: AudioOptions,
    env: HashMap<String, String>,
    older_than_ms: f64,
    dry_run: bool,
) -> Result<SweepReport> {
    if !(older_than_ms.is_finite() && older_than_ms >= 0.0) {
        return Err(Error::new(Status::InvalidArg, "olderThanMs must be a number of ms ≥ 0"));
    }
    let lookup = |key: &str| options.setting(key).or_else(|| env.get(key).cloned());
    let config = core::sweep::SweepConfig::from_lookup(lookup)
        .map_err(|e| Error::new(Status::InvalidArg, format!("{}: {}", e.code(), e.public_message())))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let older_than = std::time::Duration::from_millis(older_than_ms as u64);
    let report = core::sweep::sweep(&config, older_than, dry_run, now_ms)
        .await
        .map_err(|e| Error::from_reason(format!("{}: {}", e.code(), core::telemetry::scrub(&e.to_string()))))?;
    Ok(SweepReport {
        listed: report.listed as f64,
        attached: report.attached as f64,
        kept_young: report.kept_young as f64,
        orphans: report.orphans,
        deleted: report.deleted as f64,
        dry_run: report.dry_run,
    })
}

/// Converting the argument is the check: napi throws a `TypeError` naming an option of the wrong type.
#[napi]
pub fn check_options(options: AudioOptions) {
    drop(options);
}

/// The option names `AudioOptions` has, as JS spells them.
#[napi]
pub fn option_names() -> Vec<String> {
    options::option_names()
}
