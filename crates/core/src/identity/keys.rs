//! `KeyStore`: verifies a session token with the instance's key (`CLERK_JWT_KEY`, or the JWKS from
//! a fetch function handed in, the Clerk client in production, so this module does not depend on
//! `clerk`), and remembers verified signatures. The pure JWT work is in `jwt`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};

use crate::error::{AuthFailure, Error, Result};
pub use crate::identity::jwt::Caller;
use crate::identity::jwt::{check_claims, check_session_status, parse, verify_signature, CLOCK_SKEW_SECS};

/// Fetches the instance's JWKS (`kid` → key).
pub type JwksFetch =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<HashMap<String, RsaPublicKey>>> + Send>> + Send + Sync>;

/// How long fetched keys are trusted (as `@clerk/backend`); how often an unknown `kid` may trigger
/// a refetch (so a flood of forged `kid`s cannot hammer Clerk), which is also how long a failed
/// fetch is remembered; and how long past `JWKS_TTL` the last good keys keep serving while Clerk
/// cannot be reached (stale-if-error, bounded: a rotated-out key does not live forever).
const JWKS_TTL: Duration = Duration::from_secs(300);
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(5);
const JWKS_STALE_IF_ERROR: Duration = Duration::from_secs(3600);

/// Where verification keys come from.
enum Keys {
    /// `CLERK_JWT_KEY`: the instance's one key; `@clerk/backend` ignores `kid` with it too.
    Pem(RsaPublicKey),
    Jwks(JwksCache),
}

/// The last good JWKS and when it was fetched. Swapped whole, read without a lock.
struct Fetched {
    keys: HashMap<String, RsaPublicKey>,
    at: Instant,
}

/// What the one refresher remembers between fetches.
#[derive(Default)]
struct Attempts {
    /// The last fetch started (successful or not): refetches are at least `JWKS_MIN_REFETCH` apart.
    last: Option<Instant>,
    /// The last fetch's error, until a fetch succeeds.
    failure: Option<Error>,
}

/// The JWKS: fetched on first use, trusted for `JWKS_TTL`.
/// - The fast path (fresh keys, known `kid`) is one atomic load: no lock, no await.
/// - A refresh is taken by one caller at a time; everyone who needed it waits for that one fetch
///   and then reads its result (single flight).
/// - A failed fetch is remembered for `JWKS_MIN_REFETCH`: callers meanwhile get the stale keys if
///   they hold the `kid` (for up to `JWKS_STALE_IF_ERROR` past the TTL), else the remembered error.
struct JwksCache {
    fetch: JwksFetch,
    current: arc_swap::ArcSwapOption<Fetched>,
    refresh: tokio::sync::Mutex<Attempts>,
}

impl JwksCache {
    fn new(fetch: JwksFetch) -> JwksCache {
        JwksCache { fetch, current: arc_swap::ArcSwapOption::empty(), refresh: Default::default() }
    }

    /// A key from keys fetched less than `JWKS_TTL` ago.
    fn fresh(&self, kid: &str) -> Option<RsaPublicKey> {
        let current = self.current.load();
        let fetched = current.as_ref().filter(|f| f.at.elapsed() < JWKS_TTL)?;
        fetched.keys.get(kid).cloned()
    }

    /// A key from the last good keys, however old, within the stale-if-error bound.
    fn stale(&self, kid: &str) -> Option<RsaPublicKey> {
        let current = self.current.load();
        let fetched = current.as_ref().filter(|f| f.at.elapsed() < JWKS_TTL + JWKS_STALE_IF_ERROR)?;
        fetched.keys.get(kid).cloned()
    }

    async fn key_for(&self, kid: &str) -> Result<RsaPublicKey> {
        if let Some(key) = self.fresh(kid) {
            return Ok(key);
        }
        // The slow path: one refresher at a time. Whoever waited here looks again first: the
        // fetch they waited for may have brought their key, or failed for all of them.
        let mut attempts = self.refresh.lock().await;
        if let Some(key) = self.fresh(kid) {
            return Ok(key);
        }
        let have_fresh = self.current.load().as_ref().is_some_and(|f| f.at.elapsed() < JWKS_TTL);
        if attempts.last.is_some_and(|t| t.elapsed() < JWKS_MIN_REFETCH) {
            if let Some(error) = &attempts.failure {
                return self.stale(kid).ok_or_else(|| error.clone());
            }
            if have_fresh {
                // Fetched moments ago and the `kid` is not there: forged, or another instance's.
                return Err(Error::Unauthenticated(AuthFailure::KidMismatch));
            }
        }
        attempts.last = Some(Instant::now());
        match (self.fetch)().await {
            Ok(keys) => {
                let key = keys.get(kid).cloned();
                self.current.store(Some(Arc::new(Fetched { keys, at: Instant::now() })));
                attempts.failure = None;
                key.ok_or(Error::Unauthenticated(AuthFailure::KidMismatch))
            }
            Err(error) => {
                // Logged once per failed fetch (once per window), not once per request served stale.
                tracing::warn!(target: "session_audio", error = %crate::telemetry::scrub(&error.to_string()),
                    "Clerk JWKS fetch failed: verifying with the last keys fetched while they last");
                attempts.failure = Some(error.clone());
                self.stale(kid).ok_or(error)
            }
        }
    }
}

pub struct KeyStore {
    keys: Keys,
    verified: VerifiedTokens,
    /// `acceptPendingSessions`: a verified token with `sts: "pending"` is signed in, not refused.
    accept_pending: bool,
}

impl KeyStore {
    pub fn pem(key: RsaPublicKey) -> KeyStore {
        KeyStore { keys: Keys::Pem(key), verified: VerifiedTokens::default(), accept_pending: false }
    }

    pub fn jwks(fetch: JwksFetch) -> KeyStore {
        KeyStore { keys: Keys::Jwks(JwksCache::new(fetch)), verified: VerifiedTokens::default(), accept_pending: false }
    }

    /// Accept pending sessions (`sts: "pending"`) as signed in; refused by default.
    pub fn accepting_pending(mut self, accept: bool) -> KeyStore {
        self.accept_pending = accept;
        self
    }

    /// The key for `kid`.
    async fn key_for(&self, kid: Option<&str>) -> Result<RsaPublicKey> {
        match &self.keys {
            Keys::Pem(key) => Ok(key.clone()),
            Keys::Jwks(cache) => cache.key_for(kid.unwrap_or_default()).await,
        }
    }

    /// The whole check: parse, key, signature, claims, session status.
    pub async fn verify(&self, token: &str, now: i64, authorized_parties: &[String]) -> Result<Caller> {
        self.verify_with_exp(token, now, authorized_parties).await.map(|(identity, _)| identity)
    }

    /// `verify`, and the token's `exp`: how long what Clerk says about its session stays relevant.
    pub async fn verify_with_exp(&self, token: &str, now: i64, authorized_parties: &[String]) -> Result<(Caller, i64)> {
        let parsed = parse(token).map_err(Error::Unauthenticated)?;
        let digest = digest(token);
        let known = self.verified.contains(&digest, now);
        if !known {
            let key = self.key_for(parsed.kid.as_deref()).await?;
            verify_signature(&parsed, &key).map_err(Error::Unauthenticated)?;
        }
        let identity = check_claims(&parsed.claims, now, authorized_parties).map_err(Error::Unauthenticated)?;
        // `check_claims` passed, so `exp` is present.
        let exp = parsed.claims.exp.unwrap_or_default() as i64;
        if !known {
            self.verified.insert(digest, exp, now);
        }
        check_session_status(&parsed.claims, self.accept_pending).map_err(Error::Unauthenticated)?;
        Ok((identity, exp))
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
pub(crate) mod tests {
    use super::*;
    use crate::identity::jwt::parse_public_key_pem;
    use crate::identity::jwt::testkeys::*;

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

    #[tokio::test]
    async fn a_pending_session_is_refused_unless_accepted_even_once_its_signature_is_remembered() {
        let pending = sign(h("RS256"), with(claims(), json!({"sts": "pending"})), PRIV_2048);
        let strict = KeyStore::pem(parse_public_key_pem(PUB_2048).unwrap());
        for _ in 0..2 {
            let e = strict.verify(&pending, NOW, &[]).await.unwrap_err();
            assert_eq!((e.status(), e.code()), (401, "session_pending"));
        }
        let lenient = KeyStore::pem(parse_public_key_pem(PUB_2048).unwrap()).accepting_pending(true);
        let (who, exp) = lenient.verify_with_exp(&pending, NOW, &[]).await.unwrap();
        assert_eq!((who.session_id.as_str(), exp), ("sess_1", NOW + 60));
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

    /// A JWKS endpoint that can be taken down and brought back.
    fn switchable_fetch(
        key: RsaPublicKey,
        down: Arc<std::sync::atomic::AtomicBool>,
        calls: Arc<AtomicUsize>,
    ) -> JwksFetch {
        Arc::new(move || {
            let (key, down, calls) = (key.clone(), down.clone(), calls.clone());
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                if down.load(Ordering::SeqCst) {
                    Err(Error::ClerkUnavailable("GET /v1/jwks answered 503".into()))
                } else {
                    Ok(HashMap::from([("ins_1".to_string(), key)]))
                }
            })
        })
    }

    /// Distinct tokens, so that none is answered from the verified-signature memo.
    fn nth_token(i: usize) -> String {
        sign(h("RS256"), with(claims(), json!({ "jti": format!("t{i}") })), PRIV_2048)
    }

    async fn burst(store: &Arc<KeyStore>, from: usize, n: usize) -> Vec<Result<Caller>> {
        let tasks: Vec<_> = (from..from + n)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.verify(&nth_token(i), NOW, &[]).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn jwks_outage_serves_stale_keys_for_a_bounded_time_with_one_fetch_per_window() {
        use std::sync::atomic::AtomicBool;
        let key = parse_public_key_pem(PUB_2048).unwrap();
        let (down, calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let store = Arc::new(KeyStore::jwks(switchable_fetch(key, down.clone(), calls.clone())));
        assert!(burst(&store, 0, 5).await.iter().all(Result::is_ok));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Clerk goes down and the keys age past their TTL: a burst, then serial requests, all
        // verified with the stale keys; one failed fetch among them all.
        down.store(true, Ordering::SeqCst);
        tokio::time::advance(JWKS_TTL + Duration::from_secs(1)).await;
        assert!(burst(&store, 100, 30).await.iter().all(Result::is_ok));
        for i in 200..230 {
            assert!(store.verify(&nth_token(i), NOW, &[]).await.is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The failure is remembered for one window; the next window makes one more attempt.
        tokio::time::advance(JWKS_MIN_REFETCH).await;
        assert!(burst(&store, 300, 30).await.iter().all(Result::is_ok));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Stale-if-error is bounded: past it, the outage is the answer (and still one call).
        tokio::time::advance(JWKS_STALE_IF_ERROR).await;
        let results = burst(&store, 400, 30).await;
        for r in &results {
            let e = r.as_ref().unwrap_err();
            assert_eq!((e.status(), e.code()), (502, "auth_provider_unavailable"), "{e:?}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // Clerk comes back: the next window's fetch restores service.
        down.store(false, Ordering::SeqCst);
        tokio::time::advance(JWKS_MIN_REFETCH).await;
        assert!(burst(&store, 500, 30).await.iter().all(Result::is_ok));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cold_start_during_an_outage_makes_one_fetch_per_window() {
        use std::sync::atomic::AtomicBool;
        let key = parse_public_key_pem(PUB_2048).unwrap();
        let (down, calls) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
        let store = Arc::new(KeyStore::jwks(switchable_fetch(key, down, calls.clone())));
        let results = burst(&store, 0, 50).await;
        assert!(results.iter().all(|r| r.as_ref().is_err_and(|e| e.code() == "auth_provider_unavailable")));
        for i in 50..100 {
            assert!(store.verify(&nth_token(i), NOW, &[]).await.is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
