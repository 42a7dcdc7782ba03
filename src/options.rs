//! The handlers' options: declared once, here. napi-derive turns the doc comments into the JSDoc of
//! `AudioOptions` in `binding.d.ts`, which `index.d.ts` re-exports; `settings()` maps each option
//! to the environment variable it overrides, and an exhaustive destructuring makes forgetting one a
//! compile error. The core parses the merged values once (`Config::from_lookup`).

use napi_derive::napi;

/// Options for the handlers. Each one overrides the environment variable named in its comment;
/// unset options fall back to that variable, then to the default.
#[napi(object)]
#[derive(Default)]
pub struct AudioOptions {
    /// Convex deployment URL. Env `NEXT_PUBLIC_CONVEX_URL`. Required.
    pub convex_url: Option<String>,
    /// Clerk secret key (JWKS and JWT-template tokens). Env `CLERK_SECRET_KEY`. Required.
    pub clerk_secret_key: Option<String>,
    /// PEM public key for networkless session-token verification. Env `CLERK_JWT_KEY`.
    pub clerk_jwt_key: Option<String>,
    /// Clerk Backend API. Env `CLERK_API_URL`. Default `https://api.clerk.com`.
    pub clerk_api_url: Option<String>,
    /// When set, a session token's `azp` must be one of these. Env `CLERK_AUTHORIZED_PARTIES` (comma list).
    pub authorized_parties: Option<Vec<String>>,
    /// Accept a pending Clerk session (`sts: "pending"`: signed in with tasks left, such as choosing
    /// an organization) as signed in. Off, it is `401 session_pending`, as `@clerk/backend` treats it
    /// by default. Env `SESSION_AUDIO_ACCEPT_PENDING_SESSIONS=1`. Default off.
    pub accept_pending_sessions: Option<bool>,
    /// The Vercel Blob store, for OIDC: `store_<id>` or `<id>`, as Vercel sets it when a store is
    /// connected to the project; each request's OIDC token (its `x-vercel-oidc-token` header on
    /// Vercel, see `trustOidcHeader`, else env `VERCEL_OIDC_TOKEN` as it is then) authenticates the
    /// calls. Env `BLOB_STORE_ID`.
    pub blob_store_id: Option<String>,
    /// Read the Vercel OIDC token from a request's `x-vercel-oidc-token` header. Vercel sets that
    /// header on every request it hands a deployment, replacing any a client sent; anywhere else a
    /// client could send it, so it is ignored and env `VERCEL_OIDC_TOKEN` (as it is at each request)
    /// is used. Env `SESSION_AUDIO_TRUST_OIDC_HEADER`. Default: on where `VERCEL=1` (on Vercel),
    /// off elsewhere; turn it on only behind a platform that sets the header the same way.
    pub trust_oidc_header: Option<bool>,
    /// Vercel Blob read-write token, the alternative to OIDC (uploads, private reads, client
    /// tokens). Given here it beats OIDC; in env `BLOB_READ_WRITE_TOKEN`, OIDC beats it, as in
    /// `@vercel/blob`.
    pub blob_read_write_token: Option<String>,
    /// The public key (Ed25519, SPKI PEM) that Vercel Blob's completion webhooks for presigned uploads
    /// are checked with. Env `BLOB_WEBHOOK_PUBLIC_KEY`. Needed for presigned uploads with a webhook.
    pub blob_webhook_public_key: Option<String>,
    /// Vercel Blob API base. Env `VERCEL_BLOB_API_URL`. Default `https://vercel.com/api/blob`.
    pub blob_api_url: Option<String>,
    /// Sentry DSN. Env `SENTRY_DSN`.
    pub sentry_dsn: Option<String>,
    /// Host patterns audio URLs may point at (`host`, `*.domain`, optionally `:port`), added to the
    /// defaults: this deployment's own store (`<storeId>.public…` and `<storeId>.private…`, from
    /// `BLOB_STORE_ID`, else the read-write token), or without either any `*.public.blob.vercel-storage.com`.
    /// Env `SESSION_AUDIO_TRUSTED_HOSTS` (comma list).
    pub trusted_hosts: Option<Vec<String>>,
    /// GET refuses (`502 untrusted_audio_host`) a stored audio URL whose path is not under
    /// `listening-sessions/{sessionId}/`. Turn off only for audio stored by older code under other
    /// paths. Env `SESSION_AUDIO_REQUIRE_SESSION_PATH=0`. Default on.
    pub require_session_path: Option<bool>,
    /// Clerk JWT template whose token Convex accepts. Env `SESSION_AUDIO_CONVEX_TEMPLATE`. Default `convex`.
    pub convex_template: Option<String>,
    /// Convex query returning `{ _id, userId, status, audioUrl, audioContentType? } | null`.
    /// Env `SESSION_AUDIO_GET_QUERY`. Default `listeningSessions:getForAudio`.
    pub get_session_query: Option<String>,
    /// Tests and local development only: allow `http://127.0.0.1:PORT` / `http://localhost:PORT` audio
    /// URLs whose `host:port` is in `trustedHosts`. Env `SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM=1`. Default off.
    pub allow_loopback_upstream: Option<bool>,
    /// `max-age` (seconds) added to `Cache-Control: private, no-transform`. Env `SESSION_AUDIO_CACHE_MAX_AGE`.
    /// Default 0 (none).
    pub cache_max_age: Option<f64>,
    /// How long a session lookup is reused for the same user (ms). Env `SESSION_AUDIO_LOOKUP_TTL_MS`. Default 5000.
    pub lookup_ttl_ms: Option<f64>,
    /// Time allowed for the audio storage's response headers and between chunks, and for each small
    /// exchange with the Blob API (head, delete, reading an answer) (ms).
    /// Env `SESSION_AUDIO_UPSTREAM_TIMEOUT_MS`. Default 15000.
    pub upstream_timeout_ms: Option<f64>,
    /// Each call to Clerk's Backend API and to Convex, whole (ms): past it the service counts as
    /// down for that call (an upload it was for is kept, `503`).
    /// Env `SESSION_AUDIO_SERVICE_TIMEOUT_MS`. Default 15000.
    pub service_timeout_ms: Option<f64>,
    /// An upload whose body sends nothing for this long is abandoned: `408 upload_timeout`, nothing
    /// stored (ms). Env `SESSION_AUDIO_UPLOAD_IDLE_TIMEOUT_MS`. Default 30000.
    pub upload_idle_timeout_ms: Option<f64>,
    /// The longest a streamed upload may take from its first byte to its last, however steadily it
    /// trickles: past it, `408 upload_timeout` and nothing stored; also the limit for reading a
    /// client upload whole to measure it (ms). Env `SESSION_AUDIO_UPLOAD_TIMEOUT_MS`. Default 900000
    /// (15 min: 100 MiB at 1 Mbit/s).
    pub upload_timeout_ms: Option<f64>,
    /// Store an upload whose duration cannot be measured from its bytes (a codec or layout no meter
    /// reads) with its declared duration, instead of `400 duration_unmeasurable`.
    /// Env `SESSION_AUDIO_ACCEPT_DECLARED_DURATION=1`. Default off.
    pub accept_declared_duration: Option<bool>,
    /// Convex mutation moving a session `recording` → `transcribing`. Env `SESSION_AUDIO_ATTACH_MUTATION`.
    /// Default `listeningSessions:attachAudio`.
    pub attach_mutation: Option<String>,
    /// Convex query returning `{ canRecord, maxRecordingMs?, maxUploadBytes? }`.
    /// Env `SESSION_AUDIO_ENTITLEMENTS_QUERY`. Default `entitlements:getForCurrentUser`.
    pub entitlements_query: Option<String>,
    /// Largest accepted upload in bytes. Env `SESSION_AUDIO_MAX_UPLOAD_BYTES`. Default 104857600 (100 MiB).
    pub max_upload_bytes: Option<f64>,
    /// Longest accepted `x-duration-ms`. Env `SESSION_AUDIO_MAX_DURATION_MS`. Default 14400000 (4 h).
    pub max_duration_ms: Option<f64>,
    /// Accepted audio types. Env `SESSION_AUDIO_ALLOWED_TYPES` (comma list). Default `audio/webm, audio/ogg,
    /// audio/mpeg, audio/mp4, audio/aac, audio/wav, audio/flac` (common aliases accepted).
    pub allowed_types: Option<Vec<String>>,
    /// `x-vercel-blob-access` of stored uploads. Env `SESSION_AUDIO_BLOB_ACCESS`. Default `private`.
    #[napi(ts_type = "'private' | 'public'")]
    pub blob_access: Option<String>,
    /// Level of the JSON log line written to stderr per finished request. Process-wide: the first
    /// handler created decides. Env `SESSION_AUDIO_LOG`. Default `info`; `off` disables.
    #[napi(ts_type = "'off' | 'error' | 'warn' | 'info' | 'debug'")]
    pub log_level: Option<String>,
    /// Send `Server-Timing` with the phase durations. Env `SESSION_AUDIO_SERVER_TIMING=0` disables. Default on.
    pub server_timing: Option<bool>,
    /// Sentry environment. Env `SENTRY_ENVIRONMENT`, else `VERCEL_ENV`.
    pub sentry_environment: Option<String>,
    /// Direct-to-Blob uploads for recordings of any length (the JSON events `upload()` from
    /// `@vercel/blob/client` and `session-audio/client` send). Env `SESSION_AUDIO_CLIENT_UPLOADS=0`
    /// turns them off (`403 client_uploads_disabled`). Default on.
    pub client_uploads: Option<bool>,
    /// How long a minted client token is valid (ms, 1 s to 24 h). Env `SESSION_AUDIO_CLIENT_TOKEN_TTL_MS`.
    /// Default 3600000 (1 h, as `handleUpload`).
    pub client_token_ttl_ms: Option<f64>,
    /// Origin Vercel Blob's completion webhook is sent to (the route's path is appended). Env
    /// `VERCEL_BLOB_CALLBACK_URL`; else, on Vercel, derived from `VERCEL_ENV`, `VERCEL_BRANCH_URL`,
    /// `VERCEL_URL` and `VERCEL_PROJECT_PRODUCTION_URL` as `handleUpload` derives it; else no webhook.
    pub blob_callback_url: Option<String>,
    /// `sweepOrphanAudio` only: the secret the Convex query `attachedAudio` checks (set the same value
    /// in the Convex deployment's environment). Env `SESSION_AUDIO_SWEEP_SECRET`.
    pub sweep_secret: Option<String>,
    /// `sweepOrphanAudio` only: the Convex query that says which blobs are attached.
    /// Env `SESSION_AUDIO_ATTACHED_QUERY`. Default `listeningSessions:attachedAudio`.
    pub attached_query: Option<String>,
    /// Uploads: the secret the route signs the attach mutation's arguments with (HMAC-SHA256), so the
    /// template's public `attachAudio` accepts only what this route checked. Set the same value in the
    /// Convex deployment's environment; at least 32 characters. Unset: uploads answer
    /// `503 config_missing` (GET works without it). Env `SESSION_AUDIO_CONVEX_SECRET`.
    pub convex_secret: Option<String>,
}

/// An option's value as the environment would spell it.
trait ToSetting {
    fn to_setting(&self) -> String;
}

impl ToSetting for String {
    fn to_setting(&self) -> String {
        self.clone()
    }
}

impl ToSetting for bool {
    fn to_setting(&self) -> String {
        if *self { "1" } else { "0" }.into()
    }
}

impl ToSetting for f64 {
    /// Whole numbers as integers; anything else as written, which the core refuses with a 503
    /// naming the setting (a fraction of a millisecond is not a setting).
    fn to_setting(&self) -> String {
        if self.fract() == 0.0 && self.abs() < 9.0e15 {
            format!("{}", *self as i64)
        } else {
            self.to_string()
        }
    }
}

impl ToSetting for Vec<String> {
    fn to_setting(&self) -> String {
        self.join(",")
    }
}

/// `(option field, environment variable, value if set)` for every option. The destructuring is
/// exhaustive: a field added to `AudioOptions` without a variable here does not compile.
macro_rules! settings {
    ($options:expr; $($field:ident => $env:literal),* $(,)?) => {{
        let AudioOptions { $($field),* } = $options;
        [$((stringify!($field), $env, $field.as_ref().map(ToSetting::to_setting))),*]
    }};
}

impl AudioOptions {
    fn table(&self) -> [(&'static str, &'static str, Option<String>); 39] {
        settings!(self;
            convex_url => "NEXT_PUBLIC_CONVEX_URL",
            clerk_secret_key => "CLERK_SECRET_KEY",
            clerk_jwt_key => "CLERK_JWT_KEY",
            clerk_api_url => "CLERK_API_URL",
            authorized_parties => "CLERK_AUTHORIZED_PARTIES",
            accept_pending_sessions => "SESSION_AUDIO_ACCEPT_PENDING_SESSIONS",
            blob_store_id => "BLOB_STORE_ID",
            trust_oidc_header => "SESSION_AUDIO_TRUST_OIDC_HEADER",
            blob_read_write_token => "BLOB_READ_WRITE_TOKEN",
            blob_webhook_public_key => "BLOB_WEBHOOK_PUBLIC_KEY",
            blob_api_url => "VERCEL_BLOB_API_URL",
            sentry_dsn => "SENTRY_DSN",
            trusted_hosts => "SESSION_AUDIO_TRUSTED_HOSTS",
            require_session_path => "SESSION_AUDIO_REQUIRE_SESSION_PATH",
            convex_template => "SESSION_AUDIO_CONVEX_TEMPLATE",
            get_session_query => "SESSION_AUDIO_GET_QUERY",
            allow_loopback_upstream => "SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM",
            cache_max_age => "SESSION_AUDIO_CACHE_MAX_AGE",
            lookup_ttl_ms => "SESSION_AUDIO_LOOKUP_TTL_MS",
            upstream_timeout_ms => "SESSION_AUDIO_UPSTREAM_TIMEOUT_MS",
            service_timeout_ms => "SESSION_AUDIO_SERVICE_TIMEOUT_MS",
            upload_idle_timeout_ms => "SESSION_AUDIO_UPLOAD_IDLE_TIMEOUT_MS",
            upload_timeout_ms => "SESSION_AUDIO_UPLOAD_TIMEOUT_MS",
            accept_declared_duration => "SESSION_AUDIO_ACCEPT_DECLARED_DURATION",
            attach_mutation => "SESSION_AUDIO_ATTACH_MUTATION",
            entitlements_query => "SESSION_AUDIO_ENTITLEMENTS_QUERY",
            max_upload_bytes => "SESSION_AUDIO_MAX_UPLOAD_BYTES",
            max_duration_ms => "SESSION_AUDIO_MAX_DURATION_MS",
            allowed_types => "SESSION_AUDIO_ALLOWED_TYPES",
            blob_access => "SESSION_AUDIO_BLOB_ACCESS",
            log_level => "SESSION_AUDIO_LOG",
            server_timing => "SESSION_AUDIO_SERVER_TIMING",
            sentry_environment => "SENTRY_ENVIRONMENT",
            client_uploads => "SESSION_AUDIO_CLIENT_UPLOADS",
            client_token_ttl_ms => "SESSION_AUDIO_CLIENT_TOKEN_TTL_MS",
            blob_callback_url => "VERCEL_BLOB_CALLBACK_URL",
            sweep_secret => "SESSION_AUDIO_SWEEP_SECRET",
            attached_query => "SESSION_AUDIO_ATTACHED_QUERY",
            convex_secret => "SESSION_AUDIO_CONVEX_SECRET",
        )
    }

    /// The value of the option that overrides environment variable `env`, if set.
    pub fn setting(&self, env: &str) -> Option<String> {
        self.table().into_iter().find(|(_, key, _)| *key == env).and_then(|(_, _, value)| value)
    }
}

/// The one place options and the environment meet: each key answers the option that overrides it,
/// else the environment's value; `BLOB_TOKEN_OPTION` answers the `blobReadWriteToken` option alone
/// (an explicit token beats OIDC, one in the environment does not).
pub fn lookup<'a>(
    options: &'a AudioOptions,
    env: &'a std::collections::HashMap<String, String>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |key: &str| {
        if key == session_audio_core::BLOB_TOKEN_OPTION {
            return options.blob_read_write_token.clone();
        }
        options.setting(key).or_else(|| env.get(key).cloned())
    }
}

/// Read from the environment only: no option sets them.
const ENV_ONLY: &[&str] = &["VERCEL", "VERCEL_ENV", "VERCEL_URL", "VERCEL_BRANCH_URL", "VERCEL_PROJECT_PRODUCTION_URL"];

/// The environment variables the handlers read; the JS face snapshots exactly these from
/// `process.env`, once per handler, when it is built.
#[napi]
pub fn env_keys() -> Vec<String> {
    let options = AudioOptions::default().table().map(|(_, env, _)| env);
    options.into_iter().chain(ENV_ONLY.iter().copied()).map(str::to_string).collect()
}

/// The option names `AudioOptions` has, as JS spells them (`convexUrl`), to refuse unknown ones
/// where the developer sees it: napi ignores properties it does not know.
#[napi]
pub fn option_names() -> Vec<String> {
    AudioOptions::default().table().map(|(field, _, _)| camel(field)).to_vec()
}

/// `lookup_ttl_ms` → `lookupTtlMs`, as napi-derive names object fields.
fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}
