//! POST with a JSON body: the direct-to-Blob client-upload events, for recordings too large for a
//! function body (Vercel refuses bodies over 4.5 MB, docs/protocols.md §D.3). The browser uploads
//! straight to Blob with a token minted here; then it (`session-audio.complete-upload`) or Blob's
//! signed webhook (`blob.upload-completed`), in either order or only one of them, has the route
//! verify what landed and attach it. The guarantees are the streamed POST's: only the owner, only
//! while `recording`, the limits, real audio, one atomic transition, nothing orphaned.

use crate::clock::now_ms;

use serde_json::{json, Value};
use url::Url;

use crate::attach::{Answer, Verdict};
use crate::auth::Identity;
use crate::blob::BlobClient;
use crate::client_upload::{
    blob_url_for_session, check_pathname, mint_client_token, parse_client_payload, parse_event, request_path,
    signature_ok, Event, TokenPayload, GENERATE_CLIENT_TOKEN, UPLOAD_COMPLETED,
};
use crate::convex::SessionDoc;
use crate::error::{Error, Result};
use crate::ingress::Chunks;
use crate::media::{parse_declared, Container, DeclaredType};
use crate::response::Response;
use crate::serve::Request;
use crate::state::State;
use crate::telemetry::Trace;
use crate::upload_rules::{
    apply_entitlements, settle_duration, validate_declared, validate_duration, Declared, DurationLimits, Entitlements,
    UploadMeta,
};

/// The most a JSON event may weigh (they are a few hundred bytes).
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Whether a POST carries an event rather than audio.
pub fn is_event(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type")
            && v.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    })
}

pub async fn handle(state: &State, req: &Request, session_id: &str, body: Chunks, trace: &Trace) -> Result<Response> {
    if !state.config.upload.client_uploads {
        return Err(Error::ClientUploadsDisabled);
    }
    let blob = state.blob()?;
    // Every event leads to an attach (a token is only worth minting if its upload can be attached).
    crate::attach_sign::require(state.config.upload.attach_secret.as_ref())?;
    let raw = read_event(body, state.config.upload.idle_timeout).await?;
    match parse_event(&raw)? {
        Event::GenerateClientToken { pathname, client_payload } => {
            let who = state.authenticate(&req.headers, trace).await?;
            generate_token(state, blob, req, session_id, &who, &pathname, client_payload.as_deref(), trace).await
        }
        Event::CompleteUpload { url, duration_ms } => {
            let who = state.authenticate(&req.headers, trace).await?;
            // Only the duration may be declared here, and need not be: it is measured. The type is
            // the stored blob's (which the token constrained) and is checked against the bytes.
            let duration_ms = duration_ms
                .map(|d| validate_duration(Some(&d), &state.config.upload, Declared::CompleteEvent))
                .transpose()?;
            let landed = Landed { url: &url, duration_ms, declared: None };
            attach_landed(state, blob, &who, session_id, &landed, trace)
                .await
                .map(|(status, body)| json_response(status, body))
        }
        Event::UploadCompleted { url, token_payload } => {
            let signature = header(&req.headers, "x-vercel-signature");
            if !signature_ok(blob.store().token(), &raw, signature) {
                return Err(Error::InvalidSignature);
            }
            webhook(state, blob, session_id, &url, token_payload.as_deref(), trace).await
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The JSON event, whole (it is small), within the same idle timeout as an audio body.
async fn read_event(mut body: Chunks, idle: std::time::Duration) -> Result<bytes::Bytes> {
    let mut raw = bytes::BytesMut::new();
    loop {
        let Ok(next) = tokio::time::timeout(idle, body.recv()).await else {
            body.close();
            return Err(Error::UploadTimeout(idle));
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|why| Error::IncompleteBody(format!("client aborted: {why}")))?;
        if raw.len() + chunk.len() > MAX_EVENT_BYTES {
            return Err(Error::PayloadTooLarge(format!("a JSON event is at most {MAX_EVENT_BYTES} bytes")));
        }
        raw.extend_from_slice(&chunk);
    }
    Ok(raw.freeze())
}

fn json_response(status: u16, body: Value) -> Response {
    Response {
        status,
        headers: vec![
            ("content-type".into(), "application/json; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: crate::response::Body::Bytes(body.to_string().into_bytes().into()),
    }
}

/// The caller's byte limit for this upload, and their entitlements: their session must be
/// `recording` and they entitled.
async fn entitled_limit(
    state: &State,
    who: &Identity,
    doc: &SessionDoc,
    meta: &UploadMeta,
    trace: &Trace,
) -> Result<(u64, Entitlements)> {
    if doc.status != "recording" {
        return Err(Error::InvalidSessionState(doc.status.clone()));
    }
    let query = &state.config.upload.entitlements_query;
    let ent = state.query_as(who, query, json!({}), "entitlements", trace).await?;
    let ent: Entitlements = serde_json::from_value(ent)
        .map_err(|e| Error::ConvexFunction(format!("entitlements have the wrong shape: {e}")))?;
    let limit = apply_entitlements(meta, &ent, &state.config.upload)?;
    Ok((limit, ent))
}

/// `blob.generate-client-token`: the same checks as a streamed upload's, then a token for exactly
/// this pathname, type and size, valid for `client_token_ttl`.
#[allow(clippy::too_many_arguments)]
async fn generate_token(
    state: &State,
    blob: &BlobClient,
    req: &Request,
    session_id: &str,
    who: &Identity,
    pathname: &str,
    client_payload: Option<&str>,
    trace: &Trace,
) -> Result<Response> {
    let (duration, content_type) = parse_client_payload(client_payload)?;
    let (duration_ms, declared) =
        validate_declared(duration.as_deref(), content_type.as_deref(), &state.config.upload, Declared::ClientPayload)?;
    check_pathname(pathname, session_id, declared.container)?;
    let meta = UploadMeta { duration_ms, declared: declared.clone(), content_length: None };
    let doc = state.fresh_session(who, session_id, trace).await?;
    let (limit, _) = entitled_limit(state, who, &doc, &meta, trace).await?;
    let token_payload = TokenPayload {
        session_id: session_id.to_string(),
        user_id: who.user_id.clone(),
        clerk_session_id: who.session_id.clone(),
        duration_ms,
        content_type: declared.normalised.clone(),
    };
    let mut on_completed = json!({ "tokenPayload": serde_json::to_string(&token_payload).unwrap_or_default() });
    let callback = state.config.upload.callback_origin.as_ref().zip(request_path(&req.url));
    if let Some((origin, path)) = callback {
        on_completed["callbackUrl"] = json!(format!("{origin}{path}"));
    }
    // The declared type as sent, and its essence (browsers add `;codecs=…` or not).
    let mut allowed = vec![declared.normalised.clone()];
    if declared.normalised != declared.container.essence() {
        allowed.push(declared.container.essence().to_string());
    }
    let ttl_ms = u64::try_from(state.config.upload.client_token_ttl.as_millis()).unwrap_or(u64::MAX);
    let constraints = json!({
        "pathname": pathname,
        "allowedContentTypes": allowed,
        "maximumSizeInBytes": limit,
        "addRandomSuffix": true,
        "allowOverwrite": false,
        "validUntil": now_ms().saturating_add(ttl_ms),
        "onUploadCompleted": on_completed,
    });
    let client_token = mint_client_token(blob.store().token(), blob.store().id(), &constraints);
    Ok(json_response(200, json!({ "type": GENERATE_CLIENT_TOKEN, "clientToken": client_token })))
}

/// What the browser or the webhook says landed.
struct Landed<'a> {
    url: &'a str,
    /// What was declared, if anything (the browser's event may leave it out: it is measured).
    duration_ms: Option<u64>,
    /// The type declared when the token was minted (the webhook knows it; the browser's event
    /// relies on the stored blob's type, which the token already constrained).
    declared: Option<DeclaredType>,
}

/// Verify a stored blob and attach it: `201` (attached now) or `200` (this session already holds
/// it). A blob is deleted on refusal only once it is known to be under this session's prefix, the
/// session the caller's, and the blob not the one it holds: a URL under somebody else's session is
/// refused and left alone.
async fn attach_landed(
    state: &State,
    blob: &BlobClient,
    who: &Identity,
    session_id: &str,
    landed: &Landed<'_>,
    trace: &Trace,
) -> Result<(u16, Value)> {
    let url = blob_url_for_session(landed.url, blob.store(), session_id)?;
    // The browser's event, Blob's webhook and any replays of them take turns per blob: one reads
    // storage and attaches, the others then find the session holding it.
    let _turn = state.completions.take(format!("{session_id} {url}")).await;
    let doc = state.fresh_session(who, session_id, trace).await?;
    // Already attached: answered from the session's own record, without reading storage.
    if doc.audio_url.as_deref() == Some(url.as_str()) {
        return Ok((200, attached_record(&doc)));
    }
    match verify_and_attach(state, blob, who, &doc, &url, landed, trace).await {
        Ok(done) => Ok(done),
        // A refusal for good: no orphan stays. A transient failure (Clerk, Convex or the store
        // unavailable) leaves the blob for a retry: Blob retries its webhook.
        Err(refusal) if refusal.status() < 500 => {
            delete_quietly(blob, &url).await;
            Err(refusal)
        }
        Err(transient) => Err(transient),
    }
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

async fn delete_quietly(blob: &BlobClient, url: &Url) {
    if let Err(e) = blob.delete(&[url.to_string()]).await {
        tracing::error!(target: "session_audio", url = %crate::policy::redact(url), error = %crate::telemetry::scrub(&e.to_string()),
            "could not delete a refused client upload");
    }
}

async fn verify_and_attach(
    state: &State,
    blob: &BlobClient,
    who: &Identity,
    doc: &SessionDoc,
    url: &Url,
    landed: &Landed<'_>,
    trace: &Trace,
) -> Result<(u16, Value)> {
    let meta =
        trace.phase("storage", blob.head(url.as_str())).await?.ok_or_else(|| Error::UploadNotFound(url.to_string()))?;
    let holds = |audio_url: Option<&str>| audio_url == Some(url.as_str()) || audio_url == Some(meta.url.as_str());
    // The same blob under another spelling of its URL: attached already, answered from the record.
    if holds(doc.audio_url.as_deref()) {
        return Ok((200, attached_record(doc)));
    }
    // A blob older than a client token lives may already be the sweep's (its threshold has a
    // floor above this age): never attach what the sweep may be deleting.
    let max_age = state.config.upload.completion_max_age();
    if crate::clock::too_old(meta.uploaded_at.as_deref(), now_ms(), max_age) {
        return Err(Error::BadRequest {
            code: "upload_expired",
            message: format!(
                "The uploaded blob is older than {} min (the client token's lifetime); upload the recording again.",
                max_age.as_secs() / 60
            ),
        });
    }
    let content_type = meta.content_type.clone().unwrap_or_default();
    let body = |content_type: &str| {
        json!({
            "sessionId": doc.id,
            "status": "transcribing",
            "audioUrl": meta.url,
            "pathname": meta.pathname,
            "contentType": content_type,
            "sizeBytes": meta.size,
        })
    };
    let declared = match parse_declared(&content_type) {
        Ok(d) if state.config.upload.allowed.contains(&d.container) => d,
        _ => return Err(Error::UnsupportedMediaType(content_type)),
    };
    if landed.declared.as_ref().is_some_and(|d| d.container != declared.container) {
        return Err(Error::ContentMismatch(declared.container.essence().into()));
    }
    // An undeclared duration passes the entitlement check here; the measured one is checked below.
    let duration_ms = landed.duration_ms.unwrap_or(0);
    let upload_meta = UploadMeta { duration_ms, declared: declared.clone(), content_length: Some(meta.size) };
    let (_, ent) = entitled_limit(state, who, doc, &upload_meta, trace).await?;
    let head = trace.phase("storage", blob.read_start(url, Container::SNIFF_BYTES)).await?;
    if !declared.container.matches(&head) {
        return Err(Error::ContentMismatch(declared.container.essence().into()));
    }
    // The duration, measured from the whole of what landed (a lie can sit anywhere in it), read
    // once: it must agree with the declaration and the limits apply to it, as for a streamed upload.
    let deadline = state.config.upload.total_timeout;
    let measured = trace.phase("measure", blob.measure(url, declared.container, meta.size, deadline)).await?;
    let limits = DurationLimits::new(&state.config.upload, ent.max_recording_ms);
    let settled = settle_duration(landed.duration_ms, &measured, &limits)?;
    trace.set_duration_source(settled.source());
    let mut body = body(&declared.normalised);
    body["durationMs"] = json!(settled.duration_ms);
    body["durationSource"] = json!(settled.source());
    let secret = crate::attach_sign::require(state.config.upload.attach_secret.as_ref())?;
    let attach = crate::attach_sign::AttachArgs {
        session_id: &doc.id,
        audio_url: &meta.url,
        pathname: &meta.pathname,
        content_type: &declared.normalised,
        size_bytes: meta.size,
        duration_ms: settled.duration_ms,
    }
    .signed_now(secret);
    let mutation = &state.config.upload.attach_mutation;
    let outcome = state.mutation_as(who, mutation, attach, "mutation", trace).await;
    state.forget_session(&who.user_id, &doc.id).await;
    // Anything but a clear success: the session, re-read, says whether it holds this blob (the
    // other completion path may have attached it a moment ago: that is success too). A refusal
    // below 500 makes `attach_landed` delete the blob; a 5xx keeps it for Blob's webhook retry.
    let answer = crate::attach::classify(outcome);
    let status = if matches!(answer, Answer::Refused(_)) { 200 } else { 201 };
    if matches!(answer, Answer::Attached) {
        return Ok((201, body));
    }
    let reread = state.reread_session(who, &doc.id, trace).await;
    match crate::attach::settle(answer, reread.as_ref().map_err(Clone::clone), |d| holds(d.audio_url.as_deref())) {
        Verdict::Attached => Ok((status, body)),
        Verdict::Refused(e) | Verdict::Unknown(e) => Err(e),
    }
}

/// `blob.upload-completed`: the signature has been checked; act for the user the token was minted
/// for. `200 ok` when attached or refused for good (blob deleted); 5xx when Clerk, Convex or the
/// store is unavailable, so Blob retries.
async fn webhook(
    state: &State,
    blob: &BlobClient,
    session_id: &str,
    url: &str,
    token_payload: Option<&str>,
    trace: &Trace,
) -> Result<Response> {
    let payload = TokenPayload::parse(token_payload)?;
    if payload.session_id != session_id {
        return Err(Error::BadRequest {
            code: "invalid_event",
            message: "The webhook's tokenPayload names another session than this route's.".into(),
        });
    }
    trace.set_user(&payload.user_id);
    let who = Identity { user_id: payload.user_id.clone(), session_id: payload.clerk_session_id.clone() };
    let declared = parse_declared(&payload.content_type).ok();
    let landed = Landed { url, duration_ms: Some(payload.duration_ms), declared };
    match attach_landed(state, blob, &who, session_id, &landed, trace).await {
        Ok(_) => {}
        Err(e) if e.status() < 500 => {
            tracing::warn!(target: "session_audio", session_id, code = e.code(), "client upload refused by the webhook; blob deleted");
        }
        Err(e) => return Err(e),
    }
    Ok(json_response(200, json!({ "type": UPLOAD_COMPLETED, "response": "ok" })))
}
