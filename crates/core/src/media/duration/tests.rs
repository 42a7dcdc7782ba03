//! Tests across every meter: accuracy on the fixtures in every chunking, bounded work.

use super::*;

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../__test__/fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn what_cannot_be_measured_is_unknown_never_a_panic() {
    let flac = fixture("tone-5s.flac");
    // STREAMINFO alone, no frames (a total of 0 is measured from the frames: see flac.rs).
    let no_frames = flac[..42].to_vec();
    let wav = fixture("tone-5s.wav");
    let mut zero_rate = wav.clone();
    zero_rate[24..32].copy_from_slice(&[0; 8]); // sample rate and byte rate 0 (a byte rate alone is Inconsistent)
    let cases: Vec<(Container, Vec<u8>)> = vec![
        (Container::Flac, no_frames),
        (Container::Wav, zero_rate),
        (Container::Wav, wav[..36].to_vec()), // no data chunk
        (Container::Ogg, b"OggS".to_vec()),
        (Container::WebM, vec![0x1A, 0x45, 0xDF, 0xA3, 0x01]),
        (Container::Mp4, b"\0\0\0\x08ftyp".to_vec()),
        (Container::Mp3, b"ID3\x04\0\0\0\0\0\x05junk".to_vec()),
        (Container::Adts, vec![0xFF, 0xF1]),
    ];
    for (container, body) in cases {
        assert!(
            matches!(measure(container, &body), Measured::Unknown(_)),
            "{container:?} {:?}",
            measure(container, &body)
        );
    }
    // Every format on every other format's bytes, and on noise: an answer, never a panic.
    let names =
        ["tone-5s.wav", "tone-5s.flac", "tone-5s.ogg", "tone-5s.webm", "tone-5s.m4a", "tone-5s.mp3", "tone-5s.aac"];
    let noise: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for c in crate::media::DEFAULT_ALLOWED {
        for n in names {
            let _ = measure(*c, &fixture(n));
        }
        let _ = measure(*c, &noise);
    }
}

#[test]
fn a_header_cannot_claim_more_audio_than_arrived() {
    // A WAV whose data chunk says 160 000 bytes, cut after 16 000: 0.5 s, not 5 s.
    let wav = fixture("tone-5s.wav");
    let cut = &wav[..wav.len() - 144_000];
    assert_eq!(measure(Container::Wav, cut), Measured::Ms(500));
}

/// Every fixture, measured whole and fed in every chunking from 1 byte up, within 1 %.
#[test]
fn every_fixture_is_measured_within_one_percent() {
    let table: &[(&str, Container, u64)] = &[
        ("tone-5s.wav", Container::Wav, 5_000),
        ("tone-5s.flac", Container::Flac, 5_000),
        ("tone-5s.ogg", Container::Ogg, 5_000),
        ("tone-5s.webm", Container::WebM, 5_000),
        ("tone-5s.m4a", Container::Mp4, 5_000),
        ("tone-5s.mp3", Container::Mp3, 5_000),
        ("tone-5s.aac", Container::Adts, 5_000),
        ("sweep-60s.webm", Container::WebM, 60_000),
        ("sweep-60s.mp3", Container::Mp3, 60_000),
        ("tone-5s-live.webm", Container::WebM, 5_000),
        // Chromium's MediaRecorder with a timeslice; 19 980 ms is what Chromium's decoder found.
        ("chromium-20s-timeslice.webm", Container::WebM, 19_980),
        ("tone-5s-fragmented.m4a", Container::Mp4, 5_000),
        ("tone-5s-streamed.wav", Container::Wav, 5_000),
        ("tone-5s-cbr.mp3", Container::Mp3, 5_000),
        ("tone-5s-vorbis.ogg", Container::Ogg, 5_000),
    ];
    for (name, container, want) in table {
        let body = fixture(name);
        for chunk in [usize::MAX, 1, 3, 7, 100, 4096] {
            let mut meter = Meter::new(*container);
            for piece in body.chunks(chunk.min(body.len())) {
                meter.feed(piece);
            }
            let Measured::Ms(ms) = meter.finish() else {
                panic!("{name} in {chunk}-byte chunks: {:?}", meter.finish())
            };
            let off = (ms as f64 - *want as f64).abs() / *want as f64;
            assert!(off <= 0.01, "{name} in {chunk}-byte chunks: {ms} ms, want {want} ± 1 %");
        }
    }
}

/// Work bounded by the bytes: whatever is fed, in whatever chunking, every meter's loop passes stay
/// within `STEPS_PER_BYTE` per byte fed (plus a constant). Hostile inputs that today would loop on
/// a count read from the file (an MP4 `trun` claiming 2^32 samples without per-sample fields)
/// are among the cases.
pub(crate) const STEPS_PER_BYTE: u64 = 4;
pub(crate) const STEPS_CONSTANT: u64 = 64;

pub(crate) fn assert_bounded(container: Container, body: &[u8], chunk: usize) {
    let mut meter = Meter::new(container);
    for piece in body.chunks(chunk.max(1)) {
        meter.feed(piece);
    }
    let _ = meter.finish();
    let bound = STEPS_PER_BYTE * body.len() as u64 + STEPS_CONSTANT;
    assert!(meter.steps() <= bound, "{container:?}: {} steps for {} bytes", meter.steps(), body.len());
}

#[test]
fn a_count_from_the_file_does_not_drive_a_loop() {
    // ftyp, then moof/traf holding 4,000 `trun` boxes of 16 bytes that each claim 2^32-1 samples
    // with no per-sample fields (the report that stalled the process).
    let mut body = b"\0\0\0\x10ftypM4A \0\0\0\0".to_vec();
    let trun: &[u8] = b"\0\0\0\x10trun\0\0\0\0\xff\xff\xff\xff";
    let traf_len = 8 + 4000 * trun.len();
    body.extend_from_slice(&((traf_len + 8) as u32).to_be_bytes());
    body.extend_from_slice(b"moof");
    body.extend_from_slice(&(traf_len as u32).to_be_bytes());
    body.extend_from_slice(b"traf");
    for _ in 0..4000 {
        body.extend_from_slice(trun);
    }
    for chunk in [usize::MAX, 1, 7, 4096] {
        assert_bounded(Container::Mp4, &body, chunk);
    }
}

/// The answer for `body`, asserted the same in every chunking (1, 3, 7, 100, 4096 bytes) and with
/// work bounded by the bytes in each: what every meter's own tests measure with.
pub(crate) fn in_every_chunking(container: Container, body: &[u8]) -> Measured {
    let whole = measure(container, body);
    for chunk in [1, 3, 7, 100, 4096] {
        let mut meter = Meter::new(container);
        for piece in body.chunks(chunk) {
            meter.feed(piece);
        }
        assert_eq!(meter.finish(), whole, "{container:?} in {chunk}-byte chunks");
        assert_bounded(container, body, chunk);
    }
    whole
}

/// `got` is a measurement within 1 % of `want` ms.
pub(crate) fn near(got: Measured, want: u64) {
    let Measured::Ms(ms) = got else { panic!("{got:?}, want {want} ms") };
    assert!(ms.abs_diff(want) * 100 <= want, "{ms} ms, want {want} ± 1 %");
}
