//! Convex HTTP API client, speaking exactly what `ConvexHttpClient` sends
//! (docs/protocols.md §A.2–A.5): `POST {deployment}/api/query` with
//! `{"path", "format": "convex_encoded_json", "args": [ {...} ]}` and `Authorization: Bearer <jwt>`.
//!
//! Only plain strings, numbers, booleans, null, arrays and objects cross this client; the special
//! encodings (`$integer`, `$bytes`, `$float`) never appear in the documents we read.

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::support::breaker::{Breaker, DEFAULT_WINDOW};

/// The client version we speak. The backend picks defaults by this header; we send the version of
/// `ConvexHttpClient` whose wire format this file reproduces.
const CONVEX_CLIENT: &str = "npm-1.48.0";
/// The most we read of an answer (the documents we read are a few hundred bytes): past it, Convex
/// is failing (`convex_unavailable`), and the rest is never read.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

pub struct ConvexClient {
    http: reqwest::Client,
    base: String,
    /// Convex down: one call per window, not one per request (`breaker`).
    breaker: Breaker,
}

#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
enum UdfResponse {
    Success {
        value: Value,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        error_message: String,
        #[serde(default)]
        error_data: Option<Value>,
    },
}

/// A function's answer: its value, or the error it threw (with `ConvexError` data, if any).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Value(Value),
    Threw { message: String, data: Option<Value> },
}

impl Outcome {
    /// The `code` field of a thrown `ConvexError({ code, ... })`.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Outcome::Threw { data: Some(d), .. } => d.get("code").and_then(Value::as_str),
            _ => None,
        }
    }

    /// A mutation's refusal as our error (`None`: it succeeded). The template functions throw
    /// `ConvexError({code, status?})`; anything else is the function failing.
    pub fn into_refusal(self) -> Option<Error> {
        let code = self.error_code().map(str::to_string);
        match (&self, code.as_deref()) {
            (Outcome::Value(_), _) => None,
            (Outcome::Threw { data, .. }, Some("invalid_session_state")) => {
                let status = data.as_ref().and_then(|d| d.get("status")).and_then(Value::as_str);
                Some(Error::InvalidSessionState(status.unwrap_or("no longer recording").to_string()))
            }
            (_, Some("session_not_found")) => Some(Error::SessionNotFound),
            // The template refuses arguments this route did not sign (attach_sign): with the route's
            // own call that means the two sides are not set up alike, which only the owner can fix.
            (_, Some("attach_not_configured")) => Some(Error::ConfigMissing(
                "the Convex deployment cannot check the route's attach: set SESSION_AUDIO_CONVEX_SECRET (the same \
                 value as here) and SESSION_AUDIO_BLOB_STORE_ID or SESSION_AUDIO_BLOB_HOSTS in its environment"
                    .into(),
            )),
            // Our own signed call refused: the two sides' secrets differ (a rotation half done).
            (_, Some("invalid_attach_signature")) => Some(Error::AttachSecretMismatch),
            // Audio the route checked and the template refused: the two sides are set up apart.
            (_, Some("invalid_audio_url")) => Some(Error::AttachConfigMismatch("invalid_audio_url")),
            (_, Some("invalid_audio")) => Some(Error::AttachConfigMismatch("invalid_audio")),
            (threw, _) => Some(Error::ConvexFunction(format!("{threw:?}"))),
        }
    }
}

/// The session document `listeningSessions:getForAudio` returns.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub user_id: String,
    pub status: String,
    pub audio_url: Option<String>,
    pub audio_content_type: Option<String>,
    /// The attached audio's record (older copies of the template do not return these).
    #[serde(default)]
    pub audio_pathname: Option<String>,
    #[serde(default)]
    pub audio_size_bytes: Option<f64>,
    #[serde(default)]
    pub duration_ms: Option<f64>,
}

impl ConvexClient {
    pub fn new(http: reqwest::Client, deployment: &Url) -> Self {
        ConvexClient {
            http,
            base: deployment.as_str().trim_end_matches('/').to_string(),
            breaker: Breaker::new(DEFAULT_WINDOW),
        }
    }

    /// Run a public query as the user the token speaks for.
    pub async fn query(&self, path: &str, args: Value, token: &str) -> Result<Value> {
        match self.call("query", path, args, token).await? {
            Outcome::Value(v) => Ok(v),
            Outcome::Threw { message, .. } => Err(Error::ConvexFunction(format!("{path}: {message}"))),
        }
    }

    /// Run a public mutation; a thrown error is an `Outcome`, for the caller to interpret.
    pub async fn mutation(&self, path: &str, args: Value, token: &str) -> Result<Outcome> {
        self.call("mutation", path, args, token).await
    }

    /// A query with no user behind it (the sweep's, guarded by its own secret argument). A thrown
    /// `ConvexError`'s code is kept in the error (`forbidden`: the secret did not match).
    pub async fn query_anonymous(&self, path: &str, args: Value) -> Result<Value> {
        match self.send("query", path, args, None).await? {
            Outcome::Value(v) => Ok(v),
            Outcome::Threw { message, data } => {
                let code = data.as_ref().and_then(|d| d.get("code")).and_then(Value::as_str).unwrap_or_default();
                Err(Error::ConvexFunction(format!("{path}: {code} {message}")))
            }
        }
    }

    /// A query past the breaker: the one read whose answer decides whether an upload is deleted
    /// (`attach`), made even while the breaker fails everything else fast.
    pub async fn query_unguarded(&self, path: &str, args: Value, token: &str) -> Result<Value> {
        match self.send("query", path, args, Some(token)).await? {
            Outcome::Value(v) => Ok(v),
            Outcome::Threw { message, .. } => Err(Error::ConvexFunction(format!("{path}: {message}"))),
        }
    }

    async fn call(&self, kind: &str, path: &str, args: Value, token: &str) -> Result<Outcome> {
        self.breaker.call(self.send(kind, path, args, Some(token))).await
    }

    /// One call as `ConvexHttpClient` makes it; `token: None` for an anonymous one.
    async fn send(&self, kind: &str, path: &str, args: Value, token: Option<&str>) -> Result<Outcome> {
        let body = serde_json::json!({ "path": path, "format": "convex_encoded_json", "args": [args] });
        let mut request = self
            .http
            .post(format!("{}/api/{kind}", self.base))
            .header("Content-Type", "application/json")
            .header("Convex-Client", CONVEX_CLIENT);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request.json(&body).send().await.map_err(|e| {
            if e.is_timeout() {
                Error::ConvexUnavailable(format!("{kind} {path}: timed out"))
            } else {
                Error::ConvexUnavailable(format!("{kind} {path}: {e}"))
            }
        })?;
        let status = resp.status().as_u16();
        let body = crate::support::capped::read_all(resp, None, MAX_ANSWER_BYTES)
            .await
            .map_err(|failed| Error::ConvexUnavailable(format!("{kind} {path}: body: {failed}")))?;
        let text = String::from_utf8_lossy(&body);
        match status {
            // 560 is the legacy "function failed" status the JS client still accepts.
            200 | 560 => {}
            401 | 403 => {
                return Err(Error::ConvexAuthRejected(format!("{kind} {path}: HTTP {status}: {}", truncate(&text))))
            }
            _ => return Err(Error::ConvexUnavailable(format!("{kind} {path}: HTTP {status}: {}", truncate(&text)))),
        }
        match serde_json::from_str::<UdfResponse>(&text) {
            Ok(UdfResponse::Success { value }) => Ok(Outcome::Value(value)),
            Ok(UdfResponse::Error { error_message, error_data }) => {
                Ok(Outcome::Threw { message: error_message, data: error_data })
            }
            Err(e) => {
                Err(Error::ConvexUnavailable(format!("{kind} {path}: unreadable reply ({e}): {}", truncate(&text))))
            }
        }
    }
}

/// `null` → not found; anything else must be a session document.
pub fn parse_session(value: Value) -> Result<Option<SessionDoc>> {
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value).map(Some).map_err(|e| Error::ConvexShape { what: "the session", why: e.to_string() })
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(300);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mutation_refusal_table() {
        let threw = |data: Option<Value>| Outcome::Threw { message: "[Request ID: x] Server Error".into(), data };
        let table: Vec<(Outcome, Option<(&str, u16)>)> = vec![
            (Outcome::Value(Value::Null), None),
            (
                threw(Some(json!({"code": "invalid_session_state", "status": "ready"}))),
                Some(("invalid_session_state", 409)),
            ),
            (threw(Some(json!({"code": "invalid_session_state"}))), Some(("invalid_session_state", 409))),
            (threw(Some(json!({"code": "session_not_found"}))), Some(("session_not_found", 404))),
            (threw(Some(json!({"code": "attach_not_configured"}))), Some(("config_missing", 503))),
            (
                threw(Some(json!({"code": "invalid_attach_signature", "reason": "mismatch"}))),
                Some(("attach_secret_mismatch", 503)),
            ),
            (threw(Some(json!({"code": "something_new"}))), Some(("convex_error", 502))),
            (threw(Some(json!("a bare string"))), Some(("convex_error", 502))),
            (threw(None), Some(("convex_error", 502))),
        ];
        for (outcome, want) in table {
            let got = outcome.clone().into_refusal().map(|e| (e.code(), e.status()));
            assert_eq!(got, want, "{outcome:?}");
        }
        let state = threw(Some(json!({"code": "invalid_session_state", "status": "ready"}))).into_refusal();
        assert!(matches!(state, Some(Error::InvalidSessionState(s)) if s == "ready"));
    }

    #[test]
    fn session_document_shapes() {
        assert_eq!(parse_session(Value::Null).unwrap(), None);
        let doc = parse_session(json!({"_id": "s1", "userId": "user_1", "status": "ready", "audioUrl": "https://a.public.blob.vercel-storage.com/x.webm", "_creationTime": 1.0})).unwrap().unwrap();
        assert_eq!(doc.user_id, "user_1");
        assert_eq!(doc.audio_content_type, None);
        let no_audio = parse_session(json!({"_id": "s1", "userId": "u", "status": "recording"})).unwrap().unwrap();
        assert_eq!(no_audio.audio_url, None);
        assert_eq!(parse_session(json!({"nope": 1})).unwrap_err().code(), "convex_error");
    }

    #[test]
    fn udf_response_shapes() {
        let ok: UdfResponse = serde_json::from_str(r#"{"status":"success","value":null,"logLines":[]}"#).unwrap();
        assert!(matches!(ok, UdfResponse::Success { value: Value::Null }));
        let err: UdfResponse = serde_json::from_str(
            r#"{"status":"error","errorMessage":"[Request ID: x] Server Error","errorData":{"a":1}}"#,
        )
        .unwrap();
        assert!(matches!(err, UdfResponse::Error { .. }));
    }
}
