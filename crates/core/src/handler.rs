//! The GET handler: the only place that sequences the steps, in the order of the issue.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::{extract_token, Identity, KeyStore};
use crate::body::BodyStream;
use crate::cache::TtlCache;
use crate::clerk::ClerkClient;
use crate::config::{Config, KeySource};
use crate::convex::{parse_session, ConvexClient, SessionDoc};
use crate::error::{AuthFailure, Error, Result};
use crate::headers::{client_response_headers, relay_status, upstream_request_headers};
use crate::response::{Body, Response};
use crate::upstream::UpstreamClient;

/// A request as the binding hands it over: plain strings only.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub session_id: Option<String>,
}

/// Everything that lives across requests: built once per configuration and shared.
pub struct State {
    pub config: Config,
    keys: KeyStore,
    clerk: Arc<ClerkClient>,
    convex: ConvexClient,
    upstream: UpstreamClient,
    lookups: TtlCache<(String, String), SessionDoc>,
}

impl State {
    pub fn new(config: Config) -> Result<State> {
        // One client for the services we trust by configuration (Clerk, Convex), pooled; a separate
        // guarded client for the URLs that come from data. Neither reads proxies from the
        // environment: an inherited HTTP(S)_PROXY must not be able to redirect our traffic.
        let services = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(15))
            .user_agent(concat!("session-audio/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        let secret = config.clerk_secret_key.clone().ok_or_else(|| Error::ConfigMissing("CLERK_SECRET_KEY".into()))?;
        let clerk = Arc::new(ClerkClient::new(
            services.clone(),
            config.clerk_api_url.clone(),
            secret,
            config.convex_template.clone(),
        ));
        let keys = match &config.key_source {
            KeySource::Pem(pem) => KeyStore::pem(
                crate::auth::parse_public_key_pem(pem)
                    .map_err(|e| Error::ConfigInvalid(format!("CLERK_JWT_KEY: {e}")))?,
            ),
            KeySource::Jwks => KeyStore::jwks(clerk.clone()),
        };
        let convex = ConvexClient::new(services, &config.convex_url);
        let upstream = UpstreamClient::new(config.host_policy.allow_loopback(), config.upstream_timeout)?;
        Ok(State { keys, clerk, convex, upstream, lookups: TtlCache::new(10_000), config })
    }

    /// Steps 1: who is calling.
    pub async fn authenticate(&self, req: &Request) -> Result<Identity> {
        let token = extract_token(&req.headers).ok_or(Error::Unauthenticated(AuthFailure::Missing))?;
        self.keys.verify(&token, now_secs(), &self.config.authorized_parties).await
    }

    /// Steps 2–3: the caller's session, from cache for a few seconds. A foreign session is
    /// indistinguishable from a missing one.
    pub async fn session_for(&self, who: &Identity, session_id: &str) -> Result<SessionDoc> {
        let key = (who.user_id.clone(), session_id.to_string());
        let doc = self
            .lookups
            .get_or_fill(&key, || async {
                let token = self.clerk.template_token(&who.session_id, now_secs()).await?;
                let args = serde_json::json!({ "sessionId": session_id });
                let value = match self.convex.query(&self.config.get_query, args, &token).await {
                    Err(Error::ConvexAuthRejected(why)) => {
                        self.clerk.forget(&who.session_id);
                        return Err(Error::ConvexAuthRejected(why));
                    }
                    other => other?,
                };
                let doc = parse_session(value)?.ok_or(Error::SessionNotFound)?;
                Ok((doc, self.config.lookup_ttl))
            })
            .await?;
        if doc.user_id != who.user_id {
            return Err(Error::SessionNotFound);
        }
        Ok(doc)
    }

    pub fn forget_session(&self, user_id: &str, session_id: &str) {
        self.lookups.invalidate(&(user_id.to_string(), session_id.to_string()));
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// GET and HEAD `/api/listening-sessions/[sessionId]/audio`.
pub async fn get(state: &State, req: Request) -> Response {
    match try_get(state, &req).await {
        Ok(resp) => resp,
        Err(e) => e.render(),
    }
}

async fn try_get(state: &State, req: &Request) -> Result<Response> {
    let head = match req.method.to_ascii_uppercase().as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Error::MethodNotAllowed),
    };
    let session_id = req.session_id.as_deref().filter(|s| !s.is_empty()).ok_or(Error::MissingSessionId)?;
    // 1. identity
    let who = state.authenticate(req).await?;
    // 2–3. Convex token and ownership
    let doc = state.session_for(&who, session_id).await?;
    let audio_url = doc.audio_url.as_deref().filter(|u| !u.is_empty()).ok_or(Error::AudioNotFound)?;
    // 4–5. trusted host, then the upstream with the client's range/conditional headers
    let method = if head { reqwest::Method::HEAD } else { reqwest::Method::GET };
    let bearer = private_blob_bearer(audio_url, state.config.blob_token.as_deref());
    let resp = state
        .upstream
        .fetch(&state.config.host_policy, method, audio_url, &upstream_request_headers(&req.headers), bearer)
        .await?;
    let status = relay_status(resp.status().as_u16())?;
    let upstream_headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let headers =
        client_response_headers(&upstream_headers, doc.audio_content_type.as_deref(), state.config.cache_max_age_secs);
    // 6. body: streamed for 200/206; none for HEAD, 304 and 416 (the 416 says all in Content-Range).
    let body = if head || status == 304 || status == 416 {
        Body::Empty
    } else {
        Body::Stream(BodyStream::spawn(resp, state.upstream.timeout()))
    };
    Ok(Response { status, headers, body })
}

/// Private Vercel Blob URLs are read with the store's token, as `@vercel/blob`'s `get()` does.
fn private_blob_bearer<'a>(audio_url: &str, token: Option<&'a str>) -> Option<&'a str> {
    let host = url::Url::parse(audio_url).ok()?.host_str()?.to_string();
    if host.ends_with(".private.blob.vercel-storage.com") {
        token
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_only_for_private_blob_hosts() {
        let t = Some("vercel_blob_rw_store_secret");
        assert_eq!(private_blob_bearer("https://s.private.blob.vercel-storage.com/a.webm", t), t);
        assert_eq!(private_blob_bearer("https://s.public.blob.vercel-storage.com/a.webm", t), None);
        assert_eq!(private_blob_bearer("https://evil.example/x.private.blob.vercel-storage.com", t), None);
        assert_eq!(private_blob_bearer("http://127.0.0.1:9000/a", t), None);
    }
}
