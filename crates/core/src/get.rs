//! GET and HEAD `/api/listening-sessions/[sessionId]/audio`: the steps of the README's list, in
//! order, each one named call.

use crate::error::{Error, Result};
use crate::http::request::{session_id, test_panic_hook, Request};
use crate::http::response::{Body, Response};
use crate::http::serve::serve;
use crate::playback::body::BodyStream;
use crate::playback::headers::{client_response_headers, frame_empty_body, relay_status, upstream_request_headers};
use crate::state::State;
use crate::telemetry::{Phase, Trace};

pub async fn get(state: &State, req: Request) -> Response {
    serve(&state.telemetry, "get", &req, |trace| try_get(state, &req, trace), || None).await
}

async fn try_get(state: &State, req: &Request, trace: Trace) -> Result<Response> {
    let head = match req.method.to_ascii_uppercase().as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Error::MethodNotAllowed),
    };
    let session_id = session_id(req)?;
    test_panic_hook(req);
    // 1. identity
    let who = state.identity.authenticate(&req.headers, &trace).await?;
    // 2–3. the Convex token, the session, and that it is the caller's (the lookup is cached briefly;
    // the token is minted inside it only on a miss)
    let doc = state.sessions.cached(&who, session_id, &trace).await?;
    let audio_url = doc.audio_url.as_deref().filter(|u| !u.is_empty()).ok_or(Error::AudioNotFound)?;
    // 4. the stored URL against the trusted-host policy (redirect hops are checked again upstream),
    // and bound to this session: a URL another session's upload produced, or any other path on a
    // trusted host, is not this session's audio.
    let url = state.config.host_policy.check_audio_url(audio_url)?;
    if state.config.require_session_path && !crate::playback::policy::under_session_prefix(&url, session_id) {
        return Err(Error::UntrustedAudioHost(format!(
            "{}: the path is not under {} (requireSessionPath)",
            crate::playback::policy::redact(&url),
            crate::storage::store::prefix(session_id)
        )));
    }
    // 5. the upstream, with the client's range and conditional headers
    let method = if head { http::Method::HEAD } else { http::Method::GET };
    // Only a read of this store's private host carries a credential, resolved for this request
    // (OIDC or read-write); public blobs need none, so GET works without any Blob credentials.
    // The credential is resolved only for such a read (a public read must not fail for want of one);
    // the bearer is then the store's rule, the one the Blob client reads with (`Store::bearer_for`).
    let credential = match &state.config.store {
        Some(store) if store.reads_with_bearer(&url) => Some((store, state.credential(store, req)?)),
        _ => None,
    };
    let bearer = credential.as_ref().and_then(|(store, credential)| store.bearer_for(&url, credential));
    let forwarded = upstream_request_headers(&req.headers);
    let fetch = state.upstream.fetch(&state.config.host_policy, method, url, &forwarded, bearer);
    let resp = trace.phase(Phase::Upstream, fetch).await?;
    let status = relay_status(resp.status().as_u16())?;
    let upstream_headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut headers = client_response_headers(
        status,
        &upstream_headers,
        doc.audio_content_type.as_deref(),
        state.config.cache_max_age_secs,
    );
    // 6. the body: none for HEAD, 304 and 416 (the 416 says all in Content-Range); small bodies read
    // here; everything else streamed.
    let body = if head || status == 304 || status == 416 {
        frame_empty_body(&mut headers, status, head);
        Body::Empty
    } else if fits_in_one_read(resp.content_length()) {
        let timeout = state.upstream.timeout();
        Body::Bytes(trace.phase(Phase::Transfer, read_whole(resp, timeout)).await?)
    } else {
        Body::Stream(BodyStream::spawn(resp, state.upstream.timeout()))
    };
    Ok(Response { status, headers, body })
}

/// Bodies up to this size (a seeking `<audio>` element's small Range reads) are read before the
/// response is returned and handed to JS in one piece: a stream would cost JS two or three async
/// round trips into the addon for a few KiB. Bigger or unknown-length bodies are streamed.
pub const ONE_READ_MAX_BYTES: u64 = 64 * 1024;

/// Whether a body of `content_length` is read whole before answering (see `ONE_READ_MAX_BYTES`).
pub fn fits_in_one_read(content_length: Option<u64>) -> bool {
    content_length.is_some_and(|n| n <= ONE_READ_MAX_BYTES)
}

async fn read_whole(resp: reqwest::Response, timeout: std::time::Duration) -> Result<bytes::Bytes> {
    match tokio::time::timeout(timeout, resp.bytes()).await {
        Err(_) => Err(Error::UpstreamTimeout("audio body did not arrive in time".into())),
        Ok(Err(e)) => Err(Error::UpstreamFailed(format!("audio body: {e}"))),
        Ok(Ok(b)) => Ok(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_known_bodies_are_read_in_one_go_the_rest_streamed() {
        let table = [
            (None, false),
            (Some(0), true),
            (Some(16 * 1024), true),
            (Some(ONE_READ_MAX_BYTES), true),
            (Some(ONE_READ_MAX_BYTES + 1), false),
            (Some(256 * 1024 * 1024), false),
        ];
        for (len, want) in table {
            assert_eq!(fits_in_one_read(len), want, "{len:?}");
        }
    }
}
