//! Clerk Backend API client: the JWKS (for session-token verification without `CLERK_JWT_KEY`) and
//! JWT-template tokens (`POST /v1/sessions/{sid}/tokens/{template}`), with the headers
//! `@clerk/backend` sends (docs/protocols.md §C.2, §C.4).
//!
//! Template tokens are cached per session until shortly before their `exp`: every seek of an
//! `<audio>` element is a new request, and Clerk's Backend API allows 100 requests / 10 s in
//! development (1000 in production).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rsa::RsaPublicKey;
use serde::Deserialize;
use url::Url;

use crate::breaker::{Breaker, DEFAULT_WINDOW};
use crate::cache::TtlCache;
use crate::error::{AuthFailure, Error, Result};

const CLERK_API_VERSION: &str = "2026-05-12";
/// Stop reusing a template token this long before it expires, so it is still valid when Convex
/// checks it (Convex allows no leeway on `exp`).
const TOKEN_EXPIRY_MARGIN_SECS: i64 = 10;

pub struct ClerkClient {
    http: reqwest::Client,
    api_url: Url,
    secret_key: String,
    template: String,
    tokens: TtlCache<String, String>,
    /// Clerk down: one call per window, not one per request (`breaker`).
    breaker: Breaker,
}

#[derive(Deserialize)]
struct TokenResponse {
    jwt: String,
}

impl ClerkClient {
    pub fn new(http: reqwest::Client, api_url: Url, secret_key: String, template: String) -> Self {
        ClerkClient {
            http,
            api_url,
            secret_key,
            template,
            tokens: TtlCache::new(10_000),
            breaker: Breaker::new(DEFAULT_WINDOW),
        }
    }

    /// `{CLERK_API_URL}/v1/<segments…>`, each segment percent-encoded as a path segment.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.api_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.secret_key)
            .header("Clerk-API-Version", CLERK_API_VERSION)
            .header("User-Agent", crate::USER_AGENT)
            .header("Content-Type", "application/json")
    }

    pub async fn fetch_jwks(&self) -> Result<HashMap<String, RsaPublicKey>> {
        self.breaker.call(self.request_jwks()).await
    }

    async fn request_jwks(&self) -> Result<HashMap<String, RsaPublicKey>> {
        let resp = self
            .request(reqwest::Method::GET, self.endpoint(&["jwks"]))
            .send()
            .await
            .map_err(|e| Error::ClerkUnavailable(format!("GET /v1/jwks: {e}")))?;
        let status = resp.status();
        if status == 429 {
            return Err(rate_limited(&resp));
        }
        if status == 401 || status == 403 {
            return Err(Error::ConfigInvalid("Clerk rejected CLERK_SECRET_KEY (GET /v1/jwks answered 401/403)".into()));
        }
        if !status.is_success() {
            return Err(Error::ClerkUnavailable(format!("GET /v1/jwks answered {status}")));
        }
        let body = resp.bytes().await.map_err(|e| Error::ClerkUnavailable(format!("GET /v1/jwks body: {e}")))?;
        crate::jwt::parse_jwks(&body).map_err(Error::ClerkUnavailable)
    }

    /// The Convex-scoped token for this Clerk session, from cache when it still has life in it.
    pub async fn template_token(&self, session_id: &str, now: i64) -> Result<String> {
        self.tokens
            .get_or_fill(&session_id.to_string(), || async {
                let jwt = self.breaker.call(self.mint(session_id)).await?;
                let ttl = crate::jwt::unverified_exp(&jwt)
                    .map(|exp| exp - TOKEN_EXPIRY_MARGIN_SECS - now)
                    .filter(|secs| *secs > 0)
                    .map(|secs| Duration::from_secs(secs as u64))
                    .unwrap_or(Duration::ZERO);
                Ok((jwt, ttl))
            })
            .await
    }

    /// Forget a cached token (Convex refused it).
    pub async fn forget(&self, session_id: &str) {
        self.tokens.invalidate(&session_id.to_string()).await;
    }

    /// The JWKS fetch `auth::KeyStore` uses when there is no `CLERK_JWT_KEY`.
    pub fn jwks_fetch(self: &Arc<Self>) -> crate::auth::JwksFetch {
        let clerk = self.clone();
        Arc::new(move || {
            let clerk = clerk.clone();
            Box::pin(async move { clerk.fetch_jwks().await })
        })
    }

    async fn mint(&self, session_id: &str) -> Result<String> {
        let url = self.endpoint(&["sessions", session_id, "tokens", &self.template]);
        let resp = self
            .request(reqwest::Method::POST, url)
            .send()
            .await
            .map_err(|e| Error::ClerkUnavailable(format!("template token: {e}")))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => {}
            429 => return Err(rate_limited(&resp)),
            401 | 403 => {
                return Err(Error::ConfigInvalid(
                    "Clerk rejected CLERK_SECRET_KEY when minting the Convex token".into(),
                ))
            }
            404 => {
                // Clerk answers 404 both for an unknown session and an unknown template; the body
                // tells them apart (`resource_not_found` names the template).
                let body = resp.text().await.unwrap_or_default();
                if body.contains("template") {
                    // Named, not echoed: a 503 for a setting never quotes its value.
                    return Err(Error::ConfigInvalid(
                        "Clerk has no JWT template with the name SESSION_AUDIO_CONVEX_TEMPLATE gives (default \"convex\"); create it in the Clerk dashboard or set the variable to an existing template's name".into(),
                    ));
                }
                return Err(Error::Unauthenticated(AuthFailure::SessionInactive));
            }
            400..=499 => return Err(Error::Unauthenticated(AuthFailure::SessionInactive)),
            _ => return Err(Error::ClerkUnavailable(format!("template token: HTTP {status}"))),
        }
        let body: TokenResponse =
            resp.json().await.map_err(|e| Error::ClerkUnavailable(format!("template token body: {e}")))?;
        Ok(body.jwt)
    }
}

/// Clerk's `429`, with its `Retry-After` (seconds) relayed to our caller; 10 s when it names none.
fn rate_limited(resp: &reqwest::Response) -> Error {
    let retry_after_secs = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(10);
    Error::ClerkRateLimited { retry_after_secs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_encode_each_segment() {
        let table = [
            ("https://api.clerk.com", vec!["jwks"], "https://api.clerk.com/v1/jwks"),
            ("http://127.0.0.1:9/base/", vec!["jwks"], "http://127.0.0.1:9/base/v1/jwks"),
            (
                "https://api.clerk.com",
                vec!["sessions", "sess_1/../x?y#z", "tokens", "con vex"],
                "https://api.clerk.com/v1/sessions/sess_1%2F..%2Fx%3Fy%23z/tokens/con%20vex",
            ),
        ];
        for (base, segments, want) in table {
            let c = ClerkClient::new(reqwest::Client::new(), Url::parse(base).unwrap(), "sk".into(), "convex".into());
            assert_eq!(c.endpoint(&segments).as_str(), want);
        }
    }
}
