//! A request as the binding hands it over, and the one check every route makes of it first: the
//! session id in its path.

use crate::error::{Code, Error, Result};

/// A request as the binding hands it over: plain strings only.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The URL Next gave the route; its path is where Blob's completion webhook is sent back to.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub session_id: Option<String>,
    /// Env `VERCEL_OIDC_TOKEN` as it was when this request arrived (the JS face reads it per
    /// request: the token is short-lived and changes; nothing keeps it past the request).
    pub oidc_env: Option<String>,
}

/// The OIDC token that reached a request, and whether a request header carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oidc<'a> {
    pub token: Option<&'a str>,
    /// From `x-vercel-oidc-token`: a token that cannot be used is then the request's fault (400),
    /// not the deployment's (503).
    pub from_header: bool,
}

/// This request's Vercel OIDC token, as `@vercel/oidc`'s `getVercelOidcTokenSync` picks it: the
/// `x-vercel-oidc-token` header (Vercel sets it on every request of a deployment with OIDC), else
/// env `VERCEL_OIDC_TOKEN`. A present header wins even when blank (the SDK's `??`), and a blank
/// value is no token (`@vercel/blob` trims it).
///
/// The header is read only where the platform sets it, `trust_header` (`VERCEL=1`, or the
/// `trustOidcHeader` option): anywhere else it is whatever a client sent, and is ignored.
pub fn oidc_token(req: &Request, trust_header: bool) -> Oidc<'_> {
    let header = req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-vercel-oidc-token"));
    let (raw, from_header) = match header {
        Some((_, value)) if trust_header => (Some(value.as_str()), true),
        _ => (req.oidc_env.as_deref(), false),
    };
    Oidc { token: raw.map(str::trim).filter(|t| !t.is_empty()), from_header }
}

/// The route's `[sessionId]`: present, and `[A-Za-z0-9_-]{1,128}` (Convex ids and more). Anything
/// else is refused before any cache, call or log line sees it.
pub fn session_id(req: &Request) -> Result<&str> {
    let id = req.session_id.as_deref().filter(|s| !s.is_empty()).ok_or(Error::MissingSessionId)?;
    if valid_session_id(id) {
        Ok(id)
    } else {
        Err(Error::BadRequest {
            code: Code::InvalidSessionId,
            message: "The session id must be 1 to 128 letters, digits, '-' or '_'.".into(),
        })
    }
}

pub fn valid_session_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Test builds only: a request header that makes the handler panic, to prove the panic path.
#[cfg(feature = "test-hooks")]
pub(crate) fn test_panic_hook(req: &Request) {
    if req.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("x-session-audio-test-panic") && v == "1") {
        panic!("test-only panic hook");
    }
}

#[cfg(not(feature = "test-hooks"))]
pub(crate) fn test_panic_hook(_req: &Request) {}

/// Test builds only: the same header with `finish` makes finishing the request panic (`serve`).
#[cfg(feature = "test-hooks")]
pub(crate) fn test_panic_in_finish(req: &Request) {
    if req.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("x-session-audio-test-panic") && v == "finish") {
        panic!("test-only panic hook (finish)");
    }
}

#[cfg(not(feature = "test-hooks"))]
pub(crate) fn test_panic_in_finish(_req: &Request) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_token_table() {
        let req = |header: Option<&str>, env: Option<&str>| Request {
            headers: header.map(|v| vec![("X-Vercel-OIDC-Token".to_string(), v.to_string())]).unwrap_or_default(),
            oidc_env: env.map(str::to_string),
            ..Default::default()
        };
        // (header, env) → token, where the header is trusted
        let table: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (Some("h.h.h"), Some("e.e.e"), Some("h.h.h")),
            (None, Some("e.e.e"), Some("e.e.e")),
            (None, Some(" e.e.e \n"), Some("e.e.e")),
            (Some(" h.h.h "), None, Some("h.h.h")),
            (Some(""), Some("e.e.e"), None), // a present header does not fall back
            (None, Some("  "), None),
            (None, None, None),
        ];
        for (header, env, want) in table {
            let request = req(*header, *env);
            let got = oidc_token(&request, true);
            assert_eq!(got, Oidc { token: *want, from_header: header.is_some() }, "{header:?} {env:?}");
        }
        // Where the platform does not set it, the header is ignored whatever it holds: env only.
        let untrusted: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            (Some("h.h.h"), Some("e.e.e"), Some("e.e.e")),
            (Some("h.h.h"), None, None),
            (Some(""), Some("e.e.e"), Some("e.e.e")),
            (Some("garbage"), Some(" e.e.e "), Some("e.e.e")),
            (None, Some("e.e.e"), Some("e.e.e")),
        ];
        for (header, env, want) in untrusted {
            let request = req(*header, *env);
            let got = oidc_token(&request, false);
            assert_eq!(got, Oidc { token: *want, from_header: false }, "{header:?} {env:?}");
        }
    }

    #[test]
    fn session_id_table() {
        let long = "a".repeat(129);
        let table: [(Option<&str>, Result<(), &str>); 9] = [
            (Some("000000000010000listeningSessions"), Ok(())),
            (Some("k17a-B_9"), Ok(())),
            (Some(&long[..128]), Ok(())),
            (None, Err("missing_session_id")),
            (Some(""), Err("missing_session_id")),
            (Some(&long), Err("invalid_session_id")),
            (Some("../etc"), Err("invalid_session_id")),
            (Some("a b"), Err("invalid_session_id")),
            (Some("é"), Err("invalid_session_id")),
        ];
        for (id, want) in table {
            let req = Request { session_id: id.map(str::to_string), ..Default::default() };
            assert_eq!(session_id(&req).map(|_| ()).map_err(|e| e.code()), want, "{id:?}");
        }
    }
}
