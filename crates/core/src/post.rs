//! POST `/api/listening-sessions/[sessionId]/audio`: decide what the request is, check who sends
//! it, and hand it to its flow (`flows`). A JSON body is a client-upload event (the audio went
//! straight to Blob); anything else is the audio itself.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Code, Error, Result};
use crate::http::request::{session_id, test_panic_hook, Request};
use crate::http::response::Response;
use crate::http::serve::serve;
use crate::media::parse_declared;
use crate::state::State;
use crate::telemetry::Trace;
use crate::upload::client_upload::{parse_event, Event};
use crate::upload::flows::{complete, stream, token};
use crate::upload::ingress::Chunks;
use crate::upload::pipeline::Ctx;
use crate::upload::rules::{validate_duration, Declared};

/// The most a JSON event may weigh (they are a few hundred bytes).
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// `body` yields the request body's chunks as JS writes them.
pub async fn post(state: &State, req: Request, body: Chunks) -> Response {
    let received = AtomicU64::new(0);
    let handler = |trace| route(state, &req, body, trace, &received);
    serve(&state.telemetry, "post", &req, handler, || Some(received.load(Ordering::SeqCst))).await
}

async fn route(state: &State, req: &Request, body: Chunks, trace: Trace, received: &AtomicU64) -> Result<Response> {
    if !req.method.eq_ignore_ascii_case("POST") {
        return Err(Error::MethodNotAllowed);
    }
    let session_id = session_id(req)?;
    test_panic_hook(req);
    let trace = &trace;
    // Who is calling comes first, before any Blob credential is resolved or configuration checked:
    // an anonymous request costs one token check and is a 401, never a 503 or a Sentry event. The
    // one exception is Blob's signed webhook, which has no user and is checked by its signature.
    if !is_event(&req.headers) {
        let who = state.identity.authenticate(&req.headers, trace).await?;
        let blob = &upload_client(state, req)?;
        let ctx = Ctx { state, blob, who: &who, session_id, trace };
        return stream::handle(&ctx, req, body, received).await;
    }
    if !state.config.upload.client_uploads {
        return Err(Error::ClientUploadsDisabled);
    }
    let raw = read_event(body, state.config.upload.idle_timeout).await?;
    match parse_event(&raw)? {
        Event::GenerateClientToken { pathname, client_payload } => {
            let who = state.identity.authenticate(&req.headers, trace).await?;
            let blob = &upload_client(state, req)?;
            // Client tokens are HMACs keyed by the read-write token: with OIDC alone there is
            // nothing to sign them with (presigned uploads replace them there).
            if blob.store().read_write_token().is_none() {
                return Err(client_tokens_need_read_write_token());
            }
            let ctx = Ctx { state, blob, who: &who, session_id, trace };
            token::client_token(&ctx, req, &pathname, client_payload.as_deref()).await
        }
        Event::GeneratePresignedUrl { pathname, client_payload } => {
            let who = state.identity.authenticate(&req.headers, trace).await?;
            let blob = &upload_client(state, req)?;
            let ctx = Ctx { state, blob, who: &who, session_id, trace };
            token::presigned_url(&ctx, req, &pathname, client_payload.as_deref()).await
        }
        Event::CompleteUpload { url, duration_ms } => {
            let who = state.identity.authenticate(&req.headers, trace).await?;
            let blob = &upload_client(state, req)?;
            // Only the duration may be declared here, and need not be: it is measured. The type is
            // the stored blob's (which the token constrained) and is checked against the bytes.
            let upload = &state.config.upload;
            let duration_ms =
                duration_ms.map(|d| validate_duration(Some(&d), upload, Declared::CompleteEvent)).transpose()?;
            let ctx = Ctx { state, blob, who: &who, session_id, trace };
            complete::browser(&ctx, &complete::Claim { url: &url, duration_ms, declared: None }).await
        }
        Event::UploadCompleted { url, token_payload } => {
            // Blob's webhook, for whom the token or presigned URL named: HMAC-signed with the
            // read-write token after a client-token upload, Ed25519-signed after a presigned one.
            // The signature is checked before any credential is resolved for the request.
            let keys = crate::upload::webhook::Keys {
                read_write: state.config.store.as_ref().and_then(|store| store.read_write_token()),
                public: state.config.upload.webhook_key.as_ref(),
            };
            crate::upload::webhook::verify(keys, &raw, header(&req.headers, "x-vercel-signature"))?;
            let (who, payload) = complete::webhook_identity(session_id, token_payload.as_deref())?;
            trace.set_user(&who.user_id);
            let blob = &upload_client(state, req)?;
            let declared = parse_declared(&payload.content_type).ok();
            let ctx = Ctx { state, blob, who: &who, session_id, trace };
            let claim = complete::Claim { url: &url, duration_ms: payload.duration_ms, declared };
            complete::webhook(&ctx, &claim).await
        }
    }
}

/// The Blob client for an upload of this request (`State::blob`: its credential), once the caller
/// is known. Every upload ends in an attach only the route can sign: without the secret, nothing
/// is stored or minted.
fn upload_client(state: &State, req: &Request) -> Result<crate::storage::blob::BlobClient> {
    let blob = state.blob(req)?;
    crate::upload::attach_sign::require(state.config.upload.attach_secret.as_ref())?;
    Ok(blob)
}

/// The refusal of `blob.generate-client-token` on a deployment with OIDC and no read-write token.
fn client_tokens_need_read_write_token() -> Error {
    Error::BadRequest {
        code: Code::ClientTokensNeedReadWriteToken,
        message: "This deployment reaches Vercel Blob with OIDC and has no BLOB_READ_WRITE_TOKEN, so it cannot mint client tokens (they are keyed by that token). Use presigned uploads: uploadPresigned() from @vercel/blob/client, which uploadSessionAudio() from session-audio/client picks by itself (event blob.generate-presigned-url); or set BLOB_READ_WRITE_TOKEN.".into(),
    }
}

/// Whether a POST carries an event rather than audio.
pub fn is_event(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type")
            && v.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    })
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
