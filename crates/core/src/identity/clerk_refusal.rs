//! What a failed template-token call (`POST /v1/sessions/{sid}/tokens/{template}`) means, and who
//! it is charged to: that one Clerk session, the deployment's configuration, or Clerk itself.
//!
//! Why it matters: every request of a session whose Clerk session is gone would otherwise make its
//! own call. A client replaying a revoked session's token spent Clerk's instance-wide rate limit
//! (100 calls / 10 s in development) and the resulting 429 opened the shared Clerk breaker, so every
//! other user got `503 auth_rate_limited`. Here:
//! - a definite refusal (the session is gone, ended or revoked) is remembered for that session until
//!   its token expires, and never reaches the breaker: the service answered, so it is up;
//! - a 429 is charged to the one session that got it (remembered for its `Retry-After`) unless
//!   several distinct sessions were throttled within Clerk's window: then it is our volume that hit
//!   the instance-wide limit, and the shared breaker opens;
//! - timeouts and 5xx are Clerk's own trouble and open the breaker, as before.
//!
//! Everything here is pure (the caller passes the clock) and table-tested.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{AuthFailure, Error};

/// Distinct sessions throttled within `THROTTLE_WINDOW` (this one included) from which a 429 is
/// taken to be the instance-wide limit rather than one session's doing.
pub const SESSIONS_FOR_SHARED_LIMIT: usize = 3;
/// Clerk counts its rate limit over 10 s (docs: 100 / 10 s development, 1000 / 10 s production).
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(10);
/// How long a refusal is remembered when the session token's `exp` is not known (the completion
/// webhook acts without one): Clerk's default session-token lifetime.
pub const REFUSAL_MEMORY_WITHOUT_EXP_SECS: u64 = 60;
/// The longest a refusal is remembered, whatever `exp` says (a refused session never comes back, so
/// this bounds memory held, not correctness).
pub const MAX_REFUSAL_MEMORY_SECS: u64 = 3600;
/// The longest a 429 is charged to one session, whatever `Retry-After` says.
pub const MAX_SESSION_THROTTLE_SECS: u64 = 60;
/// Entries the throttle log keeps at most (the rule only ever needs `SESSIONS_FOR_SHARED_LIMIT`).
const THROTTLE_LOG_CAPACITY: usize = 64;

/// A template-token answer other than a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The session is gone, ended or revoked: a 404 that is not about the template, a 401/403 whose
    /// error code is not about our secret key, a 422, or another 4xx that is about the request.
    SessionRefused,
    /// 429 with its `Retry-After` in seconds (10 when it names none).
    Throttled { retry_after_secs: u64 },
    /// 401/403 about `CLERK_SECRET_KEY`: the deployment's to fix, every session gets it.
    SecretKeyRejected,
    /// 404 naming the JWT template: `SESSION_AUDIO_CONVEX_TEMPLATE` names none that exists.
    TemplateMissing,
    /// Timeout, connection failure, 5xx, 408, or a body we cannot read: Clerk's own trouble.
    Unavailable(String),
}

/// Error codes Clerk's Backend API uses when the secret key is missing, malformed or wrong.
fn is_key_code(code: &str) -> bool {
    code.contains("key") || code.starts_with("authentication_") || code.starts_with("authorization_")
}

/// The `code`s of a Clerk error body `{"errors":[{"code":…}]}`; none if it is not one.
fn error_codes(body: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    serde_json::from_str::<Errors>(body)
        .map(|e| e.errors.into_iter().filter_map(|i| i.code).collect())
        .unwrap_or_default()
}

/// Classify a non-2xx answer of the template-token call by its status and body.
pub fn classify(status: u16, body: &str, retry_after: Option<&str>) -> Refusal {
    let codes = error_codes(body);
    match status {
        429 => Refusal::Throttled {
            retry_after_secs: retry_after.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(10),
        },
        // Clerk answers 404 both for an unknown session and an unknown template; only the latter's
        // message names the template.
        404 if body.to_ascii_lowercase().contains("template") => Refusal::TemplateMissing,
        // A 401/403 is about our key when its code says so, or when it carries no Clerk error code
        // at all (a proxy in front, an HTML page): never take a session's death on no evidence.
        401 | 403 if codes.is_empty() || codes.iter().any(|c| is_key_code(c)) => Refusal::SecretKeyRejected,
        408 => Refusal::Unavailable(format!("template token: HTTP {status}")),
        400..=499 => Refusal::SessionRefused,
        _ => Refusal::Unavailable(format!("template token: HTTP {status}")),
    }
}

/// What to do with a refusal.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Answer `error` to this session and to every request of it for `secs`, without a call. The
    /// shared breaker is told the service answered.
    ChargeSession { error: Error, secs: u64 },
    /// Clerk's own trouble (or the instance-wide limit): the shared breaker opens with `error`.
    OpenBreaker(Error),
    /// Answer `error`, remember nothing, leave the breaker alone: the configuration is wrong and
    /// every request says so until it is fixed.
    Answer(Error),
}

/// The rule. `others_throttled`: distinct *other* sessions that got a 429 within `THROTTLE_WINDOW`
/// (only read for a 429). `session_left_secs`: seconds until the session token expires (plus
/// skew), `None` when the token is not known.
///
/// - Definite refusal → charged to the session until its token expires (at most an hour; a minute
///   when the expiry is unknown). It never touches the breaker: Clerk answered, so Clerk is up.
/// - 429 → charged to the session for its `Retry-After` (at most a minute), unless with it
///   `SESSIONS_FOR_SHARED_LIMIT` distinct sessions were throttled within the window: then our
///   volume hit the instance-wide limit and the shared breaker opens. One user's traffic (one
///   session, single-flighted and remembered) can never get there on its own.
/// - Unavailable (timeout, 5xx) → the shared breaker opens.
/// - Secret key or template wrong → answered as `503 config_invalid`, nothing remembered.
pub fn decide(refusal: &Refusal, others_throttled: usize, session_left_secs: Option<i64>) -> Verdict {
    match refusal {
        Refusal::SessionRefused => {
            let secs = match session_left_secs {
                None => REFUSAL_MEMORY_WITHOUT_EXP_SECS,
                Some(left) => u64::try_from(left).unwrap_or(0).min(MAX_REFUSAL_MEMORY_SECS),
            };
            Verdict::ChargeSession { error: Error::Unauthenticated(AuthFailure::SessionInactive), secs }
        }
        Refusal::Throttled { retry_after_secs } => {
            let error = Error::ClerkRateLimited { retry_after_secs: *retry_after_secs };
            if others_throttled.saturating_add(1) >= SESSIONS_FOR_SHARED_LIMIT {
                Verdict::OpenBreaker(error)
            } else {
                let secs = (*retry_after_secs).clamp(1, MAX_SESSION_THROTTLE_SECS);
                Verdict::ChargeSession { error: Error::ClerkRateLimited { retry_after_secs: secs }, secs }
            }
        }
        Refusal::Unavailable(why) => Verdict::OpenBreaker(Error::ClerkUnavailable(why.clone())),
        Refusal::SecretKeyRejected => Verdict::Answer(Error::ConfigInvalid(
            "Clerk rejected CLERK_SECRET_KEY when minting the Convex token".into(),
        )),
        // Named, not echoed: a 503 for a setting never quotes its value.
        Refusal::TemplateMissing => Verdict::Answer(Error::ConfigInvalid(
            "Clerk has no JWT template with the name SESSION_AUDIO_CONVEX_TEMPLATE gives (default \"convex\"); create it in the Clerk dashboard or set the variable to an existing template's name".into(),
        )),
    }
}

/// A remembered refusal as told to a later request: a rate limit carries the time actually left.
pub fn as_remembered(error: &Error, left_secs: i64) -> Error {
    match error {
        Error::ClerkRateLimited { .. } => Error::ClerkRateLimited { retry_after_secs: left_secs.max(1) as u64 },
        other => other.clone(),
    }
}

/// Which sessions got a 429 lately, to tell one session's throttling from the instance-wide limit.
#[derive(Default)]
pub struct ThrottleLog {
    recent: Mutex<VecDeque<(Instant, String)>>,
}

impl ThrottleLog {
    /// Note a 429 for `session_id` at `now`; answer how many distinct other sessions got one within
    /// `THROTTLE_WINDOW` before it.
    pub fn record(&self, session_id: &str, now: Instant) -> usize {
        // A poisoned lock only means a panic elsewhere mid-update; the log is still a valid value.
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        while recent.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) >= THROTTLE_WINDOW) {
            recent.pop_front();
        }
        let others = recent.iter().map(|(_, s)| s.as_str()).filter(|s| *s != session_id).collect::<HashSet<_>>().len();
        recent.push_back((now, session_id.to_string()));
        if recent.len() > THROTTLE_LOG_CAPACITY {
            recent.pop_front();
        }
        others
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_FOUND: &str = r#"{"errors":[{"code":"resource_not_found","message":"Session not found"}]}"#;

    #[test]
    fn classification_table() {
        let template_404 = r#"{"errors":[{"code":"resource_not_found","message":"JWT template convex not found"}]}"#;
        let key_401 = r#"{"errors":[{"code":"clerk_key_invalid","message":"Secret key invalid"}]}"#;
        let auth_401 = r#"{"errors":[{"code":"authentication_invalid","message":"Invalid authentication"}]}"#;
        let session_401 = r#"{"errors":[{"code":"session_revoked","message":"Session revoked"}]}"#;
        let session_403 = r#"{"errors":[{"code":"session_not_active","message":"Session ended"}]}"#;
        let unprocessable = r#"{"errors":[{"code":"session_not_active","message":"Session is not active"}]}"#;
        let throttled = |s| Refusal::Throttled { retry_after_secs: s };
        let table: Vec<(u16, &str, Option<&str>, Refusal)> = vec![
            (404, NOT_FOUND, None, Refusal::SessionRefused),
            (404, "", None, Refusal::SessionRefused),
            (404, template_404, None, Refusal::TemplateMissing),
            (401, session_401, None, Refusal::SessionRefused),
            (403, session_403, None, Refusal::SessionRefused),
            (422, unprocessable, None, Refusal::SessionRefused),
            (410, "", None, Refusal::SessionRefused),
            (400, NOT_FOUND, None, Refusal::SessionRefused),
            (401, key_401, None, Refusal::SecretKeyRejected),
            (401, auth_401, None, Refusal::SecretKeyRejected),
            (403, r#"{"errors":[{"code":"authorization_invalid"}]}"#, None, Refusal::SecretKeyRejected),
            // No evidence about the session: not a definite refusal.
            (401, "", None, Refusal::SecretKeyRejected),
            (403, "<html>Forbidden</html>", None, Refusal::SecretKeyRejected),
            (429, "", Some("7"), throttled(7)),
            (429, "", Some(" 30 "), throttled(30)),
            (429, "", None, throttled(10)),
            (429, "", Some("soon"), throttled(10)),
            (408, "", None, Refusal::Unavailable("template token: HTTP 408".into())),
            (500, NOT_FOUND, None, Refusal::Unavailable("template token: HTTP 500".into())),
            (503, "", None, Refusal::Unavailable("template token: HTTP 503".into())),
            (302, "", None, Refusal::Unavailable("template token: HTTP 302".into())),
        ];
        for (status, body, retry_after, want) in table {
            assert_eq!(classify(status, body, retry_after), want, "{status} {body}");
        }
    }

    #[test]
    fn verdict_table() {
        let inactive = || Error::Unauthenticated(AuthFailure::SessionInactive);
        let limited = |s| Error::ClerkRateLimited { retry_after_secs: s };
        let throttled = |s| Refusal::Throttled { retry_after_secs: s };
        let session = |error, secs| Verdict::ChargeSession { error, secs };
        let table: Vec<(&str, Refusal, usize, Option<i64>, Verdict)> = vec![
            ("refusal: until the token expires", Refusal::SessionRefused, 0, Some(55), session(inactive(), 55)),
            ("refusal: others throttled change nothing", Refusal::SessionRefused, 9, Some(55), session(inactive(), 55)),
            ("refusal: exp unknown", Refusal::SessionRefused, 0, None, session(inactive(), 60)),
            ("refusal: absurd exp is capped", Refusal::SessionRefused, 0, Some(i64::MAX), session(inactive(), 3600)),
            ("refusal: already expired", Refusal::SessionRefused, 0, Some(-5), session(inactive(), 0)),
            ("429 alone: this session", throttled(7), 0, Some(55), session(limited(7), 7)),
            ("429 with one other: still this session", throttled(7), 1, Some(55), session(limited(7), 7)),
            ("429 with two others: the shared limit", throttled(7), 2, Some(55), Verdict::OpenBreaker(limited(7))),
            ("429 with many others", throttled(7), 40, None, Verdict::OpenBreaker(limited(7))),
            ("429 Retry-After 0 still waits a second", throttled(0), 0, None, session(limited(1), 1)),
            ("429 huge Retry-After is capped", throttled(u64::MAX), 0, None, session(limited(60), 60)),
            (
                "outage",
                Refusal::Unavailable("HTTP 503".into()),
                0,
                Some(55),
                Verdict::OpenBreaker(Error::ClerkUnavailable("HTTP 503".into())),
            ),
        ];
        for (name, refusal, others, left, want) in table {
            assert_eq!(format!("{:?}", decide(&refusal, others, left)), format!("{want:?}"), "{name}");
        }
        for config in [Refusal::SecretKeyRejected, Refusal::TemplateMissing] {
            match decide(&config, 5, Some(55)) {
                Verdict::Answer(e) => assert_eq!(e.code(), "config_invalid"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn remembered_rate_limits_carry_the_time_left() {
        assert_eq!(as_remembered(&Error::ClerkRateLimited { retry_after_secs: 30 }, 12).status(), 503);
        match as_remembered(&Error::ClerkRateLimited { retry_after_secs: 30 }, 12) {
            Error::ClerkRateLimited { retry_after_secs } => assert_eq!(retry_after_secs, 12),
            other => panic!("{other:?}"),
        }
        match as_remembered(&Error::ClerkRateLimited { retry_after_secs: 30 }, -3) {
            Error::ClerkRateLimited { retry_after_secs } => assert_eq!(retry_after_secs, 1),
            other => panic!("{other:?}"),
        }
        let e = as_remembered(&Error::Unauthenticated(AuthFailure::SessionInactive), 40);
        assert_eq!((e.status(), e.code()), (401, "session_inactive"));
    }

    #[test]
    fn throttle_log_counts_distinct_other_sessions_within_the_window() {
        let log = ThrottleLog::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // One session throttled again and again is never "others".
        for i in 0..5 {
            assert_eq!(log.record("sess_a", t0 + s(i)), 0);
        }
        assert_eq!(log.record("sess_b", t0 + s(5)), 1);
        assert_eq!(log.record("sess_c", t0 + s(6)), 2);
        assert_eq!(log.record("sess_a", t0 + s(6)), 2);
        // Past the window, the old entries no longer count.
        assert_eq!(log.record("sess_d", t0 + s(30)), 0);
        // Bounded: a flood of sessions keeps at most the capacity.
        for i in 0..1000 {
            log.record(&format!("sess_{i}"), t0 + s(31));
        }
        assert!(log.recent.lock().unwrap().len() <= THROTTLE_LOG_CAPACITY);
        assert_eq!(log.record("sess_new", t0 + s(31)), THROTTLE_LOG_CAPACITY);
    }
}
