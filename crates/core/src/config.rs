//! Configuration, parsed once by a pure function from a lookup (the binding's: explicit option, then
//! environment, then default). Every value is parsed here into its type (the PEM into a key, the DSN
//! into a `Dsn`); logic receives a `Config` and nothing else reads or re-parses the environment.
//!
//! The environment variable names are the ones the official SDKs read, so a deployment that already
//! works with `@clerk/nextjs`, `convex` and `@vercel/blob` needs no new settings.

pub use crate::telemetry::settings::TelemetryConfig;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};
use crate::playback::policy::HostPolicy;

pub const DEFAULT_CLERK_API_URL: &str = "https://api.clerk.com";
/// Trusted audio hosts when no store is configured: any public Vercel Blob store. With
/// `BLOB_STORE_ID` or a read-write token, the defaults are that store's two hosts instead
/// (`Store::hosts`).
pub const DEFAULT_TRUSTED_HOSTS: &str = "*.public.blob.vercel-storage.com";
pub const DEFAULT_CONVEX_TEMPLATE: &str = "convex";
pub const DEFAULT_GET_QUERY: &str = "listeningSessions:getForAudio";
pub const DEFAULT_ATTACH_MUTATION: &str = "listeningSessions:attachAudio";
pub const DEFAULT_ENTITLEMENTS_QUERY: &str = "entitlements:getForCurrentUser";
pub const DEFAULT_BLOB_API_URL: &str = "https://vercel.com/api/blob";
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_MAX_DURATION_MS: u64 = 4 * 60 * 60 * 1000;
/// An upload body that sends nothing for this long is abandoned.
pub const DEFAULT_UPLOAD_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Each exchange with storage, Clerk or Convex that is not an upload body.
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 15_000;
/// Clerk and Convex calls: 15 s, as before this was a setting.
const DEFAULT_SERVICE_TIMEOUT_MS: u64 = 15_000;
/// The longest a whole upload may take: 100 MiB (the default size limit) at 1 Mbit/s, rounded up.
pub const DEFAULT_UPLOAD_TIMEOUT_MS: u64 = 15 * 60 * 1000;
/// As `handleUpload`: a client token is good for an hour.
pub const DEFAULT_CLIENT_TOKEN_TTL_MS: u64 = 60 * 60 * 1000;

/// `x-vercel-blob-access` for uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobAccess {
    Public,
    Private,
}

impl BlobAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobAccess::Public => "public",
            BlobAccess::Private => "private",
        }
    }
}

/// Upload limits and storage settings (POST).
#[derive(Debug, Clone)]
pub struct UploadConfig {
    pub max_bytes: u64,
    pub max_duration_ms: u64,
    pub allowed: Vec<crate::media::Container>,
    pub access: BlobAccess,
    pub attach_mutation: String,
    pub entitlements_query: String,
    /// Direct-to-Blob client uploads (the JSON events); off: `403 client_uploads_disabled`.
    pub client_uploads: bool,
    /// How long a minted client token is valid.
    pub client_token_ttl: Duration,
    /// How long an upload body may send nothing before it is abandoned (`408 upload_timeout`).
    pub idle_timeout: Duration,
    /// How long a whole upload may take, first byte to last (`408 upload_timeout`); also the limit
    /// for reading a client upload whole to measure it.
    pub total_timeout: Duration,
    /// An unmeasurable duration: the declaration stands (on) or `400 duration_unmeasurable` (off).
    pub accept_declared_duration: bool,
    /// Where Blob's completion webhook goes (origin; the route's path is appended), as
    /// `handleUpload` derives it. `None`: no webhook.
    pub callback_origin: Option<String>,
    /// `SESSION_AUDIO_CONVEX_SECRET`: what the route signs the attach mutation's arguments with
    /// (`attach_sign`). `None`: uploads answer `503 config_missing`; GET does not need it.
    pub attach_secret: Option<crate::upload::attach_sign::AttachSecret>,
    /// `BLOB_WEBHOOK_PUBLIC_KEY`: checks the Ed25519 signature of a presigned upload's completion
    /// webhook (`webhook`). `None`: presigned uploads that would get a webhook answer 503.
    pub webhook_key: Option<crate::upload::webhook::WebhookKey>,
}

/// The youngest orphan a sweep may delete: older than any blob a completion still attaches
/// (`UploadConfig::completion_max_age`), plus the longest a completion may take once it has checked
/// the age (it reads the whole blob within the upload timeout), plus a margin for clocks. So a sweep
/// never deletes a blob a completion is about to attach.
pub fn sweep_floor(client_token_ttl: Duration, total_timeout: Duration) -> Duration {
    client_token_ttl.saturating_add(total_timeout).saturating_add(Duration::from_secs(5 * 60))
}

impl UploadConfig {
    /// The oldest blob a completion attaches: a client token's lifetime. A blob is stored when its
    /// upload finishes, which a valid token bounds, and its completion follows at once (or Blob's
    /// webhook retries within minutes); an older blob is a stale replay.
    pub fn completion_max_age(&self) -> Duration {
        self.client_token_ttl
    }
}

/// Key-source for verifying session tokens.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `CLERK_JWT_KEY`, parsed: networkless verification.
    Pem(rsa::RsaPublicKey),
    /// `GET {CLERK_API_URL}/v1/jwks` with `CLERK_SECRET_KEY`.
    Jwks,
}

/// A configuration that cannot serve: the 503 to answer with, and the telemetry settings that did
/// parse (a bad one falls back to its default here; the error names it).
#[derive(Debug)]
pub struct Rejected {
    pub error: Error,
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub convex_url: Url,
    pub clerk_secret_key: String,
    pub clerk_api_url: Url,
    pub key_source: KeySource,
    pub authorized_parties: Vec<String>,
    /// `acceptPendingSessions`: `sts: "pending"` is signed in rather than `401 session_pending`.
    pub accept_pending_sessions: bool,
    /// The deployment's Blob store (`BLOB_STORE_ID` and/or a read-write token); `None`: uploads answer 503.
    pub store: Option<crate::storage::store::Store>,
    /// Read a request's `x-vercel-oidc-token` header: only where the platform sets it (`VERCEL=1`
    /// by default, or `SESSION_AUDIO_TRUST_OIDC_HEADER`); elsewhere any client could send one.
    pub trust_oidc_header: bool,
    /// GET refuses a stored URL whose path is not under `listening-sessions/{sessionId}/`.
    pub require_session_path: bool,
    pub upload: UploadConfig,
    pub telemetry: TelemetryConfig,
    pub host_policy: HostPolicy,
    pub convex_template: String,
    pub get_query: String,
    /// `Cache-Control: private, no-transform, max-age=N` on streamed audio; 0 leaves max-age out.
    pub cache_max_age_secs: u64,
    /// How long a (user, session) → audio URL answer is reused.
    pub lookup_ttl: Duration,
    /// Time allowed for the upstream's response headers, and between two body chunks.
    pub upstream_timeout: Duration,
    /// Each call to Clerk's Backend API and to Convex, whole (`SESSION_AUDIO_SERVICE_TIMEOUT_MS`):
    /// a call past it is that service's outage (the upload it was for is kept).
    pub service_timeout: Duration,
}

impl Config {
    /// Build the configuration from a lookup that answers explicit options first, then the
    /// environment. Returns a 503-class error naming exactly what to fix.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> std::result::Result<Config, Box<Rejected>> {
        let get = |key: &str| get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let (telemetry, telemetry_error) = crate::telemetry::settings::parse(&get);
        let parsed = telemetry_error.map_or_else(|| Config::parse_rest(&get, telemetry.clone()), Err);
        parsed.map_err(|error| Box::new(Rejected { error, telemetry }))
    }

    fn parse_rest(get: &impl Fn(&str) -> Option<String>, telemetry: TelemetryConfig) -> Result<Config> {
        let convex_url = match get("NEXT_PUBLIC_CONVEX_URL") {
            None => {
                return Err(Error::ConfigMissing(
                    "NEXT_PUBLIC_CONVEX_URL is not set (the Convex deployment URL, e.g. https://happy-otter-123.convex.cloud)".into(),
                ))
            }
            Some(raw) => parse_convex_url(&raw)?,
        };

        let clerk_api_url = match get("CLERK_API_URL") {
            None => Url::parse(DEFAULT_CLERK_API_URL).map_err(|e| Error::Internal(e.to_string()))?,
            Some(raw) => parse_http_url("CLERK_API_URL", &raw)?,
        };
        let clerk_secret_key = get("CLERK_SECRET_KEY");
        let key_source = match get("CLERK_JWT_KEY") {
            // Parsed now, once: a broken key is a 503 naming the variable, not a 401 for everyone.
            // Hosting dashboards often store multi-line secrets with literal "\\n".
            Some(pem) => {
                KeySource::Pem(crate::identity::jwt::parse_public_key_pem(&pem.replace("\\n", "\n")).map_err(|e| {
                    Error::ConfigInvalid(format!("CLERK_JWT_KEY is not an RSA public key in PEM form: {e}"))
                })?)
            }
            None => KeySource::Jwks,
        };
        let Some(clerk_secret_key) = clerk_secret_key else {
            return Err(Error::ConfigMissing(
                match key_source {
                    KeySource::Jwks => {
                        "CLERK_SECRET_KEY is not set (needed to verify session tokens and mint the Convex token)"
                    }
                    KeySource::Pem(_) => "CLERK_SECRET_KEY is not set (needed to mint the Convex JWT-template token)",
                }
                .into(),
            ));
        };
        let authorized_parties = split_list(get("CLERK_AUTHORIZED_PARTIES").as_deref().unwrap_or(""));

        let allow_loopback = match get("SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(_) => return Err(Error::ConfigInvalid("SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM must be 1 or 0".into())),
        };
        let blob_api_url = match get("VERCEL_BLOB_API_URL") {
            None => Url::parse(DEFAULT_BLOB_API_URL).map_err(|e| Error::Internal(e.to_string()))?,
            Some(raw) => parse_http_url("VERCEL_BLOB_API_URL", &raw)?,
        };
        let store = blob_store(get, blob_api_url, allow_loopback)?;
        // The defaults are this deployment's own store (named by BLOB_STORE_ID or the token);
        // configured hosts are added on top, never in place of them.
        let mut hosts = match &store {
            Some(store) => store.hosts().to_vec(),
            None => split_list(DEFAULT_TRUSTED_HOSTS),
        };
        hosts.extend(split_list(get("SESSION_AUDIO_TRUSTED_HOSTS").as_deref().unwrap_or("")));
        let host_policy = HostPolicy::parse(&hosts, allow_loopback)
            .map_err(|e| Error::ConfigInvalid(format!("SESSION_AUDIO_TRUSTED_HOSTS: {e}")))?;

        let upload = Config::parse_upload(get)?;

        Ok(Config {
            convex_url,
            clerk_secret_key,
            clerk_api_url,
            key_source,
            authorized_parties,
            accept_pending_sessions: parse_switch(get, "SESSION_AUDIO_ACCEPT_PENDING_SESSIONS", false)?,
            store,
            trust_oidc_header: parse_switch(
                get,
                "SESSION_AUDIO_TRUST_OIDC_HEADER",
                get("VERCEL").as_deref() == Some("1"),
            )?,
            require_session_path: parse_switch(get, "SESSION_AUDIO_REQUIRE_SESSION_PATH", true)?,
            upload,
            telemetry,
            host_policy,
            convex_template: get("SESSION_AUDIO_CONVEX_TEMPLATE").unwrap_or_else(|| DEFAULT_CONVEX_TEMPLATE.into()),
            get_query: get("SESSION_AUDIO_GET_QUERY").unwrap_or_else(|| DEFAULT_GET_QUERY.into()),
            cache_max_age_secs: parse_number(&get, "SESSION_AUDIO_CACHE_MAX_AGE", 0)?,
            lookup_ttl: Duration::from_millis(parse_number(&get, "SESSION_AUDIO_LOOKUP_TTL_MS", 5_000)?),
            upstream_timeout: Duration::from_millis(
                parse_number(&get, "SESSION_AUDIO_UPSTREAM_TIMEOUT_MS", DEFAULT_UPSTREAM_TIMEOUT_MS)?.max(1),
            ),
            service_timeout: Duration::from_millis(
                parse_number(&get, "SESSION_AUDIO_SERVICE_TIMEOUT_MS", DEFAULT_SERVICE_TIMEOUT_MS)?.max(1),
            ),
        })
    }

    /// The upload settings (`UploadConfig`), in the order their errors are reported.
    fn parse_upload(get: &impl Fn(&str) -> Option<String>) -> Result<UploadConfig> {
        let allowed = match get("SESSION_AUDIO_ALLOWED_TYPES") {
            None => crate::media::DEFAULT_ALLOWED.to_vec(),
            Some(raw) => crate::media::parse_allowed(&split_list(&raw))
                .map_err(|e| Error::ConfigInvalid(format!("SESSION_AUDIO_ALLOWED_TYPES: {e}")))?,
        };
        let access = match get("SESSION_AUDIO_BLOB_ACCESS").as_deref() {
            None | Some("private") => BlobAccess::Private,
            Some("public") => BlobAccess::Public,
            Some(_) => return Err(Error::ConfigInvalid("SESSION_AUDIO_BLOB_ACCESS must be private or public".into())),
        };
        Ok(UploadConfig {
            max_bytes: parse_number(&get, "SESSION_AUDIO_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)?.max(1),
            max_duration_ms: parse_number(&get, "SESSION_AUDIO_MAX_DURATION_MS", DEFAULT_MAX_DURATION_MS)?.max(1),
            allowed,
            access,
            attach_mutation: get("SESSION_AUDIO_ATTACH_MUTATION").unwrap_or_else(|| DEFAULT_ATTACH_MUTATION.into()),
            entitlements_query: get("SESSION_AUDIO_ENTITLEMENTS_QUERY")
                .unwrap_or_else(|| DEFAULT_ENTITLEMENTS_QUERY.into()),
            client_uploads: parse_switch(get, "SESSION_AUDIO_CLIENT_UPLOADS", true)?,
            client_token_ttl: Duration::from_millis(
                parse_number(get, "SESSION_AUDIO_CLIENT_TOKEN_TTL_MS", DEFAULT_CLIENT_TOKEN_TTL_MS)?
                    .clamp(1_000, 86_400_000),
            ),
            callback_origin: callback_origin(get),
            idle_timeout: Duration::from_millis(
                parse_number(get, "SESSION_AUDIO_UPLOAD_IDLE_TIMEOUT_MS", DEFAULT_UPLOAD_IDLE_TIMEOUT_MS)?.max(1),
            ),
            total_timeout: Duration::from_millis(
                parse_number(get, "SESSION_AUDIO_UPLOAD_TIMEOUT_MS", DEFAULT_UPLOAD_TIMEOUT_MS)?.max(1),
            ),
            accept_declared_duration: parse_switch(get, "SESSION_AUDIO_ACCEPT_DECLARED_DURATION", false)?,
            attach_secret: get(crate::upload::attach_sign::ENV)
                .map(|raw| crate::upload::attach_sign::AttachSecret::parse(&raw))
                .transpose()?,
            // Parsed now, once: a broken key is a 503 naming the variable, not a 401 per webhook.
            webhook_key: get("BLOB_WEBHOOK_PUBLIC_KEY")
                .map(|pem| crate::upload::webhook::WebhookKey::parse_pem(&pem))
                .transpose()
                .map_err(|why| Error::ConfigInvalid(format!("BLOB_WEBHOOK_PUBLIC_KEY is {why}")))?,
        })
    }
}

/// The lookup key that answers the `blobReadWriteToken` option alone, never the environment: an
/// explicit token beats OIDC, a token in the environment does not (`store::resolve`). The binding
/// answers it; `BLOB_READ_WRITE_TOKEN` answers the option, else the environment, as every key does.
pub const BLOB_TOKEN_OPTION: &str = "blobReadWriteToken";

/// The deployment's Blob store from `blobReadWriteToken`, `BLOB_STORE_ID` and
/// `BLOB_READ_WRITE_TOKEN` (`Store::configure`); `None` when none is set.
pub(crate) fn blob_store(
    get: &impl Fn(&str) -> Option<String>,
    api: Url,
    allow_loopback: bool,
) -> Result<Option<crate::storage::store::Store>> {
    let explicit = get(BLOB_TOKEN_OPTION);
    let env_read_write = if explicit.is_some() { None } else { get("BLOB_READ_WRITE_TOKEN") };
    let store_id = get("BLOB_STORE_ID");
    let settings = crate::storage::store::Settings {
        explicit: explicit.as_deref(),
        store_id: store_id.as_deref(),
        env_read_write: env_read_write.as_deref(),
    };
    crate::storage::store::Store::configure(&settings, api, allow_loopback)
}

/// Where Vercel Blob sends `blob.upload-completed`, derived as `handleUpload` derives it
/// (`getCallbackUrl`), from the environment: the origin part. The route's own path is appended per
/// request. `None`: no webhook (the browser's completion event alone attaches).
pub fn callback_origin(get: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let trimmed = |s: String| s.trim_end_matches('/').to_string();
    if let Some(base) = get("VERCEL_BLOB_CALLBACK_URL") {
        return Some(trimmed(base));
    }
    if get("VERCEL").as_deref() != Some("1") {
        return None;
    }
    match get("VERCEL_ENV").as_deref() {
        Some("preview") => get("VERCEL_BRANCH_URL").or_else(|| get("VERCEL_URL")).map(|h| format!("https://{h}")),
        Some("production") => get("VERCEL_PROJECT_PRODUCTION_URL").map(|h| format!("https://{h}")),
        _ => None,
    }
}

fn parse_switch(get: &impl Fn(&str) -> Option<String>, key: &str, default: bool) -> Result<bool> {
    match get(key).as_deref() {
        None => Ok(default),
        Some("1") | Some("true") | Some("on") => Ok(true),
        Some("0") | Some("false") | Some("off") => Ok(false),
        Some(_) => Err(Error::ConfigInvalid(format!("{key} must be 1 or 0"))),
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

pub(crate) fn parse_number(get: &impl Fn(&str) -> Option<String>, key: &str, default: u64) -> Result<u64> {
    match get(key) {
        None => Ok(default),
        Some(raw) => {
            raw.parse::<u64>().map_err(|_| Error::ConfigInvalid(format!("{key} must be a non-negative integer")))
        }
    }
}

pub(crate) fn parse_http_url(key: &str, raw: &str) -> Result<Url> {
    // The value is never echoed (it may be a secret pasted into the wrong variable); url's
    // parse errors describe the defect without quoting the input.
    let url = Url::parse(raw).map_err(|e| Error::ConfigInvalid(format!("{key} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::ConfigInvalid(format!("{key} must be an http(s) URL")));
    }
    Ok(url)
}

/// Same rules as `convex`'s `validateDeploymentUrl`: http(s), parses, and not the `.convex.site`
/// host (that one serves HTTP actions, not the query API).
pub(crate) fn parse_convex_url(raw: &str) -> Result<Url> {
    let url = parse_http_url("NEXT_PUBLIC_CONVEX_URL", raw)?;
    if url.host_str().is_some_and(|h| h.ends_with(".convex.site")) {
        return Err(Error::ConfigInvalid(
            "NEXT_PUBLIC_CONVEX_URL points at a .convex.site host; use the .convex.cloud deployment URL".into(),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PEM: &str = include_str!("../tests/keys/rsa2048.pub.pem");

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned()).map_err(|r| r.error)
    }

    const BASE: &[(&str, &str)] =
        &[("NEXT_PUBLIC_CONVEX_URL", "https://x.convex.cloud"), ("CLERK_SECRET_KEY", "sk_test_1")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn defaults_apply() {
        let c = cfg(BASE).unwrap();
        assert_eq!(c.clerk_api_url.as_str(), "https://api.clerk.com/");
        assert_eq!(c.convex_template, "convex");
        assert_eq!(c.get_query, "listeningSessions:getForAudio");
        assert!(matches!(c.key_source, KeySource::Jwks));
        assert!(c.authorized_parties.is_empty());
        assert!(!c.accept_pending_sessions);
        assert!(cfg(&with(&[("SESSION_AUDIO_ACCEPT_PENDING_SESSIONS", "1")])).unwrap().accept_pending_sessions);
        assert_eq!(c.lookup_ttl, Duration::from_secs(5));
        assert!(!c.host_policy.allow_loopback());
        assert_eq!(c.upload.max_bytes, 100 * 1024 * 1024);
        assert_eq!(c.upload.max_duration_ms, 4 * 3600 * 1000);
        assert_eq!(c.upload.allowed.len(), 7);
        assert_eq!(c.upload.access, BlobAccess::Private);
        let t = cfg(&with(&[("BLOB_READ_WRITE_TOKEN", "vercel_blob_rw_MyStore_secret")])).unwrap();
        assert_eq!(t.store.as_ref().map(|s| s.api()), Some("https://vercel.com/api/blob"));
        assert_eq!(c.upload.attach_mutation, "listeningSessions:attachAudio");
        assert_eq!(c.upload.entitlements_query, "entitlements:getForCurrentUser");
        assert_eq!(c.upload.idle_timeout, Duration::from_secs(30));
        assert!(c.store.is_none());
        assert!(c.require_session_path);
        assert_eq!(c.telemetry.log_level, crate::telemetry::LogLevel::Info);
        assert!(c.telemetry.server_timing);
        assert_eq!(c.telemetry.sentry_environment, None);
        let c = cfg(&with(&[("VERCEL_ENV", "preview")])).unwrap();
        assert_eq!(c.telemetry.sentry_environment.as_deref(), Some("preview"));
        let c = cfg(&with(&[("VERCEL_ENV", "preview"), ("SENTRY_ENVIRONMENT", "staging")])).unwrap();
        assert_eq!(c.telemetry.sentry_environment.as_deref(), Some("staging"));
    }

    #[test]
    fn config_error_table() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "config_missing"),
            (vec![("CLERK_SECRET_KEY", "sk")], "config_missing"),
            (vec![("NEXT_PUBLIC_CONVEX_URL", "not a url"), ("CLERK_SECRET_KEY", "sk")], "config_invalid"),
            (vec![("NEXT_PUBLIC_CONVEX_URL", "ftp://x.y"), ("CLERK_SECRET_KEY", "sk")], "config_invalid"),
            (vec![("NEXT_PUBLIC_CONVEX_URL", "https://x.convex.site"), ("CLERK_SECRET_KEY", "sk")], "config_invalid"),
            (vec![("NEXT_PUBLIC_CONVEX_URL", "https://x.convex.cloud")], "config_missing"),
            (
                with(&[("CLERK_JWT_KEY", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")]),
                "config_invalid",
            ),
            (with(&[("SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM", "yes")]), "config_invalid"),
            (with(&[("SESSION_AUDIO_LOOKUP_TTL_MS", "-1")]), "config_invalid"),
            (with(&[("SESSION_AUDIO_TRUSTED_HOSTS", "https://bad/")]), "config_invalid"),
            (with(&[("CLERK_API_URL", "nope")]), "config_invalid"),
            (with(&[("SESSION_AUDIO_ALLOWED_TYPES", "audio/webm,video/mp4")]), "config_invalid"),
            (with(&[("SESSION_AUDIO_BLOB_ACCESS", "world")]), "config_invalid"),
            (with(&[("SESSION_AUDIO_MAX_UPLOAD_BYTES", "1e9")]), "config_invalid"),
            (with(&[("VERCEL_BLOB_API_URL", "blob")]), "config_invalid"),
            (with(&[("SESSION_AUDIO_LOG", "loud")]), "config_invalid"),
            (with(&[("SESSION_AUDIO_SERVER_TIMING", "maybe")]), "config_invalid"),
            (with(&[("SESSION_AUDIO_ACCEPT_PENDING_SESSIONS", "pending")]), "config_invalid"),
            (with(&[("SENTRY_DSN", "not a dsn")]), "config_invalid"),
        ];
        for (pairs, code) in cases {
            let err = cfg(&pairs).expect_err(&format!("{pairs:?} should fail"));
            assert_eq!(err.code(), code, "{pairs:?}: {err}");
            assert_eq!(err.status(), 503);
        }
    }

    #[test]
    fn a_503_names_the_setting_and_never_echoes_its_value() {
        // Every key the parser asks for (recorded, so a new setting cannot be left out), each set to
        // values that are invalid for most settings and carry a marker that must not come back.
        let asked = std::cell::RefCell::new(Vec::<String>::new());
        let base: HashMap<&str, &str> = BASE.iter().copied().collect();
        let _ = Config::from_lookup(|k| {
            asked.borrow_mut().push(k.to_string());
            base.get(k).map(|v| v.to_string())
        });
        let keys = asked.into_inner();
        assert!(keys.len() > 20, "{keys:?}");
        let canaries = [
            "zzcanaryzz",
            "https://zzcanaryzz.convex.site",
            "ftp://zzcanaryzz/",
            "*.zzcanaryzz",
            "zzcanaryzz:99999",
            "-----BEGIN PUBLIC KEY-----\nzzcanaryzz\n-----END PUBLIC KEY-----",
            "https://a.example/, zzcanaryzz/x",
            "audio/webm,zzcanaryzz",
        ];
        let mut refused = 0;
        for key in &keys {
            for canary in canaries {
                let mut map = base.clone();
                map.insert(key.as_str(), canary);
                let Err(rejected) = Config::from_lookup(|k| map.get(k).map(|v| v.to_string())) else { continue };
                refused += 1;
                let message = rejected.error.to_string();
                assert!(!message.contains("zzcanaryzz"), "{key}={canary:?} echoed: {message}");
                assert!(message.contains(key.as_str()), "{key}={canary:?} not named: {message}");
            }
        }
        assert!(refused > 30, "{refused}");
    }

    #[test]
    fn a_rejected_configuration_keeps_the_telemetry_settings_that_parsed() {
        let map: HashMap<&str, &str> =
            [("SESSION_AUDIO_LOG", "off"), ("SESSION_AUDIO_SERVER_TIMING", "0"), ("VERCEL_ENV", "preview")].into();
        let rejected = Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap_err();
        assert_eq!(rejected.error.code(), "config_missing");
        assert_eq!(rejected.telemetry.log_level, crate::telemetry::LogLevel::Off);
        assert!(!rejected.telemetry.server_timing);
        assert_eq!(rejected.telemetry.sentry_environment.as_deref(), Some("preview"));
        // A bad telemetry value is the error named, and falls back to its default meanwhile.
        let map: HashMap<&str, &str> =
            [("NEXT_PUBLIC_CONVEX_URL", "https://x.convex.cloud"), ("SENTRY_DSN", "nope")].into();
        let rejected = Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(rejected.error.to_string().contains("SENTRY_DSN"), "{}", rejected.error);
        assert!(rejected.telemetry.sentry_dsn.is_none());
    }

    #[test]
    fn pem_key_and_lists_parse() {
        let c = cfg(&with(&[
            ("CLERK_JWT_KEY", PEM),
            ("CLERK_AUTHORIZED_PARTIES", " https://a.example , https://b.example,"),
            ("SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM", "1"),
            ("SESSION_AUDIO_TRUSTED_HOSTS", "127.0.0.1:9000"),
        ]))
        .unwrap();
        assert!(matches!(c.key_source, KeySource::Pem(_)));
        assert_eq!(c.authorized_parties, vec!["https://a.example", "https://b.example"]);
        assert!(c.host_policy.allow_loopback());
    }

    #[test]
    fn trusted_hosts_default_to_this_store_and_configured_ones_add_to_them() {
        let ok = |c: &Config, u: &str| c.host_policy.check(&Url::parse(u).unwrap()).is_ok();
        // No token: any public store (a private one cannot be read without the token anyway).
        let c = cfg(BASE).unwrap();
        assert!(ok(&c, "https://anystore.public.blob.vercel-storage.com/a"));
        assert!(!ok(&c, "https://anystore.private.blob.vercel-storage.com/a"));
        assert!(c.store.is_none());
        // With the token: this store's two hosts only.
        let c = cfg(&with(&[("BLOB_READ_WRITE_TOKEN", "vercel_blob_rw_MyStore_secret")])).unwrap();
        assert_eq!(c.store.as_ref().map(|s| s.id()), Some("MyStore"));
        assert!(ok(&c, "https://mystore.public.blob.vercel-storage.com/a"));
        assert!(ok(&c, "https://mystore.private.blob.vercel-storage.com/a"));
        assert!(!ok(&c, "https://otherstore.public.blob.vercel-storage.com/a"));
        assert!(!ok(&c, "https://otherstore.private.blob.vercel-storage.com/a"));
        // Configured hosts are added on top, not in place.
        let c = cfg(&with(&[
            ("BLOB_READ_WRITE_TOKEN", "vercel_blob_rw_MyStore_secret"),
            ("SESSION_AUDIO_TRUSTED_HOSTS", "cdn.example.com, oldstore.public.blob.vercel-storage.com"),
        ]))
        .unwrap();
        for u in [
            "https://mystore.private.blob.vercel-storage.com/a",
            "https://cdn.example.com/a",
            "https://oldstore.public.blob.vercel-storage.com/a",
        ] {
            assert!(ok(&c, u), "{u}");
        }
        assert!(!ok(&c, "https://otherstore.public.blob.vercel-storage.com/a"));
        // A token that names no store is a 503, not a silently wider policy.
        let err = cfg(&with(&[("BLOB_READ_WRITE_TOKEN", "not-a-blob-token")])).unwrap_err();
        assert_eq!(err.code(), "config_invalid");
        let c = cfg(&with(&[("SESSION_AUDIO_REQUIRE_SESSION_PATH", "0")])).unwrap();
        assert!(!c.require_session_path);
        // OIDC (BLOB_STORE_ID, as Vercel sets a project up): the same two hosts of that store.
        let c = cfg(&with(&[("BLOB_STORE_ID", "store_MyStore")])).unwrap();
        assert_eq!(
            c.store.as_ref().map(|s| (s.id(), s.uses_oidc(), s.read_write_token())),
            Some(("MyStore", true, None))
        );
        assert!(ok(&c, "https://mystore.public.blob.vercel-storage.com/a"));
        assert!(ok(&c, "https://mystore.private.blob.vercel-storage.com/a"));
        assert!(!ok(&c, "https://otherstore.public.blob.vercel-storage.com/a"));
        // The option beats BLOB_STORE_ID (the binding answers BLOB_TOKEN_OPTION with it alone).
        let c = cfg(&with(&[
            ("BLOB_STORE_ID", "store_MyStore"),
            (BLOB_TOKEN_OPTION, "vercel_blob_rw_Opt_secret"),
            ("BLOB_READ_WRITE_TOKEN", "vercel_blob_rw_Opt_secret"),
        ]))
        .unwrap();
        assert_eq!(c.store.as_ref().map(|s| (s.id(), s.uses_oidc())), Some(("Opt", false)));
        let err =
            cfg(&with(&[("BLOB_STORE_ID", "store_MyStore"), ("BLOB_READ_WRITE_TOKEN", "vercel_blob_rw_Other_s")]))
                .unwrap_err();
        assert_eq!(err.code(), "config_invalid");
    }

    #[test]
    fn the_oidc_header_is_trusted_only_where_the_platform_sets_it() {
        let trust = |extra: &[(&'static str, &'static str)]| cfg(&with(extra)).map(|c| c.trust_oidc_header);
        assert!(!trust(&[]).unwrap());
        assert!(trust(&[("VERCEL", "1")]).unwrap());
        assert!(!trust(&[("VERCEL", "true")]).unwrap()); // Vercel sets exactly 1
        assert!(trust(&[("SESSION_AUDIO_TRUST_OIDC_HEADER", "1")]).unwrap());
        assert!(!trust(&[("VERCEL", "1"), ("SESSION_AUDIO_TRUST_OIDC_HEADER", "0")]).unwrap());
        assert_eq!(trust(&[("SESSION_AUDIO_TRUST_OIDC_HEADER", "maybe")]).unwrap_err().code(), "config_invalid");
    }

    #[test]
    fn pem_with_escaped_newlines_is_accepted() {
        // Hosting dashboards often store multi-line secrets with literal "\n".
        let escaped = PEM.trim().replace('\n', "\\n");
        let map: HashMap<&str, String> = [
            ("NEXT_PUBLIC_CONVEX_URL", "http://127.0.0.1:3210".to_string()),
            ("CLERK_SECRET_KEY", "sk".to_string()),
            ("CLERK_JWT_KEY", escaped),
        ]
        .into_iter()
        .collect();
        let c = Config::from_lookup(|k| map.get(k).cloned()).map_err(|r| r.error).unwrap();
        assert!(matches!(c.key_source, KeySource::Pem(_)));
    }

    #[test]
    fn callback_origin_follows_handle_upload() {
        let env = |pairs: &[(&str, &str)]| {
            let map: std::collections::HashMap<String, String> =
                pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            callback_origin(&|k: &str| map.get(k).cloned())
        };
        assert_eq!(env(&[]), None);
        assert_eq!(
            env(&[("VERCEL_BLOB_CALLBACK_URL", "https://tunnel.example/")]).as_deref(),
            Some("https://tunnel.example")
        );
        assert_eq!(env(&[("VERCEL_ENV", "preview"), ("VERCEL_URL", "x.vercel.app")]), None);
        assert_eq!(
            env(&[("VERCEL", "1"), ("VERCEL_ENV", "preview"), ("VERCEL_URL", "x.vercel.app")]).as_deref(),
            Some("https://x.vercel.app")
        );
        assert_eq!(
            env(&[
                ("VERCEL", "1"),
                ("VERCEL_ENV", "preview"),
                ("VERCEL_URL", "x.vercel.app"),
                ("VERCEL_BRANCH_URL", "b.vercel.app")
            ])
            .as_deref(),
            Some("https://b.vercel.app")
        );
        assert_eq!(
            env(&[("VERCEL", "1"), ("VERCEL_ENV", "production"), ("VERCEL_PROJECT_PRODUCTION_URL", "app.example")])
                .as_deref(),
            Some("https://app.example")
        );
        assert_eq!(env(&[("VERCEL", "1"), ("VERCEL_ENV", "development")]), None);
    }
}
