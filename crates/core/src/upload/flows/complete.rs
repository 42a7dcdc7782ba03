//! A client upload's completion: `session-audio.complete-upload` from the browser once `upload()`
//! resolved, or `blob.upload-completed`, Blob's signed webhook. Either may come first, or only one;
//! replays come too. Completions of one blob take turns; the session is attached exactly once.
//!
//! A blob is deleted on refusal only once it is known to be under this session's prefix in our
//! store and the session the caller's: a URL under somebody else's session is refused and left
//! alone.

use crate::telemetry::Phase;
use serde_json::{json, Value};
use url::Url;

use crate::convex::client::SessionDoc;
use crate::error::{Code, Error, Result};
use crate::http::request::Request;
use crate::http::response::{json, Response};
use crate::identity::Caller;
use crate::media::duration::Measured;
use crate::media::{parse_declared, Container, DeclaredType};
use crate::state::State;
use crate::storage::blob::{BlobMeta, RewriteTarget, StoredBlob};
use crate::support::cache::TtlCache;
use crate::support::clock::now_ms;
use crate::telemetry::Trace;
use crate::upload::attach::{fate, Fate};
use crate::upload::attach::{held_pathname, url_pathname};
use crate::upload::client_upload::{blob_url_for_session, TokenPayload, UPLOAD_COMPLETED};
use crate::upload::pipeline::{admit_session, attach, delete, discard_or_keep, Ctx, Landed};
use crate::upload::rules::{validate_duration, Declared, UploadMeta};

/// What completions share across requests (`State.completions`): whose turn it is per blob, and
/// each blob's measured duration for a while.
pub struct Completions {
    turns: crate::support::turns::Turns,
    /// A stored blob's measured duration, and the final blob its rewrite wrote, by (URL, size,
    /// upload time): a completion retried while a dependency is down does not read the whole blob
    /// again, nor rewrite it again.
    measured: TtlCache<(String, u64, Option<String>), Measurement>,
    /// The rewrites this instance holds in memory at once (`REWRITES_IN_FLIGHT`).
    rewrites: std::sync::Arc<tokio::sync::Semaphore>,
}

/// The most provisional uploads rewritten at once by one instance. Each holds up to 17 MiB
/// (`blob::REWRITE_PART`), and up to `MEASURED_ENTRIES` (1,000) completions may be in flight: without
/// this bound a burst of completions (many users, or one user with many sessions) could hold GiBs
/// and take the instance down with every upload in it. 8 × 17 MiB = 136 MiB, well inside a
/// function's memory; a completion past it answers `503 rewrites_busy` with `Retry-After` and
/// keeps the blob, and the client's completion retries it (client/route.mjs: 5xx is transient).
pub const REWRITES_IN_FLIGHT: usize = 8;

impl Completions {
    /// `measured_held`: the most blob measurements kept at once (completions in flight, not history).
    pub fn new(measured_held: u64) -> Completions {
        Completions {
            turns: Default::default(),
            measured: TtlCache::new(measured_held),
            rewrites: std::sync::Arc::new(tokio::sync::Semaphore::new(REWRITES_IN_FLIGHT)),
        }
    }

    /// Wait for this blob's turn: one completion of one blob at a time (held until dropped).
    async fn take_turn(&self, session_id: &str, pathname: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.turns.take(format!("{session_id} {pathname}")).await
    }

    /// The blob's measurement, made by `measure` only when not made a moment ago.
    async fn measured<F>(&self, key: (String, u64, Option<String>), measure: F) -> Result<Measurement>
    where
        F: std::future::Future<Output = Result<Measurement>>,
    {
        self.measured.get_or_fill(&key, || async { Ok::<_, Error>((measure.await?, MEASURED_FOR)) }).await
    }
}

/// What a completion's read found: the duration, and the final blob when the upload was a
/// provisional one and the route rewrote it.
#[derive(Clone)]
struct Measurement {
    measured: Measured,
    rewritten: Option<StoredBlob>,
}

/// The pathname of the final blob the rewrite writes for a provisional upload: the same name with
/// `.final` before the extension (`sessions/s1/take-Ab3.webm` → `sessions/s1/take-Ab3.final.webm`),
/// so that it is under the same session's prefix and a replayed completion of the provisional URL
/// can tell the session holds its rewrite.
pub fn final_pathname(pathname: &str) -> String {
    let name_at = pathname.rfind('/').map_or(0, |i| i + 1);
    match pathname[name_at..].rfind('.').filter(|&dot| dot > 0) {
        Some(dot) => format!("{}.final{}", &pathname[..name_at + dot], &pathname[name_at + dot..]),
        None => format!("{pathname}.final"),
    }
}

/// The name a completion takes its turn under: the pathname without the `.final` that
/// `final_pathname` adds (any number of times). A blob and its rewrite then take turns: a
/// completion of the provisional blob (which rewrites, overwriting the `.final` one, and deletes on
/// a refusal about the audio) never runs beside one of its `.final` blob (which a hostile client
/// may complete by URL), so neither deletes or overwrites what the other just attached.
fn turn_name(pathname: &str) -> String {
    let mut p = pathname.to_string();
    loop {
        let name_at = p.rfind('/').map_or(0, |i| i + 1);
        let name = &p[name_at..];
        let stripped = if name.len() > ".final".len() && name.ends_with(".final") {
            // `final_pathname` of a name without an extension.
            Some(p[..p.len() - ".final".len()].to_string())
        } else {
            name.rfind('.').filter(|&dot| dot > 0).and_then(|dot| {
                let stem = &name[..dot];
                (stem.len() > ".final".len() && stem.ends_with(".final"))
                    .then(|| format!("{}{}", &p[..name_at + dot - ".final".len()], &name[dot..]))
            })
        };
        match stripped {
            Some(shorter) => p = shorter,
            None => return p,
        }
    }
}

/// What the browser or the webhook says landed.
struct Claim<'a> {
    url: &'a str,
    /// What was declared, if anything (the browser's event may leave it out: it is measured).
    duration_ms: Option<u64>,
    /// The type declared when the token was minted (the webhook knows it; the browser's event
    /// relies on the stored blob's type, which the token already constrained).
    declared: Option<DeclaredType>,
}

/// `session-audio.complete-upload`, for the caller: `201` attached now, `200` already attached.
pub async fn browser(ctx: &Ctx<'_>, url: &str, duration_ms: Option<&str>) -> Result<Response> {
    // Only the duration may be declared here, and need not be: it is measured. The type is the
    // stored blob's (which the token constrained) and is checked against the bytes.
    let upload = &ctx.state.config.upload;
    let duration_ms = duration_ms.map(|d| validate_duration(Some(d), upload, Declared::CompleteEvent)).transpose()?;
    let (status, answer) = complete(ctx, &Claim { url, duration_ms, declared: None }).await?;
    Ok(json(status, &answer))
}

/// Who sends `blob.upload-completed`: Blob, for whom the token or presigned URL named. The
/// signature over the raw event (HMAC with the read-write token after a client-token upload,
/// Ed25519 after a presigned one) is checked before any credential is resolved for the request;
/// then the token's payload names the user, and must name this route's session.
pub fn webhook_caller(
    state: &State,
    req: &Request,
    raw: &[u8],
    session_id: &str,
    token_payload: Option<&str>,
    trace: &Trace,
) -> Result<Caller> {
    let keys = crate::upload::webhook::Keys {
        read_write: state.config.store.as_ref().and_then(|store| store.read_write_token()),
        public: state.config.upload.webhook_key.as_ref(),
    };
    crate::upload::webhook::verify(keys, raw, header(&req.headers, "x-vercel-signature"))?;
    let (who, _) = webhook_identity(session_id, token_payload)?;
    trace.set_user(&who.user_id);
    Ok(who)
}

/// `blob.upload-completed` (its sender checked by `webhook_caller`), for the user the token was
/// minted for: `200 ok` when attached or refused (the blob deleted or kept by the one delete
/// rule); `503` while Clerk, Convex or the store is unavailable, so Blob retries.
pub async fn webhook(ctx: &Ctx<'_>, url: &str, token_payload: Option<&str>) -> Result<Response> {
    // What was declared when the token was minted: the type, and the duration if it was known.
    let payload = TokenPayload::parse(token_payload)?;
    let declared = parse_declared(&payload.content_type).ok();
    let claim = Claim { url, duration_ms: payload.duration_ms, declared };
    match complete(ctx, &claim).await {
        Ok(_) => {}
        Err(e) if e.status() < 500 => {
            tracing::warn!(target: "session_audio", session_id = ctx.session_id, code = e.code(), "client upload refused by the webhook");
        }
        Err(e) => return Err(e),
    }
    Ok(json(200, &json!({ "type": UPLOAD_COMPLETED, "response": "ok" })))
}

/// Who the webhook acts for: the signed token's payload, which must name this route's session.
pub fn webhook_identity(session_id: &str, token_payload: Option<&str>) -> Result<(Caller, TokenPayload)> {
    let payload = TokenPayload::parse(token_payload)?;
    if payload.session_id != session_id {
        return Err(Error::BadRequest {
            code: Code::InvalidEvent,
            message: "The webhook's tokenPayload names another session than this route's.".into(),
        });
    }
    let who = Caller { user_id: payload.user_id.clone(), session_id: payload.clerk_session_id.clone() };
    Ok((who, payload))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The README's steps for a completion, in order.
async fn complete(ctx: &Ctx<'_>, claim: &Claim<'_>) -> Result<(u16, Value)> {
    // Whatever failed on the way, a stored blob not deleted by the rule is kept: a dependency's
    // failure is a retryable 503 naming it.
    steps(ctx, claim).await.map_err(crate::upload::attach::kept)
}

async fn steps(ctx: &Ctx<'_>, claim: &Claim<'_>) -> Result<(u16, Value)> {
    // 1. the URL is a blob of our store under this session's prefix (else: not ours to touch); its
    // query is dropped, so every spelling of one blob is one blob.
    let url = blob_url_for_session(claim.url, ctx.blob.store(), ctx.session_id)?;
    // Blobs are told apart by pathname, never by how their URL is spelt (`attach::fate`).
    let pathname = url_pathname(&url);
    // 2. one completion of this blob at a time: the others then find the session holding it.
    let _turn = ctx.state.completions.take_turn(ctx.session_id, &turn_name(&pathname)).await;
    // 3. the session is the caller's; one that already holds this blob answers from its record.
    // A session that holds this blob's rewrite holds it too: the provisional blob may be gone
    // by now, and `upload_not_found` would make the client upload the recording again.
    let doc = ctx.state.sessions.fresh(ctx.who, ctx.session_id, ctx.trace).await?;
    let held = held_pathname(&doc);
    if held.as_deref() == Some(pathname.as_str()) || held.as_deref() == Some(final_pathname(&pathname).as_str()) {
        return Ok((200, attached_record(&doc)));
    }
    // 4. what landed, verified; what a refusal does to the blob is the one delete rule's.
    let held = doc.clone();
    let checked = match verify(ctx, doc, &url, claim).await {
        Ok(Verified::Held(record)) => return Ok((200, record)),
        Ok(Verified::Landed(checked)) => checked,
        Err(refusal) => return Err(discard_or_keep(ctx, url.as_str(), &pathname, refusal, Some(&held)).await),
    };
    // 5. settle the measured duration and attach (`upload::attach`): the rewrite's final blob
    // when there is one (the same bytes but the header region), else the blob as it landed.
    let (url, pathname) = match &checked.rewritten {
        Some(fin) => (fin.url.as_str(), fin.pathname.as_str()),
        None => (checked.url.as_str(), checked.pathname.as_str()),
    };
    let landed = Landed {
        url,
        pathname,
        content_type: &checked.declared.normalised,
        size: checked.size,
        declared_ms: claim.duration_ms,
        measured: checked.measured.clone(),
        user_max_ms: checked.user_max_ms,
    };
    let attached = attach(ctx, &landed).await;
    if checked.rewritten.is_some() {
        // The provisional blob, by the one delete rule: once the session holds its rewrite it is
        // superseded (under this session's prefix, the session the caller's: step 1 and 3); after a
        // refusal about the audio it goes with the final one. Any other failure (an outage, an
        // unclear attach) keeps it: the retry starts from it, and an outage is never a reason to
        // delete a user's audio.
        let superseded = attached.is_ok();
        let refused = attached.as_ref().is_err_and(|e| fate(e, None, &checked.pathname) == Fate::Delete);
        if superseded || refused {
            delete(ctx.blob, &checked.url, &checked.pathname).await;
        }
    }
    attached
}

/// How long a stored blob's measurement is reused by the completions that follow (its URL, size
/// and upload time name the same bytes: Blob never overwrites them).
const MEASURED_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// What storage holds, checked: type, size, age, the caller's entitlements, the bytes' container,
/// the duration measured from one whole read.
struct Checked {
    url: String,
    pathname: String,
    declared: DeclaredType,
    size: u64,
    measured: Measured,
    /// The final blob the rewrite wrote (`url` and `pathname` are then the provisional one's).
    rewritten: Option<StoredBlob>,
    user_max_ms: Option<f64>,
}

/// Whether `head(url)`'s answer names the blob at `url`: the same pathname, and a URL of that
/// pathname (how the store spells the URL's host and query is its own).
fn answers_for(meta: &BlobMeta, url: &Url) -> bool {
    let asked = url_pathname(url);
    meta.pathname == asked && Url::parse(&meta.url).is_ok_and(|u| url_pathname(&u) == asked)
}

enum Verified {
    /// The session holds this blob under another spelling of its URL.
    Held(Value),
    Landed(Checked),
}

async fn verify(ctx: &Ctx<'_>, doc: SessionDoc, url: &Url, claim: &Claim<'_>) -> Result<Verified> {
    let upload = &ctx.state.config.upload;
    let meta = ctx.trace.phase(Phase::Storage, ctx.blob.head(url.as_str())).await?;
    let meta = meta.ok_or_else(|| Error::UploadNotFound(url.to_string()))?;
    // The store's answer is about the blob asked for, or it is the store failing: its pathname and
    // URL are what gets attached (and, by the rewrite, deleted), and only the asked-for URL was
    // checked to lie under this session's prefix. Kept, retryable.
    if !answers_for(&meta, url) {
        return Err(Error::StorageFailed(format!(
            "head {}: the store answered for another blob ({})",
            url_pathname(url),
            meta.pathname
        )));
    }
    if held_pathname(&doc).as_deref() == Some(meta.pathname.as_str()) {
        return Ok(Verified::Held(attached_record(&doc)));
    }
    // A blob older than a client token lives may already be the sweep's (its threshold has a
    // floor above this age): never attach what the sweep may be deleting.
    let max_age = upload.completion_max_age();
    if crate::support::clock::too_old(meta.uploaded_at.as_deref(), now_ms(), max_age) {
        return Err(Error::BadRequest {
            code: Code::UploadExpired,
            message: format!(
                "The uploaded blob is older than {} min (the client token's lifetime); upload the recording again.",
                max_age.as_secs() / 60
            ),
        });
    }
    let content_type = meta.content_type.clone().unwrap_or_default();
    let declared = match parse_declared(&content_type) {
        Ok(d) if upload.allowed.contains(&d.container) => d,
        _ => return Err(Error::UnsupportedMediaType(content_type)),
    };
    if claim.declared.as_ref().is_some_and(|d| d.container != declared.container) {
        return Err(Error::ContentMismatch(declared.container.essence().into()));
    }
    // An undeclared duration passes the entitlement check here; the measured one is checked later.
    let duration_ms = claim.duration_ms.unwrap_or(0);
    let upload_meta = UploadMeta { duration_ms, declared: declared.clone(), content_length: Some(meta.size) };
    let admitted = admit_session(ctx, doc, &upload_meta).await?;
    let head = ctx.trace.phase(Phase::Storage, ctx.blob.read_start(url, Container::SNIFF_BYTES)).await?;
    // Fewer bytes than stored is the store's failure, never a verdict on the audio.
    if (head.len() as u64) < meta.size.min(Container::SNIFF_BYTES as u64) {
        return Err(Error::StorageFailed(format!("read: {} of the first bytes of {}", head.len(), meta.size)));
    }
    if !declared.container.matches(&head) {
        return Err(Error::ContentMismatch(declared.container.essence().into()));
    }
    // The duration from the whole of what landed (a lie can sit anywhere in it), read once.
    // Read whole at most once per burst: a completion retried while Convex is down reuses it.
    let key = (meta.url.clone(), meta.size, meta.uploaded_at.clone());
    let content_type = meta.content_type.clone().unwrap_or_else(|| declared.normalised.clone());
    let measure = measure_and_rewrite(ctx, url, &meta.pathname, &content_type, declared.container, meta.size);
    let measurement = ctx.state.completions.measured(key, measure).await?;
    Ok(Verified::Landed(Checked {
        url: meta.url,
        pathname: meta.pathname,
        declared,
        size: meta.size,
        measured: measurement.measured,
        rewritten: measurement.rewritten,
        user_max_ms: admitted.entitlements.max_recording_ms,
    }))
}

/// The whole read (`Phase::Measure`) and, for a provisional upload (docs/stop-to-transcribing.md,
/// option C), its rewrite to `final_pathname` (`Phase::Rewrite`: what is left after the read).
///
/// What is written is the route's own (media/finalise), never the client's. A blob already final,
/// not recognised, or whose walk the writer does not accept is measured and attached as it is
/// (today's behaviour). A store failing mid-rewrite is a retryable `storage_failed` and nothing is
/// attached or deleted: the provisional blob stays, whole, and the retry rewrites it again. (Not
/// attaching the provisional blob instead: it would leave for good a file without a length or a
/// seek for every reader not coming through the route, when a retry a moment later fixes it.)
/// Memory: the first part and the part being sent, 16 MiB (`blob::REWRITE_PART`); 17 MiB at most
/// while a WebM's part 1 goes up early (the first part, the copy sent, the file's last MiB).
async fn measure_and_rewrite(
    ctx: &Ctx<'_>,
    url: &Url,
    pathname: &str,
    content_type: &str,
    container: Container,
    size: u64,
) -> Result<Measurement> {
    let upload = &ctx.state.config.upload;
    let final_path = final_pathname(pathname);
    let permits = &ctx.state.completions.rewrites;
    let target = || RewriteTarget { pathname: &final_path, content_type, access: upload.access, permits };
    let teed = ctx.blob.measure_and_tee(url, container, size, upload.total_timeout, Some(target()));
    let teed = ctx.trace.phase(Phase::Measure, teed).await?;
    let header = teed.layout.as_ref().and_then(|layout| {
        let region = teed.first.get(..usize::try_from(layout.header_len()?).ok()?)?;
        crate::media::finalise::final_header(region, layout, size)
    });
    // What is measured is the stored file's: with the final header region, the header's own
    // duration claims are the route's (the provisional ones are MediaRecorder's, not checked).
    let measured = match (&header, &teed.rewritten) {
        (Some(_), Some(m)) => m.clone(),
        _ => teed.measured.clone(),
    };
    // Only audio that was measured is rewritten; what a refusal does to the blob is the rule's.
    let Some(header) = header.filter(|_| matches!(measured, Measured::Ms(_))) else {
        return Ok(Measurement { measured: teed.measured, rewritten: None });
    };
    let stored = ctx.trace.phase(Phase::Rewrite, ctx.blob.finish_rewrite(teed, &header, target())).await?;
    Ok(Measurement { measured, rewritten: Some(stored) })
}

/// The answer for a blob the session already holds, from the session's record.
fn attached_record(doc: &SessionDoc) -> Value {
    json!({
        "sessionId": doc.id,
        "status": doc.status,
        "audioUrl": doc.audio_url,
        "pathname": doc.audio_pathname,
        "contentType": doc.audio_content_type,
        "sizeBytes": doc.audio_size_bytes,
        "durationMs": doc.duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of `table` at once: (pathname, what `f` makes of it).
    fn assert_table(table: &[(&str, &str)], f: fn(&str) -> String) {
        let got: Vec<(&str, String)> = table.iter().map(|(p, _)| (*p, f(p))).collect();
        let want: Vec<(&str, String)> = table.iter().map(|(p, w)| (*p, w.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_blob_and_its_rewrites_take_one_turn() {
        let table: &[(&str, &str)] = &[
            ("listening-sessions/s1/take-Ab3.webm", "listening-sessions/s1/take-Ab3.webm"),
            ("listening-sessions/s1/take-Ab3.final.webm", "listening-sessions/s1/take-Ab3.webm"),
            ("listening-sessions/s1/take-Ab3.final.final.webm", "listening-sessions/s1/take-Ab3.webm"),
            ("listening-sessions/s1/take", "listening-sessions/s1/take"),
            ("listening-sessions/s1/take.final", "listening-sessions/s1/take"),
            ("listening-sessions/s1/.webm.final", "listening-sessions/s1/.webm"),
            // `.final` alone is a name, not a rewrite of an empty one; a dot in a folder is no extension.
            ("listening-sessions/s1/.final", "listening-sessions/s1/.final"),
            ("listening-sessions/s1/.final.webm", "listening-sessions/s1/.final.webm"),
            ("listening-sessions/s.final/take", "listening-sessions/s.final/take"),
            // A client's own name with `.final` in it always carries the store's random suffix after it.
            ("listening-sessions/s1/a.final-Xy9.webm", "listening-sessions/s1/a.final-Xy9.webm"),
        ];
        assert_table(table, turn_name);
        // Whatever the name, its rewrite (and the rewrite's) takes the same turn.
        for (p, _) in table {
            assert_eq!(turn_name(&final_pathname(p)), turn_name(p), "{p}");
            assert_eq!(turn_name(&final_pathname(&final_pathname(p))), turn_name(p), "{p}");
        }
    }

    #[test]
    fn the_final_pathname_is_the_same_name_with_final_before_the_extension() {
        let table: &[(&str, &str)] = &[
            ("listening-sessions/s1/take-Ab3.webm", "listening-sessions/s1/take-Ab3.final.webm"),
            ("listening-sessions/s1/take.m4a", "listening-sessions/s1/take.final.m4a"),
            ("listening-sessions/s1/a.b.ogg", "listening-sessions/s1/a.b.final.ogg"),
            // No extension, or only a leading dot: `.final` at the end; a dot in a folder is no extension.
            ("listening-sessions/s1/take", "listening-sessions/s1/take.final"),
            ("listening-sessions/s1/.webm", "listening-sessions/s1/.webm.final"),
            ("listening-sessions/s.1/take", "listening-sessions/s.1/take.final"),
        ];
        assert_table(table, final_pathname);
    }

    #[test]
    fn the_store_answers_for_the_blob_asked_for_or_it_is_failing() {
        let asked = "https://store.public.blob.vercel-storage.com/listening-sessions/s1/take%20one-Ab3.webm";
        let table: &[(&str, &str, bool)] = &[
            // (the answer's pathname, the answer's URL, whether it is about the asked-for blob)
            ("listening-sessions/s1/take one-Ab3.webm", asked, true),
            // The store's own spelling of the URL: another host (private, download), a query.
            (
                "listening-sessions/s1/take one-Ab3.webm",
                "https://store.private.blob.vercel-storage.com/listening-sessions/s1/take%20one-Ab3.webm?download=1",
                true,
            ),
            // Another blob: by pathname, by URL, or both; one of this session's or another's.
            ("listening-sessions/s1/other.webm", asked, false),
            (
                "listening-sessions/s1/take one-Ab3.webm",
                "https://store.public.blob.vercel-storage.com/listening-sessions/s2/take%20one-Ab3.webm",
                false,
            ),
            (
                "listening-sessions/s2/x.webm",
                "https://store.public.blob.vercel-storage.com/listening-sessions/s2/x.webm",
                false,
            ),
            ("", asked, false),
            ("listening-sessions/s1/take one-Ab3.webm", "not a url", false),
        ];
        let url = Url::parse(asked).unwrap();
        for (pathname, answer_url, want) in table {
            let meta = BlobMeta {
                url: answer_url.to_string(),
                pathname: pathname.to_string(),
                size: 1,
                content_type: None,
                uploaded_at: None,
            };
            assert_eq!(answers_for(&meta, &url), *want, "{pathname} {answer_url}");
        }
    }
}
