//! POST: what is decided before a byte is stored (headers, limits, entitlements — pure, table-
//! tested), and the ingress body that enforces the limits while it streams.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::{mpsc, Mutex};

use crate::config::UploadConfig;
use crate::error::{Error, Result};
use crate::media::{parse_declared, Container, DeclaredType};

/// What the upload headers say, once validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadMeta {
    pub duration_ms: u64,
    pub declared: DeclaredType,
    pub content_length: Option<u64>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

fn bad(code: &'static str, message: String) -> Error {
    Error::BadRequest { code, message }
}

pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// Validate the metadata headers against the deployment's limits.
pub fn validate_headers(headers: &[(String, String)], cfg: &UploadConfig) -> Result<UploadMeta> {
    let duration_ms = match header(headers, "x-duration-ms") {
        None | Some("") => {
            return Err(bad(
                "missing_duration",
                "The x-duration-ms header (recording length in ms) is required.".into(),
            ))
        }
        Some(raw) => match raw.parse::<u64>() {
            Ok(d) if d >= 1 && d <= cfg.max_duration_ms => d,
            Ok(d) if d > cfg.max_duration_ms => {
                return Err(bad(
                    "invalid_duration",
                    format!("x-duration-ms is {d}, above the limit of {} ms.", cfg.max_duration_ms),
                ))
            }
            _ => {
                return Err(bad(
                    "invalid_duration",
                    format!("x-duration-ms must be a whole number of ms ≥ 1, got {raw:?}."),
                ))
            }
        },
    };
    let declared = match header(headers, "x-content-type") {
        None | Some("") => {
            return Err(bad(
                "missing_content_type",
                "The x-content-type header (the audio MIME type) is required.".into(),
            ))
        }
        Some(raw) => match parse_declared(raw) {
            Ok(d) if cfg.allowed.contains(&d.container) => d,
            Ok(d) => return Err(Error::UnsupportedMediaType(d.container.essence().into())),
            Err(Some(essence)) => return Err(Error::UnsupportedMediaType(essence)),
            Err(None) => {
                return Err(bad("invalid_content_type", format!("x-content-type is not a MIME type: {raw:?}.")))
            }
        },
    };
    let content_length = match header(headers, "content-length") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .map_err(|_| bad("invalid_content_length", format!("Content-Length is not a number: {raw:?}.")))?,
        ),
    };
    if let Some(len) = content_length {
        if len > cfg.max_bytes {
            return Err(Error::PayloadTooLarge(format!("limit {}", human_bytes(cfg.max_bytes))));
        }
    }
    Ok(UploadMeta { duration_ms, declared, content_length })
}

/// `entitlements:getForCurrentUser`'s answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entitlements {
    pub can_record: bool,
    #[serde(default)]
    pub max_recording_ms: Option<f64>,
    #[serde(default)]
    pub max_upload_bytes: Option<f64>,
}

/// Apply the user's own limits; returns the byte limit for this upload.
pub fn apply_entitlements(meta: &UploadMeta, ent: &Entitlements, cfg: &UploadConfig) -> Result<u64> {
    if !ent.can_record {
        return Err(Error::EntitlementDenied);
    }
    if let Some(max) = ent.max_recording_ms.filter(|m| m.is_finite() && *m >= 0.0) {
        if meta.duration_ms as f64 > max {
            return Err(Error::DurationLimitExceeded(format!("limit {} ms", max as u64)));
        }
    }
    let user_bytes = ent.max_upload_bytes.filter(|m| m.is_finite() && *m >= 0.0).map(|m| m as u64);
    let limit = user_bytes.map_or(cfg.max_bytes, |u| u.min(cfg.max_bytes));
    if meta.content_length.is_some_and(|len| len > limit) {
        return Err(Error::PayloadTooLarge(format!("limit {}", human_bytes(limit))));
    }
    Ok(limit)
}

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
    limit: Arc<AtomicU64>,
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
            limit: Arc::new(AtomicU64::new(limit)),
            expected,
            received: Arc::new(AtomicU64::new(0)),
            polled: Arc::new(AtomicBool::new(false)),
            failure: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::SeqCst);
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
            return Err(bad("empty_body", "The request body is empty: send the audio bytes as the body.".into()));
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
        let limit = self.limit.load(Ordering::SeqCst);
        if received > limit {
            // Cut off the moment the limit is passed: the partial upload is aborted, not stored.
            src.done = true;
            src.rx.close();
            return Some(Err(self.fail(Error::PayloadTooLarge(format!("limit {}", human_bytes(limit))))));
        }
        match (chunk, self.expected) {
            (Some(c), Some(exp)) if received > exp => {
                src.done = true;
                let _ = c;
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
    use crate::config::BlobAccess;
    use futures_util::StreamExt;

    fn cfg() -> UploadConfig {
        UploadConfig {
            max_bytes: 1000,
            max_duration_ms: 60_000,
            allowed: vec![Container::WebM, Container::Wav],
            access: BlobAccess::Private,
            blob_api_url: url::Url::parse("http://127.0.0.1:1/api/blob").unwrap(),
            attach_mutation: "m".into(),
            entitlements_query: "q".into(),
        }
    }

    fn hv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn header_validation_table() {
        let ok = [("x-duration-ms", "5000"), ("x-content-type", "audio/webm;codecs=opus")];
        let with = |extra: &[(&'static str, &'static str)], drop: &str| {
            let mut v: Vec<(&str, &str)> = ok.iter().copied().filter(|(k, _)| *k != drop).collect();
            v.extend_from_slice(extra);
            validate_headers(&hv(&v), &cfg())
        };
        let meta = with(&[("content-length", "900")], "").unwrap();
        assert_eq!(meta.duration_ms, 5000);
        assert_eq!(meta.declared.normalised, "audio/webm;codecs=opus");
        assert_eq!(meta.content_length, Some(900));

        let table: Vec<(Result<UploadMeta>, &str)> = vec![
            (with(&[], "x-duration-ms"), "missing_duration"),
            (with(&[("x-duration-ms", "")], "x-duration-ms"), "missing_duration"),
            (with(&[("x-duration-ms", "0")], "x-duration-ms"), "invalid_duration"),
            (with(&[("x-duration-ms", "-5")], "x-duration-ms"), "invalid_duration"),
            (with(&[("x-duration-ms", "1.5")], "x-duration-ms"), "invalid_duration"),
            (with(&[("x-duration-ms", "abc")], "x-duration-ms"), "invalid_duration"),
            (with(&[("x-duration-ms", "60001")], "x-duration-ms"), "invalid_duration"),
            (with(&[], "x-content-type"), "missing_content_type"),
            (with(&[("x-content-type", "nonsense")], "x-content-type"), "invalid_content_type"),
            (with(&[("x-content-type", "text/html")], "x-content-type"), "unsupported_media_type"),
            (with(&[("x-content-type", "audio/mpeg")], "x-content-type"), "unsupported_media_type"),
            (with(&[("content-length", "1001")], ""), "payload_too_large"),
            (with(&[("content-length", "lots")], ""), "invalid_content_length"),
        ];
        for (got, code) in table {
            assert_eq!(got.map(|_| ()).unwrap_err().code(), code);
        }
        assert!(with(&[("x-duration-ms", "60000")], "x-duration-ms").is_ok());
    }

    #[test]
    fn entitlement_table() {
        let meta =
            UploadMeta { duration_ms: 5000, declared: parse_declared("audio/wav").unwrap(), content_length: Some(800) };
        let ent = |can: bool, ms: Option<f64>, bytes: Option<f64>| Entitlements {
            can_record: can,
            max_recording_ms: ms,
            max_upload_bytes: bytes,
        };
        assert_eq!(apply_entitlements(&meta, &ent(true, None, None), &cfg()).unwrap(), 1000);
        assert_eq!(apply_entitlements(&meta, &ent(true, Some(5000.0), Some(900.0)), &cfg()).unwrap(), 900);
        assert_eq!(apply_entitlements(&meta, &ent(true, None, Some(5000.0)), &cfg()).unwrap(), 1000);
        let code = |e: Entitlements| apply_entitlements(&meta, &e, &cfg()).unwrap_err().code();
        assert_eq!(code(ent(false, None, None)), "entitlement_denied");
        assert_eq!(code(ent(true, Some(4999.0), None)), "duration_limit_exceeded");
        assert_eq!(code(ent(true, None, Some(799.0))), "payload_too_large");
    }

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
