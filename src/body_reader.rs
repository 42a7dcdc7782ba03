//! `BodyReader`: the JS face pulls a streamed response body (audio) through it, chunk by chunk.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use session_audio_core::{self as core, Poll};

/// Pull side of a streamed upstream body. `tryRead` returns a waiting chunk without a thread hop;
/// `read` waits for the next one; `cancel` closes the upstream connection at once.
#[napi]
pub struct BodyReader {
    pub(crate) inner: Arc<tokio::sync::Mutex<core::BodyStream>>,
    /// Held outside the mutex: a pending `read` holds the lock while the upstream is stalled, and
    /// cancel must still close the connection at once.
    pub(crate) abort: tokio::task::AbortHandle,
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
        let buf = unsafe {
            BufferSlice::from_external(&env, ptr, len, bytes, |_, b| {
                drop(b);
                core::playback::trim::chunk_freed();
            })?
        };
        unsafe { BufferSlice::to_napi_value(raw_env, buf) }
    }
}
