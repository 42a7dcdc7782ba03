//! Clerk Backend API client: the JWKS (for session-token verification without `CLERK_JWT_KEY`) and
//! JWT-template tokens (`POST /v1/sessions/{sid}/tokens/{template}`), with the headers
//! `@clerk/backend` sends (docs/protocols.md §C.2, §C.4).
//!
//! Template tokens are cached per session until shortly before their `exp`: every seek of an
//! `<audio>` element is a new request, and Clerk's Backend API allows 100 requests / 10 s in
//! development (1000 in production). What Clerk refuses for a session is cached the same way, and
//! only Clerk's own trouble reaches the shared breaker (`clerk_refusal`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rsa::RsaPublicKey;
use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};
use crate::identity::clerk_refusal::{as_remembered, classify, decide, Refusal, ThrottleLog, Verdict};
use crate::support::breaker::{Breaker, DEFAULT_WINDOW};
use crate::support::cache::TtlCache;

const CLERK_API_VERSION: &str = "2026-05-12";
/// Stop reusing a template token this long before it expires, so it is still valid when Convex
/// checks it (Convex allows no leeway on `exp`).
const TOKEN_EXPIRY_MARGIN_SECS: i64 = 10;
/// The most we read of an answer (a JWKS or a token is a few KiB): past it, Clerk is failing
/// (`auth_provider_unavailable`), and the rest is never read.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

pub struct ClerkClient {
    http: reqwest::Client,
    api_url: Url,
    secret_key: String,
    template: String,
    /// Per Clerk session: its template token, or what Clerk refused it.
    tokens: TtlCache<String, Minted>,
    /// Clerk down: one call per window, not one per request (`breaker`).
    breaker: Breaker,
    /// Which sessions got a 429 lately: one session's, or the instance-wide limit?
    throttled: ThrottleLog,
}

/// What the template-token cache holds for a session.
#[derive(Clone)]
enum Minted {
    Token(String),
    /// Refused for this session (gone, or throttled) until `until` (seconds since the epoch).
    Refused {
        error: Error,
        until: i64,
    },
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
            throttled: ThrottleLog::default(),
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
        let body = crate::support::capped::read_all(resp, None, MAX_ANSWER_BYTES)
            .await
            .map_err(|failed| Error::ClerkUnavailable(format!("GET /v1/jwks body: {failed}")))?;
        crate::identity::jwt::parse_jwks(&body).map_err(Error::ClerkUnavailable)
    }

    /// The Convex-scoped token for this Clerk session, from cache when it still has life in it.
    ///
    /// One call per session at a time (concurrent misses wait for the one fill), and what Clerk
    /// refused for this session is remembered like a token (`clerk_refusal::decide`): a session
    /// Clerk no longer has costs one call until its token expires, not one per request.
    /// `session_exp`: the session token's `exp`, when known.
    pub async fn template_token(&self, session_id: &str, now: i64, session_exp: Option<i64>) -> Result<String> {
        let minted = self
            .tokens
            .get_or_fill(&session_id.to_string(), || async {
                let outcome = self.breaker.call(self.mint_charged(session_id, now, session_exp)).await?;
                Ok(match outcome {
                    Ok(jwt) => {
                        let ttl = crate::identity::jwt::unverified_exp(&jwt)
                            .map(|exp| exp - TOKEN_EXPIRY_MARGIN_SECS - now)
                            .filter(|secs| *secs > 0)
                            .map(|secs| Duration::from_secs(secs as u64))
                            .unwrap_or(Duration::ZERO);
                        (Minted::Token(jwt), ttl)
                    }
                    Err((error, secs)) => {
                        let until = now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
                        (Minted::Refused { error, until }, Duration::from_secs(secs))
                    }
                })
            })
            .await?;
        match minted {
            Minted::Token(jwt) => Ok(jwt),
            Minted::Refused { error, until } => Err(as_remembered(&error, until.saturating_sub(now))),
        }
    }

    /// One template-token call, its refusal charged by the rule: `Err` (the breaker opens) only for
    /// Clerk's own trouble; a refusal charged to the session or to the configuration is an answer
    /// (`Ok(Err((error, seconds to remember it)))`), which tells the breaker Clerk is up.
    async fn mint_charged(
        &self,
        session_id: &str,
        now: i64,
        session_exp: Option<i64>,
    ) -> Result<std::result::Result<String, (Error, u64)>> {
        let refusal = match self.mint(session_id).await {
            Ok(jwt) => return Ok(Ok(jwt)),
            Err(refusal) => refusal,
        };
        let others = match refusal {
            Refusal::Throttled { .. } => self.throttled.record(session_id, std::time::Instant::now()),
            _ => 0,
        };
        let left = session_exp.map(|exp| exp.saturating_add(crate::identity::jwt::CLOCK_SKEW_SECS).saturating_sub(now));
        match decide(&refusal, others, left) {
            Verdict::OpenBreaker(error) => Err(error),
            Verdict::ChargeSession { error, secs } => {
                tracing::info!(target: "session_audio", code = error.code(), secs,
                    "Clerk refused a session's template token: remembered for that session");
                Ok(Err((error, secs)))
            }
            Verdict::Answer(error) => Ok(Err((error, 0))),
        }
    }

    /// Forget a cached token (Convex refused it).
    pub async fn forget(&self, session_id: &str) {
        self.tokens.invalidate(&session_id.to_string()).await;
    }

    /// The JWKS fetch `keys::KeyStore` uses when there is no `CLERK_JWT_KEY`.
    pub fn jwks_fetch(self: &Arc<Self>) -> crate::identity::keys::JwksFetch {
        let clerk = self.clone();
        Arc::new(move || {
            let clerk = clerk.clone();
            Box::pin(async move { clerk.fetch_jwks().await })
        })
    }

    /// The call itself: the token, or what Clerk answered instead (`clerk_refusal::classify`).
    async fn mint(&self, session_id: &str) -> std::result::Result<String, Refusal> {
        let url = self.endpoint(&["sessions", session_id, "tokens", &self.template]);
        let resp = self
            .request(reqwest::Method::POST, url)
            .send()
            .await
            .map_err(|e| Refusal::Unavailable(format!("template token: {e}")))?;
        let status = resp.status().as_u16();
        if !(200..=299).contains(&status) {
            let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            // Clerk's error bodies are a few hundred bytes; one that cannot be read says nothing, and
            // one past the cap is Clerk failing.
            let body = match crate::support::capped::read_all(resp, None, MAX_ANSWER_BYTES).await {
                Ok(body) => body,
                Err(failed @ crate::support::capped::Failed::TooLong(_)) => {
                    return Err(Refusal::Unavailable(format!("template token: HTTP {status}: {failed}")))
                }
                Err(_) => Vec::new(),
            };
            return Err(classify(status, &String::from_utf8_lossy(&body), retry_after.as_deref()));
        }
        let body = crate::support::capped::read_all(resp, None, MAX_ANSWER_BYTES)
            .await
            .map_err(|failed| Refusal::Unavailable(format!("template token body: {failed}")))?;
        let body: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| Refusal::Unavailable(format!("template token body: {e}")))?;
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
