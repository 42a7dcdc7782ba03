//! Who signed a `blob.upload-completed` webhook. Blob signs it two ways, by how the upload was
//! authorised:
//! - a client token's upload (`handleUpload`): hex HMAC-SHA256 of the body, keyed by the store's
//!   read-write token (64 hex characters);
//! - a presigned upload (`handleUploadPresigned`): Ed25519 over the body's bytes, checked with the
//!   store's webhook public key, `BLOB_WEBHOOK_PUBLIC_KEY` (exactly 128 hex characters).
//!
//! The length tells which was meant; each is checked only with its own key, so a deployment without
//! a read-write token (OIDC only) refuses every HMAC-style signature.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::{Error, Result};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) } around the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// `BLOB_WEBHOOK_PUBLIC_KEY`, parsed once.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookKey([u8; 32]);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(ed25519)")
    }
}

impl WebhookKey {
    /// An Ed25519 public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as Vercel gives it.
    /// Dashboards often keep multi-line values with literal `\n`: those count as line breaks.
    pub fn parse_pem(pem: &str) -> std::result::Result<WebhookKey, &'static str> {
        let pem = pem.replace("\\n", "\n");
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|rest| rest.trim_end().strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or("not a PEM public key (-----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----)")?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(b64).map_err(|_| "the PEM body is not base64")?;
        let key = der.strip_prefix(&ED25519_SPKI_PREFIX[..]).ok_or("not an Ed25519 public key")?;
        Ok(WebhookKey(key.try_into().map_err(|_| "not an Ed25519 public key")?))
    }

    /// Whether `signature` (128 hex characters) is this key's Ed25519 signature of `body`.
    pub fn verifies(&self, body: &[u8], signature: &str) -> bool {
        let Some(sig) = ed25519_hex(signature) else { return false };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.0).verify(body, &sig).is_ok()
    }
}

/// The 64 signature bytes of a 128-character hex string (either case), else `None`.
fn ed25519_hex(signature: &str) -> Option<Vec<u8>> {
    let s = signature.trim();
    (s.len() == 128).then(|| hex::decode(s).ok()).flatten()
}

/// The keys a deployment checks webhooks with.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    /// The store's read-write token, if the deployment has one (client-token uploads).
    pub read_write: Option<&'a str>,
    /// `BLOB_WEBHOOK_PUBLIC_KEY` (presigned uploads).
    pub public: Option<&'a WebhookKey>,
}

/// Which way the webhook was signed: `Ok` when that way's key verifies the body as received, else
/// `401 invalid_signature`.
pub fn verify(keys: Keys<'_>, body: &[u8], signature: Option<&str>) -> Result<()> {
    let Some(signature) = signature else { return Err(Error::InvalidSignature) };
    let ok = if signature.trim().len() == 128 {
        keys.public.is_some_and(|key| key.verifies(body, signature))
    } else {
        keys.read_write.is_some_and(|rw| crate::upload::client_upload::signature_ok(rw, body, Some(signature)))
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    /// Made with Node's crypto: an Ed25519 key from the seed [7; 32], and its signature of `BODY`.
    const PEM: &str =
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n";
    const BODY: &str = r#"{"type":"blob.upload-completed","payload":{"blob":{"url":"u"},"tokenPayload":null}}"#;
    const SIG: &str = "62df90101cdcbd0cd3dd007d5d43df83d2abb9a242f7a45a6ea7f7ee66f8b92d73c4948a51304454c563ab30d3bed6242c87766af9b9212864ec424b64b4df0d";
    const RW: &str = "vercel_blob_rw_store1_secret";

    fn hmac_hex(key: &str, body: &[u8]) -> String {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn pem_table() {
        assert!(WebhookKey::parse_pem(PEM).is_ok());
        assert!(WebhookKey::parse_pem(&PEM.replace('\n', "\\n")).is_ok(), "literal \\n as a dashboard keeps it");
        assert!(WebhookKey::parse_pem(&format!("  {PEM}  ")).is_ok());
        let bad = [
            "",
            "MCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=",
            "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----",
            // An RSA key's SPKI (truncated): the wrong algorithm.
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
            // The Ed25519 prefix with a short key.
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kps\n-----END PUBLIC KEY-----",
        ];
        for pem in bad {
            assert!(WebhookKey::parse_pem(pem).is_err(), "{pem}");
        }
        assert!(!format!("{:?}", WebhookKey::parse_pem(PEM).unwrap()).contains("6kps"));
    }

    #[test]
    fn verify_table() {
        let key = WebhookKey::parse_pem(PEM).unwrap();
        let body = BODY.as_bytes();
        let hmac = hmac_hex(RW, body);
        let both = Keys { read_write: Some(RW), public: Some(&key) };
        let oidc_only = Keys { read_write: None, public: Some(&key) };
        let rw_only = Keys { read_write: Some(RW), public: None };
        let spaced = BODY.replace(':', ": ");
        let mut flipped = SIG.to_string();
        flipped.replace_range(0..2, "63");
        // (case, keys, body, signature, verifies)
        type Case<'a> = (&'a str, Keys<'a>, &'a [u8], Option<&'a str>, bool);
        let table: &[Case] = &[
            ("ed25519", oidc_only, body, Some(SIG), true),
            ("ed25519, upper-case hex", oidc_only, body, Some(&SIG.to_uppercase()), true),
            ("ed25519 with both keys", both, body, Some(SIG), true),
            ("hmac with a read-write token", rw_only, body, Some(&hmac), true),
            ("hmac with both keys", both, body, Some(&hmac), true),
            ("hmac on an OIDC-only deployment", oidc_only, body, Some(&hmac), false),
            ("ed25519 without the public key", rw_only, body, Some(SIG), false),
            ("a flipped signature byte", oidc_only, body, Some(&flipped), false),
            ("another body", oidc_only, b"{}", Some(SIG), false),
            ("a body re-serialised with a space", oidc_only, spaced.as_bytes(), Some(SIG), false),
            // Never checked as Ed25519 (not 128), nor verified as an HMAC (not the HMAC's value).
            ("127 hex characters", both, body, Some(&SIG[1..]), false),
            ("128 characters, not hex", oidc_only, body, Some(&"zz".repeat(64)), false),
            ("no signature", both, body, None, false),
            ("empty", both, body, Some(""), false),
        ];
        for (name, keys, body, sig, ok) in table {
            let got = verify(*keys, body, *sig);
            assert_eq!(got.is_ok(), *ok, "{name}");
            if let Err(e) = got {
                assert_eq!(e.code(), "invalid_signature", "{name}");
                assert_eq!(e.status(), 401, "{name}");
            }
        }
    }
}
