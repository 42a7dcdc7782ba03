//! POST `/api/listening-sessions/[sessionId]/audio`: decide what the request is, check who sends
//! it, and hand it to its flow (`flows`). A JSON body is a client-upload event (the audio went
//! straight to Blob); anything else is the audio itself.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::http::request::{session_id, test_panic_hook, Request};
use crate::http::response::Response;
use crate::http::serve::serve;
use crate::state::State;
use crate::telemetry::Trace;
use crate::upload::client_upload::{parse_event, Event};
use crate::upload::flows::{complete, stream, token};
use crate::upload::ingress::Chunks;
use crate::upload::pipeline::Ctx;

/// The most a JSON event may weigh (they are a few hundred bytes).
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// `body` yields the request body's chunks as JS writes them.
pub async fn post(state: &State, req: Request, body: Chunks) -> Response {
    let received = AtomicU64::new(0);
    let handler = |trace| route(state, &req, body, trace, &received);
    serve(&state.telemetry, "post", &req, handler, || Some(received.load(Ordering::SeqCst))).await
}

/// What a POST is, read before anyone is trusted: the audio itself, or a client-upload event (the
/// audio went straight to Blob), with the raw bytes Blob's webhook signature covers.
enum Post {
    Audio(Chunks),
    Event { raw: bytes::Bytes, event: Event },
}

async fn route(state: &State, req: &Request, body: Chunks, trace: Trace, received: &AtomicU64) -> Result<Response> {
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(Error::MethodNotAllowed);
    }
    let session_id = session_id(req)?;
    test_panic_hook(req);
    let trace = &trace;
    let post = if is_event(&req.headers) {
        if !state.config.upload.client_uploads {
            return Err(Error::ClientUploadsDisabled);
        }
        let raw = read_event(body, state.config.upload.idle_timeout).await?;
        let event = parse_event(&raw)?;
        Post::Event { raw, event }
    } else {
        Post::Audio(body)
    };
    // Who is calling comes first, before any Blob credential is resolved or configuration checked:
    // an anonymous request costs one token check and is a 401, never a 503 or a Sentry event. The
    // one exception is Blob's signed webhook, which has no user: its signature is checked instead,
    // and the user is the one its token was minted for.
    let who = match &post {
        Post::Event { raw, event: Event::UploadCompleted { token_payload, .. } } => {
            complete::webhook_caller(state, req, raw, session_id, token_payload.as_deref(), trace)?
        }
        _ => state.identity.authenticate(&req.headers, trace).await?,
    };
    // Every upload ends in an attach only the route can sign: without the secret, nothing is
    // stored or minted.
    let blob = &state.blob(req)?;
    let secret = crate::upload::attach_sign::require(state.config.upload.attach_secret.as_ref())?;
    let ctx = Ctx { state, blob, who: &who, session_id, secret, trace };
    let event = match post {
        Post::Audio(body) => return stream::handle(&ctx, req, body, received).await,
        Post::Event { event, .. } => event,
    };
    match event {
        Event::GenerateClientToken { pathname, client_payload } => {
            token::client_token(&ctx, req, &pathname, client_payload.as_deref()).await
        }
        Event::GeneratePresignedUrl { pathname, client_payload } => {
            token::presigned_url(&ctx, req, &pathname, client_payload.as_deref()).await
        }
        Event::CompleteUpload { url, duration_ms } => complete::browser(&ctx, &url, duration_ms.as_deref()).await,
        Event::UploadCompleted { url, token_payload } => complete::webhook(&ctx, &url, token_payload.as_deref()).await,
    }
}

/// Whether a POST carries an event rather than audio.
pub fn is_event(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type")
            && v.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::hv;

    /// Which POSTs are events: a JSON content type, whatever its case and parameters; anything
    /// else (no type, audio, JSON-like types) is the audio itself.
    #[test]
    fn a_json_content_type_makes_an_event_anything_else_is_audio() {
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("content-type", "application/json")], true),
            (&[("Content-Type", "Application/JSON; charset=utf-8")], true),
            (&[("content-type", " application/json ;x=1")], true),
            (&[("content-type", "audio/webm")], false),
            (&[("content-type", "application/json-seq")], false),
            (&[("content-type", "text/plain"), ("content-type", "application/json")], true),
            (&[("x-content-type", "application/json")], false),
        ];
        for (headers, want) in table {
            assert_eq!(is_event(&hv(headers)), *want, "{headers:?}");
        }
    }
}
