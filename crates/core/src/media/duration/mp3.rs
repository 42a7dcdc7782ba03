//! MP3 (MPEG-1/2/2.5 audio, layers I to III).
//!
//! Measured: the frames actually present, walked from their headers (frame length from bitrate,
//! sample rate, padding and layer), each holding its layer's samples per frame (384, 1152 or 576)
//! at its sample rate. Junk, ID3v2 tags at the start, and ID3v1/APE tags at the end do not end the
//! walk: it resyncs by scanning forward, and a header found by scanning is believed only when another
//! header with the same version, layer, sample rate and channel mode starts exactly where the first
//! frame ends (the walker is ADTS's, see adts.rs), so 0xFFE bits inside a tag or a picture do not
//! count as frames. An ID3v2 tag is not skipped by its declared size (a size that lies could swallow
//! the audio): its bytes are scanned like junk.
//!
//! When the first frame is a Xing/Info or VBRI frame it is not audio and is not counted; when its
//! Xing/Info frame carries a LAME tag, the encoder delay and padding it gives are subtracted too
//! (samples a decoder drops).
//!
//! Cross-check: the Xing/VBRI frame count is never used for the duration. When it disagrees with the
//! frames present, the measured value stands: a decoder plays the frames, and a cut upload or two
//! MP3 files joined end to end legitimately disagree with their first Xing frame.
//!
//! `Inconsistent`: frames of two different sample rates (a stream that changes format midway).
//! `Unknown`: no confirmed frames; a free-format stream (bitrate index 0: its frame length is not in
//! its header, so it cannot be walked).

use super::adts::{Frame, Frames, Framing};
use super::*;

/// The first frame's bytes kept: header (4) + side info (≤ 32) + Xing with every field (120) and the
/// LAME tag up to its encoder delay and padding (24 more); VBRI sits within it (at 36, 26 bytes).
const MP3_FIRST_FRAME: usize = 4 + 32 + 144;

pub(super) struct Mp3Framing;

impl Framing for Mp3Framing {
    const HEAD: usize = 4;
    /// The longest frame: MPEG-2 layer II at 160 kb/s and 8 kHz (2,880 bytes + padding).
    const WINDOW: usize = 2881 + 4;

    fn header(h: &[u8]) -> Option<Frame> {
        let h = h.get(..4)?;
        if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
            return None;
        }
        let version = (h[1] >> 3) & 3; // 0: 2.5, 2: 2, 3: 1
        let layer = (h[1] >> 1) & 3; // 1: III, 2: II, 3: I
        let bitrate_index = usize::from(h[2] >> 4);
        let rate_index = usize::from((h[2] >> 2) & 3);
        // Reserved values; bitrate index 0 is free format (length not in the header).
        if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 || h[3] & 3 == 2 {
            return None;
        }
        let rate = [44_100u32, 48_000, 32_000][rate_index]
            >> match version {
                3 => 0,
                2 => 1,
                _ => 2,
            };
        const V1: [[u32; 15]; 3] = [
            [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
            [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
            [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
        ];
        const V2: [[u32; 15]; 2] = [
            [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        ];
        let kbps = match (version, layer) {
            (3, 3) => V1[0][bitrate_index],
            (3, 2) => V1[1][bitrate_index],
            (3, _) => V1[2][bitrate_index],
            (_, 3) => V2[0][bitrate_index],
            _ => V2[1][bitrate_index],
        };
        let samples: u32 = match (version, layer) {
            (_, 3) => 384,
            (3, _) | (_, 2) => 1152,
            _ => 576,
        };
        let pad = u32::from((h[2] >> 1) & 1);
        let bps = kbps * 1000;
        let len = if layer == 3 { (12 * bps / rate + pad) * 4 } else { samples / 8 * bps / rate + pad };
        // Version, layer, sample rate, mono or not: the same in every frame of a stream.
        let key = (u32::from(h[1] & 0x1E) << 8) | u32::from(h[2] & 0x0C) | u32::from(h[3] >> 6 == 3);
        Some(Frame { len: len as usize, samples, rate, key })
    }
}

/// What a Xing/Info or VBRI first frame says: its frame count, and the LAME encoder delay plus
/// padding (samples that are not audio).
#[derive(Debug, PartialEq, Eq)]
struct InfoFrame {
    frames: Option<u32>,
    delay_and_padding: u32,
}

/// Read a first frame's bytes (`f`, from its header) for Xing/Info or VBRI.
fn info_frame(f: &[u8]) -> Option<InfoFrame> {
    let h = f.get(..4)?;
    let mono = h[3] >> 6 == 3;
    let mpeg1 = (h[1] >> 3) & 3 == 3;
    // Xing/Info sits after the side information; VBRI at a fixed 32 bytes after the header.
    let side = match (mpeg1, mono) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    };
    let xing = f.get(4 + side..).unwrap_or(&[]);
    if xing.len() >= 8 && (xing.starts_with(b"Xing") || xing.starts_with(b"Info")) {
        let flags = xing[7];
        let mut at = 8;
        let mut frames = None;
        if flags & 1 != 0 {
            frames = xing.get(at..at + 4).map(u32_be);
            at += 4;
        }
        // Byte count, table of contents, quality: each present when flagged.
        for (bit, size) in [(2u8, 4usize), (4, 100), (8, 4)] {
            if flags & bit != 0 {
                at += size;
            }
        }
        // A LAME-style tag: a 9-byte encoder string, then at 21 the delay (12 bits) and padding (12).
        let mut delay_and_padding = 0;
        if let Some(lame) = xing.get(at..at + 24) {
            if lame[..4].iter().all(u8::is_ascii_alphanumeric) {
                let d = &lame[21..24];
                let delay = (u32::from(d[0]) << 4) | u32::from(d[1] >> 4);
                let padding = (u32::from(d[1] & 0x0F) << 8) | u32::from(d[2]);
                delay_and_padding = delay + padding;
            }
        }
        return Some(InfoFrame { frames, delay_and_padding });
    }
    let vbri = f.get(4 + 32..).unwrap_or(&[]);
    if vbri.starts_with(b"VBRI") {
        return Some(InfoFrame { frames: vbri.get(14..18).map(u32_be), delay_and_padding: 0 });
    }
    None
}

pub(super) struct Mp3 {
    frames: Frames<Mp3Framing>,
}

impl Default for Mp3 {
    fn default() -> Self {
        Mp3 { frames: Frames::new(MP3_FIRST_FRAME) }
    }
}

impl Mp3 {
    fn finish_inner(&self) -> Measured {
        // The first frame, when it is Xing/Info/VBRI, is not audio; nor are the LAME delay and
        // padding. Its frame count is not used (see the top of this file).
        let minus = match &self.frames.first {
            Some((first, bytes)) => match info_frame(bytes) {
                Some(info) => u128::from(first.samples) + u128::from(info.delay_and_padding),
                None => 0,
            },
            None => 0,
        };
        self.frames.measured(minus, "MP3 without frames that can be walked (free-format MP3 cannot)")
    }
}

impl Measure for Mp3 {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.frames.feed(chunk, steps);
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::duration::tests::{fixture, in_every_chunking, near};
    use crate::media::Container;

    fn ms(body: &[u8]) -> Measured {
        in_every_chunking(Container::Mp3, body)
    }

    /// The fixtures: a 35-byte ID3v2 tag (45 bytes in all), then the frames.
    const FIRST_FRAME: usize = 45;

    /// Where each frame of an honest file starts.
    fn frame_starts(b: &[u8]) -> Vec<usize> {
        crate::media::duration::adts::tests::frame_starts::<Mp3Framing>(b, FIRST_FRAME)
    }

    /// `body` with `junk` inserted before the frames at the given frame indexes.
    fn with_junk(body: &[u8], at_frames: &[usize], junk: &[u8]) -> Vec<u8> {
        crate::media::duration::adts::tests::with_junk_at(body, &frame_starts(body), at_frames, junk)
    }

    #[test]
    fn lie_xing_count_says_10s() {
        let mut mp3 = fixture("sweep-60s.mp3");
        let xing = FIRST_FRAME + 4 + 17;
        assert_eq!(&mp3[xing..xing + 4], b"Info");
        let ten_seconds = 10 * 48_000 / 1152u32;
        mp3[xing + 8..xing + 12].copy_from_slice(&ten_seconds.to_be_bytes());
        near(ms(&mp3), 60_000);
    }

    #[test]
    fn the_info_frame_and_lame_delay_are_not_audio() {
        let mp3 = fixture("tone-5s.mp3");
        let frames = frame_starts(&mp3).len() as u128;
        let first = &mp3[FIRST_FRAME..FIRST_FRAME + MP3_FIRST_FRAME];
        let info = info_frame(first).unwrap();
        assert_eq!(info.frames, Some(frames as u32 - 1), "the Info count excludes the Info frame");
        assert!(info.delay_and_padding > 0);
        let want = ((frames - 1) * 1152 - u128::from(info.delay_and_padding)) * 1000 / 48_000;
        assert_eq!(ms(&mp3), Measured::Ms(want as u64));
    }

    #[test]
    fn lie_id3v2_size_swallows_the_file() {
        let mut mp3 = fixture("tone-5s.mp3");
        mp3[6..10].copy_from_slice(&[0x7F; 4]);
        near(ms(&mp3), 5_000);
        // A size that ends the tag in the middle of the frames.
        let mut mid = fixture("tone-5s.mp3");
        mid[6..10].copy_from_slice(&[0, 0, 0x7F, 0x7F]);
        near(ms(&mid), 5_000);
    }

    #[test]
    fn lie_junk_with_sync_like_patterns() {
        let mp3 = fixture("sweep-60s.mp3");
        let n = frame_starts(&mp3).len();
        assert!(n > 2000);
        // Fake headers (valid, same stream parameters) whose frame lengths point into real frames,
        // between runs of noise, at several places.
        let mut junk = Vec::new();
        for (i, h) in [[0xFF, 0xFB, 0x54, 0xC0], [0xFF, 0xFB, 0xE4, 0xC0], [0xFF, 0xFA, 0x94, 0xC0]].iter().enumerate()
        {
            junk.extend_from_slice(h);
            junk.extend((0..37 * (i + 1)).map(|j| (j as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1]));
        }
        near(ms(&with_junk(&mp3, &[1, 500, 501, 1300, n - 1], &junk)), 60_000);
        // One junk byte.
        near(ms(&with_junk(&mp3, &[700], &[0xFF])), 60_000);
    }

    #[test]
    fn trailing_tags_are_not_frames() {
        let mp3 = fixture("tone-5s-cbr.mp3");
        let plain = ms(&mp3);
        near(plain.clone(), 5_000);
        // An ID3v1 tag and an APE tag full of sync-like bytes.
        let mut tagged = mp3.clone();
        tagged.extend_from_slice(b"APETAGEX");
        tagged.extend(std::iter::repeat_n(0xFF, 200));
        tagged.extend_from_slice(b"TAG");
        tagged.extend(std::iter::repeat_n([0xFF, 0xFB, 0x54, 0xC0], 31).flatten());
        tagged.push(0);
        assert_eq!(ms(&tagged), plain);
    }

    #[test]
    fn lie_two_sample_rates_are_inconsistent() {
        // The second half of a 64 kb/s 48 kHz CBR file relabelled MPEG-2 at 24 kHz, 64 kb/s: the
        // same frame lengths, so both halves walk.
        let mut mp3 = fixture("tone-5s-cbr.mp3");
        let starts = frame_starts(&mp3);
        for &at in &starts[starts.len() / 2..] {
            mp3[at + 1] = (mp3[at + 1] & !0x18) | (2 << 3);
            mp3[at + 2] = (mp3[at + 2] & 0x0F) | (8 << 4);
        }
        assert!(matches!(ms(&mp3), Measured::Inconsistent(_)), "{:?}", ms(&mp3));
    }

    #[test]
    fn free_format_and_noise_are_unknown() {
        let mut mp3 = fixture("tone-5s-cbr.mp3");
        for at in frame_starts(&mp3) {
            mp3[at + 2] &= 0x0F;
        }
        assert!(matches!(ms(&mp3), Measured::Unknown(_)), "{:?}", ms(&mp3));
        let noise: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert!(matches!(ms(&noise), Measured::Unknown(_)));
    }

    #[test]
    fn a_cut_file_counts_the_whole_frames_that_arrived() {
        let mp3 = fixture("tone-5s-cbr.mp3");
        let starts = frame_starts(&mp3);
        let half = starts.len() / 2;
        // No Xing frame in this file: every frame is audio.
        assert_eq!(ms(&mp3[..starts[half] + 10]), Measured::Ms(half as u64 * 1152 * 1000 / 48_000));
    }
}
