//! After the attach mutation: was the upload attached, refused, or is it unknown? Pure decisions,
//! table-tested; `post` and `client_flow` carry them out.
//!
//! The rule is "no lost recording, no dangling URL". A blob is deleted only once we know the
//! session does not hold it; when we cannot know (the mutation's answer was lost and the session
//! cannot be re-read either), the blob is kept — an unattached blob is what `sweepOrphanAudio`
//! removes later, while a deleted blob that was attached would be a session pointing at nothing.

use crate::convex::{Outcome, SessionDoc};
use crate::error::{Error, Result};

/// What the mutation's own answer says, before anything is re-read.
#[derive(Debug)]
pub enum Answer {
    Attached,
    /// A refusal we recognise: the mutation did not apply (`invalid_session_state`,
    /// `session_not_found`, or Convex refused the token before running anything).
    Refused(Error),
    /// The outcome is unknown: a timeout, a reset, a 5xx, or a refusal whose shape we do not
    /// recognise. Only the session's state can tell.
    Unclear(Error),
}

/// Read the mutation's answer.
pub fn classify(outcome: Result<Outcome>) -> Answer {
    match outcome {
        Ok(outcome) => match outcome.into_refusal() {
            None => Answer::Attached,
            Some(e @ (Error::InvalidSessionState(_) | Error::SessionNotFound)) => Answer::Refused(e),
            Some(e) => Answer::Unclear(e),
        },
        Err(e @ Error::ConvexAuthRejected(_)) => Answer::Refused(e),
        Err(e) => Answer::Unclear(e),
    }
}

/// What to do with the upload.
#[derive(Debug)]
pub enum Verdict {
    /// The session holds this upload.
    Attached,
    /// The session does not hold it: delete the blob, answer the error.
    Refused(Error),
    /// Nobody can tell: keep the blob (the sweep decides later), answer the error.
    Unknown(Error),
}

/// Settle an answer that was not `Attached`, given the session as re-read afterwards and whether
/// it holds this upload's URL.
pub fn settle(answer: Answer, reread: Result<&SessionDoc>, holds: impl Fn(&SessionDoc) -> bool) -> Verdict {
    let (error, recognised) = match answer {
        Answer::Attached => return Verdict::Attached,
        Answer::Refused(e) => (e, true),
        Answer::Unclear(e) => (e, false),
    };
    match reread {
        // It landed after all (the answer was lost), or the other completion path attached it.
        Ok(doc) if holds(doc) => Verdict::Attached,
        // A recognised refusal says what happened better than anything we could infer.
        Ok(_) if recognised => Verdict::Refused(error),
        // The session has moved on (another upload won): that is the conflict to report.
        Ok(doc) if doc.status != "recording" => Verdict::Refused(Error::InvalidSessionState(doc.status.clone())),
        // Still recording and not holding it: the mutation did not apply.
        Ok(_) => Verdict::Refused(error),
        // A missing session cannot hold anything.
        Err(Error::SessionNotFound) => Verdict::Refused(if recognised { error } else { Error::SessionNotFound }),
        Err(_) if recognised => Verdict::Refused(error),
        Err(_) => Verdict::Unknown(error),
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

    #[test]
    fn classify_table() {
        let threw = |data| Ok(Outcome::Threw { message: "x".into(), data: Some(data) });
        let cases: Vec<(Result<Outcome>, &str)> = vec![
            (Ok(Outcome::Value(json!({"status": "transcribing"}))), "attached"),
            (threw(json!({"code": "invalid_session_state", "status": "ready"})), "refused"),
            (threw(json!({"code": "session_not_found"})), "refused"),
            (Err(Error::ConvexAuthRejected("401".into())), "refused"),
            (threw(json!({"code": "something_new"})), "unclear"),
            (threw(json!("bare")), "unclear"),
            (Err(Error::ConvexUnavailable("timed out".into())), "unclear"),
            (Err(Error::ConvexUnavailable("HTTP 503".into())), "unclear"),
            (Err(Error::ConvexFunction("unreadable".into())), "unclear"),
        ];
        for (outcome, want) in cases {
            let got = match classify(outcome) {
                Answer::Attached => "attached",
                Answer::Refused(_) => "refused",
                Answer::Unclear(_) => "unclear",
            };
            assert_eq!(got, want);
        }
    }

    #[test]
    fn settle_table() {
        let holds = |d: &SessionDoc| d.audio_url.as_deref() == Some(OURS);
        let down = || Error::ConvexUnavailable("timed out".into());
        let odd = || Error::ConvexFunction("threw something new".into());
        let conflict = || Error::InvalidSessionState("transcribing".into());
        let attached = doc("transcribing", Some(OURS));
        let other_won =
            doc("transcribing", Some("https://s.public.blob.vercel-storage.com/listening-sessions/s1/b.webm"));
        let untouched = doc("recording", None);
        // (answer, re-read, verdict, code)
        let cases: Vec<(Answer, Result<&SessionDoc>, &str, &str)> = vec![
            // The answer was lost but the mutation applied: the upload is attached.
            (Answer::Unclear(down()), Ok(&attached), "attached", ""),
            (Answer::Unclear(odd()), Ok(&attached), "attached", ""),
            (Answer::Refused(conflict()), Ok(&attached), "attached", ""),
            // It did not apply: delete, and say why.
            (Answer::Unclear(down()), Ok(&untouched), "refused", "convex_unavailable"),
            (Answer::Unclear(odd()), Ok(&untouched), "refused", "convex_error"),
            (Answer::Unclear(odd()), Ok(&other_won), "refused", "invalid_session_state"),
            (Answer::Unclear(down()), Ok(&other_won), "refused", "invalid_session_state"),
            (Answer::Refused(conflict()), Ok(&other_won), "refused", "invalid_session_state"),
            (Answer::Unclear(down()), Err(Error::SessionNotFound), "refused", "session_not_found"),
            // Nobody can tell: keep the blob.
            (Answer::Unclear(down()), Err(down()), "unknown", "convex_unavailable"),
            (Answer::Unclear(odd()), Err(down()), "unknown", "convex_error"),
            // A recognised refusal stands even when the re-read fails.
            (Answer::Refused(conflict()), Err(down()), "refused", "invalid_session_state"),
        ];
        for (answer, reread, want, code) in cases {
            let label = format!("{answer:?} / {:?}", reread.as_ref().map(|d| (&d.status, &d.audio_url)));
            let (got, got_code) = match settle(answer, reread, holds) {
                Verdict::Attached => ("attached", ""),
                Verdict::Refused(e) => ("refused", e.code()),
                Verdict::Unknown(e) => ("unknown", e.code()),
            };
            assert_eq!((got, got_code), (want, code), "{label}");
        }
    }
}
