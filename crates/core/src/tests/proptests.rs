//! Property tests over every parser that takes outside input: 10,000 generated cases each (the
//! README's reliability section reports what was tried). Two things are asserted everywhere: no
//! panic (a panic in the addon would kill the Node process), and where a generated case is one of
//! the module's table cases, the same answer as the table.

use proptest::prelude::*;
use url::Url;

use crate::media::duration::{measure, Meter};
use crate::media::Container;

const CASES: u32 = 10_000;

fn config() -> ProptestConfig {
    ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() }
}

/// One of the table's inputs, or something generated near it.
fn near(table: &'static [(&'static str, bool)], noise: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => proptest::sample::select(table.iter().map(|(v, _)| v.to_string()).collect::<Vec<_>>()),
        3 => noise,
    ]
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../__test__/fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

proptest! {
    #![proptest_config(config())]

    /// Range values: which are forwarded upstream, and that they go exactly as sent.
    #[test]
    fn range_values(value in near(crate::playback::headers::tests::RANGE_TABLE, prop_oneof![
        "[bB][yY][tT][eE][sS]=[0-9 ,\t-]{0,40}",
        "bytes=[0-9]{0,25}-[0-9]{0,25}(,[ ]?[0-9]{0,25}-[0-9]{0,25}){0,5}",
        any::<String>(),
    ].boxed())) {
        let value = value.as_str();
        let valid = crate::playback::headers::is_forwardable_range(value);
        if let Some((_, want)) = crate::playback::headers::tests::RANGE_TABLE.iter().find(|(v, _)| *v == value) {
            prop_assert_eq!(valid, *want);
        }
        let headers = vec![("range".to_string(), value.to_string())];
        let forwarded = crate::playback::headers::upstream_request_headers(&headers);
        let sent = forwarded.iter().any(|(k, v)| k == "range" && v == value);
        prop_assert_eq!(sent, valid, "forwarded unchanged exactly when forwardable");
    }

    /// Cookies and bearer headers: where the session token is.
    #[test]
    fn token_location(
        picked in proptest::sample::select((0..crate::identity::auth::tests::TOKEN_LOCATION_TABLE.len()).collect::<Vec<_>>()),
        from_table in any::<bool>(),
        headers in proptest::collection::vec(
            (prop_oneof!["[aA]uthorization", "[cC]ookie", "x-[a-z]{1,5}"], prop_oneof![
                "(Bearer|bearer|Basic|) ?[ -~]{0,30}",
                "((__session|__session_[A-Za-z0-9]{1,8}|__client_uat|[a-z]{1,5})=[\"]?[ -~&&[^;]]{0,12}[\"]?; ?){0,4}",
                any::<String>(),
            ]),
            0..4,
        ),
    ) {
        let (headers, want): (Vec<(String, String)>, Option<Option<&str>>) = if from_table {
            let (h, want) = crate::identity::auth::tests::TOKEN_LOCATION_TABLE[picked];
            (h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), Some(want))
        } else {
            (headers, None)
        };
        let token = crate::identity::auth::extract_token(&headers);
        if let Some(want) = want {
            prop_assert_eq!(token.as_deref(), want);
        }
        // Whatever is found was in a header, whole, and is never empty.
        if let Some(t) = &token {
            prop_assert!(!t.is_empty());
            prop_assert!(headers.iter().any(|(_, v)| v.contains(t.as_str())));
        }
    }

    /// JWT headers and claims: `parse` on anything, and the claim checks on any values.
    #[test]
    fn jwt_headers_and_claims(
        raw in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}",
        ],
        header in proptest::collection::hash_map(
            prop_oneof!["alg", "typ", "cat", "kid", "x"],
            prop_oneof![Just(serde_json::json!("RS256")), Just(serde_json::json!("none")), Just(serde_json::json!("HS256")),
                Just(serde_json::json!("JWT")), Just(serde_json::json!("cl_B7d4PD222AAA")), Just(serde_json::json!(null)),
                any::<i64>().prop_map(|n| serde_json::json!(n)), "[ -~]{0,8}".prop_map(|s| serde_json::json!(s))],
            0..5,
        ),
        sub in proptest::option::of("[a-z_0-9]{0,10}"),
        sid in proptest::option::of("[a-z_0-9]{0,10}"),
        exp in proptest::option::of(prop_oneof![any::<f64>(), (-1e10f64..1e10f64)]),
        nbf in proptest::option::of(any::<f64>()),
        iat in proptest::option::of(any::<f64>()),
        now in 0i64..4_000_000_000,
    ) {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let _ = crate::identity::jwt::parse(&raw);
        let claims_json = serde_json::json!({ "sub": sub, "sid": sid, "exp": exp, "nbf": nbf, "iat": iat });
        let token = format!("{}.{}.c2ln", b64(&serde_json::json!(header)), b64(&claims_json));
        let parsed = crate::identity::jwt::parse(&token);
        // Only RS256/384/512 ever parse, whatever else the header says.
        if parsed.is_ok() {
            prop_assert!(matches!(header.get("alg").and_then(|a| a.as_str()), Some("RS256")));
        }
        let claims = crate::identity::jwt::Claims { sub, sid, azp: None, exp, nbf, iat, sts: None };
        let checked = crate::identity::jwt::check_claims(&claims, now, &[]);
        // The oracle for expiry: a token whose exp is at or before now − skew never passes.
        if let Some(exp) = exp {
            if (exp as i64) <= now - crate::identity::jwt::CLOCK_SKEW_SECS {
                prop_assert!(checked.is_err());
            }
        } else {
            prop_assert!(checked.is_err());
        }
        // And remembering a verified token never overflows, whatever its exp.
        let tokens = crate::identity::keys::VerifiedTokens::default();
        tokens.insert([1; 32], exp.map_or(0, |e| e as i64), now);
        let _ = tokens.contains(&[1; 32], now);
    }

    /// Stored audio URLs: the host policy and the session-prefix binding.
    #[test]
    fn audio_urls(raw in near(crate::playback::policy::tests::URL_TABLE, prop_oneof![
        "(https?|ftp|file|javascript)://[a-zA-Z0-9.:@\\[\\]%_-]{0,40}(/[a-zA-Z0-9.%_-]{0,12}){0,4}(\\?[ -~]{0,10})?",
        "https://[a-z0-9]{1,8}\\.(public|private)\\.blob\\.vercel-storage\\.com(:[0-9]{1,5})?/listening-sessions/(abc|abd|%61bc|\\.\\.|%2e%2e)/[a-zA-Z0-9.%/_-]{0,16}",
        any::<String>(),
    ].boxed())) {
        let raw = raw.as_str();
        let policy = crate::playback::policy::tests::default_policy();
        let checked = policy.check_audio_url(raw);
        if let Some((_, want)) = crate::playback::policy::tests::URL_TABLE.iter().find(|(u, _)| *u == raw) {
            prop_assert_eq!(checked.is_ok(), *want, "{}", raw);
        }
        if let Ok(url) = &checked {
            prop_assert_eq!(url.scheme(), "https");
            let host = url.host_str().unwrap_or_default();
            prop_assert!(host.ends_with(".public.blob.vercel-storage.com") || host.ends_with(".private.blob.vercel-storage.com"));
            prop_assert!(url.username().is_empty() && url.password().is_none());
        }
        if let Ok(url) = Url::parse(raw) {
            let under = crate::playback::policy::under_session_prefix(&url, "abc");
            if let Some((_, want)) = crate::playback::policy::tests::SESSION_PATH_TABLE.iter().find(|(u, _)| *u == raw) {
                prop_assert_eq!(under, *want);
            }
            // Under the prefix means: the decoded path starts with exactly that session's segments.
            if under {
                let decoded = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy().into_owned();
                prop_assert!(decoded.starts_with("/listening-sessions/abc/"), "{}", decoded);
            }
        }
    }

    /// Container sniffing: any bytes, and the two frame-sync formats never both match.
    #[test]
    fn sniffing(
        picked in proptest::sample::select((0..crate::media::tests::MAGIC_TABLE.len()).collect::<Vec<_>>()),
        from_table in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..16),
        prefix in proptest::sample::select(vec![&b""[..], &b"RIFF"[..], &b"OggS"[..], &b"fLaC"[..], &b"ID3"[..], &b"\xFF"[..], &b"\x1A\x45\xDF\xA3"[..], &b"\x00\x00\x00\x18ftyp"[..]]),
    ) {
        if from_table {
            let (c, b, want) = crate::media::tests::MAGIC_TABLE[picked];
            prop_assert_eq!(c.matches(b), want);
        }
        let mut b = prefix.to_vec();
        b.extend_from_slice(&bytes);
        let matched: Vec<Container> = crate::media::DEFAULT_ALLOWED.iter().copied().filter(|c| c.matches(&b)).collect();
        prop_assert!(!(matched.contains(&Container::Mp3) && matched.contains(&Container::Adts)), "{:?}", b);
    }

    /// The duration parsers: real files with bytes changed, cut short, or noise behind a real
    /// header. Never a panic, and the same answer however the bytes are split into chunks.
    #[test]
    fn duration_parsers(
        which in 0usize..9,
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<proptest::sample::Index>(),
        splits in proptest::collection::vec(1usize..5000, 1..6),
        noise in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (name, container) = [
            ("tone-5s.wav", Container::Wav), ("tone-5s.flac", Container::Flac), ("tone-5s.ogg", Container::Ogg),
            ("tone-5s.webm", Container::WebM), ("tone-5s-live.webm", Container::WebM), ("tone-5s.m4a", Container::Mp4),
            ("tone-5s-fragmented.m4a", Container::Mp4), ("tone-5s.mp3", Container::Mp3), ("tone-5s.aac", Container::Adts),
        ][which];
        let mut body = fixtures()[which].clone();
        let _ = name;
        for (at, byte) in &flips {
            let i = at.index(body.len());
            body[i] = *byte;
        }
        body.truncate(cut.index(body.len() + 1));
        body.extend_from_slice(&noise);
        let whole = measure(container, &body);
        let mut meter = Meter::new(container);
        let mut rest = &body[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = splits[i % splits.len()].min(rest.len());
            meter.feed(&rest[..n]);
            rest = &rest[n..];
            i += 1;
        }
        prop_assert_eq!(meter.finish(), whole);
        // Work bounded by the bytes, in this chunking too.
        let bound = crate::media::duration::tests::STEPS_PER_BYTE * body.len() as u64 + crate::media::duration::tests::STEPS_CONSTANT;
        prop_assert!(meter.steps() <= bound, "{:?}: {} steps for {} bytes", container, meter.steps(), body.len());
    }

    /// Structural soup: each container's own headers with extreme values (sizes of 0, 1, 2^32-1 and
    /// 2^64-1, counts of 2^32-1, unknown sizes, deep nesting of the masters a meter enters),
    /// strung together at random. Work stays bounded by the bytes; no panic.
    #[test]
    fn hostile_structures_cost_bounded_work(
        container in proptest::sample::select(crate::media::DEFAULT_ALLOWED.to_vec()),
        tokens in proptest::collection::vec((0usize..64, any::<u32>(), any::<u8>()), 1..200),
        chunk in prop_oneof![Just(1usize), Just(7), Just(4096), Just(usize::MAX)],
    ) {
        let body = soup(container, &tokens);
        crate::media::duration::tests::assert_bounded(container, &body, chunk);
    }

    /// Log scrubbing: a secret anywhere in any text never comes out.
    #[test]
    fn scrubbing(
        before in "[ -~\t\n]{0,20}",
        after in "[ -~\t\n]{0,20}",
        sep in prop_oneof![Just(" "), Just("\t"), Just("\n"), Just("\""), Just("="), Just(":"), Just("("), Just("{\"token\":\""), Just("Bearer ")],
        secret in prop_oneof![
            "eyJ[A-Za-z0-9_-]{4,20}\\.[A-Za-z0-9_-]{4,20}\\.[A-Za-z0-9_-]{4,20}",
            "sk_(live|test)_[A-Za-z0-9]{8,20}",
            "vercel_blob_(rw|client)_[A-Za-z0-9]{4,10}_[A-Za-z0-9]{8,20}",
        ],
    ) {
        let text = format!("{before}{sep}{secret}{sep}{after}");
        let out = crate::telemetry::scrub(&text);
        prop_assert!(!out.contains(&secret), "{:?} → {:?}", text, out);
    }
}

/// The fixtures the duration property reads, loaded once.
fn fixtures() -> &'static Vec<Vec<u8>> {
    static ALL: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        [
            "tone-5s.wav",
            "tone-5s.flac",
            "tone-5s.ogg",
            "tone-5s.webm",
            "tone-5s-live.webm",
            "tone-5s.m4a",
            "tone-5s-fragmented.m4a",
            "tone-5s.mp3",
            "tone-5s.aac",
        ]
        .iter()
        .map(|n| {
            let mut b = fixture(n);
            b.truncate(24 * 1024); // the headers and a few hundred frames: enough to walk
            b
        })
        .collect()
    })
}

/// Bytes made of a container's structural pieces with extreme values (see
/// `hostile_structures_cost_bounded_work`). `tokens`: (which piece, a number, a byte).
fn soup(container: Container, tokens: &[(usize, u32, u8)]) -> Vec<u8> {
    const EXTREMES: [u32; 6] = [0, 1, 8, 16, u32::MAX, u32::MAX - 7];
    let mut out = Vec::new();
    for &(piece, n, byte) in tokens {
        let extreme = EXTREMES[(n as usize) % EXTREMES.len()];
        let count = if byte & 1 == 0 { extreme } else { n };
        match container {
            Container::Mp4 => {
                let kinds: [&[u8; 4]; 12] = [
                    b"moov", b"trak", b"mdia", b"moof", b"traf", b"trun", b"stts", b"stsz", b"mdhd", b"mvhd", b"tfhd",
                    b"mdat",
                ];
                let kind = kinds[piece % kinds.len()];
                match piece % 4 {
                    // a 64-bit size of 2^64-1, or a size 0 ("to the end")
                    0 => {
                        out.extend_from_slice(&1u32.to_be_bytes());
                        out.extend_from_slice(kind);
                        out.extend_from_slice(&u64::MAX.to_be_bytes());
                    }
                    _ => {
                        out.extend_from_slice(&(16u32.max(extreme.min(24))).to_be_bytes());
                        out.extend_from_slice(kind);
                        out.extend_from_slice(&[0, 0, 0, byte & 0x0F]);
                        out.extend_from_slice(&count.to_be_bytes());
                        if piece % 4 == 3 {
                            out.extend_from_slice(&count.to_be_bytes());
                            out.extend_from_slice(&n.to_be_bytes());
                        }
                    }
                }
            }
            Container::WebM => {
                // Masters (Segment, Cluster, BlockGroup, Info) with unknown or huge sizes, and
                // blocks with zero or all-ones sizes.
                let ids: [&[u8]; 8] = [
                    &[0x18, 0x53, 0x80, 0x67],
                    &[0x1F, 0x43, 0xB6, 0x75],
                    &[0xA0],
                    &[0x15, 0x49, 0xA9, 0x66],
                    &[0xA3],
                    &[0xE7],
                    &[0x44, 0x89],
                    &[0x1A, 0x45, 0xDF, 0xA3],
                ];
                out.extend_from_slice(ids[piece % ids.len()]);
                match byte % 4 {
                    0 => out.push(0xFF),                                                           // unknown size
                    1 => out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]), // 2^56-2
                    2 => out.push(0x80),                                                           // zero
                    _ => {
                        out.push(0x84);
                        out.extend_from_slice(&n.to_be_bytes());
                    }
                }
            }
            Container::Ogg => {
                out.extend_from_slice(b"OggS\0");
                out.push(byte & 7);
                out.extend_from_slice(&u64::from(count).to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&(piece as u32).to_le_bytes());
                out.extend_from_slice(&[0; 4]);
                let segments = (piece * 4) as u8;
                out.push(segments);
                out.extend(std::iter::repeat_n(if byte & 2 == 0 { 255 } else { 0 }, usize::from(segments)));
                if piece % 3 == 0 {
                    out.extend_from_slice(b"OpusHead\x01\x02");
                }
                out.push(byte);
            }
            Container::Wav => {
                if out.is_empty() {
                    out.extend_from_slice(b"RIFF\xff\xff\xff\xffWAVE");
                }
                let ids: [&[u8; 4]; 4] = [b"fmt ", b"data", b"LIST", b"junk"];
                out.extend_from_slice(ids[piece % 4]);
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(&n.to_le_bytes());
            }
            Container::Flac => {
                if out.is_empty() {
                    out.extend_from_slice(b"fLaC");
                }
                // metadata block headers, or frame sync codes with random header bytes
                if piece % 2 == 0 {
                    out.extend_from_slice(&[byte & 0x7F, (count >> 16) as u8, (count >> 8) as u8, count as u8]);
                } else {
                    out.extend_from_slice(&[0xFF, 0xF8 | (byte & 1)]);
                    out.extend_from_slice(&n.to_be_bytes());
                }
            }
            Container::Mp3 | Container::Adts => {
                if piece % 5 == 0 {
                    out.extend_from_slice(b"ID3\x04\0\0");
                    out.extend_from_slice(&[
                        0x7F & (count >> 21) as u8,
                        0x7F & (count >> 14) as u8,
                        0x7F & (count >> 7) as u8,
                        0x7F & count as u8,
                    ]);
                } else if piece % 5 == 1 {
                    out.extend_from_slice(b"Xing\0\0\0\x0F");
                    out.extend_from_slice(&count.to_be_bytes());
                } else {
                    out.extend_from_slice(&[0xFF, 0xF0 | (byte & 0x0F)]);
                    out.extend_from_slice(&n.to_be_bytes());
                    out.push(byte);
                }
            }
        }
    }
    out
}
