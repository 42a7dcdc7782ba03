//! Presigned uploads, the pure parts: what `presign()` from `@vercel/blob` 2.8 builds from a signed
//! token (`POST {api}/signed-token`), so that the unmodified `uploadPresigned()` in the browser can
//! PUT (or run a multipart upload) with no credential of its own. See docs/presigned-uploads.md.
//!
//! A signed token is a `delegationToken` (the scope Blob signed: store, pathname, operations, expiry,
//! size and type limits) and a `clientSigningToken`, the key this server signs each URL's canonical
//! string with. The key never leaves the server; the browser gets the delegation, the signature and
//! the signed parameters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

/// `POST {api}/signed-token`'s answer.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedToken {
    pub delegation_token: String,
    pub client_signing_token: String,
}

impl std::fmt::Debug for SignedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedToken(..)")
    }
}

/// The completion callback a presigned upload carries (Blob posts `blob.upload-completed` there).
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub url: String,
    pub token_payload: String,
}

/// What one presigned `put` allows: the same limits a client token carries.
#[derive(Debug, Clone, PartialEq)]
pub struct PutGrant {
    /// Set by `check_scope` when Blob's delegation outlives what the route asked for: the URL then
    /// carries its own, earlier expiry (`vercel-blob-valid-until`), as `presign()` adds it.
    pub valid_until_ms: Option<u64>,
    pub pathname: String,
    pub allowed_content_types: Vec<String>,
    pub maximum_size_in_bytes: u64,
    pub add_random_suffix: bool,
    pub allow_overwrite: bool,
    pub callback: Option<Callback>,
}

// The query parameters the signature covers (`PRESIGN_CANONICAL_QUERY_KEYS` in the SDK).
const ALLOWED_CONTENT_TYPES: &str = "vercel-blob-allowed-content-types";
const MAXIMUM_SIZE: &str = "vercel-blob-maximum-size-in-bytes";
const ADD_RANDOM_SUFFIX: &str = "vercel-blob-add-random-suffix";
const ALLOW_OVERWRITE: &str = "vercel-blob-allow-overwrite";
const CALLBACK_URL: &str = "vercel-blob-callback-url";
const CALLBACK_TOKEN_PAYLOAD: &str = "vercel-blob-callback-token-payload";
const VALID_UNTIL: &str = "vercel-blob-valid-until";

/// The longest callback URL and token payload `presign` signs (the SDK refuses longer ones).
pub const MAX_CALLBACK_URL_CHARS: usize = 4096;
pub const MAX_TOKEN_PAYLOAD_CHARS: usize = 8192;

/// The body of `POST {api}/signed-token` for `grant`: a delegation for `put` of exactly this
/// pathname, with the type and size limits, until `valid_until_ms`.
pub fn signed_token_request(grant: &PutGrant, valid_until_ms: u64) -> Value {
    json!({
        "pathname": grant.pathname,
        "operations": ["put"],
        "validUntil": valid_until_ms,
        "maximumSizeInBytes": grant.maximum_size_in_bytes,
        "allowedContentTypes": grant.allowed_content_types,
    })
}

/// The signed query parameters of a `put`, in the SDK's order (`buildPresignCanonicalQueryEntries`).
/// No `vercel-blob-valid-until`: the URL lives as long as its delegation, which the route asked for.
pub fn put_params(grant: &PutGrant) -> Vec<(&'static str, String)> {
    let mut types = grant.allowed_content_types.clone();
    types.sort();
    let flag = |on: bool| if on { "true" } else { "false" }.to_string();
    let mut params = Vec::new();
    if let Some(until) = grant.valid_until_ms {
        params.push((VALID_UNTIL, until.to_string()));
    }
    params.extend([
        (ALLOWED_CONTENT_TYPES, types.join(",")),
        (MAXIMUM_SIZE, grant.maximum_size_in_bytes.to_string()),
        (ADD_RANDOM_SUFFIX, flag(grant.add_random_suffix)),
        (ALLOW_OVERWRITE, flag(grant.allow_overwrite)),
    ]);
    if let Some(callback) = &grant.callback {
        params.push((CALLBACK_URL, callback.url.clone()));
        if !callback.token_payload.is_empty() {
            params.push((CALLBACK_TOKEN_PAYLOAD, callback.token_payload.clone()));
        }
    }
    params
}

/// The string the signature covers: `operation=…`, `pathname=…` (as is, not URL-encoded) and each
/// non-empty parameter as `key=value`, sorted by UTF-8 bytes, joined by newlines.
pub fn canonical_string(operation: &str, pathname: &str, params: &[(&str, String)]) -> String {
    let mut lines = vec![format!("operation={operation}"), format!("pathname={pathname}")];
    lines.extend(params.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={v}")));
    // `str`'s order is its UTF-8 bytes' order.
    lines.sort();
    lines.join("\n")
}

/// Unpadded base64url HMAC-SHA256 of `canonical`, keyed by the client signing token's UTF-8 bytes.
pub fn sign(client_signing_token: &str, canonical: &str) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(client_signing_token.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether the grant can be signed as the SDK would sign it; `Err` names what. A type list is sent
/// comma-joined, so a type holding a comma would widen it.
pub fn check(grant: &PutGrant) -> Result<(), &'static str> {
    if grant.allowed_content_types.iter().any(|t| t.contains(',')) {
        return Err("a content type holds a comma");
    }
    match &grant.callback {
        Some(c) if c.url.chars().count() > MAX_CALLBACK_URL_CHARS => Err("the callback URL is over 4096 characters"),
        Some(c) if c.token_payload.chars().count() > MAX_TOKEN_PAYLOAD_CHARS => {
            Err("the token payload is over 8192 characters")
        }
        _ => Ok(()),
    }
}

/// The scope Blob signed (the delegation's first segment, base64url JSON), as `presign()` reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Scope {
    #[serde(default)]
    pathname: Option<String>,
    #[serde(default)]
    operations: Vec<String>,
    valid_until: u64,
    #[serde(default)]
    maximum_size_in_bytes: Option<u64>,
}

/// The delegation Blob returned must be what the route asked for: this pathname, `put`, no more
/// bytes than granted, not expired; and a signing key to sign with. A delegation that outlives the
/// route's expiry gets the earlier expiry on the URL itself. `Err` names what was wrong.
pub fn check_scope(token: &SignedToken, grant: &mut PutGrant, valid_until_ms: u64, now_ms: u64) -> Result<(), String> {
    if token.client_signing_token.is_empty() {
        return Err("the signed token has no clientSigningToken".into());
    }
    let payload = token.delegation_token.split('.').next().unwrap_or_default();
    let scope: Scope = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("the delegation token's scope does not decode")?;
    if scope.pathname.as_deref() != Some(grant.pathname.as_str()) {
        return Err("the delegation is for another pathname".into());
    }
    if !scope.operations.iter().any(|op| op == "put") {
        return Err("the delegation does not allow put".into());
    }
    if scope.maximum_size_in_bytes.is_none_or(|max| max > grant.maximum_size_in_bytes) {
        return Err("the delegation allows more bytes than granted".into());
    }
    if scope.valid_until <= now_ms {
        return Err("the delegation has expired".into());
    }
    grant.valid_until_ms = (scope.valid_until > valid_until_ms).then_some(valid_until_ms);
    Ok(())
}

/// `presignedUrlPayload` for a `put` under `token`: what `handleUploadPresigned` answers.
pub fn presign_put(token: &SignedToken, grant: &PutGrant) -> Value {
    let params = put_params(grant);
    let signature = sign(&token.client_signing_token, &canonical_string("put", &grant.pathname, &params));
    let params: serde_json::Map<String, Value> = params.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    json!({ "delegationToken": token.delegation_token, "signature": signature, "params": params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> PutGrant {
        PutGrant {
            valid_until_ms: None,
            pathname: "listening-sessions/s1/recording.webm".into(),
            allowed_content_types: vec!["audio/webm;codecs=opus".into(), "audio/webm".into()],
            maximum_size_in_bytes: 1_048_576,
            add_random_suffix: true,
            allow_overwrite: false,
            callback: Some(Callback {
                url: "https://app.example/api/listening-sessions/s1/audio".into(),
                token_payload: r#"{"sessionId":"s1"}"#.into(),
            }),
        }
    }

    /// The vector is `presignUrl()` from `@vercel/blob` 2.8.0 given this grant and a signed token
    /// whose client signing token is `client-signing-key` (docs/presigned-uploads.md shows how).
    #[test]
    fn signs_as_the_sdk_signs() {
        let token =
            SignedToken { delegation_token: "scope.sig".into(), client_signing_token: "client-signing-key".into() };
        let payload = presign_put(&token, &grant());
        assert_eq!(payload["signature"], "NRuMWf-SDl3GKkE21tDIcIhYSnpsAHcFVoVzcPy-ZAU");
        assert_eq!(payload["delegationToken"], "scope.sig");
        assert_eq!(payload["params"][ALLOWED_CONTENT_TYPES], "audio/webm,audio/webm;codecs=opus");
        assert_eq!(payload["params"][MAXIMUM_SIZE], "1048576");
        assert_eq!(payload["params"][ADD_RANDOM_SUFFIX], "true");
        assert_eq!(payload["params"][ALLOW_OVERWRITE], "false");
        assert_eq!(payload["params"][CALLBACK_TOKEN_PAYLOAD], r#"{"sessionId":"s1"}"#);
        // The signature covers every parameter: change one and it changes.
        let mut wider = grant();
        wider.maximum_size_in_bytes += 1;
        assert_ne!(presign_put(&token, &wider)["signature"], payload["signature"]);
    }

    #[test]
    fn canonical_string_table() {
        let params = [(MAXIMUM_SIZE, "5".to_string()), (CALLBACK_TOKEN_PAYLOAD, String::new())];
        assert_eq!(
            canonical_string("put", "a/b c.webm", &params),
            "operation=put\npathname=a/b c.webm\nvercel-blob-maximum-size-in-bytes=5"
        );
        // Sorted by UTF-8 bytes, as the SDK's compareUtf8 sorts: "vercel-blob-Z…" (upper case)
        // before "vercel-blob-a…", and a multi-byte character after every ASCII one.
        let params = [
            ("vercel-blob-a", "1".to_string()),
            ("vercel-blob-Z", "2".to_string()),
            ("vercel-blob-é", "3".to_string()),
        ];
        assert_eq!(
            canonical_string("put", "p", &params),
            "operation=put\npathname=p\nvercel-blob-Z=2\nvercel-blob-a=1\nvercel-blob-é=3"
        );
    }

    #[test]
    fn without_a_callback_nothing_about_it_is_signed() {
        let mut g = grant();
        g.callback = None;
        let keys: Vec<_> = put_params(&g).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [ALLOWED_CONTENT_TYPES, MAXIMUM_SIZE, ADD_RANDOM_SUFFIX, ALLOW_OVERWRITE]);
        g.callback = Some(Callback { url: "https://x".into(), token_payload: String::new() });
        assert!(!put_params(&g).iter().any(|(k, _)| *k == CALLBACK_TOKEN_PAYLOAD));
    }

    #[test]
    fn length_limits() {
        let mut g = grant();
        assert_eq!(check(&g), Ok(()));
        g.callback = Some(Callback { url: "x".repeat(4097), token_payload: String::new() });
        assert!(check(&g).is_err());
        g.callback = Some(Callback { url: "x".into(), token_payload: "y".repeat(8193) });
        assert!(check(&g).is_err());
    }

    #[test]
    fn the_signed_token_request_is_scoped_to_one_pathname_and_put() {
        let body = signed_token_request(&grant(), 42);
        assert_eq!(body["pathname"], "listening-sessions/s1/recording.webm");
        assert_eq!(body["operations"], json!(["put"]));
        assert_eq!(body["validUntil"], 42);
        assert_eq!(body["maximumSizeInBytes"], 1_048_576);
    }

    fn delegation(scope: serde_json::Value) -> SignedToken {
        let payload = URL_SAFE_NO_PAD.encode(scope.to_string());
        SignedToken { delegation_token: format!("{payload}.sig"), client_signing_token: "key".into() }
    }

    #[test]
    fn the_delegation_must_be_what_was_asked_for() {
        let path = "listening-sessions/s1/recording.webm";
        let ok = json!({"pathname": path, "operations": ["put"], "validUntil": 2000, "maximumSizeInBytes": 1_048_576});
        let with = |patch: serde_json::Value| {
            let mut scope = ok.clone();
            for (k, v) in patch.as_object().unwrap() {
                scope[k] = v.clone();
            }
            scope
        };
        let table = [
            ("as asked", ok.clone(), Ok(None)),
            ("a smaller size", with(json!({"maximumSizeInBytes": 10})), Ok(None)),
            ("outlives the grant: the URL gets its own expiry", with(json!({"validUntil": 5000})), Ok(Some(2000))),
            ("the whole store", with(json!({"pathname": "*"})), Err(())),
            ("another pathname", with(json!({"pathname": "listening-sessions/s2/x.webm"})), Err(())),
            ("get only", with(json!({"operations": ["get"]})), Err(())),
            ("more bytes", with(json!({"maximumSizeInBytes": 1_048_577})), Err(())),
            ("no size limit", with(json!({"maximumSizeInBytes": null})), Err(())),
            ("expired", with(json!({"validUntil": 1000})), Err(())),
        ];
        for (name, scope, want) in table {
            let mut g = grant();
            let got = check_scope(&delegation(scope), &mut g, 2000, 1000).map(|()| g.valid_until_ms).map_err(|_| ());
            assert_eq!(got, want, "{name}");
        }
        let mut g = grant();
        let mut bad = delegation(ok.clone());
        bad.delegation_token = "not-base64!.sig".into();
        assert!(check_scope(&bad, &mut g, 2000, 1000).is_err());
        let mut keyless = delegation(ok);
        keyless.client_signing_token.clear();
        assert!(check_scope(&keyless, &mut g, 2000, 1000).is_err());
        // The earlier expiry is signed and sent.
        g.valid_until_ms = Some(2000);
        assert_eq!(put_params(&g)[0], (VALID_UNTIL, "2000".to_string()));
    }

    #[test]
    fn a_comma_in_a_type_is_refused() {
        let mut g = grant();
        g.allowed_content_types.push("audio/webm;x=a,text/html".into());
        assert!(check(&g).is_err());
    }

    #[test]
    fn the_signing_key_is_never_printed() {
        let token = SignedToken { delegation_token: "d".into(), client_signing_token: "secret".into() };
        assert!(!format!("{token:?}").contains("secret"));
    }
}
