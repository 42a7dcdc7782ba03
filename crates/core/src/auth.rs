//! Who is calling: the session token's location (`@clerk/backend`'s `authenticateRequest`,
//! docs/protocols.md §C.3) and `KeyStore`, which verifies it with the instance's key. The pure JWT
//! work is in `jwt`; the JWKS comes from a fetch function handed in (the Clerk client in
//! production), so this module does not depend on `clerk`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};

use crate::error::{AuthFailure, Error, Result};
pub use crate::jwt::Identity;
use crate::jwt::{check_claims, parse, verify_signature, CLOCK_SKEW_SECS};

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

/// Fetches the instance's JWKS (`kid` → key).
pub type JwksFetch =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<HashMap<String, RsaPublicKey>>> + Send>> + Send + Sync>;

/// How long fetched keys are trusted (as `@clerk/backend`), and how often an unknown `kid` may
/// trigger a refetch (so a flood of forged `kid`s cannot hammer Clerk).
const JWKS_TTL: Duration = Duration::from_secs(300);
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(5);

/// Where verification keys come from.
enum Keys {
    /// `CLERK_JWT_KEY`: the instance's one key; `@clerk/backend` ignores `kid` with it too.
    Pem(RsaPublicKey),
    /// The JWKS, fetched on first use and kept `JWKS_TTL`; all concurrent misses share one fetch.
    Jwks {
        fetch: JwksFetch,
        cache: moka::future::Cache<(), Arc<HashMap<String, RsaPublicKey>>>,
        /// When the keys were last fetched (or a refetch was last forced).
        last_fetch: Arc<Mutex<Option<Instant>>>,
    },
}

pub struct KeyStore {
    keys: Keys,
    verified: VerifiedTokens,
}

impl KeyStore {
    pub fn pem(key: RsaPublicKey) -> KeyStore {
        KeyStore { keys: Keys::Pem(key), verified: VerifiedTokens::default() }
    }

    pub fn jwks(fetch: JwksFetch) -> KeyStore {
        let cache = moka::future::Cache::builder().max_capacity(1).time_to_live(JWKS_TTL).build();
        let last_fetch = Arc::new(Mutex::new(None));
        KeyStore { keys: Keys::Jwks { fetch, cache, last_fetch }, verified: VerifiedTokens::default() }
    }

    /// The key for `kid`.
    async fn key_for(&self, kid: Option<&str>) -> Result<RsaPublicKey> {
        let (fetch, cache, last_fetch) = match &self.keys {
            Keys::Pem(key) => return Ok(key.clone()),
            Keys::Jwks { fetch, cache, last_fetch } => (fetch, cache, last_fetch),
        };
        let kid = kid.unwrap_or_default();
        let stamp = |at: &Mutex<Option<Instant>>| *at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let load = || async {
            let keys = fetch().await?;
            stamp(last_fetch);
            Ok::<_, Error>(Arc::new(keys))
        };
        let keys = cache.try_get_with((), load()).await.map_err(|e| (*e).clone())?;
        if let Some(key) = keys.get(kid) {
            return Ok(key.clone());
        }
        // An unknown `kid`: Clerk may have rotated its keys. Refetch, but not within
        // `JWKS_MIN_REFETCH` of the last fetch, however many forged `kid`s arrive; callers that do
        // not force the refetch still join one already in flight.
        let force = {
            let mut last = last_fetch.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= JWKS_MIN_REFETCH);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if force {
            cache.invalidate(&()).await;
        }
        let keys = cache.try_get_with((), load()).await.map_err(|e| (*e).clone())?;
        keys.get(kid).cloned().ok_or(Error::Unauthenticated(AuthFailure::KidMismatch))
    }

    /// The whole check: parse, key, signature, claims.
    pub async fn verify(&self, token: &str, now: i64, authorized_parties: &[String]) -> Result<Identity> {
        let parsed = parse(token).map_err(Error::Unauthenticated)?;
        let digest = digest(token);
        let known = self.verified.contains(&digest, now);
        if !known {
            let key = self.key_for(parsed.kid.as_deref()).await?;
            verify_signature(&parsed, &key).map_err(Error::Unauthenticated)?;
        }
        let identity = check_claims(&parsed.claims, now, authorized_parties).map_err(Error::Unauthenticated)?;
        if !known {
            // `check_claims` passed, so `exp` is present.
            let exp = parsed.claims.exp.unwrap_or_default() as i64;
            self.verified.insert(digest, exp, now);
        }
        Ok(identity)
    }
}

/// Most verified tokens held at once; past it, moka evicts the least useful entries.
const VERIFIED_CAPACITY: u64 = 4096;

/// Tokens whose signature has already checked out, by SHA-256 of the token, until their `exp`.
/// A scrubbing `<audio>` element sends the same session token on every seek; the RSA check is most
/// of a warm seek's own work (~0.5 ms measured in the proxy), a hash is ~1 µs. Only the signature
/// is remembered: the claims (`exp`, `nbf`, `azp`) are checked again on every request.
pub struct VerifiedTokens {
    /// digest → `exp`; each entry expires on its own at `exp` (plus skew).
    by_digest: moka::sync::Cache<[u8; 32], (i64, Duration)>,
}

/// Per-entry lifetime: the one computed from the token's `exp` at insertion.
struct UntilExp;

impl moka::Expiry<[u8; 32], (i64, Duration)> for UntilExp {
    fn expire_after_create(&self, _: &[u8; 32], value: &(i64, Duration), _: std::time::Instant) -> Option<Duration> {
        Some(value.1)
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        VerifiedTokens {
            by_digest: moka::sync::Cache::builder().max_capacity(VERIFIED_CAPACITY).expire_after(UntilExp).build(),
        }
    }
}

impl VerifiedTokens {
    pub fn contains(&self, digest: &[u8; 32], now: i64) -> bool {
        self.by_digest.get(digest).is_some_and(|(exp, _)| exp.saturating_add(CLOCK_SKEW_SECS) > now)
    }

    pub fn insert(&self, digest: [u8; 32], exp: i64, now: i64) {
        // Saturating: `exp` comes from the token, and any i64 must be harmless here.
        let secs = exp.saturating_add(CLOCK_SKEW_SECS).saturating_sub(now);
        if secs > 0 {
            self.by_digest.insert(digest, (exp, Duration::from_secs(secs as u64)));
        }
    }

    /// Entries held, once pending evictions have run.
    pub fn held(&self) -> u64 {
        self.by_digest.run_pending_tasks();
        self.by_digest.entry_count()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::parse_public_key_pem;
    use crate::jwt::testkeys::*;
    use crate::testutil::hv;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_verified_signature_is_remembered_but_claims_are_checked_every_time() {
        let store = KeyStore::pem(parse_public_key_pem(PUB_2048).unwrap());
        let parties = vec!["https://app.example".to_string()];
        let good = sign(h("RS256"), claims(), PRIV_2048);
        assert!(store.verify(&good, NOW, &parties).await.is_ok());
        assert_eq!(store.verified.held(), 1);
        // Same token again: still fine, nothing new remembered.
        assert!(store.verify(&good, NOW + 1, &parties).await.is_ok());
        assert_eq!(store.verified.held(), 1);
        // Remembered, yet expired or from the wrong party: refused all the same.
        assert!(store.verify(&good, NOW + 120, &parties).await.is_err());
        assert!(store.verify(&good, NOW, &["https://evil.example".to_string()]).await.is_err());
        // A bad signature is never remembered, and is refused every time.
        let mut tampered = good.clone();
        tampered.replace_range(tampered.len() - 6.., "AAAAAA");
        for _ in 0..2 {
            assert!(store.verify(&tampered, NOW, &parties).await.is_err());
        }
        assert_eq!(store.verified.held(), 1);
    }

    #[test]
    fn verified_tokens_expire_and_stay_bounded() {
        let v = VerifiedTokens::default();
        v.insert([1; 32], NOW + 10, NOW);
        assert!(v.contains(&[1; 32], NOW + 10));
        assert!(!v.contains(&[1; 32], NOW + 10 + CLOCK_SKEW_SECS));
        assert!(!v.contains(&[2; 32], NOW));
        // Already expired, or absurd `exp` values: nothing stored, nothing overflows.
        v.insert([3; 32], NOW - 60, NOW);
        assert!(!v.contains(&[3; 32], NOW));
        v.insert([4; 32], i64::MAX, i64::MIN);
        v.insert([5; 32], i64::MIN, i64::MAX);
        assert!(!v.contains(&[5; 32], NOW));
        // Past capacity, entries are evicted one by one, not all at once.
        let v = VerifiedTokens::default();
        for i in 0..VERIFIED_CAPACITY + 500 {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&i.to_le_bytes());
            v.insert(d, NOW + 60, NOW);
        }
        let held = v.held();
        assert!(held <= VERIFIED_CAPACITY, "{held}");
        assert!(held > VERIFIED_CAPACITY / 2, "{held}");
    }

    fn counting_fetch(keys: HashMap<String, RsaPublicKey>, calls: Arc<AtomicUsize>) -> JwksFetch {
        Arc::new(move || {
            let (keys, calls) = (keys.clone(), calls.clone());
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(keys)
            })
        })
    }

    #[tokio::test]
    async fn jwks_is_fetched_once_for_concurrent_misses_and_unknown_kids_are_throttled() {
        let key = parse_public_key_pem(PUB_2048).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let store = Arc::new(KeyStore::jwks(counting_fetch(HashMap::from([("ins_1".into(), key)]), calls.clone())));
        let token = sign(h("RS256"), claims(), PRIV_2048);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (store, token) = (store.clone(), token.clone());
            tasks.push(tokio::spawn(async move { store.verify(&token, NOW, &[]).await }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Forged kids right after a fetch force no refetch at all.
        for i in 0..10 {
            let forged = sign(with(h("RS256"), json!({"kid": format!("forged_{i}")})), claims(), PRIV_2048);
            let err = store.verify(&forged, NOW, &[]).await.unwrap_err();
            assert!(matches!(err, Error::Unauthenticated(AuthFailure::KidMismatch)), "{err:?}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn token_location_table() {
        type Case = (Vec<(String, String)>, Option<&'static str>);
        let table: Vec<Case> = vec![
            (hv(&[]), None),
            (hv(&[("Authorization", "Bearer abc")]), Some("abc")),
            (hv(&[("authorization", "bearer  abc ")]), Some("abc")),
            (hv(&[("authorization", "abc")]), Some("abc")),
            (hv(&[("authorization", "Basic abc")]), None),
            (hv(&[("authorization", "Bearer hdr"), ("cookie", "__session=ck")]), Some("hdr")),
            (hv(&[("cookie", "a=1; __session=ck; b=2")]), Some("ck")),
            (hv(&[("cookie", "__session_AbCd1234=suffixed")]), Some("suffixed")),
            (hv(&[("cookie", "__session_AbCd1234=suffixed; __session=plain")]), Some("plain")),
            (hv(&[("cookie", "__session=; __client_uat=0")]), None),
            (hv(&[("cookie", "__sessionx=nope")]), None),
        ];
        for (headers, expected) in table {
            assert_eq!(extract_token(&headers).as_deref(), expected, "{headers:?}");
        }
    }
}
