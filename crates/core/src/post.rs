//! POST `/api/listening-sessions/[sessionId]/audio`: the raw audio body, its metadata in headers.
//! The steps of the README's list, in order, each one named call; nothing is stored before every
//! check that can be made without the bytes has passed, and nothing stays stored after a refusal.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::attach::{Answer, Verdict};
use crate::error::{Error, Result};
use crate::ingress::{Chunks, UploadBody};
use crate::response::{Body, Response};
use crate::serve::{serve, session_id, test_panic_hook, Request};
use crate::state::State;
use crate::telemetry::Trace;
use crate::upload_rules::{apply_entitlements, settle_duration, validate_headers, Entitlements};

/// `body` yields the request body's chunks as JS writes them.
pub async fn post(state: &State, req: Request, body: Chunks) -> Response {
    let received = AtomicU64::new(0);
    let handler = |trace| try_post(state, &req, body, trace, &received);
    serve(&state.telemetry, "post", &req, handler, || Some(received.load(Ordering::SeqCst))).await
}

async fn try_post(state: &State, req: &Request, body: Chunks, trace: Trace, received: &AtomicU64) -> Result<Response> {
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(Error::MethodNotAllowed);
    }
    let session_id = session_id(req)?;
    test_panic_hook(req);
    // A JSON body is a client-upload event (the audio went straight to Blob); anything else is audio.
    if crate::client_flow::is_event(&req.headers) {
        return crate::client_flow::handle(state, req, session_id, body, &trace).await;
    }
    let blob = state.blob()?;
    let secret = crate::attach_sign::require(state.config.upload.attach_secret.as_ref())?;
    // 1. identity, then what the headers promise — all before a byte is read.
    let who = state.authenticate(&req.headers, &trace).await?;
    let meta = validate_headers(&req.headers, &state.config.upload)?;
    // 2. the session, fresh (its state matters here, so no cache), and the user's entitlements.
    let doc = state.fresh_session(&who, session_id, &trace).await?;
    if doc.status != "recording" {
        return Err(Error::InvalidSessionState(doc.status));
    }
    let entitlements_query = &state.config.upload.entitlements_query;
    let ent = state.query_as(&who, entitlements_query, serde_json::json!({}), "entitlements", &trace).await?;
    let ent: Entitlements = serde_json::from_value(ent)
        .map_err(|e| Error::ConvexFunction(format!("entitlements have the wrong shape: {e}")))?;
    let limit = apply_entitlements(&meta, &ent, &state.config.upload)?;
    // 3. the first bytes must be the declared container.
    let upload = &state.config.upload;
    let body = UploadBody::new(
        body,
        meta.declared.container,
        limit,
        meta.content_length,
        upload.idle_timeout,
        upload.total_timeout,
    );
    let head = body.peek_head().await?;
    if !meta.declared.container.matches(&head) {
        return Err(Error::ContentMismatch(meta.declared.container.essence().into()));
    }
    // 4. stream to Blob under a random name, in the session's own prefix (GET checks it).
    let pathname = crate::store::new_pathname(session_id, meta.declared.container);
    let put_body = crate::blob::PutBody {
        make: || body.reqwest_body(),
        polled: &body.polled,
        progress: body.progress(),
        // Longer than the body's own idle timeout, so a client that stalls gets its 408 first.
        stall: state.config.upload.idle_timeout * 2,
    };
    let put = blob.put(&pathname, &meta.declared.normalised, state.config.upload.access, put_body);
    let stored = trace.phase("storage", put).await;
    received.store(body.received(), Ordering::SeqCst);
    // A failure the body itself recorded (limit, short body, client abort) says more than the
    // transport error it caused.
    let stored = stored.map_err(|e| body.failure().unwrap_or(e))?;
    let size = body.received();
    // 5. the duration, measured from the container as the bytes passed: it must agree with the
    // declaration, and the limits apply to it. A refusal removes what was stored.
    let limits = crate::upload_rules::DurationLimits::new(&state.config.upload, ent.max_recording_ms);
    let settled = match settle_duration(Some(meta.duration_ms), &body.measured(), &limits) {
        Ok(settled) => {
            trace.set_duration_source(settled.source());
            settled
        }
        Err(refusal) => {
            delete_orphan(blob, &stored).await;
            return Err(refusal);
        }
    };
    // 6. recording → transcribing, atomically in Convex; on any refusal, no orphan blob stays.
    let result = serde_json::json!({
        "sessionId": session_id,
        "status": "transcribing",
        "audioUrl": stored.url,
        "pathname": stored.pathname,
        "contentType": meta.declared.normalised,
        "sizeBytes": size,
        "durationMs": settled.duration_ms,
        "durationSource": settled.source(),
    });
    let attach = crate::attach_sign::AttachArgs {
        session_id,
        audio_url: &stored.url,
        pathname: &stored.pathname,
        content_type: &meta.declared.normalised,
        size_bytes: size,
        duration_ms: settled.duration_ms,
    }
    .signed_now(secret);
    let outcome = state.mutation_as(&who, &state.config.upload.attach_mutation, attach, "mutation", &trace).await;
    state.forget_session(&who.user_id, session_id).await;
    // Anything but a clear success: the session, re-read, says whether it holds this upload.
    let verdict = match crate::attach::classify(outcome) {
        Answer::Attached => Verdict::Attached,
        answer => {
            let reread = state.reread_session(&who, session_id, &trace).await;
            let holds = |doc: &crate::convex::SessionDoc| doc.audio_url.as_deref() == Some(stored.url.as_str());
            crate::attach::settle(answer, reread.as_ref().map_err(Clone::clone), holds)
        }
    };
    match verdict {
        Verdict::Attached => {}
        Verdict::Refused(refusal) => {
            delete_orphan(blob, &stored).await;
            return Err(refusal);
        }
        Verdict::Unknown(error) => {
            tracing::warn!(target: "session_audio", pathname = %stored.pathname, error = %crate::telemetry::scrub(&error.to_string()),
                "attach outcome unknown and the session could not be re-read: blob kept (sweepOrphanAudio removes it if unattached)");
            return Err(error);
        }
    }
    Ok(Response {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: Body::Bytes(result.to_string().into_bytes().into()),
    })
}

/// Remove an upload that will not be attached. If that fails too, say so loudly: the blob is an
/// orphan until `sweepOrphanAudio` removes it.
async fn delete_orphan(blob: &crate::blob::BlobClient, stored: &crate::blob::StoredBlob) {
    if let Err(del) = blob.delete(std::slice::from_ref(&stored.url)).await {
        tracing::error!(target: "session_audio", pathname = %stored.pathname, error = %crate::telemetry::scrub(&del.to_string()),
            "could not delete an upload that was refused");
    }
}
