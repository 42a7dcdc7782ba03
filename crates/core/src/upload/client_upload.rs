//! Direct-to-Blob client uploads, the pure parts: the three JSON events a POST may carry, the
//! client token `@vercel/blob` mints (`handleUpload`'s `blob.generate-client-token`), the webhook
//! signature, the callback URL, and what a stored blob's URL must look like to be attached to a
//! session. See docs/client-uploads.md for the wire protocol; everything here is table-tested.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use url::Url;

use crate::error::{Code, Error, Result};
use crate::media::Container;

/// What a JSON POST to the audio route asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `upload()` from `@vercel/blob/client` asking for a token (`handleUploadUrl` = this route).
    GenerateClientToken { pathname: String, client_payload: Option<String> },
    /// `uploadPresigned()` from `@vercel/blob/client` asking for a presigned URL payload (what
    /// `handleUploadPresigned` answers): the way direct uploads work with OIDC credentials.
    GeneratePresignedUrl { pathname: String, client_payload: Option<String> },
    /// Our browser helper, once the upload finished: attach what landed at `url`.
    CompleteUpload { url: String, duration_ms: Option<String> },
    /// Vercel Blob's signed webhook to the token's `callbackUrl`.
    UploadCompleted { url: String, token_payload: Option<String> },
}

pub const GENERATE_CLIENT_TOKEN: &str = "blob.generate-client-token";
pub const GENERATE_PRESIGNED_URL: &str = "blob.generate-presigned-url";
pub const COMPLETE_UPLOAD: &str = "session-audio.complete-upload";
pub const UPLOAD_COMPLETED: &str = "blob.upload-completed";

fn bad(code: Code, message: impl Into<String>) -> Error {
    Error::BadRequest { code, message: message.into() }
}

/// A JSON number or string as the text the header rules parse (`5000`, not `5000.0`).
fn number_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Parse `{type, payload}`. Anything else is `400 invalid_event`, naming the four we know.
pub fn parse_event(body: &[u8]) -> Result<Event> {
    let invalid = || {
        bad(Code::InvalidEvent,
            format!(
                "A JSON POST must be {{\"type\", \"payload\"}} with type {GENERATE_CLIENT_TOKEN}, {GENERATE_PRESIGNED_URL}, {COMPLETE_UPLOAD} or {UPLOAD_COMPLETED}."
            ),
        )
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid())?;
    let payload = value.get("payload").filter(|p| p.is_object()).ok_or_else(invalid)?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    match value.get("type").and_then(Value::as_str) {
        Some(GENERATE_CLIENT_TOKEN) => Ok(Event::GenerateClientToken {
            pathname: text(payload.get("pathname"))
                .ok_or_else(|| bad(Code::InvalidPathname, "payload.pathname is required."))?,
            client_payload: text(payload.get("clientPayload")),
        }),
        Some(GENERATE_PRESIGNED_URL) => Ok(Event::GeneratePresignedUrl {
            pathname: text(payload.get("pathname"))
                .ok_or_else(|| bad(Code::InvalidPathname, "payload.pathname is required."))?,
            client_payload: text(payload.get("clientPayload")),
        }),
        Some(COMPLETE_UPLOAD) => Ok(Event::CompleteUpload {
            url: text(payload.get("url")).ok_or_else(|| {
                bad(Code::InvalidBlobUrl, "payload.url (the blob URL upload() returned) is required.")
            })?,
            duration_ms: payload.get("durationMs").and_then(number_text),
        }),
        Some(UPLOAD_COMPLETED) => Ok(Event::UploadCompleted {
            url: text(payload.get("blob").and_then(|b| b.get("url"))).ok_or_else(invalid)?,
            token_payload: text(payload.get("tokenPayload")),
        }),
        _ => Err(invalid()),
    }
}

/// What `clientPayload` declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPayload {
    /// `durationMs` as text, for the `x-duration-ms` rules.
    pub duration: Option<String>,
    /// `contentType`, for the `x-content-type` rules.
    pub content_type: Option<String>,
    /// `"recording": true`: the grant is asked for while recording (a recorder uploading parts as
    /// it goes), so the length is not known yet and `durationMs` may be left out. Nothing is trusted
    /// for it: the length is measured at completion, and limits apply to the measurement.
    pub recording: bool,
}

/// `clientPayload`, a JSON string `{"durationMs": …, "contentType": …, "recording"?: true}` → the
/// raw values, for the same rules (and codes) as the `x-duration-ms` / `x-content-type` headers.
pub fn parse_client_payload(raw: Option<&str>) -> Result<ClientPayload> {
    let shape = "clientPayload must be a JSON string {\"durationMs\": <ms>, \"contentType\": \"audio/…\"}.";
    let Some(raw) = raw else { return Err(bad(Code::InvalidClientPayload, shape)) };
    let value: Value = serde_json::from_str(raw).map_err(|_| bad(Code::InvalidClientPayload, shape))?;
    if !value.is_object() {
        return Err(bad(Code::InvalidClientPayload, shape));
    }
    let content_type = match value.get("contentType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad(Code::InvalidContentType, "clientPayload.contentType must be a string.")),
    };
    let recording = match value.get("recording") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err(bad(Code::InvalidClientPayload, "clientPayload.recording must be true or false.")),
    };
    Ok(ClientPayload { duration: value.get("durationMs").and_then(number_text), content_type, recording })
}

/// The only pathnames a token is minted for: `listening-sessions/{sessionId}/<name>.<ext>`, with the
/// declared type's extension. The store adds a random suffix, so `<name>` is only a hint.
pub fn check_pathname(pathname: &str, session_id: &str, container: Container) -> Result<()> {
    let ext = container.extension();
    let prefix = crate::storage::store::prefix(session_id);
    let expected = || {
        bad(
            Code::InvalidPathname,
            format!(
                "The pathname must be {prefix}<name>.{ext} (name: letters, digits, '-', '_' or '.'), got {pathname:?}."
            ),
        )
    };
    let name = pathname.strip_prefix(&prefix).ok_or_else(expected)?;
    let stem = name.strip_suffix(&format!(".{ext}")).ok_or_else(expected)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if stem.is_empty() || stem.len() > 100 || stem.starts_with('.') || !stem.chars().all(allowed) {
        return Err(expected());
    }
    Ok(())
}

/// Who a client token was minted for and what they declared, carried in the token (and so in the
/// signed webhook) as `onUploadCompleted.tokenPayload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPayload {
    pub session_id: String,
    pub user_id: String,
    pub clerk_session_id: String,
    /// `None`: granted while recording, the length unknown (the webhook then measures alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub content_type: String,
}

impl TokenPayload {
    pub fn parse(raw: Option<&str>) -> Result<TokenPayload> {
        raw.and_then(|r| serde_json::from_str(r).ok())
            .ok_or_else(|| bad(Code::InvalidEvent, "The webhook's tokenPayload is not one session-audio minted."))
    }
}

fn hmac_sha256(key: &str, message: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac
}

/// A client token as `@vercel/blob` mints it (`generateClientTokenFromReadWriteToken`):
/// `vercel_blob_client_<storeId>_` + base64(`<hex HMAC-SHA256(rw token, payloadB64)>.<payloadB64>`),
/// where `payloadB64` is base64 of the JSON constraints.
pub fn mint_client_token(rw_token: &str, store_id: &str, constraints: &Value) -> String {
    let payload_b64 = STANDARD.encode(constraints.to_string());
    let sig = hex::encode(hmac_sha256(rw_token, payload_b64.as_bytes()).finalize().into_bytes());
    format!("vercel_blob_client_{store_id}_{}", STANDARD.encode(format!("{sig}.{payload_b64}")))
}

/// The constraints inside a client token (what the store enforces), for tests and the emulator.
pub fn client_token_constraints(token: &str) -> Option<Value> {
    let inner = STANDARD.decode(token.split('_').nth(4)?).ok()?;
    let (_, payload_b64) = std::str::from_utf8(&inner).ok()?.split_once('.')?;
    serde_json::from_slice(&STANDARD.decode(payload_b64).ok()?).ok()
}

/// `x-vercel-signature`: hex HMAC-SHA256 of the body as received, keyed by the read-write token.
/// Compared in constant time; hex case does not matter.
pub fn signature_ok(rw_token: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(sig) = signature.and_then(|s| hex::decode(s.trim()).ok()) else { return false };
    hmac_sha256(rw_token, body).verify_slice(&sig).is_ok()
}

/// The route's path and query, from the request URL Next gives the handler.
pub fn request_path(request_url: &str) -> Option<String> {
    let url = Url::parse(request_url).ok()?;
    Some(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    })
}

/// A blob URL may be attached to `session_id` only when it is in this deployment's store
/// (`Store::owns`) and under the session's prefix. Refused URLs are never deleted: they may be
/// somebody else's.
pub fn blob_url_for_session(raw: &str, store: &crate::storage::store::Store, session_id: &str) -> Result<Url> {
    let refuse = |why: &str| bad(Code::InvalidBlobUrl, format!("The blob URL {why}."));
    let mut url = Url::parse(raw).map_err(|_| refuse("does not parse"))?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(refuse("carries userinfo or a fragment"));
    }
    // A query names no other blob (`?v=1`, `?download=1`): dropped, so that one blob has one
    // spelling for the turns, the measurement and the session's record.
    url.set_query(None);
    if !store.owns(&url) {
        return Err(refuse("is not in this deployment's Blob store"));
    }
    // The session's prefix as GET checks it, and exactly one name below it (what the token allowed).
    let depth = url.path_segments().map_or(0, Iterator::count);
    if depth != 3 || !crate::playback::policy::under_session_prefix(&url, session_id) {
        return Err(refuse(&format!("is not under {}", crate::storage::store::prefix(session_id))));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RW: &str = "vercel_blob_rw_store1_secretsecret";

    #[test]
    fn event_table() {
        let ev = |v: Value| parse_event(v.to_string().as_bytes()).map_err(|e| e.code());
        assert_eq!(
            ev(
                json!({"type": GENERATE_CLIENT_TOKEN, "payload": {"pathname": "p", "clientPayload": "{}", "multipart": true}})
            ),
            Ok(Event::GenerateClientToken { pathname: "p".into(), client_payload: Some("{}".into()) })
        );
        assert_eq!(
            ev(
                json!({"type": GENERATE_PRESIGNED_URL, "payload": {"pathname": "p", "clientPayload": null, "multipart": false}})
            ),
            Ok(Event::GeneratePresignedUrl { pathname: "p".into(), client_payload: None })
        );
        assert_eq!(ev(json!({"type": GENERATE_PRESIGNED_URL, "payload": {}})), Err("invalid_pathname"));
        assert_eq!(
            ev(json!({"type": COMPLETE_UPLOAD, "payload": {"url": "u", "durationMs": 5000}})),
            Ok(Event::CompleteUpload { url: "u".into(), duration_ms: Some("5000".into()) })
        );
        assert_eq!(
            ev(json!({"type": UPLOAD_COMPLETED, "payload": {"blob": {"url": "u"}, "tokenPayload": "t"}})),
            Ok(Event::UploadCompleted { url: "u".into(), token_payload: Some("t".into()) })
        );
        assert_eq!(ev(json!({"type": "blob.other", "payload": {}})), Err("invalid_event"));
        assert_eq!(ev(json!({"type": GENERATE_CLIENT_TOKEN})), Err("invalid_event"));
        assert_eq!(ev(json!({"type": GENERATE_CLIENT_TOKEN, "payload": {}})), Err("invalid_pathname"));
        assert_eq!(ev(json!({"type": COMPLETE_UPLOAD, "payload": {}})), Err("invalid_blob_url"));
        assert_eq!(parse_event(b"not json").map_err(|e| e.code()), Err("invalid_event"));
    }

    #[test]
    fn client_payload_table() {
        let p = |raw: Option<&str>| {
            parse_client_payload(raw).map(|c| (c.duration, c.content_type, c.recording)).map_err(|e| e.code())
        };
        assert_eq!(
            p(Some(r#"{"durationMs":5000,"contentType":"audio/webm"}"#)),
            Ok((Some("5000".into()), Some("audio/webm".into()), false))
        );
        assert_eq!(p(Some(r#"{"durationMs":"1.5"}"#)), Ok((Some("1.5".into()), None, false)));
        assert_eq!(p(Some(r#"{}"#)), Ok((None, None, false)));
        assert_eq!(
            p(Some(r#"{"contentType":"audio/webm","recording":true}"#)),
            Ok((None, Some("audio/webm".into()), true))
        );
        assert_eq!(p(Some(r#"{"recording":false}"#)), Ok((None, None, false)));
        assert_eq!(p(Some(r#"{"recording":"yes"}"#)), Err("invalid_client_payload"));
        assert_eq!(p(Some(r#"{"contentType":5}"#)), Err("invalid_content_type"));
        assert_eq!(p(Some("[1]")), Err("invalid_client_payload"));
        assert_eq!(p(Some("nope")), Err("invalid_client_payload"));
        assert_eq!(p(None), Err("invalid_client_payload"));
    }

    #[test]
    fn pathname_table() {
        let table = [
            ("listening-sessions/s1/rec.webm", Container::WebM, true),
            ("listening-sessions/s1/rec-2026.11.23_a.webm", Container::WebM, true),
            ("listening-sessions/s1/rec.ogg", Container::WebM, false),
            ("listening-sessions/s2/rec.webm", Container::WebM, false),
            ("listening-sessions/s1/a/rec.webm", Container::WebM, false),
            ("listening-sessions/s1/../s2/rec.webm", Container::WebM, false),
            ("listening-sessions/s1/.webm", Container::WebM, false),
            ("listening-sessions/s1/..webm", Container::WebM, false),
            ("other/s1/rec.webm", Container::WebM, false),
            ("listening-sessions/s1/rec webm.webm", Container::WebM, false),
        ];
        for (path, container, ok) in table {
            let got = check_pathname(path, "s1", container);
            assert_eq!(got.is_ok(), ok, "{path}");
            if let Err(e) = got {
                assert_eq!(e.code(), "invalid_pathname");
                assert!(e.public_message().contains("listening-sessions/s1/<name>."), "{}", e.public_message());
            }
        }
    }

    #[test]
    fn client_token_is_minted_as_the_sdk_mints_it_and_reads_back() {
        let constraints = json!({"pathname": "listening-sessions/s1/a.webm", "validUntil": 1_800_000_000_000u64});
        let token = mint_client_token(RW, "store1", &constraints);
        assert!(token.starts_with("vercel_blob_client_store1_"), "{token}");
        assert_eq!(client_token_constraints(&token), Some(constraints.clone()));
        // The signature is hex HMAC-SHA256 over the payload's base64 text, keyed by the whole token.
        let inner = String::from_utf8(STANDARD.decode(token.split('_').nth(4).unwrap()).unwrap()).unwrap();
        let (sig, payload_b64) = inner.split_once('.').unwrap();
        assert_eq!(payload_b64, STANDARD.encode(constraints.to_string()));
        assert!(signature_ok(RW, payload_b64.as_bytes(), Some(sig)));
        assert!(!signature_ok("vercel_blob_rw_other_key", payload_b64.as_bytes(), Some(sig)));
    }

    #[test]
    fn webhook_signature_table() {
        let body = br#"{"type":"blob.upload-completed","payload":{}}"#;
        let good = hex::encode(hmac_sha256(RW, body).finalize().into_bytes());
        assert!(signature_ok(RW, body, Some(&good)));
        assert!(signature_ok(RW, body, Some(&good.to_uppercase())));
        assert!(!signature_ok(RW, body, None));
        assert!(!signature_ok(RW, body, Some("")));
        assert!(!signature_ok(RW, body, Some("zz")));
        assert!(!signature_ok(RW, b"{\"type\":\"blob.upload-completed\",\"payload\":{ }}", Some(&good)));
        assert!(!signature_ok("vercel_blob_rw_store1_other", body, Some(&good)));
    }

    #[test]
    fn request_paths() {
        assert_eq!(request_path("http://localhost:3000/api/x/audio?a=1").as_deref(), Some("/api/x/audio?a=1"));
    }

    #[test]
    fn blob_url_table() {
        let api = Url::parse("http://127.0.0.1:9000/api/blob").unwrap();
        let local = crate::storage::store::Store::from_token("vercel_blob_rw_store1_s", api.clone(), true).unwrap();
        let vercel = crate::storage::store::Store::from_token("vercel_blob_rw_store1_s", api, false).unwrap();
        let (local, vercel) = (&local, &vercel);
        let table = [
            ("https://store1.private.blob.vercel-storage.com/listening-sessions/s1/a-XYZ.webm", None, true),
            ("https://store1.public.blob.vercel-storage.com/listening-sessions/s1/a-XYZ.webm", None, true),
            ("https://store2.private.blob.vercel-storage.com/listening-sessions/s1/a.webm", None, false),
            ("http://store1.private.blob.vercel-storage.com/listening-sessions/s1/a.webm", None, false),
            ("https://store1.private.blob.vercel-storage.com:8443/listening-sessions/s1/a.webm", None, false),
            ("https://u:p@store1.private.blob.vercel-storage.com/listening-sessions/s1/a.webm", None, false),
            ("https://store1.private.blob.vercel-storage.com/listening-sessions/s2/a.webm", None, false),
            ("https://store1.private.blob.vercel-storage.com/listening-sessions/s1/", None, false),
            ("https://store1.private.blob.vercel-storage.com/listening-sessions/s1/x/a.webm", None, false),
            ("https://store1.private.blob.vercel-storage.com/listening-sessions/s1%2F..%2Fs2/a.webm", None, false),
            ("https://store1.private.blob.vercel-storage.com/other/s1/a.webm", None, false),
            ("http://127.0.0.1:9000/listening-sessions/s1/a.webm", Some(local), true),
            ("http://127.0.0.1:9000/listening-sessions/s1/a.webm", None, false),
            ("http://127.0.0.1:9001/listening-sessions/s1/a.webm", Some(local), false),
            ("not a url", Some(local), false),
        ];
        for (raw, local, ok) in table {
            let got = blob_url_for_session(raw, local.unwrap_or(vercel), "s1");
            assert_eq!(got.is_ok(), ok, "{raw}");
            if let Err(e) = got {
                assert_eq!(e.code(), "invalid_blob_url", "{raw}");
            }
        }
        // Every query spelling of one blob is that blob; a fragment is refused.
        for q in ["?v=1", "?download=1", "?", "?a=b&c=d"] {
            let raw = format!("https://store1.private.blob.vercel-storage.com/listening-sessions/s1/a.webm{q}");
            let got = blob_url_for_session(&raw, vercel, "s1").map(String::from).map_err(|e| e.code());
            assert_eq!(
                got.as_deref(),
                Ok("https://store1.private.blob.vercel-storage.com/listening-sessions/s1/a.webm")
            );
        }
        let frag = "https://store1.private.blob.vercel-storage.com/listening-sessions/s1/a.webm#x";
        assert!(blob_url_for_session(frag, vercel, "s1").is_err());
    }
}
