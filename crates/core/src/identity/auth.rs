//! Who is calling: where the session token is (`@clerk/backend`'s `authenticateRequest`,
//! docs/protocols.md §C.3), and the `Identity` service that `State` holds: the token verified by
//! the key store (`keys`), and the caller's Convex token from Clerk.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, KeySource};
use crate::error::{AuthFailure, Error, Result};
use crate::identity::clerk::ClerkClient;
pub use crate::identity::jwt::Caller;
use crate::identity::keys::KeyStore;
use crate::support::clock::now_secs;
use crate::telemetry::{Phase, Trace};

/// Most Clerk sessions whose token expiry is remembered at once.
const SESSIONS_HELD: u64 = 10_000;

/// Where the token came from matters for nothing but diagnostics; Bearer wins over the cookie.
pub fn extract_token(headers: &[(String, String)]) -> Option<String> {
    let header = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    if let Some((_, value)) = header {
        // `@clerk/backend`: split on the first space; `Bearer <t>` → t; no space → the whole value.
        let v = value.trim();
        let token = match v.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Some(rest.trim()),
            Some(_) => None,
            None => Some(v),
        };
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            return Some(t.to_string());
        }
    }
    let mut suffixed = None;
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("cookie") {
            continue;
        }
        for pair in v.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            if value.is_empty() {
                continue;
            }
            if name == "__session" {
                return Some(value.to_string());
            }
            // `__session_<suffix>`: Clerk's per-instance cookie when several apps share a domain.
            if name.starts_with("__session_") && suffixed.is_none() {
                suffixed = Some(value.to_string());
            }
        }
    }
    suffixed
}

/// Who is calling, for every request of one configuration: the key store that verifies session
/// tokens, the Clerk client that mints the caller's Convex token, and what each Clerk session's
/// token said about its expiry. Built once with `State`; `State.identity`.
pub struct Identity {
    keys: KeyStore,
    clerk: Arc<ClerkClient>,
    authorized_parties: Vec<String>,
    /// Clerk session → the `exp` of the last session token verified for it: how long a refusal of
    /// that session is remembered (`clerk_refusal`).
    session_exp: moka::sync::Cache<String, i64>,
}

impl Identity {
    /// The key store from `CLERK_JWT_KEY` or Clerk's JWKS; `services` is the pooled client for the
    /// services trusted by configuration.
    pub fn new(config: &Config, services: reqwest::Client) -> Identity {
        let clerk = Arc::new(ClerkClient::new(
            services,
            config.clerk_api_url.clone(),
            config.clerk_secret_key.clone(),
            config.convex_template.clone(),
        ));
        let keys = match &config.key_source {
            KeySource::Pem(key) => KeyStore::pem(key.clone()),
            KeySource::Jwks => KeyStore::jwks(clerk.jwks_fetch()),
        }
        .accepting_pending(config.accept_pending_sessions);
        // Session tokens live a minute by default; an hour bounds what an unusual instance holds.
        let session_exp =
            moka::sync::Cache::builder().max_capacity(SESSIONS_HELD).time_to_live(Duration::from_secs(3600)).build();
        Identity { keys, clerk, authorized_parties: config.authorized_parties.clone(), session_exp }
    }

    /// Who is calling: the Clerk session token, verified.
    pub async fn authenticate(&self, headers: &[(String, String)], trace: &Trace) -> Result<Caller> {
        let (who, exp) = trace
            .phase(Phase::Auth, async {
                let token = extract_token(headers).ok_or(Error::Unauthenticated(AuthFailure::Missing))?;
                self.keys.verify_with_exp(&token, now_secs(), &self.authorized_parties).await
            })
            .await?;
        self.session_exp.insert(who.session_id.clone(), exp);
        trace.set_user(&who.user_id);
        Ok(who)
    }

    /// The caller's Convex token (the Clerk JWT template), cached until shortly before it expires;
    /// a refusal of the session, until its session token expires.
    pub async fn convex_token(&self, who: &Caller, trace: &Trace) -> Result<String> {
        let exp = self.session_exp.get(&who.session_id);
        trace.phase(Phase::Token, self.clerk.template_token(&who.session_id, now_secs(), exp)).await
    }

    /// Convex refused the caller's token: forget it, so the next request mints a fresh one.
    pub async fn forget_convex_token(&self, who: &Caller) {
        self.clerk.forget(&who.session_id).await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::hv;

    /// Where the session token is; the property tests check `extract_token` against it too.
    /// Request headers, and the token expected from them.
    pub(crate) type LocationCase = (&'static [(&'static str, &'static str)], Option<&'static str>);

    pub(crate) const TOKEN_LOCATION_TABLE: &[LocationCase] = &[
        (&[], None),
        (&[("Authorization", "Bearer abc")], Some("abc")),
        (&[("authorization", "bearer  abc ")], Some("abc")),
        (&[("authorization", "abc")], Some("abc")),
        (&[("authorization", "Basic abc")], None),
        (&[("authorization", "Bearer hdr"), ("cookie", "__session=ck")], Some("hdr")),
        (&[("cookie", "a=1; __session=ck; b=2")], Some("ck")),
        (&[("cookie", "__session_AbCd1234=suffixed")], Some("suffixed")),
        (&[("cookie", "__session_AbCd1234=suffixed; __session=plain")], Some("plain")),
        (&[("cookie", "__session=; __client_uat=0")], None),
        (&[("cookie", "__sessionx=nope")], None),
    ];

    #[test]
    fn token_location_table() {
        type Case = (Vec<(String, String)>, Option<&'static str>);
        let table: Vec<Case> = TOKEN_LOCATION_TABLE.iter().map(|(h, want)| (hv(h), *want)).collect();
        for (headers, expected) in table {
            assert_eq!(extract_token(&headers).as_deref(), expected, "{headers:?}");
        }
    }
}
