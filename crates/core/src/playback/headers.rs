//! The two header allowlists (what goes up to the audio storage, what comes back to the client)
//! and the status relay rule. Pure functions, table-tested.
//!
//! A proxy must never turn an upstream 200 into a 206 or back, and must relay `Content-Range`,
//! `Content-Length`, `Accept-Ranges`, `ETag`, `Last-Modified` exactly (docs/ssrf-and-range.md).

use crate::error::Error;

/// Client request headers forwarded to the audio storage (conditional and range requests).
pub const FORWARDED_REQUEST_HEADERS: &[&str] = &["range", "if-range", "if-none-match", "if-modified-since"];

/// Upstream response headers relayed to the client, byte for byte.
pub const RELAYED_RESPONSE_HEADERS: &[&str] =
    &["content-length", "content-range", "accept-ranges", "etag", "last-modified"];

/// The longest `Range` value forwarded: far beyond any range set a player sends.
pub const MAX_RANGE_BYTES: usize = 1024;

/// Whether a `Range` value is forwarded to storage: any printable ASCII value under 1 KiB, exactly
/// as the client sent it. Storage judges it and we relay its verdict (`200`, `206`,
/// `multipart/byteranges`, `416`): a proxy that drops a value storage would have answered with
/// `416` or `206` turns that answer into a `200` (RFC 9110 §14.2 lets each server decide what it
/// ignores, so only storage can say). What is not forwarded is only what no HTTP client should
/// send: control or non-ASCII bytes, or a value too long to be a range set.
pub fn is_forwardable_range(value: &str) -> bool {
    value.len() < MAX_RANGE_BYTES && value.bytes().all(|b| b == b'\t' || (0x20..0x7F).contains(&b))
}

/// Headers for the upstream request. `Accept-Encoding: identity` because byte ranges of a
/// compressed representation are not byte ranges of the file (WPT fetch/range).
pub fn upstream_request_headers(client: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = vec![("accept-encoding".to_string(), "identity".to_string())];
    for name in FORWARDED_REQUEST_HEADERS {
        let Some((_, value)) = client.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else { continue };
        if *name == "range" && !is_forwardable_range(value) {
            continue;
        }
        out.push((name.to_string(), value.clone()));
    }
    // `If-Range` without `Range` means nothing; sending it alone can only confuse an upstream.
    if !out.iter().any(|(k, _)| k == "range") {
        out.retain(|(k, _)| k != "if-range");
    }
    out
}

/// What the client gets for the upstream's status. Only the statuses a file server gives to a
/// (conditional) range request are relayed; a missing object is the session's missing audio;
/// everything else is the storage failing.
pub fn relay_status(upstream: u16) -> Result<u16, Error> {
    match upstream {
        200 | 206 | 304 | 416 => Ok(upstream),
        404 | 410 => Err(Error::AudioNotFound),
        s => Err(Error::UpstreamFailed(format!("upstream answered HTTP {s}"))),
    }
}

/// `audio/*` (and `application/ogg`) pass; anything else becomes `application/octet-stream` so
/// a storage that lies about a type cannot make the browser render HTML or script from our origin.
/// When the upstream type is not audio, the type recorded with the session is used if it is.
/// The one exception is a `206` in `multipart/byteranges` (the answer to a multi-range request):
/// its type carries the boundary the client needs to read it, so it is relayed as it is.
pub fn relayed_content_type(status: u16, upstream: Option<&str>, recorded: Option<&str>) -> String {
    if let Some(t) = upstream.filter(|_| status == 206) {
        let essence = t.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("multipart/byteranges") && t.contains("boundary=") {
            return t.trim().to_string();
        }
    }
    audio_content_type(upstream, recorded)
}

pub fn audio_content_type(upstream: Option<&str>, recorded: Option<&str>) -> String {
    let is_audio = |t: &str| {
        let essence = t.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        (essence.starts_with("audio/") && essence.len() > 6 && !essence.contains(['<', '>', '"']))
            || essence == "application/ogg"
    };
    match (upstream, recorded) {
        (Some(t), _) if is_audio(t) => t.trim().to_string(),
        (_, Some(t)) if is_audio(t) => t.trim().to_string(),
        _ => "application/octet-stream".to_string(),
    }
}

/// The client response headers for a relayed upstream response.
pub fn client_response_headers(
    status: u16,
    upstream: &[(String, String)],
    recorded_type: Option<&str>,
    cache_max_age_secs: u64,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(12);
    let upstream_type = upstream.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.as_str());
    out.push(("content-type".to_string(), relayed_content_type(status, upstream_type, recorded_type)));
    for name in RELAYED_RESPONSE_HEADERS {
        if let Some((_, v)) = upstream.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            out.push((name.to_string(), v.clone()));
        }
    }
    let cache = if cache_max_age_secs > 0 {
        format!("private, no-transform, max-age={cache_max_age_secs}")
    } else {
        "private, no-transform".to_string()
    };
    out.push(("cache-control".to_string(), cache));
    out.push(("x-content-type-options".to_string(), "nosniff".to_string()));
    // Reverse proxies (nginx) must not buffer a stream the client is seeking in.
    out.push(("x-accel-buffering".to_string(), "no".to_string()));
    out.push(("vary".to_string(), "Cookie, Authorization".to_string()));
    out
}

/// Framing for a response we send without a body. HEAD keeps the upstream's `Content-Length`
/// (it describes the GET). A 416 or 304 body is not relayed, so its length must not be either:
/// a 416 says `Content-Length: 0`, a 304 carries none (RFC 9110 §15.4.5).
pub fn frame_empty_body(headers: &mut Vec<(String, String)>, status: u16, head: bool) {
    if head {
        return;
    }
    match status {
        416 => {
            headers.retain(|(k, _)| k != "content-length");
            headers.push(("content-length".to_string(), "0".to_string()));
        }
        304 => headers.retain(|(k, _)| k != "content-length"),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::hv;

    /// Which `Range` values are forwarded; the property tests check the rule against it too.
    /// Values storage rejects or ignores are forwarded all the same: its answer is the one relayed.
    pub(crate) const RANGE_TABLE: &[(&str, bool)] = &[
        ("bytes=0-1", true),
        ("bytes=0-1, 4-5,\t-3", true),
        ("bytes=99999999999999999999-", true),
        ("bytes=5-2", true),
        ("bytes=0 -1", true),
        ("bytes=2-1,0-0", true),
        ("items=0-1", true),
        ("bytes=", true),
        ("", true),
        ("bytes=0-1\u{7f}", false),
        ("bytes=0-1\u{0}", false),
        ("bytes=\u{e9}-1", false),
        ("bytes=0-1\r\nx-evil: 1", false),
    ];

    #[test]
    fn range_forwarding_table() {
        for (v, ok) in RANGE_TABLE {
            assert_eq!(is_forwardable_range(v), *ok, "{v:?}");
        }
        let long = format!("bytes=0-1{}", ",2-3".repeat(300));
        assert!(!is_forwardable_range(&long));
        assert!(is_forwardable_range(&long[..MAX_RANGE_BYTES - 1]));
        assert!(!is_forwardable_range(&long[..MAX_RANGE_BYTES]));
    }

    #[test]
    fn upstream_headers_forward_only_the_allowlist() {
        let out = upstream_request_headers(&hv(&[
            ("Range", "bytes=0-1"),
            ("If-Range", "\"etag\""),
            ("Cookie", "__session=secret"),
            ("Authorization", "Bearer secret"),
            ("If-None-Match", "\"x\""),
            ("Accept-Encoding", "gzip"),
            ("X-Forwarded-For", "1.2.3.4"),
        ]));
        assert_eq!(
            out,
            hv(&[
                ("accept-encoding", "identity"),
                ("range", "bytes=0-1"),
                ("if-range", "\"etag\""),
                ("if-none-match", "\"x\"")
            ])
        );
        // A range value is forwarded as it is, even one storage will reject; one that is not
        // printable ASCII is dropped, and If-Range with it.
        let multi = upstream_request_headers(&hv(&[("Range", "bytes=0-1, 3-4"), ("If-Range", "\"e\"")]));
        assert_eq!(multi, hv(&[("accept-encoding", "identity"), ("range", "bytes=0-1, 3-4"), ("if-range", "\"e\"")]));
        let odd = upstream_request_headers(&hv(&[("Range", "bytes=3-1"), ("If-Range", "\"e\"")]));
        assert_eq!(odd, hv(&[("accept-encoding", "identity"), ("range", "bytes=3-1"), ("if-range", "\"e\"")]));
        let no_range = upstream_request_headers(&hv(&[("Range", "bytes=\u{e9}-1"), ("If-Range", "\"e\"")]));
        assert_eq!(no_range, hv(&[("accept-encoding", "identity")]));
    }

    #[test]
    fn status_relay_table() {
        for s in [200, 206, 304, 416] {
            assert_eq!(relay_status(s).unwrap(), s);
        }
        assert_eq!(relay_status(404).unwrap_err().code(), "audio_not_found");
        for s in [201, 204, 301, 302, 400, 403, 500, 503] {
            assert_eq!(relay_status(s).unwrap_err().code(), "upstream_failed", "{s}");
        }
    }

    #[test]
    fn content_type_table() {
        let table: &[(Option<&str>, Option<&str>, &str)] = &[
            (Some("audio/webm"), None, "audio/webm"),
            (Some("audio/webm;codecs=opus"), None, "audio/webm;codecs=opus"),
            (Some("application/ogg"), None, "application/ogg"),
            (Some("text/html"), None, "application/octet-stream"),
            (Some("text/html"), Some("audio/mpeg"), "audio/mpeg"),
            (Some("application/octet-stream"), Some("audio/mp4"), "audio/mp4"),
            (None, None, "application/octet-stream"),
            (Some("audio/"), None, "application/octet-stream"),
            (Some("image/svg+xml"), Some("text/html"), "application/octet-stream"),
        ];
        for (up, rec, want) in table {
            assert_eq!(audio_content_type(*up, *rec), *want, "{up:?} {rec:?}");
        }
        // multipart/byteranges keeps its boundary, on a 206 only.
        let multi = Some("multipart/byteranges; boundary=abc123");
        assert_eq!(relayed_content_type(206, multi, None), "multipart/byteranges; boundary=abc123");
        assert_eq!(relayed_content_type(200, multi, Some("audio/wav")), "audio/wav");
        assert_eq!(relayed_content_type(206, Some("multipart/byteranges"), None), "application/octet-stream");
        assert_eq!(relayed_content_type(206, Some("multipart/mixed; boundary=x"), None), "application/octet-stream");
        assert_eq!(relayed_content_type(206, Some("audio/wav"), None), "audio/wav");
    }

    #[test]
    fn empty_bodies_are_framed_as_empty() {
        let base = hv(&[("content-length", "315"), ("content-range", "bytes */1000")]);
        let len = |h: &Vec<(String, String)>| h.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.clone());
        let mut h = base.clone();
        frame_empty_body(&mut h, 416, false);
        assert_eq!(len(&h).as_deref(), Some("0"));
        assert!(h.iter().any(|(k, v)| k == "content-range" && v == "bytes */1000"));
        let mut h = base.clone();
        frame_empty_body(&mut h, 304, false);
        assert_eq!(len(&h), None);
        let mut h = base.clone();
        frame_empty_body(&mut h, 200, true);
        assert_eq!(len(&h).as_deref(), Some("315"));
    }

    #[test]
    fn response_headers_relay_exactly_and_add_ours() {
        let out = client_response_headers(
            206,
            &hv(&[
                ("Content-Type", "audio/wav"),
                ("Content-Length", "2"),
                ("Content-Range", "bytes 0-1/1000"),
                ("Accept-Ranges", "bytes"),
                ("ETag", "W/\"3e8-1\""),
                ("Last-Modified", "Sat, 21 Nov 2026 10:00:00 GMT"),
                ("Set-Cookie", "tracking=1"),
                ("Access-Control-Allow-Origin", "*"),
            ]),
            None,
            60,
        );
        let get = |n: &str| out.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("content-range"), Some("bytes 0-1/1000"));
        assert_eq!(get("content-length"), Some("2"));
        assert_eq!(get("etag"), Some("W/\"3e8-1\""));
        assert_eq!(get("cache-control"), Some("private, no-transform, max-age=60"));
        assert_eq!(get("x-content-type-options"), Some("nosniff"));
        assert_eq!(get("x-accel-buffering"), Some("no"));
        assert_eq!(get("vary"), Some("Cookie, Authorization"));
        assert_eq!(get("set-cookie"), None);
        assert_eq!(get("access-control-allow-origin"), None);
    }
}
