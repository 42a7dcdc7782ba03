//! Clerk session JWTs as plain data: split, decode, check the header, verify the RSA signature,
//! check the claims, and parse keys (PEM and JWKS). No I/O and no caches: `auth` decides where the
//! token and the keys come from; `clerk` fetches the JWKS. Everything here is table-tested.
//!
//! The rules are `@clerk/backend`'s `verifyToken` (docs/protocols.md §C.1, §C.2): signature *before*
//! claims, then `exp`/`nbf`/`iat` with 5 s of skew and `azp` when authorized parties are configured.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::{BigUint, RsaPublicKey};
use serde::Deserialize;
use sha2::{Sha256, Sha384, Sha512};

use crate::error::AuthFailure;

/// `cat` header values (`@clerk/backend` `jwtCategories.ts`).
pub(crate) const CAT_SESSION: &str = "cl_B7d4PD111AAA";
pub(crate) const CAT_TEMPLATE: &str = "cl_B7d4PD222AAA";
pub(crate) const CAT_M2M: &str = "cl_B7d4PD333AAA";

/// Allowed clock skew, as `@clerk/backend`'s default `clockSkewInMs`.
pub const CLOCK_SKEW_SECS: i64 = 5;

/// Who is calling, once the token has verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub session_id: String,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    cat: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub azp: Option<String>,
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub iat: Option<f64>,
    /// Session status, `active` or `pending` (version 2 tokens). Any JSON value: `@clerk/backend`
    /// only ever compares it with `"pending"`, so nothing else about it refuses a token.
    pub sts: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
}

/// A token split and decoded, not yet trusted.
#[derive(Debug)]
pub struct Parsed {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Claims,
    signing_input: String,
    signature: Vec<u8>,
}

/// Split, decode and check the header. No key is needed for anything refused here.
pub fn parse(token: &str) -> Result<Parsed, AuthFailure> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthFailure::Invalid);
    };
    let header: Header = decode_json(h)?;
    match header.cat.as_deref() {
        None | Some(CAT_SESSION) => {}
        // `@clerk/backend` refuses template and machine tokens presented as session tokens.
        Some(CAT_TEMPLATE) | Some(CAT_M2M) => return Err(AuthFailure::TypeMismatch),
        Some(_) => {}
    }
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(AuthFailure::Invalid);
    }
    let alg = match header.alg.as_deref() {
        Some("RS256") => Alg::Rs256,
        Some("RS384") => Alg::Rs384,
        Some("RS512") => Alg::Rs512,
        _ => return Err(AuthFailure::InvalidAlgorithm),
    };
    let claims: Claims = decode_json(p)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| AuthFailure::Invalid)?;
    Ok(Parsed { alg, kid: header.kid, claims, signing_input: format!("{h}.{p}"), signature })
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthFailure> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthFailure::Invalid)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthFailure::Invalid)
}

/// RSASSA-PKCS1-v1_5 with the hash the header names.
pub fn verify_signature(parsed: &Parsed, key: &RsaPublicKey) -> Result<(), AuthFailure> {
    let sig = Signature::try_from(parsed.signature.as_slice()).map_err(|_| AuthFailure::InvalidSignature)?;
    let msg = parsed.signing_input.as_bytes();
    let ok = match parsed.alg {
        Alg::Rs256 => VerifyingKey::<Sha256>::new(key.clone()).verify(msg, &sig).is_ok(),
        Alg::Rs384 => VerifyingKey::<Sha384>::new(key.clone()).verify(msg, &sig).is_ok(),
        Alg::Rs512 => VerifyingKey::<Sha512>::new(key.clone()).verify(msg, &sig).is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthFailure::InvalidSignature)
    }
}

/// Claim checks, after the signature verified. `now` is seconds since the epoch.
pub fn check_claims(claims: &Claims, now: i64, authorized_parties: &[String]) -> Result<Caller, AuthFailure> {
    let sub = claims.sub.clone().filter(|s| !s.is_empty()).ok_or(AuthFailure::Invalid)?;
    let exp = claims.exp.ok_or(AuthFailure::Invalid)?;
    if (exp as i64) <= now - CLOCK_SKEW_SECS {
        return Err(AuthFailure::Expired);
    }
    if claims.nbf.is_some_and(|nbf| (nbf as i64) > now + CLOCK_SKEW_SECS) {
        return Err(AuthFailure::NotActiveYet);
    }
    if claims.iat.is_some_and(|iat| (iat as i64) > now + CLOCK_SKEW_SECS) {
        return Err(AuthFailure::IatInTheFuture);
    }
    if !authorized_parties.is_empty() {
        match &claims.azp {
            Some(azp) if authorized_parties.iter().any(|p| p == azp) => {}
            _ => return Err(AuthFailure::InvalidAuthorizedParty),
        }
    }
    // A session token without `sid` cannot be exchanged for a Convex token.
    let sid = claims.sid.clone().filter(|s| !s.is_empty()).ok_or(AuthFailure::SessionInactive)?;
    Ok(Caller { user_id: sub, session_id: sid })
}

/// A pending session (`sts: "pending"`: signed in, with tasks left such as choosing an organization)
/// counts as signed out unless pending sessions are accepted: `@clerk/backend`'s
/// `treatPendingAsSignedOut`, default true, applied after the token verified. Only the exact
/// string `"pending"` is pending; a missing or any other `sts` is an active session.
pub fn check_session_status(claims: &Claims, accept_pending: bool) -> Result<(), AuthFailure> {
    let pending = matches!(&claims.sts, Some(serde_json::Value::String(s)) if s == "pending");
    if pending && !accept_pending {
        Err(AuthFailure::SessionPending)
    } else {
        Ok(())
    }
}

/// SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`), any modulus size. Clerk's own loader
/// assumes RSA-2048 by stripping a fixed prefix; we parse the ASN.1 instead.
pub fn parse_public_key_pem(pem: &str) -> Result<RsaPublicKey, String> {
    let pem = pem.trim();
    RsaPublicKey::from_public_key_pem(pem).or_else(|_| RsaPublicKey::from_pkcs1_pem(pem)).map_err(|e| e.to_string())
}

#[derive(Debug, Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

fn jwk_to_key(jwk: &Jwk) -> Option<RsaPublicKey> {
    if jwk.kty != "RSA" {
        return None;
    }
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).or_else(|_| STANDARD.decode(s)).ok();
    let n = decode(jwk.n.as_deref()?)?;
    let e = decode(jwk.e.as_deref()?)?;
    RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).ok()
}

/// Parse a JWKS body into `kid → key`; keys we cannot use are skipped, not fatal.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, RsaPublicKey>, String> {
    let jwks: Jwks = serde_json::from_slice(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    Ok(jwks.keys.iter().filter_map(|k| Some((k.kid.clone().unwrap_or_default(), jwk_to_key(k)?))).collect())
}

/// Read `exp` from a token we do not verify ourselves (the Convex template token: Convex verifies
/// it). Used only to decide how long to cache it.
pub fn unverified_exp(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let claims: Claims = decode_json(payload).ok()?;
    claims.exp.map(|e| e as i64)
}

/// Keys and token builders for tests (here and in `auth`).
#[cfg(test)]
pub(crate) mod testkeys {
    use super::*;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    use rsa::RsaPrivateKey;
    use serde_json::json;

    pub const PRIV_2048: &str = include_str!("../../tests/keys/rsa2048.pem");
    pub const PUB_2048: &str = include_str!("../../tests/keys/rsa2048.pub.pem");
    pub const PRIV_4096: &str = include_str!("../../tests/keys/rsa4096.pem");
    pub const PUB_4096: &str = include_str!("../../tests/keys/rsa4096.pub.pem");
    pub const PUB_4096_PKCS1: &str = include_str!("../../tests/keys/rsa4096.pkcs1.pem");
    pub const NOW: i64 = 1_800_000_000;

    pub fn private(pem: &str) -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs8_pem(pem).or_else(|_| rsa::pkcs1::DecodeRsaPrivateKey::from_pkcs1_pem(pem)).unwrap()
    }

    pub fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    pub fn sign(header: serde_json::Value, claims: serde_json::Value, key_pem: &str) -> String {
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let key = private(key_pem);
        let sig = match header["alg"].as_str() {
            Some("RS384") => SigningKey::<Sha384>::new(key).sign(input.as_bytes()).to_vec(),
            Some("RS512") => SigningKey::<Sha512>::new(key).sign(input.as_bytes()).to_vec(),
            _ => SigningKey::<Sha256>::new(key).sign(input.as_bytes()).to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    pub fn h(alg: &str) -> serde_json::Value {
        json!({"alg": alg, "kid": "ins_1", "typ": "JWT", "cat": CAT_SESSION})
    }

    pub fn claims() -> serde_json::Value {
        json!({"sub": "user_1", "sid": "sess_1", "azp": "https://app.example", "exp": NOW + 60, "iat": NOW - 1, "nbf": NOW - 6})
    }

    pub fn with(mut base: serde_json::Value, patch: serde_json::Value) -> serde_json::Value {
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use super::testkeys::*;
    use super::*;
    use serde_json::json;

    fn check(token: &str, key: &RsaPublicKey, parties: &[String]) -> Result<Caller, AuthFailure> {
        let p = parse(token)?;
        verify_signature(&p, key)?;
        check_claims(&p.claims, NOW, parties)
    }

    #[test]
    fn token_table() {
        let key = parse_public_key_pem(PUB_2048).unwrap();
        let parties = vec!["https://app.example".to_string()];
        let unsigned_none = format!("{}.{}.", b64(&with(h("RS256"), json!({"alg": "none"}))), b64(&claims()));
        // HS256 "signed" with the public key as the HMAC secret: the classic key-confusion attack.
        let hs256 = {
            let header = b64(&with(h("RS256"), json!({"alg": "HS256"})));
            format!("{header}.{}.{}", b64(&claims()), URL_SAFE_NO_PAD.encode([0u8; 32]))
        };
        let good = sign(h("RS256"), claims(), PRIV_2048);
        let mut tampered = good.clone();
        tampered.replace_range(tampered.len() - 6.., "AAAAAA");
        let other_key = sign(h("RS256"), claims(), PRIV_4096);

        let table: Vec<(&str, String, Result<(), AuthFailure>)> = vec![
            ("valid RS256", good.clone(), Ok(())),
            ("valid RS384", sign(h("RS384"), claims(), PRIV_2048), Ok(())),
            ("valid RS512", sign(h("RS512"), claims(), PRIV_2048), Ok(())),
            ("no cat header", sign(with(h("RS256"), json!({"cat": null})), claims(), PRIV_2048), Ok(())),
            ("garbage", "abc".into(), Err(AuthFailure::Invalid)),
            ("four parts", format!("{good}.x"), Err(AuthFailure::Invalid)),
            ("alg none", unsigned_none, Err(AuthFailure::InvalidAlgorithm)),
            ("hs256 key confusion", hs256, Err(AuthFailure::InvalidAlgorithm)),
            (
                "bad typ",
                sign(with(h("RS256"), json!({"typ": "at+jwt"})), claims(), PRIV_2048),
                Err(AuthFailure::Invalid),
            ),
            ("tampered signature", tampered, Err(AuthFailure::InvalidSignature)),
            ("signed by another key", other_key, Err(AuthFailure::InvalidSignature)),
            (
                "template token",
                sign(with(h("RS256"), json!({"cat": CAT_TEMPLATE})), claims(), PRIV_2048),
                Err(AuthFailure::TypeMismatch),
            ),
            (
                "machine token",
                sign(with(h("RS256"), json!({"cat": CAT_M2M})), claims(), PRIV_2048),
                Err(AuthFailure::TypeMismatch),
            ),
            (
                "expired",
                sign(h("RS256"), with(claims(), json!({"exp": NOW - 6})), PRIV_2048),
                Err(AuthFailure::Expired),
            ),
            ("expired within skew", sign(h("RS256"), with(claims(), json!({"exp": NOW - 4})), PRIV_2048), Ok(())),
            ("no exp", sign(h("RS256"), with(claims(), json!({"exp": null})), PRIV_2048), Err(AuthFailure::Invalid)),
            (
                "nbf future",
                sign(h("RS256"), with(claims(), json!({"nbf": NOW + 30})), PRIV_2048),
                Err(AuthFailure::NotActiveYet),
            ),
            ("nbf within skew", sign(h("RS256"), with(claims(), json!({"nbf": NOW + 4})), PRIV_2048), Ok(())),
            (
                "iat future",
                sign(h("RS256"), with(claims(), json!({"iat": NOW + 30})), PRIV_2048),
                Err(AuthFailure::IatInTheFuture),
            ),
            (
                "wrong azp",
                sign(h("RS256"), with(claims(), json!({"azp": "https://evil.example"})), PRIV_2048),
                Err(AuthFailure::InvalidAuthorizedParty),
            ),
            (
                "missing azp",
                sign(h("RS256"), with(claims(), json!({"azp": null})), PRIV_2048),
                Err(AuthFailure::InvalidAuthorizedParty),
            ),
            ("no sub", sign(h("RS256"), with(claims(), json!({"sub": null})), PRIV_2048), Err(AuthFailure::Invalid)),
            (
                "no sid",
                sign(h("RS256"), with(claims(), json!({"sid": null})), PRIV_2048),
                Err(AuthFailure::SessionInactive),
            ),
        ];
        for (name, token, expected) in table {
            let got = check(&token, &key, &parties).map(|_| ());
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn pending_sessions_are_signed_out_unless_accepted() {
        let key = parse_public_key_pem(PUB_2048).unwrap();
        let table: Vec<(&str, serde_json::Value, bool, Result<(), AuthFailure>)> = vec![
            ("no sts", json!({"sts": null}), false, Ok(())),
            ("active", json!({"sts": "active"}), false, Ok(())),
            ("pending", json!({"sts": "pending"}), false, Err(AuthFailure::SessionPending)),
            ("pending, accepted", json!({"sts": "pending"}), true, Ok(())),
            ("active, accepting", json!({"sts": "active"}), true, Ok(())),
            // As `@clerk/backend`: only the exact string is pending.
            ("Pending", json!({"sts": "Pending"}), false, Ok(())),
            ("a number", json!({"sts": 1}), false, Ok(())),
            ("an object", json!({"sts": {"pending": true}}), false, Ok(())),
        ];
        for (name, patch, accept, want) in table {
            let token = sign(h("RS256"), with(claims(), patch), PRIV_2048);
            let parsed = parse(&token).unwrap();
            verify_signature(&parsed, &key).unwrap();
            assert!(check_claims(&parsed.claims, NOW, &[]).is_ok(), "{name}");
            assert_eq!(check_session_status(&parsed.claims, accept), want, "{name}");
        }
    }

    #[test]
    fn azp_is_not_checked_without_authorized_parties() {
        let key = parse_public_key_pem(PUB_2048).unwrap();
        let t = sign(h("RS256"), with(claims(), json!({"azp": "https://whatever.example"})), PRIV_2048);
        assert_eq!(check(&t, &key, &[]).unwrap(), Caller { user_id: "user_1".into(), session_id: "sess_1".into() });
    }

    #[test]
    fn pem_parsing_accepts_spki_and_pkcs1_of_any_size() {
        for pem in [PUB_2048, PUB_4096, PUB_4096_PKCS1] {
            parse_public_key_pem(pem).unwrap();
        }
        let key = parse_public_key_pem(PUB_4096_PKCS1).unwrap();
        let t = sign(h("RS256"), claims(), PRIV_4096);
        assert!(check(&t, &key, &[]).is_ok());
        assert!(parse_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err());
    }

    #[test]
    fn jwks_parse_skips_unusable_keys() {
        use rsa::traits::PublicKeyParts;
        let key = parse_public_key_pem(PUB_2048).unwrap();
        let body = json!({"keys": [
            {"kid": "ec", "kty": "EC", "crv": "P-256", "x": "a", "y": "b"},
            {"kid": "ins_1", "kty": "RSA", "alg": "RS256", "use": "sig",
             "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()), "e": "AQAB"}
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys["ins_1"], key);
        assert!(parse_jwks(b"nope").is_err());
    }

    #[test]
    fn unverified_exp_reads_payload() {
        let t = sign(h("RS256"), claims(), PRIV_2048);
        assert_eq!(unverified_exp(&t), Some(NOW + 60));
        assert_eq!(unverified_exp("x.y.z"), None);
    }
}
