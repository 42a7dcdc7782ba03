//! The one error type. Every refusal the handlers can give is a variant here, and this is the only
//! place that knows HTTP statuses and machine codes. `render` turns any variant into the JSON body
//! `{ "error": { "code", "message" } }` with `Cache-Control: no-store`.

use crate::http::response::{Body, Response};

/// Why a session token was refused. The code goes to the client (it is what a developer debugging a
/// 401 needs); it mirrors `@clerk/backend`'s `TokenVerificationErrorReason` with underscores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header and no `__session` cookie.
    Missing,
    /// Not three base64url parts, undecodable JSON, bad `typ`, or missing required claims.
    Invalid,
    /// `alg` is not RS256/RS384/RS512 (this includes `none` and every HMAC variant).
    InvalidAlgorithm,
    InvalidSignature,
    Expired,
    NotActiveYet,
    IatInTheFuture,
    /// `azp` missing or not in `CLERK_AUTHORIZED_PARTIES`.
    InvalidAuthorizedParty,
    /// A JWT-template or machine token presented where a session token is required.
    TypeMismatch,
    /// The `kid` is in neither the cached nor a freshly fetched JWKS.
    KidMismatch,
    /// The session has no `sid` claim, or Clerk no longer considers the session active.
    SessionInactive,
    /// `sts: "pending"` (tasks left, e.g. choosing an organization) and pending sessions are not
    /// accepted: signed out, as `@clerk/backend` treats it by default.
    SessionPending,
}

impl AuthFailure {
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::Missing => "token_missing",
            AuthFailure::Invalid => "token_invalid",
            AuthFailure::InvalidAlgorithm => "token_invalid_algorithm",
            AuthFailure::InvalidSignature => "token_invalid_signature",
            AuthFailure::Expired => "token_expired",
            AuthFailure::NotActiveYet => "token_not_active_yet",
            AuthFailure::IatInTheFuture => "token_iat_in_the_future",
            AuthFailure::InvalidAuthorizedParty => "token_invalid_authorized_parties",
            AuthFailure::TypeMismatch => "token_type_mismatch",
            AuthFailure::KidMismatch => "jwk_kid_mismatch",
            AuthFailure::SessionInactive => "session_inactive",
            AuthFailure::SessionPending => "session_pending",
        }
    }

    fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => {
                "No session token: send `Authorization: Bearer <Clerk session token>` or the `__session` cookie."
            }
            AuthFailure::Invalid => "The session token is malformed.",
            AuthFailure::InvalidAlgorithm => "The session token is not signed with RS256, RS384 or RS512.",
            AuthFailure::InvalidSignature => {
                "The session token's signature does not verify against the instance's keys."
            }
            AuthFailure::Expired => "The session token has expired; the client should refresh it.",
            AuthFailure::NotActiveYet => "The session token is not valid yet (nbf in the future).",
            AuthFailure::IatInTheFuture => "The session token was issued in the future (iat); check clocks.",
            AuthFailure::InvalidAuthorizedParty => "The session token's azp is not one of CLERK_AUTHORIZED_PARTIES.",
            AuthFailure::TypeMismatch => "A JWT-template or machine token was sent where a session token is required.",
            AuthFailure::KidMismatch => {
                "The session token's key id is not in the instance's JWKS (wrong Clerk instance?)."
            }
            AuthFailure::SessionInactive => "The Clerk session is not active.",
            AuthFailure::SessionPending => {
                "The Clerk session is pending (the user has tasks left, such as choosing an organization): it counts as signed out. Finish the tasks, or accept pending sessions with acceptPendingSessions."
            }
        }
    }
}

/// The machine codes of `400 bad_request` refusals, each naming what the client sent wrong. Part
/// of the public API (the README's status table lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidSessionId,
    MissingDuration,
    InvalidDuration,
    MissingContentType,
    InvalidContentType,
    InvalidContentLength,
    EmptyBody,
    DurationMismatch,
    DurationUnmeasurable,
    InconsistentAudio,
    UploadExpired,
    InvalidThreshold,
    InvalidEvent,
    InvalidClientPayload,
    InvalidPathname,
    InvalidBlobUrl,
    /// `blob.generate-client-token` on a deployment with OIDC and no read-write token.
    ClientTokensNeedReadWriteToken,
    /// The request's own `x-vercel-oidc-token` header (read where the platform sets it) is blank,
    /// not a JWT, or expired.
    InvalidOidcToken,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidSessionId => "invalid_session_id",
            Code::MissingDuration => "missing_duration",
            Code::InvalidDuration => "invalid_duration",
            Code::MissingContentType => "missing_content_type",
            Code::InvalidContentType => "invalid_content_type",
            Code::InvalidContentLength => "invalid_content_length",
            Code::EmptyBody => "empty_body",
            Code::DurationMismatch => "duration_mismatch",
            Code::DurationUnmeasurable => "duration_unmeasurable",
            Code::InconsistentAudio => "inconsistent_audio",
            Code::UploadExpired => "upload_expired",
            Code::InvalidThreshold => "invalid_threshold",
            Code::InvalidEvent => "invalid_event",
            Code::InvalidClientPayload => "invalid_client_payload",
            Code::InvalidPathname => "invalid_pathname",
            Code::InvalidBlobUrl => "invalid_blob_url",
            Code::ClientTokensNeedReadWriteToken => "client_tokens_need_read_write_token",
            Code::InvalidOidcToken => "invalid_oidc_token",
        }
    }
}

/// An error and its sources, `outer: inner: innermost` (reqwest's own message rarely says why).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("configuration missing: {0}")]
    ConfigMissing(String),
    #[error("configuration invalid: {0}")]
    ConfigInvalid(String),
    #[error("missing route parameter sessionId")]
    MissingSessionId,
    #[error("unauthenticated: {}", .0.code())]
    Unauthenticated(AuthFailure),
    #[error("Clerk Backend API unavailable: {0}")]
    ClerkUnavailable(String),
    #[error("Clerk Backend API rate limited")]
    ClerkRateLimited { retry_after_secs: u64 },
    #[error("Convex unavailable: {0}")]
    ConvexUnavailable(String),
    #[error("Convex rejected the Convex token: {0}")]
    ConvexAuthRejected(String),
    #[error("Convex function failed: {0}")]
    ConvexFunction(String),
    /// A Convex function answered, but not in the shape the route reads (`what`: which answer).
    #[error("Convex answered {what} in the wrong shape: {why}")]
    ConvexShape { what: &'static str, why: String },
    #[error("session not found")]
    SessionNotFound,
    #[error("session has no audio")]
    AudioNotFound,
    #[error("untrusted audio host: {0}")]
    UntrustedAudioHost(String),
    #[error("audio upstream failed: {0}")]
    UpstreamFailed(String),
    #[error("audio upstream timed out: {0}")]
    UpstreamTimeout(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A malformed or missing upload header; `code` names it (`missing_duration`, ...).
    #[error("bad request: {}: {message}", code.as_str())]
    BadRequest { code: Code, message: String },
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("body does not match the declared container: {0}")]
    ContentMismatch(String),
    #[error("request body incomplete: {0}")]
    IncompleteBody(String),
    /// The upload body sent nothing for the idle timeout.
    #[error("upload body idle for {0:?}")]
    UploadTimeout(std::time::Duration),
    /// The whole upload took longer than `uploadTimeoutMs`, however steadily it arrived.
    #[error("upload took longer than {0:?}")]
    UploadTooSlow(std::time::Duration),
    #[error("session is {0}, not recording")]
    InvalidSessionState(String),
    #[error("entitlement denied")]
    EntitlementDenied,
    #[error("duration beyond the user's limit: {0}")]
    DurationLimitExceeded(String),
    #[error("blob storage failed: {0}")]
    StorageFailed(String),
    #[error("client uploads are turned off")]
    ClientUploadsDisabled,
    #[error("webhook signature missing or wrong")]
    InvalidSignature,
    #[error("uploaded blob not found: {0}")]
    UploadNotFound(String),
    /// The Vercel OIDC token that reached the request is past its `exp`, and no read-write token
    /// can stand in.
    #[error("the Vercel OIDC token has expired")]
    OidcTokenExpired,
    /// Vercel Blob refused the credentials (403, `forbidden`, `store_not_found`): a store id the
    /// OIDC token's project is not connected to, or a revoked token.
    #[error("Vercel Blob refused the credentials: {0}")]
    BlobAccessDenied(String),
    /// The Convex deployment refused the route's attach signature: `SESSION_AUDIO_CONVEX_SECRET`
    /// differs between the two sides (a rotation half done) or a clock is off. The upload is kept.
    #[error("the Convex deployment refused the attach signature (secret mismatch)")]
    AttachSecretMismatch,
    /// The Convex deployment refused audio the route had checked (`invalid_audio_url`: its
    /// `SESSION_AUDIO_BLOB_STORE_ID` / `SESSION_AUDIO_BLOB_HOSTS` name another store;
    /// `invalid_audio`: its bounds are narrower than the route's). The two sides disagree; the
    /// upload is kept.
    #[error("the Convex deployment refused the checked audio ({0}): configuration mismatch")]
    AttachConfigMismatch(&'static str),
    /// A stored upload kept after a failure that is not about it (an outage, a refusal of the
    /// route's credentials, an unclear outcome): `503` with the cause's code, safe to retry.
    #[error("{0} (upload kept)")]
    Kept(Box<Error>),
    /// As many completion rewrites as this instance may hold in memory are under way
    /// (`upload::flows::complete::REWRITES_IN_FLIGHT`): `503` with `Retry-After`, nothing deleted.
    #[error("completion rewrites busy")]
    RewritesBusy,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::ConfigMissing(_)
            | Error::ConfigInvalid(_)
            | Error::ClerkRateLimited { .. }
            | Error::OidcTokenExpired
            | Error::AttachSecretMismatch
            | Error::AttachConfigMismatch(_)
            | Error::RewritesBusy
            | Error::Kept(_) => 503,
            Error::MissingSessionId | Error::BadRequest { .. } | Error::IncompleteBody(_) => 400,
            Error::EntitlementDenied | Error::DurationLimitExceeded(_) | Error::ClientUploadsDisabled => 403,
            Error::InvalidSessionState(_) => 409,
            Error::PayloadTooLarge(_) => 413,
            Error::UploadTimeout(_) | Error::UploadTooSlow(_) => 408,
            Error::UnsupportedMediaType(_) | Error::ContentMismatch(_) => 415,
            Error::Unauthenticated(_) | Error::InvalidSignature => 401,
            Error::SessionNotFound | Error::AudioNotFound | Error::UploadNotFound(_) => 404,
            Error::MethodNotAllowed => 405,
            Error::ClerkUnavailable(_)
            | Error::ConvexUnavailable(_)
            | Error::ConvexAuthRejected(_)
            | Error::ConvexFunction(_)
            | Error::ConvexShape { .. }
            | Error::UntrustedAudioHost(_)
            | Error::UpstreamFailed(_)
            | Error::StorageFailed(_)
            | Error::BlobAccessDenied(_) => 502,
            Error::UpstreamTimeout(_) => 504,
            Error::Internal(_) => 500,
        }
    }

    /// Stable machine code, part of the public API (documented in the README).
    pub fn code(&self) -> &'static str {
        match self {
            Error::ConfigMissing(_) => "config_missing",
            Error::ConfigInvalid(_) => "config_invalid",
            Error::MissingSessionId => "missing_session_id",
            Error::Unauthenticated(reason) => reason.code(),
            Error::ClerkUnavailable(_) => "auth_provider_unavailable",
            Error::ClerkRateLimited { .. } => "auth_rate_limited",
            Error::ConvexUnavailable(_) => "convex_unavailable",
            Error::ConvexAuthRejected(_) => "convex_auth_rejected",
            Error::ConvexFunction(_) | Error::ConvexShape { .. } => "convex_error",
            Error::SessionNotFound => "session_not_found",
            Error::AudioNotFound => "audio_not_found",
            Error::UntrustedAudioHost(_) => "untrusted_audio_host",
            Error::UpstreamFailed(_) => "upstream_failed",
            Error::UpstreamTimeout(_) => "upstream_timeout",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::BadRequest { code, .. } => code.as_str(),
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::ContentMismatch(_) => "content_mismatch",
            Error::IncompleteBody(_) => "incomplete_body",
            Error::UploadTimeout(_) | Error::UploadTooSlow(_) => "upload_timeout",
            Error::InvalidSessionState(_) => "invalid_session_state",
            Error::EntitlementDenied => "entitlement_denied",
            Error::DurationLimitExceeded(_) => "duration_limit_exceeded",
            Error::StorageFailed(_) => "storage_failed",
            Error::ClientUploadsDisabled => "client_uploads_disabled",
            Error::InvalidSignature => "invalid_signature",
            Error::UploadNotFound(_) => "upload_not_found",
            Error::OidcTokenExpired => "oidc_token_expired",
            Error::BlobAccessDenied(_) => "blob_access_denied",
            Error::AttachSecretMismatch => "attach_secret_mismatch",
            Error::AttachConfigMismatch(_) => "attach_config_mismatch",
            Error::Kept(cause) => cause.code(),
            Error::RewritesBusy => "rewrites_busy",
            Error::Internal(_) => "internal_error",
        }
    }

    /// What the client is told. Details that could help an attacker (which host was refused, what
    /// an upstream said) stay in the logs; configuration problems are spelled out because only the
    /// deployment's owner can fix them and they need to know what to fix.
    pub fn public_message(&self) -> String {
        match self {
            Error::ConfigMissing(what) | Error::ConfigInvalid(what) => {
                format!("session-audio is misconfigured: {what}")
            }
            Error::MissingSessionId => "The route has no [sessionId] (or [id]) parameter.".into(),
            Error::Unauthenticated(reason) => reason.message().into(),
            Error::ClerkUnavailable(_) => "Clerk could not be reached to authorise this request.".into(),
            Error::ClerkRateLimited { .. } => "Clerk's Backend API rate limit was hit; retry later.".into(),
            Error::ConvexUnavailable(_) => "Convex could not be reached.".into(),
            Error::ConvexAuthRejected(_) => "Convex rejected the Clerk token: check the JWT template name (SESSION_AUDIO_CONVEX_TEMPLATE) and convex/auth.config.ts.".into(),
            Error::ConvexFunction(_) => "A Convex function failed.".into(),
            Error::ConvexShape { what, .. } => format!("Convex answered {what} in a shape this route cannot read: check that function against the README's template."),
            Error::SessionNotFound => "No such listening session.".into(),
            Error::AudioNotFound => "This listening session has no audio yet.".into(),
            Error::UntrustedAudioHost(_) => "The stored audio URL is not on a trusted host.".into(),
            Error::UpstreamFailed(_) => "The audio storage failed to answer.".into(),
            Error::UpstreamTimeout(_) => "The audio storage did not answer in time.".into(),
            Error::MethodNotAllowed => "Method not allowed.".into(),
            // These say exactly what the client sent wrong; nothing in them is secret.
            Error::BadRequest { message, .. } => message.clone(),
            Error::PayloadTooLarge(limit) => format!("The audio is larger than allowed ({limit})."),
            Error::UnsupportedMediaType(t) => format!("Audio type {t} is not accepted."),
            Error::ContentMismatch(t) => format!("The body does not start like {t}: the bytes and x-content-type disagree."),
            Error::IncompleteBody(why) => format!("The upload ended before its Content-Length ({why}); nothing was stored."),
            Error::UploadTimeout(idle) => format!("The upload sent nothing for {} s and was abandoned; nothing was stored.", idle.as_secs_f64()),
            Error::UploadTooSlow(total) => format!("The upload took longer than {} s (uploadTimeoutMs) and was abandoned; nothing was stored. Send long recordings with the client flow (session-audio/client).", total.as_secs_f64()),
            Error::InvalidSessionState(status) => format!("The session is {status}; audio can only be uploaded while it is recording."),
            Error::EntitlementDenied => "This account may not record listening sessions.".into(),
            Error::DurationLimitExceeded(limit) => format!("The recording is longer than this account allows ({limit})."),
            Error::StorageFailed(_) => "The audio could not be stored.".into(),
            Error::ClientUploadsDisabled => "Direct-to-Blob uploads are turned off for this route (clientUploads: false): POST the audio as the request body instead.".into(),
            Error::InvalidSignature => "The x-vercel-signature header is missing or does not sign this body.".into(),
            Error::UploadNotFound(_) => "The uploaded blob is not in storage: upload it first, then complete.".into(),
            Error::OidcTokenExpired => "session-audio is misconfigured: the Vercel OIDC token that reached this request has expired. On Vercel, enable OIDC for this environment; locally, run vercel env pull again (VERCEL_OIDC_TOKEN lasts 12 hours); or set BLOB_READ_WRITE_TOKEN.".into(),
            Error::BlobAccessDenied(_) => "Vercel Blob refused this deployment's credentials: check that BLOB_STORE_ID names the Blob store connected to this project and that OIDC is enabled for this environment (or that BLOB_READ_WRITE_TOKEN is that store's current token).".into(),
            Error::AttachSecretMismatch => "The Convex deployment refused this route's attach signature: SESSION_AUDIO_CONVEX_SECRET must be the same value where the route runs and in the Convex deployment (and both clocks right).".into(),
            Error::AttachConfigMismatch(_) => "The Convex deployment refused audio this route accepted: its SESSION_AUDIO_BLOB_STORE_ID / SESSION_AUDIO_BLOB_HOSTS must name this route's Blob store, and its audio bounds must cover the route's limits.".into(),
            Error::Kept(cause) => format!("{} The upload is kept: try again later.", cause.public_message()),
            Error::RewritesBusy => "The route is finishing as many recordings as it holds at once; retry shortly.".into(),
            Error::Internal(_) => "Internal error.".into(),
        }
    }

    /// Whether trying again cannot help because the refusal is about the recording itself (its
    /// bytes, type, size, measured duration, the caller's entitlements or limits, a blob that is
    /// not this session's) or because the session has moved on. Sent as `final` in every refusal:
    /// the browser keeps everything else (outages, credentials, an expired or missing upload,
    /// which it sends again) for a later try. Nothing here decides a delete: `attach::fate` does.
    pub fn is_final(&self) -> bool {
        match self {
            Error::BadRequest { code, .. } => matches!(
                code,
                Code::MissingDuration
                    | Code::InvalidDuration
                    | Code::MissingContentType
                    | Code::InvalidContentType
                    | Code::InvalidContentLength
                    | Code::EmptyBody
                    | Code::DurationMismatch
                    | Code::DurationUnmeasurable
                    | Code::InconsistentAudio
                    | Code::InvalidClientPayload
                    | Code::InvalidPathname
                    | Code::InvalidBlobUrl
            ),
            Error::PayloadTooLarge(_)
            | Error::UnsupportedMediaType(_)
            | Error::ContentMismatch(_)
            | Error::EntitlementDenied
            | Error::DurationLimitExceeded(_)
            | Error::InvalidSessionState(_) => true,
            _ => false,
        }
    }

    /// 5xx are ours or an upstream's to fix and get reported; 4xx are the caller's.
    pub fn is_reportable(&self) -> bool {
        match self {
            // Logged once per episode where it is found (`State::attach_refused`), not per request.
            Error::AttachSecretMismatch | Error::AttachConfigMismatch(_) => false,
            // Load, not a defect: the retry is the remedy.
            Error::RewritesBusy => false,
            Error::Kept(cause) => cause.is_reportable(),
            _ => self.status() >= 500,
        }
    }

    /// Render as the JSON refusal every client sees.
    pub fn render(&self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.public_message(), "final": self.is_final() }
        });
        let mut headers = vec![
            ("content-type".to_string(), "application/json; charset=utf-8".to_string()),
            ("cache-control".to_string(), "no-store".to_string()),
        ];
        match self {
            Error::ClerkRateLimited { retry_after_secs } => {
                headers.push(("retry-after".into(), retry_after_secs.to_string()))
            }
            Error::Unauthenticated(_) => headers.push((
                "www-authenticate".into(),
                format!("Bearer error=\"invalid_token\", error_description=\"{}\"", self.code()),
            )),
            Error::MethodNotAllowed => headers.push(("allow".into(), "GET, HEAD, POST".into())),
            // A kept upload can be completed again once the dependency is back: never sooner
            // than the dependency itself asked (Clerk's rate limit).
            Error::Kept(cause) => {
                let secs = match cause.as_ref() {
                    Error::ClerkRateLimited { retry_after_secs } => (*retry_after_secs).max(KEPT_RETRY_AFTER_SECS),
                    _ => KEPT_RETRY_AFTER_SECS,
                };
                headers.push(("retry-after".into(), secs.to_string()))
            }
            Error::AttachSecretMismatch | Error::AttachConfigMismatch(_) | Error::RewritesBusy => {
                headers.push(("retry-after".into(), KEPT_RETRY_AFTER_SECS.to_string()))
            }
            // The client may still be sending: tell it to stop rather than keep the socket for reuse.
            Error::PayloadTooLarge(_)
            | Error::IncompleteBody(_)
            | Error::UploadTimeout(_)
            | Error::UploadTooSlow(_) => headers.push(("connection".into(), "close".into())),
            _ => {}
        }
        Response { status: self.status(), headers, body: Body::Bytes(body.to_string().into_bytes().into()) }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long a client waits before it tries a kept upload again (the breakers' window).
const KEPT_RETRY_AFTER_SECS: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_status_and_code() {
        let table: Vec<(Error, u16, &str)> = vec![
            (Error::ConfigMissing("x".into()), 503, "config_missing"),
            (Error::ConfigInvalid("x".into()), 503, "config_invalid"),
            (Error::MissingSessionId, 400, "missing_session_id"),
            (Error::UploadTooSlow(std::time::Duration::from_secs(1)), 408, "upload_timeout"),
            (Error::Unauthenticated(AuthFailure::Expired), 401, "token_expired"),
            (Error::Unauthenticated(AuthFailure::InvalidSignature), 401, "token_invalid_signature"),
            (Error::Unauthenticated(AuthFailure::SessionInactive), 401, "session_inactive"),
            (Error::Unauthenticated(AuthFailure::SessionPending), 401, "session_pending"),
            (Error::ClerkUnavailable("x".into()), 502, "auth_provider_unavailable"),
            (Error::ClerkRateLimited { retry_after_secs: 3 }, 503, "auth_rate_limited"),
            (Error::ConvexUnavailable("x".into()), 502, "convex_unavailable"),
            (Error::ConvexAuthRejected("x".into()), 502, "convex_auth_rejected"),
            (Error::ConvexFunction("x".into()), 502, "convex_error"),
            (Error::ConvexShape { what: "the entitlements", why: "x".into() }, 502, "convex_error"),
            (Error::SessionNotFound, 404, "session_not_found"),
            (Error::AudioNotFound, 404, "audio_not_found"),
            (Error::UntrustedAudioHost("x".into()), 502, "untrusted_audio_host"),
            (Error::UpstreamFailed("x".into()), 502, "upstream_failed"),
            (Error::UpstreamTimeout("x".into()), 504, "upstream_timeout"),
            (Error::MethodNotAllowed, 405, "method_not_allowed"),
            (Error::Internal("x".into()), 500, "internal_error"),
            (Error::BadRequest { code: Code::MissingDuration, message: "x".into() }, 400, "missing_duration"),
            (Error::PayloadTooLarge("x".into()), 413, "payload_too_large"),
            (Error::UnsupportedMediaType("x".into()), 415, "unsupported_media_type"),
            (Error::ContentMismatch("x".into()), 415, "content_mismatch"),
            (Error::IncompleteBody("x".into()), 400, "incomplete_body"),
            (Error::UploadTimeout(std::time::Duration::from_secs(30)), 408, "upload_timeout"),
            (Error::InvalidSessionState("ready".into()), 409, "invalid_session_state"),
            (Error::EntitlementDenied, 403, "entitlement_denied"),
            (Error::DurationLimitExceeded("x".into()), 403, "duration_limit_exceeded"),
            (Error::StorageFailed("x".into()), 502, "storage_failed"),
            (Error::ClientUploadsDisabled, 403, "client_uploads_disabled"),
            (Error::InvalidSignature, 401, "invalid_signature"),
            (Error::UploadNotFound("x".into()), 404, "upload_not_found"),
            (Error::OidcTokenExpired, 503, "oidc_token_expired"),
            (Error::BlobAccessDenied("x".into()), 502, "blob_access_denied"),
            (
                Error::BadRequest { code: Code::ClientTokensNeedReadWriteToken, message: "x".into() },
                400,
                "client_tokens_need_read_write_token",
            ),
            (Error::BadRequest { code: Code::InvalidOidcToken, message: "x".into() }, 400, "invalid_oidc_token"),
        ];
        for (err, status, code) in table {
            assert_eq!(err.status(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.is_reportable(), status >= 500, "{err:?}");
        }
        // A kept upload answers 503 with its cause's code, reported as the cause is; a secret
        // mismatch is logged once where it is found, never reported per request.
        let kept = Error::Kept(Box::new(Error::ConvexUnavailable("x".into())));
        assert_eq!((kept.status(), kept.code(), kept.is_reportable()), (503, "convex_unavailable", true));
        // Too many rewrites at once: load, not a defect (never reported), and a retry after 5 s,
        // kept or not.
        let busy = Error::RewritesBusy;
        assert_eq!(
            (busy.status(), busy.code(), busy.is_reportable(), busy.is_final()),
            (503, "rewrites_busy", false, false)
        );
        for busy in [Error::RewritesBusy, Error::Kept(Box::new(Error::RewritesBusy))] {
            let r = busy.render();
            let after = r.headers.iter().find(|(k, _)| k == "retry-after").map(|(_, v)| v.as_str());
            assert_eq!((busy.status(), busy.code(), after), (503, "rewrites_busy", Some("5")), "{busy:?}");
        }
        let kept = Error::Kept(Box::new(Error::AttachSecretMismatch));
        assert_eq!((kept.status(), kept.code(), kept.is_reportable()), (503, "attach_secret_mismatch", false));
        let kept = Error::Kept(Box::new(Error::AttachConfigMismatch("invalid_audio_url")));
        assert_eq!((kept.status(), kept.code(), kept.is_reportable()), (503, "attach_config_mismatch", false));
        // Retry-After: never sooner than the dependency asked.
        let after = |e: Error| {
            e.render().headers.into_iter().find(|(k, _)| k == "retry-after").map(|(_, v)| v).unwrap_or_default()
        };
        assert_eq!(after(Error::Kept(Box::new(Error::ConvexUnavailable("x".into())))), "5");
        assert_eq!(after(Error::Kept(Box::new(Error::ClerkRateLimited { retry_after_secs: 60 }))), "60");
        assert_eq!(after(Error::Kept(Box::new(Error::ClerkRateLimited { retry_after_secs: 1 }))), "5");
    }

    #[test]
    fn final_only_when_about_the_recording_or_the_session_moved_on() {
        let bad = |code| Error::BadRequest { code, message: "x".into() };
        let table: Vec<(Error, bool)> = vec![
            (bad(Code::DurationMismatch), true),
            (bad(Code::DurationUnmeasurable), true),
            (bad(Code::InconsistentAudio), true),
            (bad(Code::MissingDuration), true),
            (bad(Code::InvalidBlobUrl), true),
            (Error::PayloadTooLarge("x".into()), true),
            (Error::UnsupportedMediaType("x".into()), true),
            (Error::ContentMismatch("x".into()), true),
            (Error::EntitlementDenied, true),
            (Error::DurationLimitExceeded("x".into()), true),
            (Error::InvalidSessionState("ready".into()), true),
            // Send the audio again: the stored one is too old or gone.
            (bad(Code::UploadExpired), false),
            (Error::UploadNotFound("x".into()), false),
            // Not about the recording: keep it and try later.
            (Error::SessionNotFound, false),
            (Error::Unauthenticated(AuthFailure::Expired), false),
            (Error::ConvexUnavailable("x".into()), false),
            (Error::Kept(Box::new(Error::ConvexFunction("x".into()))), false),
            (Error::AttachSecretMismatch, false),
            (Error::StorageFailed("x".into()), false),
            (Error::IncompleteBody("x".into()), false),
            (Error::UploadTimeout(std::time::Duration::from_secs(1)), false),
            (Error::Internal("x".into()), false),
        ];
        for (err, want) in table {
            assert_eq!(err.is_final(), want, "{err:?}");
            let Body::Bytes(b) = err.render().body else { panic!("json body expected") };
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["error"]["final"], want, "{err:?}");
        }
    }

    #[test]
    fn rendered_refusal_is_json_no_store_and_hides_details() {
        let r = Error::UntrustedAudioHost("10.0.0.1 is private".into()).render();
        assert_eq!(r.status, 502);
        assert!(r.headers.iter().any(|(k, v)| k == "cache-control" && v == "no-store"));
        let Body::Bytes(b) = r.body else { panic!("json body expected") };
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["code"], "untrusted_audio_host");
        assert!(!v.to_string().contains("10.0.0.1"));
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let r = Error::ClerkRateLimited { retry_after_secs: 7 }.render();
        assert!(r.headers.iter().any(|(k, v)| k == "retry-after" && v == "7"));
    }
}
