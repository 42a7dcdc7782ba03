//! `PostCall`: the native side of one POST, which the JS face feeds the request body into.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use session_audio_core as core;

use crate::response::NativeResponse;

/// The native side of one POST: JS writes the request body's chunks in (`tryWrite` without a
/// thread hop while the channel has room, `write` when it is full) and awaits `response()`.
/// The handler reads the body only after every check passed; until then the bounded channel
/// holds JS back, and if the handler refuses, writes report `false` so JS stops reading.
#[napi]
pub struct PostCall {
    tx: std::sync::Mutex<Option<Sender>>,
    response: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<core::Response>>>,
}

/// The part of a JS chunk taken in one write: at most `MAX_CHUNK_BYTES`, so that what waits in the
/// channel before the handler reads is bounded in bytes, whatever size the client's chunks are.
fn piece(chunk: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&chunk[..chunk.len().min(core::MAX_CHUNK_BYTES)])
}

/// What a write sends the handler: a piece of the body, or the reason the client gave up.
type Sender = tokio::sync::mpsc::Sender<std::result::Result<bytes::Bytes, String>>;

impl PostCall {
    /// `tx` feeds the handler's body channel; `response` resolves with its answer.
    pub(crate) fn new(tx: Sender, response: tokio::sync::oneshot::Receiver<core::Response>) -> Self {
        PostCall { tx: std::sync::Mutex::new(Some(tx)), response: tokio::sync::Mutex::new(Some(response)) }
    }
}

#[napi]
impl PostCall {
    fn sender(&self) -> Option<Sender> {
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
        Ok(resp.into())
    }
}
