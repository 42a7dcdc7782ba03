//! The route's signature over the attach mutation's arguments. `attachAudio` is a public Convex
//! mutation, so any signed-in user could call it with arguments of their choosing; the template
//! accepts only arguments this route signed (HMAC-SHA256 under `SESSION_AUDIO_CONVEX_SECRET`, the
//! same value set in the Convex deployment), so only what passed the route's checks (entitlements,
//! limits, sniffing, measurement) can move a session out of `recording`.
//!
//! The signed message is a versioned string in which every field is length-prefixed, so no value
//! can spill into its neighbour and no field can be swapped for another: see [`AttachArgs::message`].
//! `examples/convex/listeningSessions.ts` builds the same bytes; both sides check the known-answer
//! vectors in `__test__/fixtures/attach-signature.json`. The secret itself never leaves the
//! route: only `expiresAt` and `signature` are added to the arguments.

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The first line of every signed message; a new encoding gets a new version.
pub const VERSION: &str = "session-audio:attachAudio:v1";
/// How long a signature is good for. The route signs just before it calls the mutation, so this
/// only has to cover the call itself and some clock skew between Vercel and Convex.
pub const TTL: Duration = Duration::from_secs(5 * 60);
/// A shorter secret is refused at configuration: it could be guessed.
pub const MIN_SECRET_BYTES: usize = 32;
pub const ENV: &str = "SESSION_AUDIO_CONVEX_SECRET";

/// The shared secret. Its `Debug` never shows the value, so a logged `Config` cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct AttachSecret(String);

impl fmt::Debug for AttachSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttachSecret([redacted])")
    }
}

impl AttachSecret {
    /// The configured value, or the 503 that says what to fix (without quoting the value).
    pub fn parse(raw: &str) -> Result<AttachSecret> {
        if raw.len() < MIN_SECRET_BYTES {
            return Err(Error::ConfigInvalid(format!(
                "{ENV} is too short: use at least {MIN_SECRET_BYTES} random characters (e.g. `openssl rand -hex 32`)"
            )));
        }
        Ok(AttachSecret(raw.to_string()))
    }
}

/// The secret an upload route needs, or `503 config_missing` naming it. GET never asks.
pub fn require(secret: Option<&AttachSecret>) -> Result<&AttachSecret> {
    secret.ok_or_else(|| {
        Error::ConfigMissing(format!(
            "{ENV} is not set (the route signs attachAudio's arguments with it; set the same value in the \
             Convex deployment with `npx convex env set {ENV} …`)"
        ))
    })
}

/// What `attachAudio` receives, before `expiresAt` and `signature` are added.
#[derive(Debug, Clone, Copy)]
pub struct AttachArgs<'a> {
    pub session_id: &'a str,
    pub audio_url: &'a str,
    pub pathname: &'a str,
    pub content_type: &'a str,
    pub size_bytes: u64,
    pub duration_ms: u64,
}

impl AttachArgs<'_> {
    /// The exact bytes signed: `VERSION`, then per field, in this order, a line
    /// `\n{name}={UTF-8 byte length}:{value}`; numbers in plain decimal.
    pub fn message(&self, expires_at: u64) -> String {
        let fields: [(&str, &str); 4] = [
            ("sessionId", self.session_id),
            ("audioUrl", self.audio_url),
            ("pathname", self.pathname),
            ("contentType", self.content_type),
        ];
        let numbers = [("sizeBytes", self.size_bytes), ("durationMs", self.duration_ms), ("expiresAt", expires_at)];
        let mut out = String::from(VERSION);
        let mut push = |name: &str, value: &str| {
            out.push('\n');
            out.push_str(name);
            out.push('=');
            out.push_str(&value.len().to_string());
            out.push(':');
            out.push_str(value);
        };
        for (name, value) in fields {
            push(name, value);
        }
        for (name, value) in numbers {
            push(name, &value.to_string());
        }
        out
    }

    /// Lowercase hex HMAC-SHA256 of [`Self::message`].
    pub fn signature(&self, secret: &AttachSecret, expires_at: u64) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.0.as_bytes()) else {
            unreachable!("HMAC accepts keys of any length")
        };
        mac.update(self.message(expires_at).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The mutation's arguments, signed, good until `now_ms + TTL`.
    pub fn signed(&self, secret: &AttachSecret, now_ms: u64) -> Value {
        let expires_at = now_ms.saturating_add(TTL.as_millis() as u64);
        json!({
            "sessionId": self.session_id,
            "audioUrl": self.audio_url,
            "pathname": self.pathname,
            "contentType": self.content_type,
            "sizeBytes": self.size_bytes,
            "durationMs": self.duration_ms,
            "expiresAt": expires_at,
            "signature": self.signature(secret, expires_at),
        })
    }

    /// [`Self::signed`] at the current time.
    pub fn signed_now(&self, secret: &AttachSecret) -> Value {
        self.signed(secret, crate::support::clock::now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared with the TypeScript side (`__test__/convex-compat.spec.ts`), so both encode alike.
    const VECTORS: &str = include_str!("../../../../__test__/fixtures/attach-signature.json");

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn args() -> AttachArgs<'static> {
        AttachArgs {
            session_id: "s1",
            audio_url: "https://abc.private.blob.vercel-storage.com/listening-sessions/s1/a.webm",
            pathname: "listening-sessions/s1/a.webm",
            content_type: "audio/webm",
            size_bytes: 1000,
            duration_ms: 5000,
        }
    }

    fn secret() -> AttachSecret {
        AttachSecret::parse(SECRET).unwrap()
    }

    #[test]
    fn known_answer_vectors() {
        let file: Value = serde_json::from_str(VECTORS).unwrap();
        let secret = AttachSecret::parse(file["secret"].as_str().unwrap()).unwrap();
        let vectors = file["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 2);
        for v in vectors {
            let a = &v["args"];
            let s = |k: &str| a[k].as_str().unwrap();
            let n = |k: &str| a[k].as_u64().unwrap();
            let args = AttachArgs {
                session_id: s("sessionId"),
                audio_url: s("audioUrl"),
                pathname: s("pathname"),
                content_type: s("contentType"),
                size_bytes: n("sizeBytes"),
                duration_ms: n("durationMs"),
            };
            assert_eq!(args.message(n("expiresAt")), v["message"].as_str().unwrap());
            assert_eq!(args.signature(&secret, n("expiresAt")), v["signature"].as_str().unwrap());
        }
    }

    #[test]
    fn every_field_changes_the_signature() {
        let base = args();
        let sig = |a: AttachArgs, exp: u64| a.signature(&secret(), exp);
        let reference = sig(base, 10);
        let variants: Vec<(&str, AttachArgs, u64)> = vec![
            ("sessionId", AttachArgs { session_id: "s2", ..base }, 10),
            ("audioUrl", AttachArgs { audio_url: "https://evil.example/listening-sessions/s1/a.webm", ..base }, 10),
            ("pathname", AttachArgs { pathname: "listening-sessions/s1/b.webm", ..base }, 10),
            ("contentType", AttachArgs { content_type: "text/html", ..base }, 10),
            ("sizeBytes", AttachArgs { size_bytes: 1001, ..base }, 10),
            ("durationMs", AttachArgs { duration_ms: 1, ..base }, 10),
            ("expiresAt", base, 11),
        ];
        for (field, a, exp) in variants {
            assert_ne!(sig(a, exp), reference, "{field}");
        }
        let other = AttachSecret::parse("another secret, also 32 bytes or more").unwrap();
        assert_ne!(base.signature(&other, 10), reference, "secret");
    }

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        // Moving characters from one field to the next keeps the concatenation but not the message.
        let a = AttachArgs { pathname: "ab", content_type: "c", ..args() };
        let b = AttachArgs { pathname: "a", content_type: "bc", ..args() };
        assert_ne!(a.message(1), b.message(1));
        // A value that looks like the next field's line is still one value (its length says so).
        let forged = AttachArgs { content_type: "audio/webm\nsizeBytes=1:9", ..args() };
        assert!(forged.message(1).contains("contentType=24:audio/webm\nsizeBytes=1:9\nsizeBytes=4:1000"));
    }

    #[test]
    fn signed_adds_only_expiry_and_signature() {
        let v = args().signed(&secret(), 1_000);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["audioUrl", "contentType", "durationMs", "expiresAt", "pathname", "sessionId", "signature", "sizeBytes"]
        );
        assert_eq!(v["expiresAt"], 1_000 + 300_000);
        assert_eq!(v["signature"], args().signature(&secret(), 301_000));
        assert!(!v.to_string().contains(SECRET));
        // Near the end of time the expiry saturates instead of wrapping into the past.
        assert_eq!(args().signed(&secret(), u64::MAX)["expiresAt"], u64::MAX);
    }

    #[test]
    fn secret_rules() {
        let table: &[(&str, Option<&str>)] = &[
            ("", Some("config_invalid")),
            ("short", Some("config_invalid")),
            ("0123456789abcdef0123456789abcde", Some("config_invalid")), // 31 bytes
            ("0123456789abcdef0123456789abcdef", None),
        ];
        for (raw, want) in table {
            let got = AttachSecret::parse(raw).err().map(|e| e.code());
            assert_eq!(got, *want, "{raw:?}");
        }
        let err = AttachSecret::parse("too-short-secret-value").unwrap_err().to_string();
        assert!(!err.contains("too-short-secret-value"), "{err}");
        assert_eq!(format!("{:?}", secret()), "AttachSecret([redacted])");
        let missing = require(None).unwrap_err();
        assert_eq!((missing.status(), missing.code()), (503, "config_missing"));
        assert!(missing.to_string().contains(ENV));
        assert!(require(Some(&secret())).is_ok());
    }
}
