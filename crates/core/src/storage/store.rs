//! The deployment's Vercel Blob store, defined once: its id and hosts, the local emulator's origin
//! (loopback mode only), its credentials, which URLs are its own, which of them get the bearer, and
//! where our blobs live in it (`listening-sessions/{sessionId}/…`). Pure: no I/O.

use url::Url;

use crate::error::{Error, Result};
use crate::media::Container;

/// Where every session's audio lives in the store: `listening-sessions/{sessionId}/{name}`.
pub const PREFIX: &str = "listening-sessions/";

/// `listening-sessions/{session_id}/`: the one place a session's blobs may be.
pub fn prefix(session_id: &str) -> String {
    format!("{PREFIX}{session_id}/")
}

/// A fresh pathname for an upload of `session_id` (the store adds its own random suffix too).
/// The id is already `[A-Za-z0-9_-]{1,128}` (`request::session_id`), so it goes in as it is.
pub fn new_pathname(session_id: &str, container: Container) -> String {
    format!("{}{:016x}.{}", prefix(session_id), rand::random::<u64>(), container.extension())
}

/// `vercel_blob_rw_<storeId>_<secret>` → `<storeId>` as written (the API and client tokens use it
/// so, as `@vercel/blob`'s `parseStoreIdFromReadWriteToken`). `None` unless it is a DNS label, since
/// it also names the store's hosts.
pub fn store_id_from_token(token: &str) -> Option<&str> {
    let id = token.strip_prefix("vercel_blob_rw_")?.split('_').next()?;
    let label = !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    label.then_some(id)
}

/// The two hosts of one Vercel Blob store, its public and its private one (hosts are lowercase).
pub fn store_hosts(store_id: &str) -> [String; 2] {
    let id = store_id.to_ascii_lowercase();
    [format!("{id}.public.blob.vercel-storage.com"), format!("{id}.private.blob.vercel-storage.com")]
}

/// `BLOB_STORE_ID` as `@vercel/blob`'s `normalizeStoreId` reads it: a leading `store_` (case
/// sensitive) removed, the rest kept exactly (`vercel env pull` writes `store_<id>`). `None` unless
/// the rest is a DNS label, since it also names the store's hosts.
pub fn normalize_store_id(raw: &str) -> Option<&str> {
    let id = raw.strip_prefix("store_").unwrap_or(raw);
    let label = !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    label.then_some(id)
}

/// What one request authenticates to Blob with. Never printed (`Debug` hides the value).
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A read-write token (`vercel_blob_rw_…`): the option, or env `BLOB_READ_WRITE_TOKEN`.
    ReadWrite(String),
    /// This request's Vercel OIDC token; the store is named by `x-vercel-blob-store-id`.
    Oidc(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::ReadWrite(_) => "ReadWrite(..)",
            Credential::Oidc(_) => "Oidc(..)",
        })
    }
}

impl Credential {
    /// What goes after `Authorization: Bearer`.
    pub fn bearer(&self) -> &str {
        match self {
            Credential::ReadWrite(token) | Credential::Oidc(token) => token,
        }
    }
}

/// Where one request's credentials may come from, in the terms of `@vercel/blob` 2.8's
/// `resolveBlobAuth` (values already trimmed, blank = unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    /// The `blobReadWriteToken` option (not the environment).
    pub explicit: Option<&'a str>,
    /// This request's OIDC token: its `x-vercel-oidc-token` header, else env `VERCEL_OIDC_TOKEN`
    /// as it is now (`request::oidc_token`).
    pub oidc: Option<&'a str>,
    /// `BLOB_STORE_ID`, normalised.
    pub store_id: Option<&'a str>,
    /// Env `BLOB_READ_WRITE_TOKEN`.
    pub env_read_write: Option<&'a str>,
}

/// Which credential a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved<'a> {
    ReadWrite(&'a str),
    Oidc { token: &'a str, store_id: &'a str },
}

/// Why no credential could be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// Nothing configured at all.
    Nothing,
    /// `BLOB_STORE_ID` is set, no OIDC token reached the request, and there is no read-write token.
    OidcMissing,
    /// The OIDC token's `exp` is past (and there is no read-write token to fall back to).
    OidcExpired,
    /// The OIDC token is not a JWT whose payload decodes (and no read-write token either).
    OidcMalformed,
}

/// An OIDC token as `@vercel/oidc` judges it before use: the payload decoded WITHOUT verifying
/// the signature (`getTokenPayload`; Blob verifies it), expired when `exp` (seconds) is before now
/// (`isExpired`). A token without a numeric `exp` is not expired, as there; one whose payload does
/// not decode is unusable (the SDK's refresh would fail, and the token counts as absent).
pub fn oidc_state(token: &str, now_ms: u64) -> std::result::Result<(), Unresolved> {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Unresolved::OidcMalformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| Unresolved::OidcMalformed)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| Unresolved::OidcMalformed)?;
    match claims.get("exp").and_then(serde_json::Value::as_f64) {
        Some(exp) if exp * 1000.0 < now_ms as f64 => Err(Unresolved::OidcExpired),
        _ => Ok(()),
    }
}

/// `resolveBlobAuth`'s order: an explicit token; else an OIDC token together with a store id (a
/// token without a store id, or a store id without a usable token, falls through); else env
/// `BLOB_READ_WRITE_TOKEN`. So OIDC wins over a read-write token in the environment, and only the
/// option beats it. An expired or undecodable token counts as absent, as the SDK counts it once its
/// refresh fails; the refusal then says which it was.
pub fn resolve<'a>(sources: &Sources<'a>, now_ms: u64) -> std::result::Result<Resolved<'a>, Unresolved> {
    if let Some(token) = sources.explicit {
        return Ok(Resolved::ReadWrite(token));
    }
    let oidc = sources.oidc.map(|token| (token, oidc_state(token, now_ms)));
    if let (Some((token, Ok(()))), Some(store_id)) = (oidc, sources.store_id) {
        return Ok(Resolved::Oidc { token, store_id });
    }
    if let Some(token) = sources.env_read_write {
        return Ok(Resolved::ReadWrite(token));
    }
    Err(match (sources.store_id, oidc) {
        (None, _) => Unresolved::Nothing,
        (Some(_), None) => Unresolved::OidcMissing,
        (Some(_), Some((_, state))) => state.err().unwrap_or(Unresolved::OidcMissing),
    })
}

/// The refusal for `Unresolved`: what to fix, never a value.
pub fn unresolved_error(why: Unresolved) -> Error {
    match why {
        Unresolved::Nothing => Error::ConfigMissing(
            "no Vercel Blob credentials: connect a Blob store to the project (Vercel sets BLOB_STORE_ID and gives every request an OIDC token), or set BLOB_READ_WRITE_TOKEN".into(),
        ),
        Unresolved::OidcMissing => Error::ConfigMissing(
            "BLOB_STORE_ID is set but no OIDC token reached this request: deploy on Vercel with OIDC enabled, or set VERCEL_OIDC_TOKEN locally (vercel env pull), or set BLOB_READ_WRITE_TOKEN".into(),
        ),
        Unresolved::OidcExpired => Error::OidcTokenExpired,
        Unresolved::OidcMalformed => Error::ConfigInvalid(
            "the Vercel OIDC token that reached this request (x-vercel-oidc-token, else VERCEL_OIDC_TOKEN) is not a JWT: deploy on Vercel with OIDC enabled, or set VERCEL_OIDC_TOKEN locally with vercel env pull, or set BLOB_READ_WRITE_TOKEN".into(),
        ),
    }
}

/// The refusal of a request whose `x-vercel-oidc-token` header (trusted) cannot be used: what was
/// wrong with it, never its value.
fn header_refusal(why: Unresolved) -> Error {
    let what = match why {
        Unresolved::OidcExpired => "has expired",
        Unresolved::OidcMalformed => "is not a JWT",
        Unresolved::OidcMissing | Unresolved::Nothing => "is blank",
    };
    Error::BadRequest {
        code: crate::error::Code::InvalidOidcToken,
        message: format!(
            "The x-vercel-oidc-token header of this request {what}: no Vercel Blob credential could be made from it."
        ),
    }
}

/// One Blob store and how we reach it.
#[derive(Clone)]
pub struct Store {
    /// As the credentials write it (API headers, client tokens); `hosts()` lowercases it.
    id: String,
    /// `VERCEL_BLOB_API_URL`.
    api: Url,
    /// The emulator's origin (the API URL's), trusted like the store's own hosts: loopback mode only.
    local: Option<Url>,
    /// A read-write token: signs client tokens and webhooks, and authorises calls when OIDC does not.
    read_write: Option<String>,
    /// `read_write` is the `blobReadWriteToken` option, which beats OIDC.
    explicit: bool,
    /// `BLOB_STORE_ID` (normalised): a request's OIDC token is used with it.
    oidc_store: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.id)
            .field("api", &self.api.as_str())
            .field("oidc", &self.oidc_store.is_some())
            .finish_non_exhaustive()
    }
}

/// The store id of a read-write token, or the 503 naming where the token came from.
fn token_store_id<'a>(token: &'a str, name: &str) -> Result<&'a str> {
    store_id_from_token(token).ok_or_else(|| {
        Error::ConfigInvalid(format!("{name} is not a Vercel Blob read-write token (vercel_blob_rw_<store>_<secret>)"))
    })
}

/// The settings a `Store` is made of (trimmed, blank = unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings<'a> {
    /// The `blobReadWriteToken` option.
    pub explicit: Option<&'a str>,
    /// Env `BLOB_STORE_ID` (or the `blobStoreId` option), as written.
    pub store_id: Option<&'a str>,
    /// Env `BLOB_READ_WRITE_TOKEN`.
    pub env_read_write: Option<&'a str>,
}

impl Store {
    /// The store a read-write token belongs to. `allow_loopback`: the API URL's own origin is this
    /// store too (the local emulator serves its blobs there).
    pub fn from_token(token: &str, api: Url, allow_loopback: bool) -> Result<Store> {
        Store::configure(&Settings { env_read_write: Some(token), ..Settings::default() }, api, allow_loopback)
            .and_then(|store| store.ok_or_else(|| unresolved_error(Unresolved::Nothing)))
    }

    /// The deployment's store from its settings, `None` when there are none. An explicit token
    /// names the store alone (OIDC never applies); otherwise `BLOB_STORE_ID` names it, and a
    /// read-write token in the environment must be that store's (one store per deployment).
    pub fn configure(settings: &Settings<'_>, api: Url, allow_loopback: bool) -> Result<Option<Store>> {
        let local = allow_loopback.then(|| api.clone());
        let store = |id: &str, read_write: Option<&str>, explicit: bool, oidc_store: Option<&str>| Store {
            id: id.to_string(),
            api: api.clone(),
            local: local.clone(),
            read_write: read_write.map(str::to_string),
            explicit,
            oidc_store: oidc_store.map(str::to_string),
        };
        if let Some(token) = settings.explicit {
            let id = token_store_id(token, "blobReadWriteToken (BLOB_READ_WRITE_TOKEN)")?;
            return Ok(Some(store(id, Some(token), true, None)));
        }
        let env_id = settings.env_read_write.map(|t| token_store_id(t, "BLOB_READ_WRITE_TOKEN")).transpose()?;
        let Some(raw) = settings.store_id else {
            return Ok(env_id.map(|id| store(id, settings.env_read_write, false, None)));
        };
        let id = normalize_store_id(raw).ok_or_else(|| {
            Error::ConfigInvalid(
                "BLOB_STORE_ID is not a Vercel Blob store id (store_<id>, as vercel env pull writes it)".into(),
            )
        })?;
        if env_id.is_some_and(|env_id| env_id != id) {
            return Err(Error::ConfigInvalid(
                "BLOB_STORE_ID and BLOB_READ_WRITE_TOKEN name different Blob stores: keep the pair of one store (or remove BLOB_READ_WRITE_TOKEN)".into(),
            ));
        }
        Ok(Some(store(id, settings.env_read_write, false, Some(id))))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Blob API base URL, without a trailing slash.
    pub fn api(&self) -> &str {
        self.api.as_str().trim_end_matches('/')
    }

    /// The read-write token, if the deployment has one (client tokens and webhook signatures are
    /// keyed by it; an OIDC-only deployment cannot make or check them).
    pub fn read_write_token(&self) -> Option<&str> {
        self.read_write.as_deref()
    }

    /// Whether requests may authenticate with OIDC (`BLOB_STORE_ID` set, no explicit token).
    pub fn uses_oidc(&self) -> bool {
        self.oidc_store.is_some()
    }

    /// The credential for one request, given the OIDC token that reached it (`resolve`).
    pub fn credential(&self, oidc: Option<&str>, now_ms: u64) -> Result<Credential> {
        self.resolve(oidc, now_ms).map_err(unresolved_error)
    }

    /// The credential for one request, given the OIDC token that reached it and where from. A
    /// token a (trusted) request header carried that cannot be used (blank, not a JWT, expired) is
    /// that request's `400 invalid_oidc_token`, never the deployment's 503: the header is the
    /// caller's, and no configuration change would fix it.
    pub fn credential_for(&self, oidc: crate::http::request::Oidc<'_>, now_ms: u64) -> Result<Credential> {
        self.resolve(oidc.token, now_ms).map_err(|why| match why {
            Unresolved::OidcMissing | Unresolved::OidcExpired | Unresolved::OidcMalformed if oidc.from_header => {
                header_refusal(why)
            }
            why => unresolved_error(why),
        })
    }

    fn resolve(&self, oidc: Option<&str>, now_ms: u64) -> std::result::Result<Credential, Unresolved> {
        let read_write = self.read_write.as_deref();
        let sources = Sources {
            explicit: read_write.filter(|_| self.explicit),
            oidc,
            store_id: self.oidc_store.as_deref(),
            env_read_write: read_write.filter(|_| !self.explicit),
        };
        match resolve(&sources, now_ms)? {
            Resolved::ReadWrite(token) => Ok(Credential::ReadWrite(token.to_string())),
            Resolved::Oidc { token, .. } => Ok(Credential::Oidc(token.to_string())),
        }
    }

    pub fn hosts(&self) -> [String; 2] {
        store_hosts(&self.id)
    }

    fn is_local(&self, url: &Url) -> bool {
        self.local.as_ref().is_some_and(|local| local.origin() == url.origin())
    }

    /// Whether `url` is one of this store's blobs: https on its public or private host (no port),
    /// or on the local emulator in loopback mode.
    pub fn owns(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default();
        let vercel = url.scheme() == "https" && url.port().is_none() && self.hosts().iter().any(|h| h == host);
        vercel || self.is_local(url)
    }

    /// Whether a read of `url` carries the bearer: this store's own private host only (https, no
    /// port), as `@vercel/blob`'s `get()` sends it; no other host ever sees it, not even another
    /// store's private host (its owner would receive our token). The emulator gets it too: it
    /// enforces private reads the way Vercel does.
    pub fn reads_with_bearer(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let [_, private] = self.hosts();
        let own_private = url.scheme() == "https" && url.port().is_none() && host == private;
        own_private || self.is_local(url)
    }

    /// The bearer to read `url` with (`reads_with_bearer`): the request's credential, read-write
    /// token or OIDC token alike.
    pub fn bearer_for<'a>(&self, url: &Url, credential: &'a Credential) -> Option<&'a str> {
        self.reads_with_bearer(url).then(|| credential.bearer())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "vercel_blob_rw_Store1_secret";

    fn store(loopback: bool) -> Store {
        Store::from_token(TOKEN, Url::parse("http://127.0.0.1:9000/api/blob").unwrap(), loopback).unwrap()
    }

    #[test]
    fn store_ids_from_tokens() {
        let table: &[(&str, Option<&str>)] = &[
            ("vercel_blob_rw_Store1_secret", Some("Store1")),
            ("vercel_blob_rw_abc-123_x_y", Some("abc-123")),
            ("vercel_blob_rw__secret", None),
            ("vercel_blob_rw_a.b_secret", None),
            ("vercel_blob_rw_evil.example#_s", None),
            ("vercel_blob_client_store_x", None),
            ("token", None),
            ("", None),
        ];
        for (token, want) in table {
            assert_eq!(store_id_from_token(token), *want, "{token}");
        }
        let long = format!("vercel_blob_rw_{}_s", "a".repeat(64));
        assert_eq!(store_id_from_token(&long), None);
        assert!(Store::from_token("nope", Url::parse("https://vercel.com/api/blob").unwrap(), false).is_err());
    }

    #[test]
    fn which_urls_are_ours_and_which_get_the_bearer() {
        let url = |s: &str| Url::parse(s).unwrap();
        // (url, owns in loopback mode, owns otherwise, bearer in loopback mode, bearer otherwise)
        let table: &[(&str, bool, bool, bool, bool)] = &[
            ("https://store1.private.blob.vercel-storage.com/a.webm", true, true, true, true),
            ("https://STORE1.private.blob.vercel-storage.com/a.webm", true, true, true, true),
            ("https://store1.public.blob.vercel-storage.com/a.webm", true, true, false, false),
            ("https://store2.private.blob.vercel-storage.com/a.webm", false, false, false, false),
            ("http://store1.private.blob.vercel-storage.com/a.webm", false, false, false, false),
            ("https://store1.private.blob.vercel-storage.com:8443/a.webm", false, false, false, false),
            ("https://evil.example/store1.private.blob.vercel-storage.com", false, false, false, false),
            ("http://127.0.0.1:9000/listening-sessions/s1/a.webm", true, false, true, false),
            ("http://127.0.0.1:9001/listening-sessions/s1/a.webm", false, false, false, false),
        ];
        for (u, owns_local, owns, bearer_local, bearer) in table {
            let u = url(u);
            assert_eq!(store(true).owns(&u), *owns_local, "{u} owns (loopback)");
            assert_eq!(store(false).owns(&u), *owns, "{u} owns");
            assert_eq!(store(true).reads_with_bearer(&u), *bearer_local, "{u} bearer (loopback)");
            assert_eq!(store(false).reads_with_bearer(&u), *bearer, "{u} bearer");
        }
        let private = url("https://store1.private.blob.vercel-storage.com/a");
        let rw = Credential::ReadWrite(TOKEN.into());
        assert_eq!(store(false).bearer_for(&private, &rw), Some(TOKEN));
        let oidc = Credential::Oidc("eyJ.oidc.sig".into());
        assert_eq!(store(false).bearer_for(&private, &oidc), Some("eyJ.oidc.sig"));
        assert_eq!(store(false).bearer_for(&url("https://store1.public.blob.vercel-storage.com/a"), &oidc), None);
    }

    /// An unsigned JWT with these claims (nothing here verifies signatures).
    fn jwt(claims: &str) -> String {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b64(r#"{"alg":"RS256","typ":"JWT"}"#), b64(claims))
    }

    const NOW_MS: u64 = 1_800_000_000_000;

    #[test]
    fn store_ids_normalise_as_the_sdk() {
        let table: &[(&str, Option<&str>)] = &[
            ("store_AbC123", Some("AbC123")),
            ("AbC123", Some("AbC123")),
            ("store_store-x", Some("store-x")), // one prefix is removed, the rest kept
            ("Store_AbC", None), // case-sensitive prefix: `Store_AbC` kept whole, and `_` is no DNS label
            ("STORE_abc", None),
            ("store_", None),
            ("", None),
            ("store_a.b", None),
            ("store_abc-1", Some("abc-1")),
        ];
        for (raw, want) in table {
            assert_eq!(normalize_store_id(raw), *want, "{raw:?}");
        }
        assert_eq!(normalize_store_id(&format!("store_{}", "a".repeat(63))).map(str::len), Some(63));
        assert_eq!(normalize_store_id(&format!("store_{}", "a".repeat(64))), None);
    }

    #[test]
    fn oidc_tokens_are_judged_by_exp_without_verifying() {
        let exp = |secs: u64| jwt(&format!(r#"{{"sub":"owner:t:project:p:environment:development","exp":{secs}}}"#));
        let table: Vec<(String, std::result::Result<(), Unresolved>)> = vec![
            (exp(NOW_MS / 1000 + 60), Ok(())),
            (exp(NOW_MS / 1000), Ok(())),
            (exp(NOW_MS / 1000 - 1), Err(Unresolved::OidcExpired)),
            (jwt(r#"{"sub":"x"}"#), Ok(())),    // no exp: not expired, as isExpired
            (jwt(r#"{"exp":"soon"}"#), Ok(())), // NaN compares false there too
            (jwt("not json"), Err(Unresolved::OidcMalformed)),
            ("a.b".into(), Err(Unresolved::OidcMalformed)),
            ("a.!!!.c".into(), Err(Unresolved::OidcMalformed)),
            ("a.b.c.d".into(), Err(Unresolved::OidcMalformed)),
            ("vercel_blob_rw_x_y".into(), Err(Unresolved::OidcMalformed)),
        ];
        for (token, want) in table {
            assert_eq!(oidc_state(&token, NOW_MS), want, "{token}");
        }
    }

    #[test]
    fn credentials_resolve_in_the_sdks_order() {
        let live = jwt(&format!(r#"{{"exp":{}}}"#, NOW_MS / 1000 + 600));
        let dead = jwt(&format!(r#"{{"exp":{}}}"#, NOW_MS / 1000 - 600));
        let (live, dead) = (live.as_str(), dead.as_str());
        let (opt, env) = ("vercel_blob_rw_s1_option", "vercel_blob_rw_s1_env");
        let oidc = |token| Ok(Resolved::Oidc { token, store_id: "s1" });
        // (explicit option, OIDC token, BLOB_STORE_ID, env BLOB_READ_WRITE_TOKEN) → what is used
        #[allow(clippy::type_complexity)]
        let table: Vec<(
            Option<&str>,
            Option<&str>,
            Option<&str>,
            Option<&str>,
            std::result::Result<Resolved, Unresolved>,
        )> = vec![
            // 1. the option beats everything, OIDC included
            (Some(opt), Some(live), Some("s1"), Some(env), Ok(Resolved::ReadWrite(opt))),
            (Some(opt), None, None, None, Ok(Resolved::ReadWrite(opt))),
            // 2. OIDC (token + store id) beats a read-write token in the environment
            (None, Some(live), Some("s1"), Some(env), oidc(live)),
            (None, Some(live), Some("s1"), None, oidc(live)),
            // a token without a store id, or a store id without a token, falls through
            (None, Some(live), None, Some(env), Ok(Resolved::ReadWrite(env))),
            (None, None, Some("s1"), Some(env), Ok(Resolved::ReadWrite(env))),
            // an expired or undecodable token counts as absent
            (None, Some(dead), Some("s1"), Some(env), Ok(Resolved::ReadWrite(env))),
            (None, Some("garbage"), Some("s1"), Some(env), Ok(Resolved::ReadWrite(env))),
            // 3. the environment's read-write token
            (None, None, None, Some(env), Ok(Resolved::ReadWrite(env))),
            // nothing usable: the refusal says why
            (None, None, None, None, Err(Unresolved::Nothing)),
            (None, Some(live), None, None, Err(Unresolved::Nothing)),
            (None, None, Some("s1"), None, Err(Unresolved::OidcMissing)),
            (None, Some(dead), Some("s1"), None, Err(Unresolved::OidcExpired)),
            (None, Some("garbage"), Some("s1"), None, Err(Unresolved::OidcMalformed)),
        ];
        for (explicit, oidc, store_id, env_read_write, want) in table {
            let sources = Sources { explicit, oidc, store_id, env_read_write };
            assert_eq!(resolve(&sources, NOW_MS), want, "{sources:?}");
        }
    }

    #[test]
    fn the_store_from_its_settings() {
        let api = || Url::parse("https://vercel.com/api/blob").unwrap();
        let set = |explicit, store_id, env_read_write| Settings { explicit, store_id, env_read_write };
        let live = jwt(&format!(r#"{{"exp":{}}}"#, NOW_MS / 1000 + 600));
        // (settings) → (store id, has a read-write token, uses OIDC) or the error code
        type Want<'a> = std::result::Result<Option<(&'a str, bool, bool)>, &'a str>;
        let table: Vec<(Settings, Want)> = vec![
            (set(None, None, None), Ok(None)),
            (set(None, Some("store_AbC1"), None), Ok(Some(("AbC1", false, true)))),
            (set(None, Some("AbC1"), Some("vercel_blob_rw_AbC1_s")), Ok(Some(("AbC1", true, true)))),
            (set(None, None, Some("vercel_blob_rw_AbC1_s")), Ok(Some(("AbC1", true, false)))),
            (set(Some("vercel_blob_rw_Opt_s"), Some("store_AbC1"), None), Ok(Some(("Opt", true, false)))),
            (set(None, Some("store_AbC1"), Some("vercel_blob_rw_Other_s")), Err("config_invalid")),
            (set(None, Some("store_a.b"), None), Err("config_invalid")),
            (set(None, Some("store_AbC1"), Some("nope")), Err("config_invalid")),
            (set(Some("nope"), None, None), Err("config_invalid")),
        ];
        for (settings, want) in table {
            let got = Store::configure(&settings, api(), false)
                .map(|s| s.map(|s| (s.id().to_string(), s.read_write_token().is_some(), s.uses_oidc())))
                .map_err(|e| e.code());
            let want = want.map(|o| o.map(|(id, rw, oidc)| (id.to_string(), rw, oidc)));
            assert_eq!(got, want, "{settings:?}");
        }
        // Per request: OIDC when a token reached it; else the read-write fallback; else a 503.
        let both = Store::configure(&set(None, Some("store_AbC1"), Some("vercel_blob_rw_AbC1_s")), api(), false)
            .unwrap()
            .unwrap();
        assert_eq!(both.credential(Some(&live), NOW_MS).unwrap(), Credential::Oidc(live.clone()));
        assert_eq!(both.credential(None, NOW_MS).unwrap(), Credential::ReadWrite("vercel_blob_rw_AbC1_s".into()));
        let oidc_only = Store::configure(&set(None, Some("store_AbC1"), None), api(), false).unwrap().unwrap();
        let err = oidc_only.credential(None, NOW_MS).unwrap_err();
        assert_eq!((err.status(), err.code()), (503, "config_missing"));
        assert!(err.to_string().contains("BLOB_STORE_ID is set but no OIDC token reached this request"), "{err}");
        let dead = jwt(&format!(r#"{{"exp":{}}}"#, NOW_MS / 1000 - 1));
        let err = oidc_only.credential(Some(&dead), NOW_MS).unwrap_err();
        assert_eq!((err.status(), err.code()), (503, "oidc_token_expired"));
        assert!(!err.public_message().contains(&dead) && !format!("{err:?}").contains(&dead));
        let explicit =
            Store::configure(&set(Some("vercel_blob_rw_AbC1_o"), Some("AbC1"), None), api(), false).unwrap().unwrap();
        assert_eq!(
            explicit.credential(Some(&live), NOW_MS).unwrap(),
            Credential::ReadWrite("vercel_blob_rw_AbC1_o".into())
        );
        assert_eq!(format!("{:?}", Credential::Oidc(live.clone())), "Oidc(..)");
        // A header's token that cannot be used is the request's 400, not a 503; from the
        // environment it stays the deployment's 503.
        use crate::http::request::Oidc;
        let header = |token| Oidc { token, from_header: true };
        let env = |token| Oidc { token, from_header: false };
        for (oidc, want) in [
            (header(None), (400, "invalid_oidc_token")),
            (header(Some("garbage")), (400, "invalid_oidc_token")),
            (header(Some(dead.as_str())), (400, "invalid_oidc_token")),
            (env(None), (503, "config_missing")),
            (env(Some("garbage")), (503, "config_invalid")),
            (env(Some(dead.as_str())), (503, "oidc_token_expired")),
        ] {
            let err = oidc_only.credential_for(oidc, NOW_MS).unwrap_err();
            assert_eq!((err.status(), err.code()), want, "{oidc:?}");
            assert!(!err.public_message().contains(&dead) && !err.public_message().contains("garbage"));
        }
        assert_eq!(oidc_only.credential_for(header(Some(&live)), NOW_MS).unwrap(), Credential::Oidc(live.clone()));
        // With a read-write token to fall back to, an unusable header token is no refusal (the SDK's order).
        assert_eq!(
            both.credential_for(header(Some("garbage")), NOW_MS).unwrap(),
            Credential::ReadWrite("vercel_blob_rw_AbC1_s".into())
        );
        // OIDC mode trusts this store's two hosts, as read-write mode does.
        assert_eq!(oidc_only.hosts(), ["abc1.public.blob.vercel-storage.com", "abc1.private.blob.vercel-storage.com"]);
    }

    #[test]
    fn layout() {
        assert_eq!(prefix("s1"), "listening-sessions/s1/");
        let p = new_pathname("s1", Container::WebM);
        assert!(p.starts_with("listening-sessions/s1/") && p.ends_with(".webm"), "{p}");
        assert_eq!(p.len(), "listening-sessions/s1/".len() + 16 + ".webm".len());
        assert_ne!(new_pathname("s1", Container::WebM), p);
    }
}
