//! `BodyReader`: the JS face pulls a streamed response body (audio) through it, chunk by chunk.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use session_audio_core as core;

/// Pull side of a streamed upstream body. `tryRead` returns the chunks waiting without a thread
/// hop; `read` waits for the next ones; `cancel` closes the upstream connection at once. Both hand
/// over every chunk already buffered (up to `BATCH_MAX` bytes) in one call: each call, and each
/// awaited one's hop to tokio and back, is what a streamed GiB costs the JS thread (BENCHMARKS.md).
#[napi]
pub struct BodyReader {
    pub(crate) inner: Arc<tokio::sync::Mutex<core::BodyStream>>,
    /// Held outside the mutex: a pending `read` holds the lock while the upstream is stalled, and
    /// cancel must still close the connection at once.
    pub(crate) abort: tokio::task::AbortHandle,
}

#[napi]
impl BodyReader {
    /// The chunks buffered now (at least one), else `null` (call `read`, which also reports the end).
    // Typed as `Uint8Array` (a `Buffer` is one) so the types need no @types/node.
    #[napi(ts_return_type = "Uint8Array[] | null")]
    pub fn try_read(&self) -> Result<Chunks> {
        let Ok(mut stream) = self.inner.try_lock() else { return Ok(Chunks(None)) };
        chunks(stream.try_next_batch())
    }

    /// The next chunks (at least one), or `null` at the end. Rejects when the upstream fails mid-stream.
    #[napi(ts_return_type = "Promise<Uint8Array[] | null>")]
    pub async fn read(&self) -> Result<Chunks> {
        let mut stream = self.inner.lock().await;
        chunks(stream.next_batch().await)
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

fn chunks(batch: core::Batch) -> Result<Chunks> {
    match batch {
        core::Batch::Chunks(c) => Ok(Chunks(Some(c))),
        core::Batch::Pending | core::Batch::End => Ok(Chunks(None)),
        core::Batch::Failed(e) => Err(Error::from_reason(format!("audio upstream failed mid-stream: {e}"))),
    }
}

/// Upstream chunks on their way to JS: an array of `Buffer`s (each as `JsChunk` makes it), or `null`.
pub struct Chunks(Option<Vec<core::Chunk>>);

impl ToNapiValue for Chunks {
    unsafe fn to_napi_value(raw_env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        let Some(list) = val.0 else {
            return unsafe { Null::to_napi_value(raw_env, Null) };
        };
        let list: Vec<JsChunk> = list.into_iter().map(|c| JsChunk(Some(c))).collect();
        unsafe { Vec::<JsChunk>::to_napi_value(raw_env, list) }
    }
}

/// One upstream chunk on its way to JS, crossing as the core decided (`core::Crossing`, see
/// `handover` there). Shared: an external view of hyper's own `Bytes`, which the finalizer drops
/// when V8 collects the `Buffer` — no copy, for the few streams whose readers keep up. Copied:
/// into a `Buffer` V8 allocates, here on the JS thread, and the Rust bytes dropped at once — for
/// the many, so the memory JS holds is allocated, counted and freed by V8 and the JS thread.
/// The conversion runs on the JS thread, which is why an async `read` can return it too.
pub struct JsChunk(Option<core::Chunk>);

impl ToNapiValue for JsChunk {
    unsafe fn to_napi_value(raw_env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        let Some(core::Chunk { bytes, crossing }) = val.0 else {
            return unsafe { Null::to_napi_value(raw_env, Null) };
        };
        let env = Env::from_raw(raw_env);
        if bytes.is_empty() || crossing == core::Crossing::Copied {
            // (napi also refuses an external view of nothing; an empty chunk is harmless to copy.)
            let buf = BufferSlice::copy_from(&env, &bytes[..])?;
            drop(bytes);
            // hyper's read buffer may have gone with these bytes, after its stream ended.
            core::playback::trim::chunk_freed();
            return unsafe { BufferSlice::to_napi_value(raw_env, buf) };
        }
        let ptr = bytes.as_ptr() as *mut u8;
        let len = bytes.len();
        // SAFETY: `ptr..ptr+len` is owned by `bytes`, which moves into the finalizer hint and so
        // lives exactly as long as the JS Buffer. Nothing on the Rust side touches this chunk again,
        // and the consumers of the response body only read it.
        let buf = unsafe {
            BufferSlice::from_external(&env, ptr, len, bytes, |_, b| {
                drop(b);
                core::playback::trim::chunk_freed();
            })?
        };
        unsafe { BufferSlice::to_napi_value(raw_env, buf) }
    }
}
