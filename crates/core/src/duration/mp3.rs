use super::*;

/// An ID3v2 tag (skipped), the first frame (read whole enough for Xing/VBRI), the last 128 bytes
/// (an ID3v1 tag is not audio).
#[derive(Default)]
pub(super) struct Mp3 {
    head: Collect,
    /// Bytes before the first frame (ID3v2 tags).
    skip: u64,
    leading: u64,
    tag_checked: bool,
    frame: Collect,
    tail: Vec<u8>,
}

/// The first frame's bytes read: header (4) + side info (≤ 32) + Xing (120) and the LAME tag's
/// encoder delay and padding (24 more), or VBRI (26 at 32).
const MP3_FIRST_FRAME: usize = 4 + 32 + 144;

/// An MPEG audio frame header: (samples per frame, sample rate, bitrate in bit/s), or `None`.
fn mp3_header(h: &[u8]) -> Option<(u32, u32, u32)> {
    if h.len() < 4 || h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: 2.5, 2: 2, 3: 1
    let layer = (h[1] >> 1) & 3; // 1: III, 2: II, 3: I
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let rate = [44_100, 48_000, 32_000][rate_index]
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
    let samples = match (version, layer) {
        (_, 3) => 384,
        (3, _) | (_, 2) => 1152,
        _ => 576,
    };
    Some((samples, rate, kbps * 1000))
}

impl Mp3 {
    fn feed_chunk(&mut self, mut chunk: &[u8], steps: &mut u64) {
        // Keep the last 128 bytes for an ID3v1 tag.
        let keep = 128usize;
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
        while !chunk.is_empty() {
            *steps += 1;
            if !self.tag_checked {
                let used = self.head.fill(chunk, 10);
                chunk = &chunk[used..];
                if self.head.buf.len() < 10 {
                    return;
                }
                self.tag_checked = true;
                let h = &self.head.buf;
                if &h[..3] == b"ID3" {
                    // Syncsafe size, plus a footer when flagged.
                    let size = h[6..10].iter().fold(0u64, |acc, &b| (acc << 7) | u64::from(b & 0x7F));
                    let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
                    self.skip = size + footer;
                    self.leading = 10 + size + footer;
                } else {
                    // No tag: these 10 bytes are the start of the first frame.
                    let first = std::mem::take(&mut self.head.buf);
                    self.frame.fill(&first, MP3_FIRST_FRAME);
                }
                continue;
            }
            if self.skip > 0 {
                chunk = take(&mut self.skip, chunk).1;
                continue;
            }
            self.frame.fill(chunk, MP3_FIRST_FRAME);
            return;
        }
    }

    /// The duration from a Xing/Info or VBRI frame count, if the first frame has one.
    fn counted(&self) -> Option<Measured> {
        let f = &self.frame.buf;
        let (samples, rate, _) = mp3_header(f)?;
        // Xing/Info sits after the side information; VBRI at a fixed 32 bytes after the header.
        let mono = f[3] >> 6 == 3;
        let mpeg1 = (f[1] >> 3) & 3 == 3;
        let side = match (mpeg1, mono) {
            (true, false) => 32,
            (true, true) | (false, false) => 17,
            (false, true) => 9,
        };
        let xing = &f[(4 + side).min(f.len())..];
        if xing.len() >= 12 && (xing.starts_with(b"Xing") || xing.starts_with(b"Info")) && xing[7] & 1 != 0 {
            let frames = u32_be(&xing[8..12]);
            let mut total_samples = u128::from(frames) * u128::from(samples);
            // A LAME-style tag after the Xing fields (all four fields present, as encoders write
            // them) gives the encoder delay and padding: samples that are not audio.
            if xing[7] & 0x0F == 0x0F && xing.len() >= 144 && xing[120..124].iter().all(u8::is_ascii_alphanumeric) {
                let d = &xing[141..144];
                let delay = (u32::from(d[0]) << 4) | u32::from(d[1] >> 4);
                let padding = (u32::from(d[1] & 0x0F) << 8) | u32::from(d[2]);
                total_samples = total_samples.saturating_sub(u128::from(delay + padding));
            }
            return Some(ms_or(total_samples, u128::from(rate), "MP3 Xing"));
        }
        let vbri = &f[(4 + 32).min(f.len())..];
        if vbri.len() >= 18 && vbri.starts_with(b"VBRI") {
            let frames = u32_be(&vbri[14..18]);
            return Some(ms_or(u128::from(frames) * u128::from(samples), u128::from(rate), "MP3 VBRI"));
        }
        None
    }

    fn finish_total(&self, total: u64) -> Measured {
        let Some((_, _, bitrate)) = mp3_header(&self.frame.buf) else {
            return Measured::Unknown("MP3 without a frame header after its tags");
        };
        if let Some(counted) = self.counted() {
            return counted;
        }
        // CBR: the audio bytes at the first frame's bitrate. A VBR file without a header is
        // estimated wrongly; the README lists it.
        let id3v1 = if self.tail.len() == 128 && self.tail.starts_with(b"TAG") { 128 } else { 0 };
        let audio = total.saturating_sub(self.leading).saturating_sub(id3v1);
        ms_or(u128::from(audio) * 8, u128::from(bitrate), "MP3 without a bitrate")
    }
}

impl Measure for Mp3 {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.feed_chunk(chunk, steps);
    }

    fn finish(&self, total: u64, _steps: &mut u64) -> Measured {
        self.finish_total(total)
    }
}
