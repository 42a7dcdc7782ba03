//! Vercel Blob API client, speaking what `@vercel/blob`'s `put()` and `del()` send
//! (docs/protocols.md §B.1–B.4): `PUT {api}/?pathname=…` with the raw bytes as body,
//! `POST {api}/delete` with `{"urls": [...]}`, and the common `x-api-*` headers.
//!
//! Retries: the SDK retries network failures and `unknown_error` / `service_unavailable` /
//! `internal_server_error`. A streamed body cannot be replayed once any of it was read, so a put is
//! retried only while its body is untouched (`Replayable::polled` still false).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::BlobAccess;
use crate::error::{Error, Result};
use crate::media::duration::{Measured, Meter};
use crate::media::Container;
use crate::storage::store::Credential;
use crate::support::capped::Past;

const BLOB_API_VERSION: &str = "12";

/// The most we read of a metadata answer.
const MAX_METADATA_BYTES: usize = 64 * 1024;
const MAX_ATTEMPTS: u32 = 3;
/// The most we read of one `list()` page (1000 blobs of a few hundred bytes each).
const MAX_LIST_BYTES: usize = 4 << 20;

pub struct BlobClient {
    http: reqwest::Client,
    store: crate::storage::store::Store,
    /// This request's credential (`Store::credential`): the read-write token, or the request's
    /// OIDC token, which then goes with `x-vercel-blob-store-id` on every API call.
    credential: Credential,
    /// Time allowed for each exchange with the store that is not an upload body (head, delete, a
    /// blob's first bytes, every answer read back): the deployment's upstream timeout.
    exchange: Duration,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredBlob {
    pub url: String,
    pub pathname: String,
    #[serde(default)]
    pub content_type: Option<String>,
}

/// One blob of a `list()` page.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListedBlob {
    pub url: String,
    pub pathname: String,
    #[serde(default)]
    pub uploaded_at: Option<String>,
}

/// A `list()` page: its blobs, and the cursor of the next when there is one.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage {
    pub blobs: Vec<ListedBlob>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

/// What `head()` says of a stored blob.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlobMeta {
    pub url: String,
    pub pathname: String,
    pub size: u64,
    #[serde(default)]
    pub content_type: Option<String>,
    /// RFC 3339, as the store says it.
    #[serde(default)]
    pub uploaded_at: Option<String>,
}

/// The one way an answer's body is read from the store (`capped::read`): chunk by chunk, each
/// within `timeout`, at most `cap` bytes, every byte handed to `sink` as it arrives. `what` names
/// the exchange in errors; an answer past the cap is the store failing.
async fn read_capped(
    resp: reqwest::Response,
    what: &str,
    timeout: Duration,
    cap: u64,
    past: Past,
    sink: impl FnMut(&[u8]),
) -> Result<()> {
    crate::support::capped::read(resp, Some(timeout), cap, past, sink)
        .await
        .map_err(|failed| Error::StorageFailed(format!("{what}: {failed}")))
}

/// An answer's body, whole: every answer we read from the store is small (`MAX_METADATA_BYTES`), and
/// a store that sends more, or stalls, is failing.
async fn read_limited(resp: reqwest::Response, what: &str, timeout: Duration) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    read_capped(resp, what, timeout, MAX_METADATA_BYTES as u64, Past::Fail, |b| body.extend_from_slice(b)).await?;
    Ok(body)
}

/// A JSON answer, read with `read_limited`.
async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
    timeout: Duration,
) -> Result<T> {
    let body = read_limited(resp, what, timeout).await?;
    serde_json::from_slice(&body).map_err(|e| Error::StorageFailed(format!("{what}: unexpected answer: {e}")))
}

/// A streamed upload body for `put`.
pub struct PutBody<'a, F: Fn() -> reqwest::Body> {
    /// A fresh `reqwest::Body` over the same source; called again for a retry only while `polled`
    /// says nothing was read from the source.
    pub make: F,
    pub polled: &'a AtomicBool,
    /// Bytes of the body sent so far.
    pub progress: &'a AtomicU64,
    /// The put fails when neither the body nor the store's answer moves for this long (a store that
    /// took the whole body and never answers must not hold the request forever).
    pub stall: Duration,
}

/// Resolves when `progress` has not moved for `stall`.
async fn stalled(progress: &AtomicU64, stall: Duration) {
    let tick = (stall / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut last = (progress.load(Ordering::SeqCst), tokio::time::Instant::now());
    loop {
        tokio::time::sleep(tick).await;
        let now = progress.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, tokio::time::Instant::now());
        } else if last.1.elapsed() >= stall {
            return;
        }
    }
}

/// The completion's server parts: 8 MiB, not Blob's 5 MiB minimum: fewer requests for the bytes
/// the route sends anyway, and every part but the last one size (R2's rule) whatever the recorder's
/// part size. A completion holds at most two (the first, kept for its header, and the one being
/// sent): 16 MiB; for a WebM, while part 1 goes up early, the first part, its copy being sent and
/// the file's last MiB: 17 MiB.
pub const REWRITE_PART: usize = 8 << 20;

/// Where a rewrite writes the final blob, and the permits that bound the rewrites in flight.
pub struct RewriteTarget<'a> {
    pub pathname: &'a str,
    pub content_type: &'a str,
    pub access: BlobAccess,
    /// A rewrite holds one from the moment it holds more than `UNGATED_BYTES` or finds a
    /// provisional header region, until it ends: none free is `Error::RewritesBusy` (a retryable
    /// 503), never a wait that holds memory, never a rewrite skipped (that would attach the
    /// provisional file).
    pub permits: &'a std::sync::Arc<tokio::sync::Semaphore>,
}

/// What a completion may hold for a rewrite without a permit, while its header region is not
/// whole yet: the recorder's header regions are a few KiB (MP4's sidx reserve, the largest, 12 KiB),
/// so a blob that is not a provisional upload never needs one, and the 1,000 completions that may
/// be in flight hold at most 64 MiB unpermitted (not 1 GiB, as at the finalisers' 1 MiB limit).
pub const UNGATED_BYTES: usize = 64 << 10;

/// The finalisers' limit on a header region (`HEAD_LIMIT`): a longer one is never provisional.
const PROVISIONAL_HEAD_MAX: usize = 1 << 20;

/// How the rewrite's multipart upload names its blob, sent on every call of it (create, parts,
/// complete), as the official SDK sends a put's options on each: the derived pathname is exact
/// (no random suffix), and a rewrite retried after a failure may find its own earlier result
/// there, which it replaces. Sent on the complete too, since that is where the blob comes to be.
const REWRITE_NAMING: [(&str, &str); 2] = [("x-add-random-suffix", "0"), ("x-allow-overwrite", "1")];

/// A server multipart upload under way, and the ETags of parts 2, 3, … sent so far.
pub struct Multipart {
    upload_id: String,
    key: String,
    pathname: String,
    content_type: String,
    access: BlobAccess,
    etags: Vec<String>,
}

/// One rewrite permit, now or `RewritesBusy` (no target: nothing is held, so nothing to bound).
fn take_permit(to: Option<&RewriteTarget<'_>>) -> Result<Option<tokio::sync::OwnedSemaphorePermit>> {
    match to {
        Some(to) => to.permits.clone().try_acquire_owned().map(Some).map_err(|_| Error::RewritesBusy),
        None => Ok(None),
    }
}

/// What `measure_and_tee` read: the duration, and for a rewrite the meter's layout, the first part,
/// the bytes after the parts sent, and the upload they went to.
pub struct Teed {
    pub measured: Measured,
    /// The duration if the header region is rewritten (`Meter::finish_rewritten`).
    pub rewritten: Option<Measured>,
    /// `None`: no rewrite (no target, or the header region is not a provisional one).
    pub layout: Option<crate::media::finalise::Layout>,
    pub first: Vec<u8>,
    rest: Vec<u8>,
    upload: Option<Multipart>,
    /// Part 1 as sent before the whole read (WebM): the header region it carried and its ETag.
    early: Option<(Vec<u8>, String)>,
    /// The rewrite's permit (`RewriteTarget::permits`), held until `finish_rewrite` ends.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: ApiError,
}

#[derive(Deserialize)]
struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

fn retryable_code(code: &str) -> bool {
    matches!(code, "unknown_error" | "service_unavailable" | "internal_server_error")
}

impl BlobClient {
    pub fn new(
        http: reqwest::Client,
        store: &crate::storage::store::Store,
        exchange: Duration,
        credential: Credential,
    ) -> BlobClient {
        BlobClient { http, store: store.clone(), exchange, credential }
    }

    /// The store this client writes to.
    pub fn store(&self) -> &crate::storage::store::Store {
        &self.store
    }

    /// A stored blob's metadata (`head()`: `GET {api}?url=…`); `None` when it does not exist.
    pub async fn head(&self, url: &str) -> Result<Option<BlobMeta>> {
        let query: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
        let resp = self
            .request(reqwest::Method::GET, format!("{}?url={query}", self.store.api()), &self.request_id(), 0)
            .timeout(self.exchange)
            .send()
            .await
            .map_err(|e| Error::StorageFailed(format!("head: {}", crate::error::chain(&e))))?;
        match resp.status().as_u16() {
            200..=299 => {}
            status => {
                let (code, message) = api_error(resp, self.exchange).await;
                // Only Blob's own "no such blob" is a missing blob: a 404 for the store is the
                // deployment's problem, never a reason to tell the browser its upload is gone.
                if status == 404 && head_missing(&code) {
                    return Ok(None);
                }
                return Err(refusal("head", status, &code, &message));
            }
        }
        read_json(resp, "head", self.exchange).await.map(Some)
    }

    /// A read of one of the store's blobs, with the bearer where the store's rule gives it (its
    /// private host: private blobs need it, as `get()` sends it).
    fn read(&self, url: &Url) -> reqwest::RequestBuilder {
        let req = self.http.get(url.clone());
        match self.store.bearer_for(url, &self.credential) {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// The first `n` bytes of a stored blob (a Range read of its URL).
    pub async fn read_start(&self, url: &Url, n: usize) -> Result<bytes::Bytes> {
        self.read_range(url, 0, n).await
    }

    /// `n` bytes of a stored blob from `from` (a Range read of its URL); fewer at its end.
    pub async fn read_range(&self, url: &Url, from: u64, n: usize) -> Result<bytes::Bytes> {
        let last = from.saturating_add(n.saturating_sub(1) as u64);
        let resp = self
            .read(url)
            .header("range", format!("bytes={from}-{last}"))
            .timeout(self.exchange)
            .send()
            .await
            .map_err(|e| Error::StorageFailed(format!("read: {}", crate::error::chain(&e))))?;
        // Gone between head and read (the other completion path refused and deleted it).
        if resp.status() == 404 {
            return Err(Error::UploadNotFound(url.to_string()));
        }
        // A store that ignores Range answers 200 from byte 0: only right for a read from 0.
        if !resp.status().is_success() || (from > 0 && resp.status() != 206) {
            return Err(Error::StorageFailed(format!("read: HTTP {}", resp.status())));
        }
        // Read no more than asked for, even from a store that ignores Range.
        let mut head = bytes::BytesMut::new();
        read_capped(resp, "read", self.exchange, n as u64, Past::Stop, |b| head.extend_from_slice(b)).await?;
        Ok(head.freeze())
    }

    /// One page of the store's blobs under `prefix` (`list()`: `GET {api}?prefix=…&limit=…&cursor=…`).
    pub async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage> {
        let mut url = Url::parse(self.store.api()).map_err(|e| Error::Internal(format!("blob api url: {e}")))?;
        url.query_pairs_mut().append_pair("prefix", prefix).append_pair("limit", "1000");
        if let Some(cursor) = cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        let resp = self
            .request(reqwest::Method::GET, url.to_string(), &self.request_id(), 0)
            .timeout(self.exchange)
            .send()
            .await
            .map_err(|e| Error::StorageFailed(format!("list: {}", crate::error::chain(&e))))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let (code, message) = api_error(resp, self.exchange).await;
            return Err(refusal("list", status.as_u16(), &code, &message));
        }
        // A page of 1000 blobs is well over the 64 KiB metadata bound: read it with its own.
        let mut body = Vec::new();
        read_capped(resp, "list", self.exchange, MAX_LIST_BYTES as u64, Past::Fail, |b| body.extend_from_slice(b))
            .await?;
        serde_json::from_slice(&body).map_err(|e| Error::StorageFailed(format!("list: unexpected answer: {e}")))
    }

    /// A stored blob read whole, once, through a meter: a lie can sit anywhere in the file, so
    /// head and tail reads are not enough. Bounded by `max_bytes` (the size the caller checked; a
    /// store that sends more is not believed) and by `deadline` in total, besides each exchange's
    /// own timeout. The meter's work is bounded by the bytes (media/duration/mod.rs).
    pub async fn measure(
        &self,
        url: &Url,
        container: Container,
        max_bytes: u64,
        deadline: Duration,
    ) -> Result<Measured> {
        Ok(self.measure_and_tee(url, container, max_bytes, deadline, None).await?.measured)
    }

    /// `measure`, and while reading, the completion's rewrite (docs/stop-to-transcribing.md, C):
    /// the first `REWRITE_PART` bytes are kept in memory; once they hold a provisional header
    /// region the writer recognises (`media::finalise::provisional`), a server multipart upload to
    /// `to.pathname` is created and every later full part is sent to it as it is read (parts 2,
    /// 3, …; each sent before the read goes on, so at most two parts are held). What is left at the
    /// end (the last part) and the first part are `Teed`'s, for `finish_rewrite`. Without `to`, or
    /// for a blob that is not provisional, this is `measure`.
    pub async fn measure_and_tee(
        &self,
        url: &Url,
        container: Container,
        max_bytes: u64,
        deadline: Duration,
        to: Option<RewriteTarget<'_>>,
    ) -> Result<Teed> {
        let read = async {
            let send = self.read(url).send();
            let resp = tokio::time::timeout(self.exchange, send)
                .await
                .map_err(|_| Error::StorageFailed("read: timed out".into()))?
                .map_err(|e| Error::StorageFailed(format!("read: {}", crate::error::chain(&e))))?;
            if resp.status() == 404 {
                return Err(Error::UploadNotFound(url.to_string()));
            }
            if !resp.status().is_success() {
                return Err(Error::StorageFailed(format!("read: HTTP {}", resp.status())));
            }
            // A store that sends more than the size it stated is not believed; one that sends less
            // failed (a cut read measured short would refuse, and so delete, good audio).
            let mut meter = Meter::new(container);
            let mut reader = crate::support::capped::Reader::new(resp, Some(self.exchange), max_bytes, Past::Fail);
            let part = usize::try_from(max_bytes).unwrap_or(usize::MAX).min(REWRITE_PART);
            let mut first = Vec::new();
            let mut rest = Vec::new();
            let mut upload: Option<Multipart> = None;
            // Whether the rewrite is still possible (a target, and nothing ruled it out yet).
            // Only the containers the recorder finalises have a provisional header region.
            let mut tee = to.is_some() && matches!(container, Container::WebM | Container::Mp4);
            // Whether the header region was found to be a provisional one.
            let mut provisional = false;
            // WebM: what part 1 was sent with before the whole read (`None` inside: no guess).
            let mut early: Option<Option<(Vec<u8>, String)>> = None;
            let mut permit = None;
            while let Some(chunk) = reader.next().await.map_err(|f| Error::StorageFailed(format!("read: {f}")))? {
                meter.feed(&chunk);
                if !tee {
                    continue;
                }
                let mut bytes = &chunk[..];
                if first.len() < part {
                    let take = (part - first.len()).min(bytes.len());
                    first.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                }
                rest.extend_from_slice(bytes);
                // The header region decides as soon as it is whole (under 1 MiB, the finalisers'
                // limit): a blob that is not a provisional upload is measured as before, and nothing
                // more is held for it. Memory under concurrency: a provisional upload holds up to
                // 17 MiB, so only with a permit; none free is a retryable 503 (`RewritesBusy`).
                if !provisional {
                    let head = meter.header_len().and_then(|h| usize::try_from(h).ok());
                    match head.and_then(|h| first.get(..h)) {
                        Some(region) if crate::media::finalise::provisional(container, region) => {
                            if permit.is_none() {
                                permit = take_permit(to.as_ref())?;
                            }
                            provisional = true;
                            first.reserve_exact(part - first.len());
                        }
                        // Not whole yet, and still short enough to be a provisional one: read on,
                        // holding more than UNGATED_BYTES only with a permit.
                        None if first.len() < part && head.is_none_or(|h| h <= PROVISIONAL_HEAD_MAX) => {
                            if permit.is_none() && first.len() > UNGATED_BYTES {
                                permit = take_permit(to.as_ref())?;
                            }
                            continue;
                        }
                        _ => {
                            (tee, first, rest, permit) = (false, Vec::new(), Vec::new(), None);
                            continue;
                        }
                    }
                }
                // WebM: part 1 goes up as soon as it is read, with the header region guessed from
                // the file's end; the whole read confirms it (`finish_rewrite`).
                if early.is_none() && first.len() == part && container == Container::WebM && max_bytes > part as u64 {
                    if let Some(target) = to.as_ref() {
                        let head = meter.header_len();
                        early = Some(self.send_early(url, &first, head, max_bytes, target, &mut upload).await?);
                    }
                }
                // Every part after the first goes up once full, exactly `part` bytes (R2's rule).
                let Some(target) = to.as_ref().filter(|_| rest.len() >= part) else { continue };
                if upload.is_none() {
                    upload = Some(self.mpu_create(target).await?);
                }
                while let Some(mpu) = upload.as_mut().filter(|_| rest.len() >= part) {
                    let after = rest.split_off(part);
                    let body = std::mem::replace(&mut rest, after);
                    let etag = self.mpu_part(mpu, mpu.etags.len() as u32 + 2, body.into()).await?;
                    mpu.etags.push(etag);
                }
            }
            if meter.fed() != max_bytes {
                return Err(Error::StorageFailed(format!("read: {} of {max_bytes} bytes", meter.fed())));
            }
            let layout = if tee && provisional { meter.layout() } else { None };
            let rewritten = layout.as_ref().map(|_| meter.finish_rewritten());
            let early = early.flatten();
            Ok(Teed { measured: meter.finish(), rewritten, layout, first, rest, upload, early, _permit: permit })
        };
        tokio::time::timeout(deadline, read).await.map_err(|_| {
            Error::StorageFailed(format!("read: measuring the stored blob took over {} s", deadline.as_secs()))
        })?
    }

    /// The rewrite's end: the first part with `header` over its first bytes (the same length) and
    /// the last part go up, and the upload completes: the final blob. Creates the upload if the
    /// blob fitted one part (nothing was sent while reading).
    pub async fn finish_rewrite(&self, teed: Teed, header: &[u8], to: RewriteTarget<'_>) -> Result<StoredBlob> {
        // The permit is held to the end: part 1 and the last part are in memory until then.
        let Teed { mut first, rest, upload, early, _permit, .. } = teed;
        let Some(head) = first.get_mut(..header.len()) else {
            return Err(Error::Internal("the final header region is longer than the first part".into()));
        };
        head.copy_from_slice(header);
        let mut mpu = match upload {
            Some(mpu) => mpu,
            None => self.mpu_create(&to).await?,
        };
        let last = mpu.etags.len() as u32 + 2;
        // Part 1 and the last part are both in memory: they go up side by side.
        // Part 1 sent early with this very header region: kept. Otherwise (no guess, or a guess
        // the whole read did not confirm) it is sent now, replacing any sent before.
        let sent = early.filter(|(guess, _)| guess.as_slice() == header).map(|(_, etag)| etag);
        let one = async {
            match sent {
                Some(etag) => Ok(etag),
                None => self.mpu_part(&mpu, 1, first.into()).await,
            }
        };
        let (one, tail) = tokio::join!(one, async {
            if rest.is_empty() {
                Ok(None)
            } else {
                self.mpu_part(&mpu, last, rest.into()).await.map(Some)
            }
        });
        let mut parts = vec![one?];
        parts.append(&mut mpu.etags);
        parts.extend(tail?);
        self.mpu_complete(&mpu, &parts).await
    }

    /// The WebM shortcut: the blob's last MiB read, the final header region guessed from it
    /// (`media::finalise::webm::header_from_end`) and part 1 sent with it, creating the upload.
    /// `None` when there is no guess (the Cues or the last Cluster not in that MiB, a read that
    /// failed): part 1 then waits for the whole read, as for MP4.
    async fn send_early(
        &self,
        url: &Url,
        first: &[u8],
        head: Option<u64>,
        total: u64,
        to: &RewriteTarget<'_>,
        upload: &mut Option<Multipart>,
    ) -> Result<Option<(Vec<u8>, String)>> {
        const TAIL: u64 = 1 << 20;
        let Some(region) = head.and_then(|h| first.get(..usize::try_from(h).ok()?)) else {
            return Ok(None);
        };
        let from = total.saturating_sub(TAIL).max(region.len() as u64);
        let n = usize::try_from(total - from).unwrap_or(usize::MAX);
        let Ok(tail) = self.read_range(url, from, n).await else { return Ok(None) };
        let Some(header) = crate::media::finalise::webm::header_from_end(region, &tail, from, total) else {
            return Ok(None);
        };
        let mut part = first.to_vec();
        let Some(head) = part.get_mut(..header.len()).filter(|_| header.len() == region.len()) else {
            return Ok(None);
        };
        head.copy_from_slice(&header);
        if upload.is_none() {
            *upload = Some(self.mpu_create(to).await?);
        }
        let Some(mpu) = upload.as_ref() else { return Ok(None) };
        let etag = self.mpu_part(mpu, 1, part.into()).await?;
        Ok(Some((header, etag)))
    }

    /// `POST {api}/mpu?pathname=…` with `x-mpu-action` and the rest of `headers`, the body in
    /// memory (so replayable), retried as `retried` retries; the JSON answer.
    async fn mpu<T: serde::de::DeserializeOwned>(
        &self,
        pathname: &str,
        what: &str,
        headers: &[(&str, String)],
        body: bytes::Bytes,
    ) -> Result<T> {
        let query: String = url::form_urlencoded::byte_serialize(pathname.as_bytes()).collect();
        let url = format!("{}/mpu?pathname={query}", self.store.api());
        // A part is up to 8 MiB: more time than a small exchange, still bounded.
        let timeout = self.exchange.saturating_mul(4);
        let resp = self
            .retried(what, &url, |req| {
                let req = headers.iter().fold(req.timeout(timeout), |req, (k, v)| req.header(*k, v));
                req.body(body.clone())
            })
            .await?;
        read_json(resp, what, self.exchange).await
    }

    async fn mpu_create(&self, to: &RewriteTarget<'_>) -> Result<Multipart> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            upload_id: String,
            key: String,
        }
        let mut headers = vec![
            ("x-mpu-action", "create".to_string()),
            ("x-vercel-blob-access", to.access.as_str().to_string()),
            ("x-content-type", to.content_type.to_string()),
        ];
        headers.extend(REWRITE_NAMING.map(|(k, v)| (k, v.to_string())));
        let what = format!("multipart create {}", to.pathname);
        let created: Created = self.mpu(to.pathname, &what, &headers, bytes::Bytes::new()).await?;
        Ok(Multipart {
            upload_id: created.upload_id,
            key: created.key,
            pathname: to.pathname.to_string(),
            content_type: to.content_type.to_string(),
            access: to.access,
            etags: Vec::new(),
        })
    }

    async fn mpu_part(&self, mpu: &Multipart, n: u32, body: bytes::Bytes) -> Result<String> {
        #[derive(Deserialize)]
        struct Part {
            etag: String,
        }
        let headers = self.mpu_ids(mpu, "upload", Some(n));
        let what = format!("multipart part {n} of {}", mpu.pathname);
        let part: Part = self.mpu(&mpu.pathname, &what, &headers, body).await?;
        Ok(part.etag)
    }

    async fn mpu_complete(&self, mpu: &Multipart, etags: &[String]) -> Result<StoredBlob> {
        let parts: Vec<_> = etags
            .iter()
            .enumerate()
            .map(|(i, etag)| serde_json::json!({ "partNumber": i + 1, "etag": etag }))
            .collect();
        let mut headers = self.mpu_ids(mpu, "complete", None);
        headers.push(("content-type", "application/json".to_string()));
        let body = serde_json::to_vec(&parts).map_err(|e| Error::Internal(format!("multipart parts: {e}")))?;
        let what = format!("multipart complete {}", mpu.pathname);
        self.mpu(&mpu.pathname, &what, &headers, body.into()).await
    }

    fn mpu_ids(&self, mpu: &Multipart, action: &str, part: Option<u32>) -> Vec<(&'static str, String)> {
        let key: String = percent_encoding::utf8_percent_encode(&mpu.key, percent_encoding::NON_ALPHANUMERIC).collect();
        let mut headers = vec![
            ("x-mpu-action", action.to_string()),
            ("x-vercel-blob-access", mpu.access.as_str().to_string()),
            ("x-content-type", mpu.content_type.clone()),
            ("x-mpu-upload-id", mpu.upload_id.clone()),
            ("x-mpu-key", key),
        ];
        headers.extend(REWRITE_NAMING.map(|(k, v)| (k, v.to_string())));
        if let Some(n) = part {
            headers.push(("x-mpu-part-number", n.to_string()));
        }
        headers
    }

    fn request(&self, method: reqwest::Method, url: String, request_id: &str, attempt: u32) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(self.credential.bearer())
            .header("x-api-version", BLOB_API_VERSION)
            .header("x-vercel-blob-store-id", self.store.id())
            .header("x-api-blob-request-id", request_id)
            .header("x-api-blob-request-attempt", attempt.to_string())
    }

    fn request_id(&self) -> String {
        let ms = crate::support::clock::now_ms();
        format!("{}:{ms}:{:016x}", self.store.id(), rand::random::<u64>())
    }

    /// Store a streamed body (see `PutBody`).
    pub async fn put<F: Fn() -> reqwest::Body>(
        &self,
        pathname: &str,
        content_type: &str,
        access: BlobAccess,
        body: PutBody<'_, F>,
    ) -> Result<StoredBlob> {
        let polled = body.polled;
        // The pathname as a query value (form encoding; the store decodes `+` and `%20` alike).
        let pathname_query: String = url::form_urlencoded::byte_serialize(pathname.as_bytes()).collect();
        let url = format!("{}/?pathname={pathname_query}", self.store.api());
        let request_id = self.request_id();
        let mut attempt = 0;
        loop {
            let send = self
                .request(reqwest::Method::PUT, url.clone(), &request_id, attempt)
                .header("x-vercel-blob-access", access.as_str())
                .header("x-content-type", content_type)
                .header("x-add-random-suffix", "1")
                .body((body.make)())
                .send();
            let sent = tokio::select! {
                sent = send => sent,
                () = stalled(body.progress, body.stall) => {
                    return Err(Error::StorageFailed(format!(
                        "PUT {pathname}: no progress and no answer for {:?}", body.stall
                    )));
                }
            };
            let replayable = !polled.load(Ordering::SeqCst) && attempt + 1 < MAX_ATTEMPTS;
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) if replayable => {
                    tracing::debug!(target: "session_audio", attempt, "PUT {pathname} failed before the body was read, retrying: {e}");
                    backoff(attempt).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(Error::StorageFailed(format!("PUT {pathname}: {}", crate::error::chain(&e)))),
            };
            let status = resp.status();
            if status.is_success() {
                return read_json::<StoredBlob>(resp, &format!("PUT {pathname}"), self.exchange).await;
            }
            let (code, message) = api_error(resp, self.exchange).await;
            if retryable_code(&code) && !polled.load(Ordering::SeqCst) && attempt + 1 < MAX_ATTEMPTS {
                backoff(attempt).await;
                attempt += 1;
                continue;
            }
            return Err(refusal(&format!("PUT {pathname}"), status.as_u16(), &code, &message));
        }
    }

    /// A signed token (`issueSignedToken`: `POST {api}/signed-token`) for `body`'s scope, with this
    /// request's credential.
    pub async fn signed_token(&self, body: &serde_json::Value) -> Result<crate::upload::presign::SignedToken> {
        let resp = self.post_retried("signed-token", "signed-token", body).await?;
        read_json(resp, "signed-token", self.exchange).await
    }

    /// Delete blobs by URL.
    pub async fn delete(&self, urls: &[String]) -> Result<()> {
        self.post_retried("delete", &format!("delete {urls:?}"), &serde_json::json!({ "urls": urls })).await.map(drop)
    }

    /// `POST {api}/{path}` with a small JSON body, retried as the SDK retries (network errors and
    /// the retryable codes; the body is replayable); the successful answer, or the last refusal.
    async fn post_retried(&self, path: &str, what: &str, body: &serde_json::Value) -> Result<reqwest::Response> {
        let url = format!("{}/{path}", self.store.api());
        self.retried(what, &url, |req| req.json(body).timeout(self.exchange)).await
    }

    /// `POST url`, made by `build` on each attempt (its body must be replayable), retried as the
    /// SDK retries; the successful answer, or the last refusal.
    async fn retried(
        &self,
        what: &str,
        url: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let request_id = self.request_id();
        let mut last = Error::StorageFailed(format!("{what}: not attempted"));
        for attempt in 0..MAX_ATTEMPTS {
            let sent = build(self.request(reqwest::Method::POST, url.to_string(), &request_id, attempt)).send().await;
            match sent {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let (code, message) = api_error(resp, self.exchange).await;
                    last = refusal(what, status.as_u16(), &code, &message);
                    if !retryable_code(&code) {
                        break;
                    }
                }
                Err(e) => last = Error::StorageFailed(format!("{what}: {}", crate::error::chain(&e))),
            }
            if attempt + 1 < MAX_ATTEMPTS {
                backoff(attempt).await;
            }
        }
        Err(last)
    }
}

/// What a refusal of the store means: the credentials refused (403, or `forbidden` /
/// `store_not_found`: a store id the OIDC token's project is not connected to, a revoked token) is
/// the deployment's to fix and says so; anything else is a storage failure.
fn refusal(what: &str, status: u16, code: &str, message: &str) -> Error {
    let detail = format!("{what}: HTTP {status} {code}: {message}");
    if status == 403 || matches!(code, "forbidden" | "store_not_found") {
        Error::BlobAccessDenied(detail)
    } else {
        Error::StorageFailed(detail)
    }
}

/// Whether a `404` from `head()` says the blob is missing (`not_found`, as `@vercel/blob` reads
/// it into `BlobNotFoundError`, or a body with no code), rather than the store (`store_not_found`).
fn head_missing(code: &str) -> bool {
    matches!(code, "not_found" | "unknown_error")
}

async fn api_error(resp: reqwest::Response, timeout: Duration) -> (String, String) {
    let text = match read_limited(resp, "error answer", timeout).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) => return ("unknown_error".into(), e.to_string()),
    };
    match serde_json::from_str::<ApiErrorBody>(&text) {
        Ok(b) => (b.error.code, b.error.message),
        // The SDK counts a body it cannot read as `unknown_error` (retryable).
        Err(_) => ("unknown_error".into(), text.chars().take(200).collect()),
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_the_credentials_are_named() {
        let table: &[(u16, &str, &str)] = &[
            (403, "forbidden", "blob_access_denied"),
            (404, "store_not_found", "blob_access_denied"),
            (400, "forbidden", "blob_access_denied"),
            (403, "unknown_error", "blob_access_denied"),
            (400, "bad_request", "storage_failed"),
            (503, "service_unavailable", "storage_failed"),
            (404, "not_found", "storage_failed"),
        ];
        for (status, code, want) in table {
            assert_eq!(refusal("PUT p", *status, code, "m").code(), *want, "{status} {code}");
        }
    }

    #[test]
    fn only_blobs_own_404_means_missing() {
        let table: &[(&str, bool)] =
            &[("not_found", true), ("unknown_error", true), ("store_not_found", false), ("forbidden", false)];
        for (code, missing) in table {
            assert_eq!(head_missing(code), *missing, "{code}");
        }
        assert_eq!(refusal("head", 404, "store_not_found", "m").code(), "blob_access_denied");
    }

    #[test]
    fn retryable_codes_are_the_sdks() {
        for c in ["unknown_error", "service_unavailable", "internal_server_error"] {
            assert!(retryable_code(c));
        }
        for c in ["forbidden", "not_found", "bad_request", "store_suspended", "rate_limited"] {
            assert!(!retryable_code(c));
        }
    }
}
