//! Audio MIME types and container sniffing for uploads. Pure functions, table-tested.
//!
//! The declared type (`x-content-type`) is normalised to one canonical essence per container, its
//! parameters kept (`audio/webm;codecs=opus`). The first bytes of the body must then be that
//! container, so a client cannot label an HTML file or an executable as audio and have us store it.

pub mod duration;
pub mod finalise;

/// The containers we accept, each with its canonical MIME essence and file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    WebM,
    Ogg,
    Mp3,
    Mp4,
    Adts,
    Wav,
    Flac,
}

impl Container {
    pub fn essence(self) -> &'static str {
        match self {
            Container::WebM => "audio/webm",
            Container::Ogg => "audio/ogg",
            Container::Mp3 => "audio/mpeg",
            Container::Mp4 => "audio/mp4",
            Container::Adts => "audio/aac",
            Container::Wav => "audio/wav",
            Container::Flac => "audio/flac",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Container::WebM => "webm",
            Container::Ogg => "ogg",
            Container::Mp3 => "mp3",
            Container::Mp4 => "m4a",
            Container::Adts => "aac",
            Container::Wav => "wav",
            Container::Flac => "flac",
        }
    }

    /// How many leading bytes `matches` needs to decide (fewer is fine at the end of a tiny body).
    pub const SNIFF_BYTES: usize = 12;

    /// Do these first bytes start this container?
    pub fn matches(self, b: &[u8]) -> bool {
        match self {
            Container::WebM => b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
            Container::Ogg => b.starts_with(b"OggS"),
            Container::Wav => b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE",
            Container::Flac => b.starts_with(b"fLaC"),
            Container::Mp4 => b.len() >= 8 && &b[4..8] == b"ftyp",
            // ID3v2 tag, or an MPEG audio frame sync: 11 set bits, a version other than
            // "reserved" (01), a layer other than "reserved" (00).
            Container::Mp3 => {
                b.starts_with(b"ID3")
                    || (b.len() >= 2 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0 && b[1] & 0x18 != 0x08 && b[1] & 0x06 != 0)
            }
            // ADTS: 12-bit sync 0xFFF and layer 00 (what distinguishes it from MP3 frames).
            Container::Adts => b.len() >= 2 && b[0] == 0xFF && b[1] & 0xF6 == 0xF0,
        }
    }
}

/// Map a MIME essence (any common alias) to its container.
pub fn container_of(essence: &str) -> Option<Container> {
    Some(match essence {
        "audio/webm" => Container::WebM,
        "audio/ogg" | "application/ogg" | "audio/opus" => Container::Ogg,
        "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg-3" => Container::Mp3,
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/aac-mp4" => Container::Mp4,
        "audio/aac" | "audio/aacp" | "audio/x-aac" => Container::Adts,
        "audio/wav" | "audio/wave" | "audio/x-wav" | "audio/vnd.wave" | "audio/x-pn-wav" => Container::Wav,
        "audio/flac" | "audio/x-flac" => Container::Flac,
        _ => return None,
    })
}

/// The default `SESSION_AUDIO_ALLOWED_TYPES`.
pub const DEFAULT_ALLOWED: &[Container] = &[
    Container::WebM,
    Container::Ogg,
    Container::Mp3,
    Container::Mp4,
    Container::Adts,
    Container::Wav,
    Container::Flac,
];

/// A declared type, normalised: lower-case essence mapped to the canonical one, parameters kept
/// in order with spaces removed (`Audio/WebM; codecs="opus"` → `audio/webm;codecs=opus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredType {
    pub container: Container,
    pub normalised: String,
}

/// Parse a declared MIME type. `Err(None)`: malformed; `Err(Some(essence))`: well-formed but not
/// an audio container we know.
pub fn parse_declared(raw: &str) -> Result<DeclaredType, Option<String>> {
    let mut parts = raw.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let token = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c));
    let Some((kind, sub)) = essence.split_once('/') else { return Err(None) };
    if !token(kind) || !token(sub) {
        return Err(None);
    }
    let container = container_of(&essence).ok_or(Some(essence.clone()))?;
    let mut normalised = container.essence().to_string();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let Some((k, v)) = p.split_once('=') else { return Err(None) };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'));
        if !token(&k) || v.is_empty() || !v.bytes().all(|c| c.is_ascii_graphic() && c != b';' && c != b'"') {
            return Err(None);
        }
        normalised.push_str(&format!(";{k}={v}"));
    }
    Ok(DeclaredType { container, normalised })
}

/// Parse `SESSION_AUDIO_ALLOWED_TYPES` (comma list of essences, aliases allowed).
pub fn parse_allowed(list: &[String]) -> Result<Vec<Container>, String> {
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        // Named by position, never quoted: configuration errors do not echo values.
        let c = container_of(&t.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("entry {} is not an audio type session-audio can verify", i + 1))?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn declared_type_table() {
        let table: &[(&str, Result<&str, Option<&str>>)] = &[
            ("audio/webm", Ok("audio/webm")),
            ("audio/webm;codecs=opus", Ok("audio/webm;codecs=opus")),
            ("Audio/WebM; Codecs=\"opus\"", Ok("audio/webm;codecs=opus")),
            ("audio/x-wav", Ok("audio/wav")),
            ("audio/x-m4a", Ok("audio/mp4")),
            ("audio/mp3", Ok("audio/mpeg")),
            ("application/ogg", Ok("audio/ogg")),
            ("audio/x-flac", Ok("audio/flac")),
            ("audio/aac", Ok("audio/aac")),
            ("text/html", Err(Some("text/html"))),
            ("audio/midi", Err(Some("audio/midi"))),
            ("audio", Err(None)),
            ("audio/webm; codecs", Err(None)),
            ("audio/webm;codecs=\"a;b\"", Err(None)),
            ("", Err(None)),
            ("audio /webm", Err(None)),
        ];
        for (raw, want) in table {
            let got = parse_declared(raw).map(|d| d.normalised);
            let want = want.map(str::to_string).map_err(|e| e.map(str::to_string));
            assert_eq!(got, want, "{raw:?}");
        }
    }

    /// The sniffing table; the property tests check `matches` against it too.
    pub(crate) const MAGIC_TABLE: &[(Container, &[u8], bool)] = &[
        (Container::Wav, b"RIFF\x24\x00\x00\x00WAVEfmt ", true),
        (Container::Wav, b"RIFF\x24\x00\x00\x00AVI LIST", false),
        (Container::WebM, &[0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81], true),
        (Container::WebM, b"<html>", false),
        (Container::Ogg, b"OggS\x00\x02", true),
        (Container::Flac, b"fLaC\x00\x00", true),
        (Container::Mp4, b"\x00\x00\x00\x1cftypM4A \x00\x00", true),
        (Container::Mp4, b"\x00\x00\x00\x1cmoov", false),
        (Container::Mp3, b"ID3\x04\x00\x00\x00\x00", true),
        (Container::Mp3, &[0xFF, 0xFB, 0x90, 0x64], true),
        (Container::Mp3, &[0xFF, 0xF1, 0x50, 0x80], false),
        (Container::Adts, &[0xFF, 0xF1, 0x50, 0x80], true),
        (Container::Adts, &[0xFF, 0xFB, 0x90, 0x64], false),
        (Container::Mp3, b"MZ\x90\x00", false),
        (Container::Wav, b"", false),
    ];

    #[test]
    fn magic_number_table() {
        let table = MAGIC_TABLE;
        for (c, bytes, ok) in table {
            assert_eq!(c.matches(bytes), *ok, "{c:?} {bytes:?}");
        }
    }

    #[test]
    fn the_fixtures_sniff_as_their_containers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/audio");
        let table = [
            ("tone-5s.wav", Container::Wav),
            ("tone-5s.webm", Container::WebM),
            ("tone-5s.ogg", Container::Ogg),
            ("tone-5s.mp3", Container::Mp3),
            ("tone-5s.m4a", Container::Mp4),
            ("tone-5s.aac", Container::Adts),
            ("tone-5s.flac", Container::Flac),
        ];
        for (file, container) in table {
            let Ok(bytes) = std::fs::read(dir.join(file)) else {
                panic!("fixture {file} missing from __test__/fixtures/audio");
            };
            let head = &bytes[..Container::SNIFF_BYTES.min(bytes.len())];
            for other in DEFAULT_ALLOWED {
                assert_eq!(other.matches(head), *other == container, "{file} as {other:?}");
            }
        }
    }

    #[test]
    fn allowed_list_parses_aliases_and_refuses_unknown() {
        let l = |v: &[&str]| parse_allowed(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(l(&["audio/x-wav", "audio/wav", "audio/webm"]).unwrap(), vec![Container::Wav, Container::WebM]);
        assert!(l(&["video/mp4"]).is_err());
    }
}
