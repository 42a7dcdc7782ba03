//! POST: what is decided before a byte is stored — the metadata headers, the deployment's limits
//! and the user's entitlements. Pure functions over plain values, table-tested.

use serde::Deserialize;

use crate::config::UploadConfig;
use crate::error::{Code, Error, Result};
use crate::media::{parse_declared, DeclaredType};

/// What the upload headers say, once validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadMeta {
    pub duration_ms: u64,
    pub declared: DeclaredType,
    pub content_length: Option<u64>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

fn bad(code: Code, message: String) -> Error {
    Error::BadRequest { code, message }
}

pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// Where the declared metadata came from, for messages that name what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// The streamed POST: `x-duration-ms` and `x-content-type` headers.
    Headers,
    /// A client upload's token request: the `clientPayload` JSON's `durationMs` and `contentType`.
    ClientPayload,
    /// A client upload's completion event: its `payload.durationMs`.
    CompleteEvent,
}

impl Declared {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Declared::Headers => ("The x-duration-ms header", "The x-content-type header"),
            Declared::ClientPayload => ("clientPayload.durationMs", "clientPayload.contentType"),
            Declared::CompleteEvent => ("payload.durationMs", "the stored blob's content type"),
        }
    }
}

/// Validate the metadata headers against the deployment's limits.
pub fn validate_headers(headers: &[(String, String)], cfg: &UploadConfig) -> Result<UploadMeta> {
    let (duration_ms, declared) =
        validate_declared(header(headers, "x-duration-ms"), header(headers, "x-content-type"), cfg, Declared::Headers)?;
    let content_length = match header(headers, "content-length") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .map_err(|_| bad(Code::InvalidContentLength, format!("Content-Length is not a number: {raw:?}.")))?,
        ),
    };
    if let Some(len) = content_length {
        if len > cfg.max_bytes {
            return Err(Error::PayloadTooLarge(format!("limit {}", human_bytes(cfg.max_bytes))));
        }
    }
    Ok(UploadMeta { duration_ms, declared, content_length })
}

/// A declared duration: a whole number of ms, at least 1, within the deployment's limit.
pub fn validate_duration(duration: Option<&str>, cfg: &UploadConfig, from: Declared) -> Result<u64> {
    let (name, _) = from.names();
    let raw = match duration.map(str::trim) {
        None | Some("") => {
            return Err(bad(Code::MissingDuration, format!("{name} (recording length in ms) is required.")))
        }
        Some(raw) => raw,
    };
    match raw.parse::<u64>() {
        Ok(d) if d >= 1 && d <= cfg.max_duration_ms => Ok(d),
        Ok(d) if d > cfg.max_duration_ms => {
            Err(bad(Code::InvalidDuration, format!("{name} is {d}, above the limit of {} ms.", cfg.max_duration_ms)))
        }
        _ => Err(bad(Code::InvalidDuration, format!("{name} must be a whole number of ms ≥ 1, got {raw:?}."))),
    }
}

/// The declared duration and type, checked with the same rules and codes wherever they come from.
pub fn validate_declared(
    duration: Option<&str>,
    content_type: Option<&str>,
    cfg: &UploadConfig,
    from: Declared,
) -> Result<(u64, DeclaredType)> {
    let duration_ms = validate_duration(duration, cfg, from)?;
    let (_, type_name) = from.names();
    let declared = match content_type.map(str::trim) {
        None | Some("") => {
            return Err(bad(Code::MissingContentType, format!("{type_name} (the audio MIME type) is required.")))
        }
        Some(raw) => match parse_declared(raw) {
            Ok(d) if cfg.allowed.contains(&d.container) => d,
            Ok(d) => return Err(Error::UnsupportedMediaType(d.container.essence().into())),
            Err(Some(essence)) => return Err(Error::UnsupportedMediaType(essence)),
            Err(None) => {
                return Err(bad(Code::InvalidContentType, format!("{type_name} is not a MIME type: {raw:?}.")))
            }
        },
    };
    Ok((duration_ms, declared))
}

/// The duration that is recorded, and whether it was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub duration_ms: u64,
    pub measured: bool,
}

impl Settled {
    pub fn source(self) -> &'static str {
        if self.measured {
            "measured"
        } else {
            "declared"
        }
    }
}

/// What bounds a recording's duration: the deployment's limit, the user's own (entitlements), and
/// whether a duration no meter can measure may be taken from the declaration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationLimits {
    pub max_ms: u64,
    pub user_max_ms: Option<f64>,
    pub accept_declared: bool,
}

impl DurationLimits {
    pub fn new(cfg: &UploadConfig, user_max_ms: Option<f64>) -> DurationLimits {
        DurationLimits { max_ms: cfg.max_duration_ms, user_max_ms, accept_declared: cfg.accept_declared_duration }
    }
}

/// The declared duration against the measured one. The measurement is what is recorded: the
/// declaration must agree with it within max(2 %, 1 s) (`400 duration_mismatch`), and the
/// deployment's and the user's limits apply to it (`403 duration_limit_exceeded`). A file that
/// contradicts itself is refused (`400 inconsistent_audio`). A file whose duration cannot be
/// measured is refused (`400 duration_unmeasurable`) unless the deployment accepts the declaration
/// (`acceptDeclaredDuration`), whose limits were checked before the upload started.
///
/// `declared_ms` is `None` where declaring is optional (a client upload's completion event): then
/// only the measurement counts, and nothing can stand in for it.
pub fn settle_duration(
    declared_ms: Option<u64>,
    measured: &crate::media::duration::Measured,
    limits: &DurationLimits,
) -> Result<Settled> {
    use crate::media::duration::Measured;
    let measured_ms = match (measured, declared_ms) {
        (Measured::Ms(ms), _) => *ms,
        (Measured::Unknown(_), Some(declared_ms)) if limits.accept_declared => {
            return Ok(Settled { duration_ms: declared_ms, measured: false })
        }
        (Measured::Unknown(why), _) => {
            return Err(bad(Code::DurationUnmeasurable,
                format!("The recording's duration cannot be measured from its bytes ({why}); record in a supported format (WebM/Opus, Ogg Opus, MP4/AAC, MP3, AAC, WAV, FLAC)."),
            ))
        }
        (Measured::Inconsistent(why), _) => {
            return Err(bad(Code::InconsistentAudio,
                format!("The audio file contradicts itself ({why}); upload the file as the recorder wrote it."),
            ))
        }
    };
    let tolerance = (measured_ms / 50).max(1_000);
    if let Some(declared_ms) = declared_ms.filter(|d| d.abs_diff(measured_ms) > tolerance) {
        return Err(bad(Code::DurationMismatch,
            format!(
                "The declared duration ({declared_ms} ms) does not match the audio ({measured_ms} ms measured from the container); declare the recording's real length."
            ),
        ));
    }
    if measured_ms > limits.max_ms {
        return Err(Error::DurationLimitExceeded(format!("limit {} ms", limits.max_ms)));
    }
    if let Some(max) = limits.user_max_ms.filter(|m| m.is_finite() && *m >= 0.0) {
        if measured_ms as f64 > max {
            return Err(Error::DurationLimitExceeded(format!("limit {} ms", max as u64)));
        }
    }
    Ok(Settled { duration_ms: measured_ms, measured: true })
}

/// `entitlements:getForCurrentUser`'s answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entitlements {
    pub can_record: bool,
    #[serde(default)]
    pub max_recording_ms: Option<f64>,
    #[serde(default)]
    pub max_upload_bytes: Option<f64>,
}

/// Apply the user's own limits; returns the byte limit for this upload.
pub fn apply_entitlements(meta: &UploadMeta, ent: &Entitlements, cfg: &UploadConfig) -> Result<u64> {
    if !ent.can_record {
        return Err(Error::EntitlementDenied);
    }
    if let Some(max) = ent.max_recording_ms.filter(|m| m.is_finite() && *m >= 0.0) {
        if meta.duration_ms as f64 > max {
            return Err(Error::DurationLimitExceeded(format!("limit {} ms", max as u64)));
        }
    }
    let user_bytes = ent.max_upload_bytes.filter(|m| m.is_finite() && *m >= 0.0).map(|m| m as u64);
    let limit = user_bytes.map_or(cfg.max_bytes, |u| u.min(cfg.max_bytes));
    if meta.content_length.is_some_and(|len| len > limit) {
        return Err(Error::PayloadTooLarge(format!("limit {}", human_bytes(limit))));
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BlobAccess;
    use crate::media::Container;
    use crate::testutil::hv;

    fn cfg() -> UploadConfig {
        UploadConfig {
            max_bytes: 1000,
            max_duration_ms: 60_000,
            allowed: vec![Container::WebM, Container::Wav],
            access: BlobAccess::Private,
            attach_mutation: "m".into(),
            entitlements_query: "q".into(),
            client_uploads: true,
            client_token_ttl: std::time::Duration::from_secs(3600),
            callback_origin: None,
            idle_timeout: std::time::Duration::from_secs(30),
            total_timeout: std::time::Duration::from_secs(900),
            accept_declared_duration: false,
            attach_secret: None,
            webhook_key: None,
        }
    }

    #[test]
    fn header_validation_table() {
        let ok = [("x-duration-ms", "5000"), ("x-content-type", "audio/webm;codecs=opus")];
        let with = |extra: &[(&'static str, &'static str)], drop: &str| {
            let mut v: Vec<(&str, &str)> = ok.iter().copied().filter(|(k, _)| *k != drop).collect();
            v.extend_from_slice(extra);
            validate_headers(&hv(&v), &cfg())
        };
        let meta = with(&[("content-length", "900")], "").unwrap();
        assert_eq!(meta.duration_ms, 5000);
        assert_eq!(meta.declared.normalised, "audio/webm;codecs=opus");
        assert_eq!(meta.content_length, Some(900));

        let table: Vec<(Result<UploadMeta>, &str)> = vec![
            (with(&[], "x-duration-ms"), "missing_duration"),
            (with(&[("x-duration-ms", "")], "x-duration-ms"), "missing_duration"),
            (with(&[("x-duration-ms", "0")], "x-duration-ms"), "invalid_duration"),
            (with(&[("x-duration-ms", "-5")], "x-duration-ms"), "invalid_duration"),
            (with(&[("x-duration-ms", "1.5")], "x-duration-ms"), "invalid_duration"),
            (with(&[("x-duration-ms", "abc")], "x-duration-ms"), "invalid_duration"),
            (with(&[("x-duration-ms", "60001")], "x-duration-ms"), "invalid_duration"),
            (with(&[], "x-content-type"), "missing_content_type"),
            (with(&[("x-content-type", "nonsense")], "x-content-type"), "invalid_content_type"),
            (with(&[("x-content-type", "text/html")], "x-content-type"), "unsupported_media_type"),
            (with(&[("x-content-type", "audio/mpeg")], "x-content-type"), "unsupported_media_type"),
            (with(&[("content-length", "1001")], ""), "payload_too_large"),
            (with(&[("content-length", "lots")], ""), "invalid_content_length"),
        ];
        for (got, code) in table {
            assert_eq!(got.map(|_| ()).unwrap_err().code(), code);
        }
        assert!(with(&[("x-duration-ms", "60000")], "x-duration-ms").is_ok());
    }

    #[test]
    fn entitlement_table() {
        let meta =
            UploadMeta { duration_ms: 5000, declared: parse_declared("audio/wav").unwrap(), content_length: Some(800) };
        let ent = |can: bool, ms: Option<f64>, bytes: Option<f64>| Entitlements {
            can_record: can,
            max_recording_ms: ms,
            max_upload_bytes: bytes,
        };
        assert_eq!(apply_entitlements(&meta, &ent(true, None, None), &cfg()).unwrap(), 1000);
        assert_eq!(apply_entitlements(&meta, &ent(true, Some(5000.0), Some(900.0)), &cfg()).unwrap(), 900);
        assert_eq!(apply_entitlements(&meta, &ent(true, None, Some(5000.0)), &cfg()).unwrap(), 1000);
        let code = |e: Entitlements| apply_entitlements(&meta, &e, &cfg()).unwrap_err().code();
        assert_eq!(code(ent(false, None, None)), "entitlement_denied");
        assert_eq!(code(ent(true, Some(4999.0), None)), "duration_limit_exceeded");
        assert_eq!(code(ent(true, None, Some(799.0))), "payload_too_large");
    }

    #[test]
    fn settle_duration_table() {
        use crate::media::duration::Measured;
        let ms = Measured::Ms;
        let unknown = Measured::Unknown("x");
        let lying = Measured::Inconsistent("x");
        // (declared, measured, deployment max, user max) → Ok((duration, measured)) or the code,
        // with `acceptDeclaredDuration` off.
        type Case = (u64, Measured, u64, Option<f64>, std::result::Result<(u64, bool), &'static str>);
        let cases: Vec<Case> = vec![
            (5_000, ms(5_000), 60_000, None, Ok((5_000, true))),
            (5_000, ms(5_900), 60_000, None, Ok((5_900, true))), // within 1 s
            (5_000, ms(6_001), 60_000, None, Err("duration_mismatch")),
            (100_000, ms(101_999), 200_000, None, Ok((101_999, true))), // within 2 %
            (100_000, ms(102_100), 200_000, None, Err("duration_mismatch")),
            // The attack: declare 1 s, send four hours.
            (1_000, ms(4 * 3_600_000), 5 * 3_600_000, None, Err("duration_mismatch")),
            (10_000, ms(10_000), 9_000, None, Err("duration_limit_exceeded")),
            (10_000, ms(10_000), 60_000, Some(9_000.0), Err("duration_limit_exceeded")),
            (10_000, ms(10_000), 60_000, Some(f64::NAN), Ok((10_000, true))),
            // Nothing measurable: refused by default (the option is the next table).
            (7_000, unknown.clone(), 60_000, None, Err("duration_unmeasurable")),
            // A file that contradicts itself: refused whatever was declared.
            (7_000, lying.clone(), 60_000, None, Err("inconsistent_audio")),
            (u64::MAX, ms(0), u64::MAX, None, Err("duration_mismatch")),
            (0, ms(u64::MAX), u64::MAX, None, Err("duration_mismatch")),
        ];
        for (declared, measured, max, user, want) in cases {
            let limits = DurationLimits { max_ms: max, user_max_ms: user, accept_declared: false };
            let got = settle_duration(Some(declared), &measured, &limits)
                .map(|s| (s.duration_ms, s.measured))
                .map_err(|e| e.code());
            assert_eq!(got, want, "{declared} vs {measured:?}, max {max}, user {user:?}");
        }
        // With `acceptDeclaredDuration` on, only the unmeasurable case changes: the declaration
        // stands and says so. A self-contradicting file is still refused.
        let accept = DurationLimits { max_ms: 60_000, user_max_ms: None, accept_declared: true };
        let got = |m: &Measured| {
            settle_duration(Some(7_000), m, &accept).map(|s| (s.duration_ms, s.measured)).map_err(|e| e.code())
        };
        assert_eq!(got(&unknown), Ok((7_000, false)));
        assert_eq!(got(&lying), Err("inconsistent_audio"));
        assert_eq!(got(&ms(7_000)), Ok((7_000, true)));
        // Nothing declared (a completion event may leave it out): the measurement alone, and an
        // unmeasurable file has nothing to fall back on, whatever the option says.
        let none = |m: &Measured, l: &DurationLimits| {
            settle_duration(None, m, l).map(|s| (s.duration_ms, s.measured)).map_err(|e| e.code())
        };
        assert_eq!(none(&ms(37_300), &accept), Ok((37_300, true)));
        assert_eq!(none(&unknown, &accept), Err("duration_unmeasurable"));
        assert_eq!(none(&ms(70_000), &accept), Err("duration_limit_exceeded"));
    }
}
