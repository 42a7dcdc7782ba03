//! The upload body as it streams in from JS: the limits (bytes, `Content-Length`, idle time)
//! enforced while it passes, the head held back for the container check, and a fresh
//! `reqwest::Body` for a retry while nothing has been read.
//!
//! Nothing is read before the identity and session checks pass; until then the binding's channel
//! holds at most one chunk of at most `MAX_CHUNK_BYTES` (the binding splits larger JS chunks).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, Mutex};

use crate::error::{Code, Error, Result};
use crate::media::duration::{Measured, Meter};
use crate::media::Container;
use crate::upload::rules::human_bytes;

/// The request body as it arrives from JS: chunks, then the end (`None`), or the client's abort
/// (`Some(Err(reason))`).
pub type Chunks = mpsc::Receiver<std::result::Result<Bytes, String>>;

/// The largest chunk the binding hands over, and how many chunks its channel holds: together, the
/// most of an upload held in memory before it is read (64 KiB), whatever size JS's chunks are.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;
pub const CHANNEL_CHUNKS: usize = 1;

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
    /// How long the client may send nothing.
    idle: Duration,
    /// When the whole body must have arrived: a client trickling a byte just inside `idle` cannot
    /// hold a Blob PUT open for hours.
    deadline: tokio::time::Instant,
    total: Duration,
    /// Every chunk handed on is measured as it passes (`duration`): no second read.
    meter: Arc<std::sync::Mutex<Meter>>,
    pub polled: Arc<AtomicBool>,
    /// Why the stream failed, when it failed on our side (limit, short body, client abort).
    failure: Arc<std::sync::Mutex<Option<Error>>>,
}

impl UploadBody {
    pub fn new(
        rx: Chunks,
        container: Container,
        limit: u64,
        expected: Option<u64>,
        idle: Duration,
        total: Duration,
    ) -> UploadBody {
        UploadBody {
            source: Arc::new(Mutex::new(Source { rx, pending: None, done: false })),
            limit,
            expected,
            received: Arc::new(AtomicU64::new(0)),
            idle,
            deadline: tokio::time::Instant::now() + total,
            total,
            meter: Arc::new(std::sync::Mutex::new(Meter::new(container))),
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

    /// The next chunk from JS, or the idle timeout. On a timeout the channel is closed, so JS's
    /// next write reports that nobody reads any more and it stops pulling the client's body.
    async fn recv(&self, src: &mut Source) -> Result<Option<std::result::Result<Bytes, String>>> {
        let left = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(self.idle.min(left), src.rx.recv()).await {
            Ok(item) => Ok(item),
            Err(_) => {
                src.done = true;
                src.rx.close();
                Err(if left <= self.idle { Error::UploadTooSlow(self.total) } else { Error::UploadTimeout(self.idle) })
            }
        }
    }

    /// The duration of what was handed on, measured from the container.
    pub fn measured(&self) -> Measured {
        self.meter.lock().unwrap_or_else(|p| p.into_inner()).finish()
    }

    /// Bytes handed on so far (the Blob put's progress).
    pub fn progress(&self) -> &AtomicU64 {
        &self.received
    }

    /// Read until `Container::SNIFF_BYTES` are in hand (or the body ends) and keep them to be
    /// sent first. Nothing is stored yet. Errors: empty body, client abort.
    pub async fn peek_head(&self) -> Result<Bytes> {
        let mut src = self.source.lock().await;
        let mut head = BytesMut::new();
        while head.len() < Container::SNIFF_BYTES && !src.done {
            match self.recv(&mut src).await? {
                Some(Ok(chunk)) => head.extend_from_slice(&chunk),
                Some(Err(reason)) => return Err(Error::IncompleteBody(format!("client aborted: {reason}"))),
                None => src.done = true,
            }
        }
        let head = head.freeze();
        if head.is_empty() {
            return Err(Error::BadRequest {
                code: Code::EmptyBody,
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
            None => match self.recv(&mut src).await {
                Err(timeout) => return Some(Err(self.fail(timeout))),
                Ok(Some(Ok(c))) => Some(c),
                Ok(Some(Err(reason))) => {
                    src.done = true;
                    return Some(Err(self.fail(Error::IncompleteBody(format!("client aborted: {reason}")))));
                }
                Ok(None) => {
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
            (Some(c), _) => {
                self.meter.lock().unwrap_or_else(|p| p.into_inner()).feed(&c);
                Some(Ok(c))
            }
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

    const IDLE: Duration = Duration::from_secs(30);
    const TOTAL: Duration = Duration::from_secs(300);

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
        let body = UploadBody::new(
            feed(vec![Ok(b"RIFF"), Ok(b"\0\0\0\0WAVE"), Ok(b"data")]),
            Container::Wav,
            100,
            Some(16),
            IDLE,
            TOTAL,
        );
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
            let body = UploadBody::new(feed(chunks), Container::Wav, limit, expected, IDLE, TOTAL);
            assert_eq!(drain(&body).await.1.as_deref(), Some(code), "limit {limit} expected {expected:?}");
        }
        let empty = UploadBody::new(feed(vec![]), Container::Wav, 100, None, IDLE, TOTAL);
        assert_eq!(empty.peek_head().await.unwrap_err().code(), "empty_body");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_is_abandoned_after_the_idle_timeout() {
        // Stalls before the head is complete: the peek itself times out.
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(Bytes::from_static(b"RIFF"))).await.unwrap();
        let body = UploadBody::new(rx, Container::Wav, 1 << 20, None, IDLE, TOTAL);
        assert_eq!(body.peek_head().await.unwrap_err().code(), "upload_timeout");
        // JS is told: its next write finds the channel closed.
        assert!(tx.send(Ok(Bytes::from_static(b"more"))).await.is_err());

        // Stalls mid-body, after the head: the stream fails with the timeout as its reason.
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(Bytes::from(vec![0u8; Container::SNIFF_BYTES]))).await.unwrap();
        tx.send(Ok(Bytes::from_static(b"rest"))).await.unwrap();
        let body = UploadBody::new(rx, Container::Wav, 1 << 20, None, IDLE, TOTAL);
        body.peek_head().await.unwrap();
        assert_eq!(drain(&body).await.1.as_deref(), Some("upload_timeout"));
        drop(tx);

        // A slow body that keeps sending (each gap under the timeout) is not abandoned.
        let (tx, rx) = mpsc::channel(4);
        let body = UploadBody::new(rx, Container::Wav, 1 << 20, None, IDLE, TOTAL);
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                tx.send(Ok(Bytes::from(vec![1u8; 100]))).await.unwrap();
                tokio::time::sleep(IDLE - Duration::from_secs(1)).await;
            }
        });
        assert_eq!(drain(&body).await, (vec![1u8; 500], None));
        sender.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_inside_the_idle_timeout_still_ends_at_the_total_deadline() {
        // One byte every IDLE - 1 s: never idle, but the whole upload may take only TOTAL.
        let (tx, rx) = mpsc::channel(4);
        let body = UploadBody::new(rx, Container::Wav, 1 << 20, None, IDLE, TOTAL);
        let sender = tokio::spawn(async move {
            for _ in 0..1000 {
                if tx.send(Ok(Bytes::from_static(b"x"))).await.is_err() {
                    return true; // told to stop
                }
                tokio::time::sleep(IDLE - Duration::from_secs(1)).await;
            }
            false
        });
        let started = tokio::time::Instant::now();
        let (got, failure) = drain(&body).await;
        assert_eq!(failure.as_deref(), Some("upload_timeout"));
        assert!(started.elapsed() <= TOTAL + Duration::from_secs(1), "ended at {:?}", started.elapsed());
        assert!(!got.is_empty() && got.len() < 1000);
        assert!(sender.await.unwrap(), "the sender was told to stop");
    }
}
