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
    let mut params = vec![
        (ALLOWED_CONTENT_TYPES, types.join(",")),
        (MAXIMUM_SIZE, grant.maximum_size_in_bytes.to_string()),
        (ADD_RANDOM_SUFFIX, flag(grant.add_random_suffix)),
        (ALLOW_OVERWRITE, flag(grant.allow_overwrite)),
    ];
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

/// Whether the grant can be signed as the SDK would sign it (its length limits); `Err` names what.
pub fn check(grant: &PutGrant) -> Result<(), &'static str> {
    match &grant.callback {
        Some(c) if c.url.chars().count() > MAX_CALLBACK_URL_CHARS => Err("the callback URL is over 4096 characters"),
        Some(c) if c.token_payload.chars().count() > MAX_TOKEN_PAYLOAD_CHARS => {
            Err("the token payload is over 8192 characters")
        }
        _ => Ok(()),
    }
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
        // Sorted by bytes: upper case before lower case, as the SDK's compareUtf8 sorts.
        assert_eq!(canonical_string("put", "Z", &[]), "operation=put\npathname=Z");
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

    #[test]
    fn the_signing_key_is_never_printed() {
        let token = SignedToken { delegation_token: "d".into(), client_signing_token: "secret".into() };
        assert!(!format!("{token:?}").contains("secret"));
    }
}
