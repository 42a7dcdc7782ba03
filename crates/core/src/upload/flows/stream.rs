//! POST with the audio as the body. The steps of the README's list, in order, each one named call;
//! nothing is stored before every check that can be made without the bytes has passed, and nothing
//! stays stored after a refusal.

use crate::telemetry::Phase;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::http::request::Request;
use crate::http::response::{json, Response};
use crate::upload::ingress::{Chunks, UploadBody};
use crate::upload::pipeline::{admit, attach, Ctx, Landed};
use crate::upload::rules::validate_headers;

/// `received` reports the bytes read, for the request's record.
pub async fn handle(ctx: &Ctx<'_>, req: &Request, body: Chunks, received: &AtomicU64) -> Result<Response> {
    let upload = &ctx.state.config.upload;
    // 1. what the headers promise, before a byte is read (identity was checked by the route).
    let meta = validate_headers(&req.headers, upload)?;
    // 2. the session, fresh (its state matters here), the user's entitlements and limits.
    let admitted = admit(ctx, &meta).await?;
    // 3. the first bytes must be the declared container.
    let container = meta.declared.container;
    let body = UploadBody::new(
        body,
        container,
        admitted.limit,
        meta.content_length,
        upload.idle_timeout,
        upload.total_timeout,
    );
    let head = body.peek_head().await?;
    if !container.matches(&head) {
        return Err(Error::ContentMismatch(container.essence().into()));
    }
    // 4. stream to Blob under a random name in the session's own prefix (GET checks it); every
    // chunk handed on is measured as it passes.
    let pathname = crate::storage::store::new_pathname(ctx.session_id, container);
    let put_body = crate::storage::blob::PutBody {
        make: || body.reqwest_body(),
        polled: &body.polled,
        progress: body.progress(),
        // Longer than the body's own idle timeout, so a client that stalls gets its 408 first.
        stall: upload.idle_timeout * 2,
    };
    let put = ctx.blob.put(&pathname, &meta.declared.normalised, upload.access, put_body);
    let stored = ctx.trace.phase(Phase::Storage, put).await;
    received.store(body.received(), Ordering::SeqCst);
    // A failure the body itself recorded (limit, short body, client abort, timeout) says more than
    // the transport error it caused.
    let stored = stored.map_err(|e| body.failure().unwrap_or(e))?;
    // 5–6. the measured duration settled, then recording → transcribing (`upload::attach`).
    let landed = Landed {
        url: &stored.url,
        pathname: &stored.pathname,
        content_type: &meta.declared.normalised,
        size: body.received(),
        declared_ms: Some(meta.duration_ms),
        measured: body.measured(),
        user_max_ms: admitted.entitlements.max_recording_ms,
    };
    let (status, answer) = attach(ctx, &landed).await?;
    Ok(json(status, &answer))
}
