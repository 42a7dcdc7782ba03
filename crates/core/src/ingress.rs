//! The upload body as it streams in from JS: the limits (bytes, `Content-Length`) enforced while it
//! passes, the head held back for the container check, and a fresh `reqwest::Body` for a retry
//! while nothing has been read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, Mutex};

use crate::error::{Error, Result};
use crate::media::Container;
use crate::upload_rules::human_bytes;

/// The request body as it arrives from JS: chunks, then the end (`None`), or the client's abort
/// (`Some(Err(reason))`).
pub type Chunks = mpsc::Receiver<std::result::Result<Bytes, String>>;

struct Source {
    rx: Chunks,
    pending: Option<Bytes>,
    done: bool,
}

/// The upload body with its limits enforced while it streams. It can make a fresh
/// `reqwest::Body` for a retry as long as nothing has been read (`polled`).
#[derive(Clone)]
pub struct UploadBody {
    source: Arc<Mutex<Source>>,
    limit: u64,
    expected: Option<u64>,
    received: Arc<AtomicU64>,
    pub polled: Arc<AtomicBool>,
    /// Why the stream failed, when it failed on our side (limit, short body, client abort).
    failure: Arc<std::sync::Mutex<Option<Error>>>,
}

impl UploadBody {
    pub fn new(rx: Chunks, limit: u64, expected: Option<u64>) -> UploadBody {
        UploadBody {
            source: Arc::new(Mutex::new(Source { rx, pending: None, done: false })),
            limit,
            expected,
            received: Arc::new(AtomicU64::new(0)),
            polled: Arc::new(AtomicBool::new(false)),
            failure: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// The failure the stream recorded, if the upload failed because of the body.
    pub fn failure(&self) -> Option<Error> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn fail(&self, e: Error) -> std::io::Error {
        let msg = e.to_string();
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        std::io::Error::other(msg)
    }

    /// Read until `Container::SNIFF_BYTES` are in hand (or the body ends) and keep them to be
    /// sent first. Nothing is stored yet. Errors: empty body, client abort.
    pub async fn peek_head(&self) -> Result<Bytes> {
        let mut src = self.source.lock().await;
        let mut head = BytesMut::new();
        while head.len() < Container::SNIFF_BYTES && !src.done {
            match src.rx.recv().await {
                Some(Ok(chunk)) => head.extend_from_slice(&chunk),
                Some(Err(reason)) => return Err(Error::IncompleteBody(format!("client aborted: {reason}"))),
                None => src.done = true,
            }
        }
        let head = head.freeze();
        if head.is_empty() {
            return Err(Error::BadRequest {
                code: "empty_body",
                message: "The request body is empty: send the audio bytes as the body.".into(),
            });
        }
        src.pending = Some(head.clone());
        Ok(head)
    }

    async fn next_chunk(&self) -> Option<std::io::Result<Bytes>> {
        self.polled.store(true, Ordering::SeqCst);
        let mut src = self.source.lock().await;
        let chunk = match src.pending.take() {
            Some(p) => Some(p),
            None if src.done => None,
            None => match src.rx.recv().await {
                Some(Ok(c)) => Some(c),
                Some(Err(reason)) => {
                    src.done = true;
                    return Some(Err(self.fail(Error::IncompleteBody(format!("client aborted: {reason}")))));
                }
                None => {
                    src.done = true;
                    None
                }
            },
        };
        let received = match &chunk {
            Some(c) => self.received.fetch_add(c.len() as u64, Ordering::SeqCst) + c.len() as u64,
            None => self.received.load(Ordering::SeqCst),
        };
        let limit = self.limit;
        if received > limit {
            // Cut off the moment the limit is passed: the partial upload is aborted, not stored.
            src.done = true;
            src.rx.close();
            return Some(Err(self.fail(Error::PayloadTooLarge(format!("limit {}", human_bytes(limit))))));
        }
        match (chunk, self.expected) {
            (Some(_), Some(exp)) if received > exp => {
                src.done = true;
                Some(Err(self.fail(Error::IncompleteBody(format!("more than the declared {exp} bytes")))))
            }
            (Some(c), _) => Some(Ok(c)),
            // A body shorter than its Content-Length: a client abort, or a proxy/middleware that
            // truncated it (Next buffers bodies behind middleware and silently cuts them at 10 MB).
            (None, Some(exp)) if received < exp => {
                Some(Err(self.fail(Error::IncompleteBody(format!("{received} of {exp} bytes arrived")))))
            }
            (None, _) => None,
        }
    }

    /// A fresh request body over the same source.
    pub fn reqwest_body(&self) -> reqwest::Body {
        let this = self.clone();
        let stream = futures_util::stream::unfold(this, |this| async move {
            let item = this.next_chunk().await?;
            Some((item, this))
        });
        reqwest::Body::wrap_stream(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn drain(body: &UploadBody) -> (Vec<u8>, Option<String>) {
        let mut stream = Box::pin(futures_util::stream::unfold(body.clone(), |b| async move {
            let item = b.next_chunk().await?;
            Some((item, b))
        }));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(c) => out.extend_from_slice(&c),
                Err(_) => return (out, body.failure().map(|e| e.code().to_string())),
            }
        }
        (out, None)
    }

    fn feed(chunks: Vec<std::result::Result<&'static [u8], &'static str>>) -> Chunks {
        let (tx, rx) = mpsc::channel(chunks.len() + 1);
        for c in chunks {
            tx.try_send(c.map(Bytes::from_static).map_err(String::from)).unwrap();
        }
        rx
    }

    #[tokio::test]
    async fn body_streams_head_then_rest_and_checks_length() {
        let body = UploadBody::new(feed(vec![Ok(b"RIFF"), Ok(b"\0\0\0\0WAVE"), Ok(b"data")]), 100, Some(16));
        assert_eq!(&body.peek_head().await.unwrap()[..], b"RIFF\0\0\0\0WAVE");
        assert!(!body.polled.load(Ordering::SeqCst), "peeking does not count as reading");
        assert_eq!(drain(&body).await, (b"RIFF\0\0\0\0WAVEdata".to_vec(), None));
        assert_eq!(body.received(), 16);
    }

    #[tokio::test]
    async fn body_failures_table() {
        // (chunks, limit, expected Content-Length, failure code)
        type Feed = Vec<std::result::Result<&'static [u8], &'static str>>;
        let cases: Vec<(Feed, u64, Option<u64>, &str)> = vec![
            (vec![Ok(b"0123456789"), Ok(b"0123456789")], 15, None, "payload_too_large"),
            (vec![Ok(b"0123456789"), Ok(b"01234")], 100, Some(20), "incomplete_body"),
            (vec![Ok(b"0123456789"), Err("socket hang up")], 100, None, "incomplete_body"),
            (vec![Ok(b"0123456789"), Ok(b"0123456789")], 100, Some(12), "incomplete_body"),
        ];
        for (chunks, limit, expected, code) in cases {
            let body = UploadBody::new(feed(chunks), limit, expected);
            assert_eq!(drain(&body).await.1.as_deref(), Some(code), "limit {limit} expected {expected:?}");
        }
        let empty = UploadBody::new(feed(vec![]), 100, None);
        assert_eq!(empty.peek_head().await.unwrap_err().code(), "empty_body");
    }
}
