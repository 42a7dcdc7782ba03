//! The one upload pipeline both ways of uploading share: the streamed POST (`flows::stream`) and the
//! direct-to-Blob client upload (`flows::token`, `flows::complete`).
//!
//! - `admit`: before anything is stored (or a token minted), the session is the caller's and
//!   `recording`, the user is entitled, and their limits give this upload's byte limit.
//! - `attach`: once the audio is stored and measured, the duration is settled against the
//!   declaration and the limits, `attachAudio` runs with signed arguments, an unclear answer is
//!   settled by re-reading the session, and the blob is kept or deleted by the one delete rule
//!   (`attach::fate`, carried out by `dispose`).

use serde_json::{json, Value};

use crate::convex::client::SessionDoc;
use crate::error::{Error, Result};
use crate::identity::Caller;
use crate::media::duration::Measured;
use crate::state::State;
use crate::storage::blob::BlobClient;
use crate::telemetry::{Phase, Trace};
use crate::upload::attach::{Fate, Verdict};
use crate::upload::attach_sign::AttachSecret;
use crate::upload::rules::{apply_entitlements, settle_duration, DurationLimits, Entitlements, UploadMeta};

/// What every step of an upload is about: passed down whole instead of as 7–8 arguments.
pub struct Ctx<'a> {
    pub state: &'a State,
    /// The deployment's store (`state.blob()`, checked once at the top of the route).
    pub blob: &'a BlobClient,
    pub who: &'a Caller,
    pub session_id: &'a str,
    /// What the attach is signed with (`attach_sign`): the route checks it is set, once, before
    /// anything is stored or minted.
    pub secret: &'a AttachSecret,
    pub trace: &'a Trace,
}

/// An upload that may go ahead: the caller's session as it is now, their entitlements, and the
/// byte limit that applies (the smaller of the deployment's and theirs).
pub struct Admitted {
    pub doc: SessionDoc,
    pub limit: u64,
    pub entitlements: Entitlements,
}

/// The session is the caller's (fresh: its state decides) and `recording`, the user may record,
/// and what they declared is within their limits.
pub async fn admit(ctx: &Ctx<'_>, meta: &UploadMeta) -> Result<Admitted> {
    let doc = ctx.state.sessions.fresh(ctx.who, ctx.session_id, ctx.trace).await?;
    admit_session(ctx, doc, meta).await
}

/// `admit` for a session already read (a completion reads it first to answer replays).
pub async fn admit_session(ctx: &Ctx<'_>, doc: SessionDoc, meta: &UploadMeta) -> Result<Admitted> {
    if doc.status != "recording" {
        return Err(Error::InvalidSessionState(doc.status));
    }
    let query = &ctx.state.config.upload.entitlements_query;
    let answer = ctx.state.sessions.query(ctx.who, query, json!({}), Phase::Entitlements, ctx.trace).await?;
    let entitlements: Entitlements = serde_json::from_value(answer)
        .map_err(|e| Error::ConvexShape { what: "the entitlements", why: e.to_string() })?;
    let limit = apply_entitlements(meta, &entitlements, &ctx.state.config.upload)?;
    Ok(Admitted { doc, limit, entitlements })
}

/// What is in storage and is to be attached.
pub struct Landed<'a> {
    pub url: &'a str,
    pub pathname: &'a str,
    /// Normalised (`audio/webm;codecs=opus`).
    pub content_type: &'a str,
    pub size: u64,
    /// What the client declared, if anything (a completion event may leave it out).
    pub declared_ms: Option<u64>,
    pub measured: Measured,
    /// The user's own duration limit (entitlements).
    pub user_max_ms: Option<f64>,
}

/// Settle the duration, attach, and answer `201` (attached now) or `200` (the session already
/// held this blob: the other completion path attached it a moment ago). What becomes of the blob
/// after a refusal is the one delete rule's (`attach::fate`); a kept blob answers a retryable 503.
pub async fn attach(ctx: &Ctx<'_>, landed: &Landed<'_>) -> Result<(u16, Value)> {
    let state = ctx.state;
    let limits = DurationLimits::new(&state.config.upload, landed.user_max_ms);
    let settled = match settle_duration(landed.declared_ms, &landed.measured, &limits) {
        Ok(settled) => settled,
        Err(refusal) => return Err(dispose(ctx, landed, refusal, None).await),
    };
    ctx.trace.set_duration_source(settled.source());
    let body = json!({
        "sessionId": ctx.session_id,
        "status": "transcribing",
        "audioUrl": landed.url,
        "pathname": landed.pathname,
        "contentType": landed.content_type,
        "sizeBytes": landed.size,
        "durationMs": settled.duration_ms,
        "durationSource": settled.source(),
    });
    // Only the route can attach: the arguments go signed (`attach_sign`).
    let args = crate::upload::attach_sign::AttachArgs {
        session_id: ctx.session_id,
        audio_url: landed.url,
        pathname: landed.pathname,
        content_type: landed.content_type,
        size_bytes: landed.size,
        duration_ms: settled.duration_ms,
    }
    .signed_now(ctx.secret);
    let mutation = &state.config.upload.attach_mutation;
    let outcome = state.sessions.mutation(ctx.who, mutation, args, ctx.trace).await;
    state.sessions.forget(&ctx.who.user_id, ctx.session_id).await;
    let Some(error) = crate::upload::attach::classify(outcome) else {
        state.attach_works();
        return Ok((201, body));
    };
    state.attach_refused(&error);
    // Anything but a clear success: the session, re-read, says whether it holds this blob.
    let status = if matches!(error, Error::InvalidSessionState(_)) { 200 } else { 201 };
    let reread = state.sessions.reread(ctx.who, ctx.session_id, ctx.trace).await;
    let holds = |doc: &SessionDoc| crate::upload::attach::held_pathname(doc).as_deref() == Some(landed.pathname);
    match crate::upload::attach::settle(error, reread.as_ref().map_err(Clone::clone), holds) {
        Verdict::Attached => Ok((status, body)),
        Verdict::Refused(refusal) => Err(dispose(ctx, landed, refusal, reread.as_ref().ok()).await),
    }
}

/// Carry out the one delete rule (`attach::fate`) on a refused upload and hand the refusal on: a
/// deleted blob's refusal as it is, a kept blob's as a retryable answer (`attach::kept`).
/// `session`: the session as last read fresh, if it was.
pub async fn dispose(ctx: &Ctx<'_>, landed: &Landed<'_>, refusal: Error, session: Option<&SessionDoc>) -> Error {
    discard_or_keep(ctx, landed.url, landed.pathname, refusal, session).await
}

/// `dispose` for a blob known only by its URL and pathname (a completion refused before the
/// attach). `pathname` is decoded (`attach::url_pathname`): blobs are told apart by it.
pub async fn discard_or_keep(
    ctx: &Ctx<'_>,
    url: &str,
    pathname: &str,
    refusal: Error,
    session: Option<&SessionDoc>,
) -> Error {
    match crate::upload::attach::fate(&refusal, session, pathname) {
        Fate::Delete => {
            delete(ctx.blob, url, pathname).await;
            refusal
        }
        Fate::Superseded => {
            delete(ctx.blob, url, pathname).await;
            let status = session.map_or_else(|| "no longer recording".to_string(), |doc| doc.status.clone());
            Error::InvalidSessionState(status)
        }
        Fate::Keep => {
            tracing::warn!(target: "session_audio", pathname, code = refusal.code(),
                error = %crate::telemetry::scrub(&refusal.to_string()),
                "upload not attached and kept for a retry (sweepOrphanAudio removes it if it is never attached)");
            crate::upload::attach::kept(refusal)
        }
    }
}

/// Delete one stored blob, logging (never failing) when the store will not.
pub async fn delete(blob: &BlobClient, url: &str, pathname: &str) {
    if let Err(e) = blob.delete(&[url.to_string()]).await {
        tracing::error!(target: "session_audio", pathname, error = %crate::telemetry::scrub(&e.to_string()),
            "could not delete an upload that was refused");
    }
}
