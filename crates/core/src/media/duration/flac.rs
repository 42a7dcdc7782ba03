//! FLAC.
//!
//! Measured: the samples of the frames actually present. FLAC frames do not say their length, so
//! every byte after STREAMINFO is scanned once for a frame sync (0xFFF8 or 0xFFF9); a sync starts a
//! frame when the header after it decodes (block size, sample rate, channel assignment and sample
//! size codes valid, the UTF-8 coded frame or sample number well formed) and its CRC-8 matches.
//! Such a header is counted only when it continues the frame numbers (frame n + 1 after frame n; for
//! variable block sizes, the sample number after the previous frame's samples): random sync bits
//! inside compressed audio or a picture almost never pass the CRC and never continue the numbers.
//! When the numbers break (a damaged frame, a second stream joined on), a header becomes a candidate,
//! and the next header continuing it starts a new run (both are counted). A file of one frame
//! counts it when its number is 0. Metadata blocks other than STREAMINFO are not skipped by their
//! length (a length that lies could swallow frames): they are scanned like everything else.
//!
//! Cross-checks, `Inconsistent` when they fail:
//! - STREAMINFO's total samples, when not 0 (0 means unknown: a streamed file), may not be smaller
//!   than the samples the frames hold by more than max(2 %, 1 s): the file would claim less than it
//!   plays. A total larger than the frames present stands measured as present (a cut upload).
//! - A frame's sample rate must equal STREAMINFO's, and all counted frames must share one rate.
//!
//! `Unknown`: no `fLaC` marker with STREAMINFO first, a STREAMINFO sample rate of 0, no counted
//! frames.

use super::*;

/// The longest frame header: sync (2), codes (2), the number (7), block size (2), rate (2), CRC (1).
const MAX_HEADER: usize = 16;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    /// Variable block size: `number` counts samples, not frames.
    variable: bool,
    number: u64,
    block: u32,
    rate: u32,
    /// Header bytes, CRC included.
    len: usize,
}

enum Parse {
    /// Not a frame header.
    No,
    /// Could be one: more bytes are needed to tell.
    More,
    Yes(FrameHeader),
}

/// CRC-8, polynomial x^8 + x^2 + x + 1, initial 0 (the frame header's).
fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |mut crc, &b| {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x07 } else { crc << 1 };
        }
        crc
    })
}

/// Decode a frame header at the start of `b` (any bytes that follow are ignored). `info_rate`:
/// STREAMINFO's rate, for frames whose rate code says "as STREAMINFO".
fn frame_header(b: &[u8], info_rate: u32) -> Parse {
    let byte = |i: usize| b.get(i).copied();
    match (byte(0), byte(1)) {
        (Some(0xFF), Some(s)) if s & 0xFE == 0xF8 => {}
        (Some(0xFF), None) | (None, _) => return Parse::More,
        _ => return Parse::No,
    }
    let (Some(codes), Some(layout)) = (byte(2), byte(3)) else { return Parse::More };
    let (block_code, rate_code) = (codes >> 4, codes & 0x0F);
    let (channels, sample_size) = (layout >> 4, (layout >> 1) & 7);
    if block_code == 0 || rate_code == 15 || channels > 10 || sample_size == 3 || layout & 1 != 0 {
        return Parse::No;
    }
    // The UTF-8 coded number: the first byte's leading ones say how many bytes (up to 7).
    let Some(first) = byte(4) else { return Parse::More };
    let extra = match first.leading_ones() {
        0 => 0,
        n @ 2..=7 => n as usize - 1,
        _ => return Parse::No,
    };
    let mut number = u64::from(first & (0x7F >> extra.min(6)));
    if extra == 6 {
        number = 0; // 0xFE: no value bits in the first byte
    }
    for i in 0..extra {
        let Some(c) = byte(5 + i) else { return Parse::More };
        if c & 0xC0 != 0x80 {
            return Parse::No;
        }
        number = (number << 6) | u64::from(c & 0x3F);
    }
    let variable = b[1] & 1 != 0;
    // A frame number is at most 31 bits (6 bytes); a sample number 36 bits (7 bytes).
    if !variable && extra > 5 {
        return Parse::No;
    }
    let mut at = 5 + extra;
    let mut read = |n: usize| -> Option<u32> {
        let v = (0..n).try_fold(0u32, |acc, i| Some((acc << 8) | u32::from(byte(at + i)?)));
        at += n;
        v
    };
    let block = match block_code {
        1 => 192,
        2..=5 => 576 << (block_code - 2),
        6 => match read(1) {
            Some(v) => v + 1,
            None => return Parse::More,
        },
        7 => match read(2) {
            Some(v) => v + 1,
            None => return Parse::More,
        },
        _ => 256 << (block_code - 8),
    };
    const RATES: [u32; 12] =
        [0, 88_200, 176_400, 192_000, 8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000];
    let rate = match rate_code {
        0 => info_rate,
        12 => match read(1) {
            Some(v) => v * 1000,
            None => return Parse::More,
        },
        13 => match read(2) {
            Some(v) => v,
            None => return Parse::More,
        },
        14 => match read(2) {
            Some(v) => v * 10,
            None => return Parse::More,
        },
        c => RATES[usize::from(c)],
    };
    let Some(crc) = byte(at) else { return Parse::More };
    if rate == 0 || crc8(&b[..at]) != crc {
        return Parse::No;
    }
    Parse::Yes(FrameHeader { variable, number, block, rate, len: at + 1 })
}

/// What the next frame of a run must be numbered.
fn next_number(h: &FrameHeader) -> u64 {
    if h.variable {
        h.number.saturating_add(u64::from(h.block))
    } else {
        h.number.saturating_add(1)
    }
}

#[derive(Default)]
pub(super) struct Flac {
    /// "fLaC", STREAMINFO's block header and its 34 bytes.
    head: Collect,
    /// STREAMINFO read: its sample rate and total samples (0: unknown).
    info: Option<(u32, u64)>,
    failed: bool,
    /// Bytes from the first position not yet scanned (fewer than `MAX_HEADER` between chunks).
    tail: Vec<u8>,
    /// The run being counted: what the next frame must be (strategy, number).
    run: Option<(bool, u64)>,
    /// A header that broke the run: (itself, what would continue it).
    candidate: Option<FrameHeader>,
    samples: u128,
    frames: u64,
    rate: u32,
    /// Counted frames with a rate other than STREAMINFO's, or than each other.
    rate_mismatch: bool,
}

impl Flac {
    fn count(&mut self, h: &FrameHeader) {
        self.frames = self.frames.saturating_add(1);
        self.samples = self.samples.saturating_add(u128::from(h.block));
        if self.rate == 0 {
            self.rate = h.rate;
        }
        if h.rate != self.rate || self.info.is_some_and(|(rate, _)| rate != h.rate) {
            self.rate_mismatch = true;
        }
    }

    /// A valid frame header: counted when it continues the run or confirms the candidate.
    fn frame(&mut self, h: FrameHeader) {
        if self.run == Some((h.variable, h.number)) {
            self.count(&h);
            self.run = Some((h.variable, next_number(&h)));
            self.candidate = None;
        } else if let Some(c) = self.candidate.filter(|c| c.variable == h.variable && next_number(c) == h.number) {
            self.count(&c);
            self.count(&h);
            self.run = Some((h.variable, next_number(&h)));
            self.candidate = None;
        } else {
            self.candidate = Some(h);
        }
    }

    /// Decide the position at the start of `b`: `None` when more bytes are needed; otherwise how
    /// many bytes to move on (1, or a whole valid header).
    fn position(&mut self, b: &[u8], info_rate: u32) -> Option<usize> {
        match frame_header(b, info_rate) {
            Parse::More => None,
            Parse::No => Some(1),
            Parse::Yes(h) => {
                self.frame(h);
                Some(h.len)
            }
        }
    }
}

impl Measure for Flac {
    fn feed(&mut self, mut chunk: &[u8], steps: &mut u64) {
        if self.failed {
            return;
        }
        let info_rate = match self.info {
            Some((rate, _)) => rate,
            None => {
                *steps += 1;
                let used = self.head.fill(chunk, 4 + 4 + 34);
                chunk = &chunk[used..];
                let b = &self.head.buf;
                if b.len() < 42 {
                    return;
                }
                if &b[..4] != b"fLaC" || b[4] & 0x7F != 0 {
                    self.failed = true;
                    return;
                }
                let info = &b[8..42];
                let rate = (u32::from(info[10]) << 12) | (u32::from(info[11]) << 4) | (u32::from(info[12]) >> 4);
                let total = (u64::from(info[13] & 0x0F) << 32) | u64::from(u32_be(&info[14..18]));
                self.info = Some((rate, total));
                if rate == 0 {
                    self.failed = true;
                    return;
                }
                rate
            }
        };
        // Positions held over from the previous chunk: decide them with up to a header's worth of
        // this chunk's bytes behind them.
        if !self.tail.is_empty() {
            let mut tail = std::mem::take(&mut self.tail);
            let held = tail.len();
            let used = MAX_HEADER.min(chunk.len());
            tail.extend_from_slice(&chunk[..used]);
            let mut p = 0;
            while p < held {
                *steps += 1;
                match self.position(&tail[p..], info_rate) {
                    // Only when the whole chunk is in `tail` (a header needs at most MAX_HEADER).
                    None => {
                        tail.drain(..p);
                        self.tail = tail;
                        return;
                    }
                    Some(n) => p += n,
                }
            }
            // A header that began in the tail may end inside the chunk.
            chunk = &chunk[(p - held).min(chunk.len())..];
        }
        // Positions within the chunk.
        let mut at = 0;
        while at < chunk.len() {
            *steps += 1;
            // A sync starts with 0xFF: skip to the next one in a single pass.
            if chunk[at] != 0xFF {
                at += 1;
                continue;
            }
            match self.position(&chunk[at..], info_rate) {
                None => {
                    self.tail = chunk[at..].to_vec();
                    return;
                }
                Some(n) => at += n,
            }
        }
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        let Some((info_rate, total)) = self.info else {
            return Measured::Unknown("FLAC without STREAMINFO");
        };
        if info_rate == 0 {
            return Measured::Unknown("FLAC STREAMINFO without a sample rate");
        }
        let (mut samples, mut rate) = (self.samples, self.rate);
        // A file of one frame: counted when it is the first.
        if self.frames == 0 {
            if let Some(c) = self.candidate.filter(|c| c.number == 0) {
                if c.rate != info_rate {
                    return Measured::Inconsistent("FLAC frame sample rate disagrees with STREAMINFO");
                }
                samples = u128::from(c.block);
                rate = c.rate;
            }
        }
        if self.rate_mismatch {
            return Measured::Inconsistent("FLAC frame sample rate disagrees with STREAMINFO or other frames");
        }
        if samples == 0 || rate == 0 {
            return Measured::Unknown("FLAC without frames");
        }
        if total != 0 {
            let slack = (u128::from(total) / 50).max(u128::from(rate));
            if samples > u128::from(total).saturating_add(slack) {
                return Measured::Inconsistent("FLAC STREAMINFO total samples are fewer than the frames hold");
            }
        }
        ms_or(samples, u128::from(rate), "FLAC duration out of range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::duration::tests::{fixture, in_every_chunking};
    use crate::media::Container;

    fn ms(body: &[u8]) -> Measured {
        in_every_chunking(Container::Flac, body)
    }

    /// STREAMINFO's total samples field (36 bits at byte 8 + 13).
    fn set_total(b: &mut [u8], total: u64) {
        b[8 + 13] = (b[8 + 13] & 0xF0) | ((total >> 32) as u8 & 0x0F);
        b[8 + 14..8 + 18].copy_from_slice(&(total as u32).to_be_bytes());
    }

    /// Where each frame starts (a whole-file scan with the meter's own header reader).
    fn frame_starts(b: &[u8]) -> Vec<usize> {
        (42..b.len()).filter(|&at| matches!(frame_header(&b[at..], 48_000), Parse::Yes(_))).collect()
    }

    #[test]
    fn fixture_frames_are_what_the_surgery_assumes() {
        let flac = fixture("tone-5s.flac");
        let starts = frame_starts(&flac);
        // 5 s at 48 kHz in blocks of 4608: 53 frames, the last one shorter.
        assert_eq!(starts.len(), 53);
        assert_eq!(starts[0], 8288);
        assert_eq!(ms(&flac), Measured::Ms(5_000));
    }

    #[test]
    fn lie_streaminfo_total_samples_zero() {
        let mut flac = fixture("tone-5s.flac");
        set_total(&mut flac, 0);
        assert_eq!(ms(&flac), Measured::Ms(5_000));
    }

    #[test]
    fn lie_streaminfo_total_samples_times_10() {
        // Claims 50 s: a cut upload looks the same, so the frames present stand.
        let mut flac = fixture("tone-5s.flac");
        set_total(&mut flac, 240_000 * 10);
        assert_eq!(ms(&flac), Measured::Ms(5_000));
    }

    #[test]
    fn lie_streaminfo_total_samples_divided_by_10_is_inconsistent() {
        let mut flac = fixture("tone-5s.flac");
        set_total(&mut flac, 24_000);
        assert!(matches!(ms(&flac), Measured::Inconsistent(_)), "{:?}", ms(&flac));
    }

    #[test]
    fn lie_streaminfo_sample_rate_is_inconsistent() {
        // 4.8 kHz in STREAMINFO (would make 50 s of the samples); the frames say 48 kHz.
        let mut flac = fixture("tone-5s.flac");
        let info = 8;
        let rate = 4_800u32;
        flac[info + 10] = (rate >> 12) as u8;
        flac[info + 11] = (rate >> 4) as u8;
        flac[info + 12] = (flac[info + 12] & 0x0F) | ((rate as u8 & 0x0F) << 4);
        assert!(matches!(ms(&flac), Measured::Inconsistent(_)), "{:?}", ms(&flac));
    }

    #[test]
    fn lie_metadata_length_swallows_the_frames() {
        // The VORBIS_COMMENT block (after STREAMINFO) says it is 16 MiB long.
        let mut flac = fixture("tone-5s.flac");
        assert_eq!(flac[42] & 0x7F, 4);
        flac[43..46].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        assert_eq!(ms(&flac), Measured::Ms(5_000));
    }

    #[test]
    fn junk_between_frames_and_joined_streams() {
        let flac = fixture("tone-5s.flac");
        let starts = frame_starts(&flac);
        // Junk with sync-like bytes between frames 10 and 11 and 30 and 31.
        let junk: Vec<u8> = [0xFF, 0xF8, 0x5A, 0x08, 0x00, 0x81].repeat(20);
        let mut b = flac[..starts[11]].to_vec();
        b.extend_from_slice(&junk);
        b.extend_from_slice(&flac[starts[11]..starts[31]]);
        b.extend_from_slice(&junk);
        b.extend_from_slice(&flac[starts[31]..]);
        assert_eq!(ms(&b), Measured::Ms(5_000));
        // The frames twice (numbers restart at 0): both runs count, 10 s (total 0: unknown).
        let mut twice = flac.clone();
        set_total(&mut twice, 0);
        twice.extend_from_slice(&flac[starts[0]..]);
        assert_eq!(ms(&twice), Measured::Ms(10_000));
    }

    #[test]
    fn a_damaged_header_loses_its_frame_only() {
        let mut flac = fixture("tone-5s.flac");
        let starts = frame_starts(&flac);
        flac[starts[20] + 2] ^= 0x01; // rate code changed: the CRC-8 no longer matches
        assert_eq!(ms(&flac), Measured::Ms((240_000 - 4608) * 1000 / 48_000));
    }

    #[test]
    fn frames_of_another_rate_are_inconsistent() {
        let mut flac = fixture("tone-5s.flac");
        let starts = frame_starts(&flac);
        for &at in &starts[30..] {
            let Parse::Yes(h) = frame_header(&flac[at..], 48_000) else { panic!() };
            flac[at + 2] = (flac[at + 2] & 0xF0) | 11; // 96 kHz
            flac[at + h.len - 1] = crc8(&flac[at..at + h.len - 1]);
        }
        assert!(matches!(ms(&flac), Measured::Inconsistent(_)), "{:?}", ms(&flac));
    }

    #[test]
    fn headers_table() {
        // (bytes without the CRC, what they decode to: (variable, number, block, rate) or None)
        type Case = (&'static [u8], Option<(bool, u64, u32, u32)>);
        let cases: &[Case] = &[
            (&[0xFF, 0xF8, 0x5A, 0x08, 0x00], Some((false, 0, 4608, 48_000))),
            (&[0xFF, 0xF8, 0x69, 0x08, 0xC2, 0x80, 0x0F], Some((false, 128, 16, 44_100))),
            (&[0xFF, 0xF9, 0x7C, 0x08, 0x05, 0x10, 0x00, 0x30], Some((true, 5, 4097, 48_000))),
            (&[0xFF, 0xF8, 0x1D, 0x08, 0x00, 0x3E, 0x80], Some((false, 0, 192, 16_000))),
            (&[0xFF, 0xF8, 0x0A, 0x08, 0x00], None),       // block size code 0
            (&[0xFF, 0xF8, 0x5F, 0x08, 0x00], None),       // rate code 15
            (&[0xFF, 0xF8, 0x5A, 0xB8, 0x00], None),       // channel assignment 11
            (&[0xFF, 0xF8, 0x5A, 0x06, 0x00], None),       // sample size 3
            (&[0xFF, 0xF8, 0x5A, 0x08, 0x80], None),       // a continuation byte first
            (&[0xFF, 0xF8, 0x5A, 0x08, 0xC2, 0x00], None), // a bad continuation byte
            (&[0xFF, 0xF8, 0x5A, 0x08, 0xFE, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80], None), // 7 bytes, fixed
        ];
        for (bytes, want) in cases {
            let mut b = bytes.to_vec();
            b.push(crc8(bytes));
            let got = match frame_header(&b, 48_000) {
                Parse::Yes(h) => Some((h.variable, h.number, h.block, h.rate)),
                _ => None,
            };
            assert_eq!(got, *want, "{bytes:02X?}");
            if want.is_some() {
                // A wrong CRC, and every cut short: not a header / more needed.
                *b.last_mut().unwrap() ^= 1;
                assert!(matches!(frame_header(&b, 48_000), Parse::No));
                for cut in 0..b.len() {
                    assert!(matches!(frame_header(&b[..cut], 48_000), Parse::More), "{bytes:02X?} cut at {cut}");
                }
            }
        }
    }
}
