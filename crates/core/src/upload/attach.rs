//! What happens to a stored upload: pure decisions, table-tested; `upload` and `flows::complete`
//! carry them out.
//!
//! The one delete rule (`fate`), which the README's Reliability section states: a stored upload is
//! deleted only when the refusal is about the upload itself (its bytes, type, size, measured
//! duration, the caller's entitlements or limits), or when a fresh read shows the session holding
//! a *different* blob. Everything else keeps it: outages, timeouts, a breaker failing fast, Convex
//! refusing the route's token or signature, a function throwing something not about the upload,
//! an unclear outcome, an upload that is too old. A kept blob is either attached by a later
//! completion or removed by `sweepOrphanAudio`, the only janitor of orphans; a deleted blob that
//! should have been kept is a lost recording, which nothing can undo.

use crate::convex::client::{Outcome, SessionDoc};
use crate::error::{Code, Error, Result};

/// What becomes of a stored upload after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// About the upload itself: delete it, answer the refusal.
    Delete,
    /// The session holds another blob: delete this one, answer the conflict (`409`).
    Superseded,
    /// Anything else: keep it, answer the refusal (a dependency's as a retryable `503`: `kept`).
    Keep,
}

/// The one delete rule. `session`: the session as last read fresh, if it could be read;
/// `pathname`: the upload's, decoded (blobs are told apart by pathname, never by how a URL is
/// spelt: `%74ake.wav` and `take.wav`, or the store's other host, are one blob to Blob).
pub fn fate(refusal: &Error, session: Option<&SessionDoc>, pathname: &str) -> Fate {
    let held = session.and_then(held_pathname);
    if about_the_upload(refusal) {
        Fate::Delete
    } else if held.is_some_and(|held| held != pathname) {
        Fate::Superseded
    } else {
        Fate::Keep
    }
}

/// The pathname of the blob a session holds: its record's, or (templates that do not return it)
/// its URL's path, decoded.
pub fn held_pathname(doc: &SessionDoc) -> Option<String> {
    doc.audio_pathname.clone().or_else(|| {
        let url = url::Url::parse(doc.audio_url.as_deref()?).ok()?;
        Some(url_pathname(&url))
    })
}

/// A blob URL's pathname as Blob resolves it: the path without its leading `/`, decoded.
pub fn url_pathname(url: &url::Url) -> String {
    percent_encoding::percent_decode_str(url.path().trim_start_matches('/')).decode_utf8_lossy().into_owned()
}

/// A refusal about the upload itself: no retry of any completion could attach these bytes.
fn about_the_upload(refusal: &Error) -> bool {
    match refusal {
        Error::BadRequest { code, .. } => matches!(
            code,
            Code::DurationMismatch
                | Code::DurationUnmeasurable
                | Code::InconsistentAudio
                | Code::InvalidDuration
                | Code::EmptyBody
        ),
        Error::PayloadTooLarge(_)
        | Error::UnsupportedMediaType(_)
        | Error::ContentMismatch(_)
        | Error::EntitlementDenied
        | Error::DurationLimitExceeded(_) => true,
        _ => false,
    }
}

/// The answer for a refusal whose upload is kept: a dependency's failure becomes a retryable
/// `503` that still names the dependency; anything else (a `4xx`, or a blob already deleted,
/// which `fate` answers with a `4xx`) is answered as it is.
pub fn kept(refusal: Error) -> Error {
    match refusal {
        e @ Error::Kept(_) => e,
        e if e.status() >= 500 => Error::Kept(Box::new(e)),
        e => e,
    }
}

/// What the mutation's own answer says: attached, or why not (`None`: attached).
pub fn classify(outcome: Result<Outcome>) -> Option<Error> {
    match outcome {
        Ok(outcome) => outcome.into_refusal(),
        Err(e) => Some(e),
    }
}

/// What the session, re-read after a mutation that did not clearly attach, says happened.
#[derive(Debug)]
pub enum Verdict {
    /// The session holds this upload (the answer was lost, or the other completion path won).
    Attached,
    /// It does not: the refusal to answer (what becomes of the blob is `fate`'s to say).
    Refused(Error),
}

/// Settle a mutation that answered `error`, given the session as re-read afterwards and whether
/// it holds this upload's URL.
pub fn settle(error: Error, reread: Result<&SessionDoc>, holds: impl Fn(&SessionDoc) -> bool) -> Verdict {
    match reread {
        Ok(doc) if holds(doc) => Verdict::Attached,
        // The session has moved on (another upload won, or the app changed it): the conflict.
        Ok(doc) if doc.status != "recording" => Verdict::Refused(Error::InvalidSessionState(doc.status.clone())),
        // Still recording and not holding it: the mutation did not apply, for the reason it gave.
        Ok(_) => Verdict::Refused(error),
        Err(Error::SessionNotFound) => Verdict::Refused(Error::SessionNotFound),
        // Nobody can tell: the mutation's own answer.
        Err(_) => Verdict::Refused(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(status: &str, audio_url: Option<&str>) -> SessionDoc {
        SessionDoc {
            id: "s1".into(),
            user_id: "u1".into(),
            status: status.into(),
            audio_url: audio_url.map(String::from),
            audio_content_type: None,
            audio_pathname: None,
            audio_size_bytes: None,
            duration_ms: None,
        }
    }

    const OURS: &str = "https://s.public.blob.vercel-storage.com/listening-sessions/s1/a.webm";
    const OTHER: &str = "https://s.public.blob.vercel-storage.com/listening-sessions/s1/b.webm";
    const OURS_PATH: &str = "listening-sessions/s1/a.webm";

    /// The delete rule, whole: every kind of refusal, against every state the session can be seen in.
    #[test]
    fn fate_table() {
        let bad = |code| Error::BadRequest { code, message: "x".into() };
        let recording = doc("recording", None);
        let moved_on = doc("ready", None);
        let holds_other = doc("transcribing", Some(OTHER));
        use Fate::{Delete, Keep, Superseded as Sup};
        // (refusal, fate with: no fresh read / still recording / moved on without audio / holding another blob)
        let table: Vec<(Error, [Fate; 4])> = vec![
            // About the upload itself: deleted whatever the session says.
            (bad(Code::DurationMismatch), [Delete; 4]),
            (bad(Code::DurationUnmeasurable), [Delete; 4]),
            (bad(Code::InconsistentAudio), [Delete; 4]),
            (bad(Code::InvalidDuration), [Delete; 4]),
            (bad(Code::EmptyBody), [Delete; 4]),
            (Error::PayloadTooLarge("x".into()), [Delete; 4]),
            (Error::UnsupportedMediaType("x".into()), [Delete; 4]),
            (Error::ContentMismatch("x".into()), [Delete; 4]),
            (Error::EntitlementDenied, [Delete; 4]),
            (Error::DurationLimitExceeded("x".into()), [Delete; 4]),
            // Not about the upload: kept, unless the session holds another blob.
            (Error::InvalidSessionState("transcribing".into()), [Keep, Keep, Keep, Sup]),
            (Error::SessionNotFound, [Keep, Keep, Keep, Sup]),
            (bad(Code::UploadExpired), [Keep, Keep, Keep, Sup]),
            (Error::UploadNotFound("x".into()), [Keep, Keep, Keep, Sup]),
            (Error::ConvexUnavailable("HTTP 503".into()), [Keep, Keep, Keep, Sup]),
            (Error::ConvexUnavailable("breaker open".into()), [Keep, Keep, Keep, Sup]),
            (Error::ConvexAuthRejected("HTTP 401".into()), [Keep, Keep, Keep, Sup]),
            (Error::ConvexFunction("threw something new".into()), [Keep, Keep, Keep, Sup]),
            (Error::ConvexShape { what: "the entitlements", why: "x".into() }, [Keep, Keep, Keep, Sup]),
            (Error::AttachSecretMismatch, [Keep, Keep, Keep, Sup]),
            (Error::AttachConfigMismatch("invalid_audio_url"), [Keep, Keep, Keep, Sup]),
            (Error::ConfigMissing("attach_not_configured".into()), [Keep, Keep, Keep, Sup]),
            (Error::ClerkUnavailable("x".into()), [Keep, Keep, Keep, Sup]),
            (Error::ClerkRateLimited { retry_after_secs: 1 }, [Keep, Keep, Keep, Sup]),
            (Error::StorageFailed("x".into()), [Keep, Keep, Keep, Sup]),
            (Error::BlobAccessDenied("store_not_found".into()), [Keep, Keep, Keep, Sup]),
            (Error::Unauthenticated(crate::error::AuthFailure::Expired), [Keep, Keep, Keep, Sup]),
            (Error::Internal("panic".into()), [Keep, Keep, Keep, Sup]),
            // Not ours to touch (another session's or store's URL) is refused before any of this.
            (bad(Code::InvalidBlobUrl), [Keep, Keep, Keep, Sup]),
        ];
        for (refusal, want) in table {
            let seen = [None, Some(&recording), Some(&moved_on), Some(&holds_other)];
            let got = seen.map(|session| fate(&refusal, session, OURS_PATH));
            assert_eq!(got, want, "{refusal:?}");
        }
        // The session holding this very blob never deletes it, however its URL is spelt: by the
        // record's pathname, or (older templates) its URL's path decoded.
        let down = Error::ConvexUnavailable("x".into());
        assert_eq!(fate(&down, Some(&doc("transcribing", Some(OURS))), OURS_PATH), Keep);
        let spelt =
            doc("transcribing", Some("https://s.private.blob.vercel-storage.com/listening-sessions/s1/%61.webm"));
        assert_eq!(fate(&down, Some(&spelt), OURS_PATH), Keep);
        let mut recorded = doc("transcribing", Some(OTHER));
        recorded.audio_pathname = Some(OURS_PATH.into());
        assert_eq!(fate(&down, Some(&recorded), OURS_PATH), Keep);
    }

    #[test]
    fn pathnames_are_decoded() {
        let url = |s| url::Url::parse(s).unwrap();
        assert_eq!(url_pathname(&url(OURS)), OURS_PATH);
        assert_eq!(url_pathname(&url("https://h/listening-sessions/s1/%61.webm")), OURS_PATH);
        assert_eq!(held_pathname(&doc("transcribing", None)), None);
    }

    #[test]
    fn kept_refusals_are_retryable_503s_naming_the_dependency() {
        let table: Vec<(Error, u16, &str)> = vec![
            (Error::ConvexUnavailable("x".into()), 503, "convex_unavailable"),
            (Error::ConvexAuthRejected("x".into()), 503, "convex_auth_rejected"),
            (Error::ConvexFunction("x".into()), 503, "convex_error"),
            (Error::StorageFailed("x".into()), 503, "storage_failed"),
            (Error::ClerkUnavailable("x".into()), 503, "auth_provider_unavailable"),
            (Error::AttachSecretMismatch, 503, "attach_secret_mismatch"),
            (Error::ConfigMissing("x".into()), 503, "config_missing"),
            // Not an outage: answered as it is.
            (Error::InvalidSessionState("ready".into()), 409, "invalid_session_state"),
            (Error::SessionNotFound, 404, "session_not_found"),
            (Error::BadRequest { code: Code::UploadExpired, message: "x".into() }, 400, "upload_expired"),
        ];
        for (refusal, status, code) in table {
            let e = kept(refusal);
            assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
            assert_eq!(kept(e.clone()).status(), e.status(), "kept twice is kept once");
        }
    }

    #[test]
    fn classify_table() {
        let threw = |data| Ok(Outcome::Threw { message: "x".into(), data: Some(data) });
        let cases: Vec<(Result<Outcome>, Option<&str>)> = vec![
            (Ok(Outcome::Value(json!({"status": "transcribing"}))), None),
            (threw(json!({"code": "invalid_session_state", "status": "ready"})), Some("invalid_session_state")),
            (threw(json!({"code": "session_not_found"})), Some("session_not_found")),
            (threw(json!({"code": "invalid_attach_signature", "reason": "mismatch"})), Some("attach_secret_mismatch")),
            (threw(json!({"code": "attach_not_configured"})), Some("config_missing")),
            (threw(json!({"code": "invalid_audio_url"})), Some("attach_config_mismatch")),
            (threw(json!({"code": "invalid_audio"})), Some("attach_config_mismatch")),
            (Err(Error::ConvexAuthRejected("401".into())), Some("convex_auth_rejected")),
            (threw(json!({"code": "something_new"})), Some("convex_error")),
            (threw(json!("bare")), Some("convex_error")),
            (Err(Error::ConvexUnavailable("timed out".into())), Some("convex_unavailable")),
        ];
        for (outcome, want) in cases {
            assert_eq!(classify(outcome).map(|e| e.code()), want);
        }
    }

    #[test]
    fn settle_table() {
        let holds = |d: &SessionDoc| d.audio_url.as_deref() == Some(OURS);
        let down = || Error::ConvexUnavailable("timed out".into());
        let odd = || Error::ConvexFunction("threw something new".into());
        let conflict = || Error::InvalidSessionState("transcribing".into());
        let attached = doc("transcribing", Some(OURS));
        let other_won = doc("transcribing", Some(OTHER));
        let untouched = doc("recording", None);
        // (answer, re-read, verdict, code)
        let cases: Vec<(Error, Result<&SessionDoc>, &str)> = vec![
            // The answer was lost but the mutation applied (or the other path attached it).
            (down(), Ok(&attached), "attached"),
            (odd(), Ok(&attached), "attached"),
            (conflict(), Ok(&attached), "attached"),
            // It did not apply: the mutation's reason.
            (down(), Ok(&untouched), "convex_unavailable"),
            (odd(), Ok(&untouched), "convex_error"),
            (Error::AttachSecretMismatch, Ok(&untouched), "attach_secret_mismatch"),
            // The session moved on: the conflict.
            (odd(), Ok(&other_won), "invalid_session_state"),
            (down(), Ok(&other_won), "invalid_session_state"),
            (conflict(), Ok(&other_won), "invalid_session_state"),
            (down(), Err(Error::SessionNotFound), "session_not_found"),
            // Nobody can tell: the mutation's own answer.
            (down(), Err(down()), "convex_unavailable"),
            (odd(), Err(down()), "convex_error"),
            (conflict(), Err(down()), "invalid_session_state"),
        ];
        for (error, reread, want) in cases {
            let label = format!("{error:?} / {:?}", reread.as_ref().map(|d| (&d.status, &d.audio_url)));
            let got = match settle(error, reread, holds) {
                Verdict::Attached => "attached",
                Verdict::Refused(e) => e.code(),
            };
            assert_eq!(got, want, "{label}");
        }
    }
}
