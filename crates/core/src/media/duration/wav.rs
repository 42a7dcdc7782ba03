//! WAV (RIFF/WAVE).
//!
//! Measured: the bytes of every `data` chunk that actually arrived, summed, over sampleRate ×
//! blockAlign from the `fmt ` chunk. The issue asks for every data chunk, so a file with two data
//! chunks is measured as both (many players stop after the first; counting both can only make the
//! measured value longer, never let a file hide audio). A data chunk that declares more bytes than
//! arrived counts what arrived; a streamed WAV (data size 0 or 0xFFFFFFFF) counts to the end of the
//! body. The RIFF size and the fmt byte rate are never used to compute the duration.
//!
//! Cross-checked, and `Inconsistent` when they disagree (a file that lies about itself):
//! - the fmt byte rate must equal sampleRate × blockAlign;
//! - for PCM, IEEE float, A-law and µ-law (also inside WAVE_FORMAT_EXTENSIBLE), blockAlign must
//!   equal channels × bitsPerSample/8 (bits rounded up to whole bytes);
//! - a `data` chunk before any `fmt ` chunk (nothing says how to play it; no encoder writes this);
//! - a second `fmt ` chunk that says something else than the first.
//!
//! `Unknown`: not RIFF/WAVE, no `fmt ` chunk, no `data` chunk, a sample rate, block align or
//! channel count of zero, or a codec whose duration is not bytes over a fixed rate (ADPCM, MP3 in
//! WAV, ...).

use super::*;

/// The fmt bytes kept: the 16 common ones, cbSize, and WAVE_FORMAT_EXTENSIBLE's fields up to the
/// first two bytes of its sub-format GUID (the format tag the GUID stands for).
const FMT_KEEP: usize = 26;

const PCM: u16 = 1;
const IEEE_FLOAT: u16 = 3;
const ALAW: u16 = 6;
const MULAW: u16 = 7;
const EXTENSIBLE: u16 = 0xFFFE;

/// The fields of a `fmt ` chunk that decide the duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fmt {
    /// The format tag (for EXTENSIBLE: the one its sub-format stands for; 0 when unreadable).
    tag: u16,
    channels: u16,
    rate: u32,
    byte_rate: u32,
    align: u16,
    bits: u16,
}

/// What a `fmt ` chunk's first bytes say: a format, or why it cannot time the data.
fn parse_fmt(b: &[u8]) -> Result<Fmt, Measured> {
    if b.len() < 16 {
        return Err(Measured::Unknown("WAV fmt chunk shorter than 16 bytes"));
    }
    let mut tag = u16_le(&b[0..2]);
    if tag == EXTENSIBLE {
        // cbSize (16), valid bits (18), channel mask (20), sub-format GUID (24..40).
        tag = b.get(24..26).map_or(0, u16_le);
    }
    Ok(Fmt {
        tag,
        channels: u16_le(&b[2..4]),
        rate: u32_le(&b[4..8]),
        byte_rate: u32_le(&b[8..12]),
        align: u16_le(&b[12..14]),
        bits: u16_le(&b[14..16]),
    })
}

/// Bytes per second of audio under `fmt`, or why there is no such number.
fn bytes_per_second(f: &Fmt) -> Result<u64, Measured> {
    if !matches!(f.tag, PCM | IEEE_FLOAT | ALAW | MULAW) {
        return Err(Measured::Unknown("WAV codec whose duration is not bytes over a fixed rate"));
    }
    if f.rate == 0 || f.align == 0 || f.channels == 0 {
        return Err(Measured::Unknown("WAV fmt without a sample rate, block size or channel count"));
    }
    let per_second = u64::from(f.rate) * u64::from(f.align);
    if u64::from(f.byte_rate) != per_second {
        return Err(Measured::Inconsistent("WAV byte rate disagrees with sample rate × block align"));
    }
    let bytes_per_sample = u64::from(f.bits).div_ceil(8);
    if u64::from(f.align) != u64::from(f.channels) * bytes_per_sample {
        return Err(Measured::Inconsistent("WAV block align disagrees with channels × bits per sample"));
    }
    Ok(per_second)
}

/// RIFF chunks: `RIFF <size> WAVE`, then `<id> <size> <payload, padded to even>`…
#[derive(Default)]
pub(super) struct Wav {
    /// Header bytes of the chunk being read (8), or the RIFF header (12).
    head: Collect,
    started: bool,
    /// Payload bytes of the current chunk still to skip (or to count, for `data`).
    skip: u64,
    /// In a `data` chunk: its payload bytes are counted (`skip` of them are left, or all the rest
    /// of the body when `to_end`).
    in_data: bool,
    to_end: bool,
    /// The pad byte after an odd-sized data chunk (skipped, not audio).
    pad: u64,
    /// The `fmt ` chunk being read: bytes kept, bytes of it still to come.
    fmt_buf: Collect,
    fmt_left: u64,
    reading_fmt: bool,
    fmt: Option<Result<Fmt, Measured>>,
    /// Data bytes that arrived, over every data chunk.
    data_bytes: u64,
    data_chunks: u64,
    /// Something the file contradicts itself with (kept until `finish`).
    inconsistent: Option<&'static str>,
    /// Not RIFF/WAVE.
    failed: bool,
}

impl Wav {
    /// A whole `fmt ` chunk was read: the first one decides; a later one must agree with it.
    fn end_fmt(&mut self) {
        let parsed = parse_fmt(&self.fmt_buf.buf);
        self.fmt_buf.buf.clear();
        match &self.fmt {
            None => self.fmt = Some(parsed),
            Some(first) if *first != parsed => {
                self.inconsistent.get_or_insert("WAV has two fmt chunks that disagree");
            }
            Some(_) => {}
        }
    }
}

impl Measure for Wav {
    fn feed(&mut self, mut chunk: &[u8], steps: &mut u64) {
        while !chunk.is_empty() && !self.failed {
            *steps += 1;
            if !self.started {
                let used = self.head.fill(chunk, 12);
                chunk = &chunk[used..];
                if self.head.buf.len() < 12 {
                    return;
                }
                if &self.head.buf[..4] != b"RIFF" || &self.head.buf[8..12] != b"WAVE" {
                    self.failed = true;
                    return;
                }
                self.started = true;
                self.head.buf.clear();
                continue;
            }
            if self.to_end {
                // A streamed data chunk: everything that follows is audio.
                self.data_bytes = self.data_bytes.saturating_add(chunk.len() as u64);
                return;
            }
            if self.reading_fmt {
                let (part, rest) = take(&mut self.fmt_left, chunk);
                let want = (self.fmt_buf.buf.len() + part.len()).min(FMT_KEEP);
                self.fmt_buf.fill(part, want);
                chunk = rest;
                if self.fmt_left == 0 {
                    self.reading_fmt = false;
                    self.end_fmt();
                }
                continue;
            }
            if self.skip > 0 {
                let (part, rest) = take(&mut self.skip, chunk);
                if self.in_data {
                    self.data_bytes = self.data_bytes.saturating_add(part.len() as u64);
                }
                chunk = rest;
                continue;
            }
            if self.pad > 0 {
                chunk = take(&mut self.pad, chunk).1;
                continue;
            }
            self.in_data = false;
            let used = self.head.fill(chunk, 8);
            chunk = &chunk[used..];
            if self.head.buf.len() < 8 {
                return;
            }
            let id: [u8; 4] = [self.head.buf[0], self.head.buf[1], self.head.buf[2], self.head.buf[3]];
            let size = u32_le(&self.head.buf[4..8]);
            self.head.buf.clear();
            let padded = u64::from(size) + u64::from(size & 1);
            match &id {
                b"fmt " => {
                    self.fmt_buf.buf.clear();
                    self.fmt_left = padded;
                    self.reading_fmt = true;
                    if padded == 0 {
                        self.reading_fmt = false;
                        self.end_fmt();
                    }
                }
                b"data" => {
                    self.data_chunks = self.data_chunks.saturating_add(1);
                    if self.fmt.is_none() {
                        self.inconsistent.get_or_insert("WAV data chunk before its fmt chunk");
                    }
                    self.in_data = true;
                    if matches!(size, 0 | u32::MAX) {
                        self.to_end = true;
                    } else {
                        self.skip = u64::from(size);
                        self.pad = u64::from(size & 1);
                    }
                }
                _ => self.skip = padded,
            }
        }
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        if self.failed || !self.started {
            return Measured::Unknown("not a RIFF/WAVE file");
        }
        if let Some(why) = self.inconsistent {
            return Measured::Inconsistent(why);
        }
        let fmt = match &self.fmt {
            None => return Measured::Unknown("WAV without a fmt chunk"),
            Some(Err(why)) => return why.clone(),
            Some(Ok(fmt)) => fmt,
        };
        let per_second = match bytes_per_second(fmt) {
            Ok(n) => n,
            Err(why) => return why,
        };
        if self.data_chunks == 0 {
            return Measured::Unknown("WAV without a data chunk");
        }
        ms_or(u128::from(self.data_bytes), u128::from(per_second), "WAV duration out of range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::duration::tests::{fixture, in_every_chunking};
    use crate::media::Container;

    /// tone-5s.wav: fmt at 12 (payload at 20), LIST at 36, data header at 70, data payload at 78
    /// (160 000 bytes: 5 s of 16 kHz mono s16).
    const FMT: usize = 20;
    const DATA_HEAD: usize = 70;

    fn wav() -> Vec<u8> {
        fixture("tone-5s.wav")
    }

    fn ms(body: &[u8]) -> Measured {
        in_every_chunking(Container::Wav, body)
    }

    #[test]
    fn fixture_layout_is_what_the_surgery_assumes() {
        let w = wav();
        assert_eq!(&w[FMT - 8..FMT - 4], b"fmt ");
        assert_eq!(&w[DATA_HEAD..DATA_HEAD + 4], b"data");
        assert_eq!(u32_le(&w[DATA_HEAD + 4..DATA_HEAD + 8]), 160_000);
        assert_eq!(ms(&w), Measured::Ms(5_000));
    }

    #[test]
    fn lie_byte_rate_times_10() {
        let mut w = wav();
        let rate = u32_le(&w[FMT + 8..FMT + 12]) * 10;
        w[FMT + 8..FMT + 12].copy_from_slice(&rate.to_le_bytes());
        assert!(matches!(ms(&w), Measured::Inconsistent(_)), "{:?}", ms(&w));
    }

    #[test]
    fn lie_block_align_and_byte_rate_agree_but_not_with_the_format() {
        // blockAlign 20 and byteRate 16 000 × 20: consistent with each other, but a mono s16
        // frame is 2 bytes, so the file would claim a tenth of its length.
        let mut w = wav();
        w[FMT + 8..FMT + 12].copy_from_slice(&(16_000u32 * 20).to_le_bytes());
        w[FMT + 12..FMT + 14].copy_from_slice(&20u16.to_le_bytes());
        assert!(matches!(ms(&w), Measured::Inconsistent(_)), "{:?}", ms(&w));
    }

    #[test]
    fn lie_second_data_chunk_is_counted() {
        // The same 5 s appended as a second data chunk: 10 s of data in the file.
        let w = wav();
        let mut two = w.clone();
        two.extend_from_slice(&w[DATA_HEAD..]);
        assert_eq!(ms(&two), Measured::Ms(10_000));
        // With a junk chunk (odd size, padded) between them.
        let mut junk = w.clone();
        junk.extend_from_slice(b"junk\x03\0\0\0abc\0");
        junk.extend_from_slice(&w[DATA_HEAD..]);
        assert_eq!(ms(&junk), Measured::Ms(10_000));
    }

    #[test]
    fn lie_data_size_larger_than_the_file() {
        let mut w = wav();
        w[DATA_HEAD + 4..DATA_HEAD + 8].copy_from_slice(&(160_000u32 * 100).to_le_bytes());
        assert_eq!(ms(&w), Measured::Ms(5_000));
    }

    #[test]
    fn lie_data_size_smaller_than_the_data_hides_nothing() {
        // The first data chunk says 1 s; the other 4 s follow as a chunk soup a decoder skips
        // unless it is a data chunk: here a second data chunk holds the rest.
        let w = wav();
        let mut b = w[..DATA_HEAD].to_vec();
        b.extend_from_slice(b"data");
        b.extend_from_slice(&32_000u32.to_le_bytes());
        b.extend_from_slice(&w[DATA_HEAD + 8..DATA_HEAD + 8 + 32_000]);
        b.extend_from_slice(b"data");
        b.extend_from_slice(&128_000u32.to_le_bytes());
        b.extend_from_slice(&w[DATA_HEAD + 8 + 32_000..]);
        assert_eq!(ms(&b), Measured::Ms(5_000));
    }

    #[test]
    fn streamed_sizes_count_to_the_end() {
        for size in [0u32, u32::MAX] {
            let mut w = wav();
            w[DATA_HEAD + 4..DATA_HEAD + 8].copy_from_slice(&size.to_le_bytes());
            assert_eq!(ms(&w), Measured::Ms(5_000), "data size {size:#x}");
        }
    }

    #[test]
    fn data_before_fmt_is_inconsistent() {
        let w = wav();
        let mut b = b"RIFF\xff\xff\xff\xffWAVE".to_vec();
        b.extend_from_slice(&w[DATA_HEAD..]);
        b.extend_from_slice(&w[FMT - 8..FMT + 16]);
        assert!(matches!(ms(&b), Measured::Inconsistent(_)), "{:?}", ms(&b));
    }

    #[test]
    fn two_fmt_chunks_that_disagree_are_inconsistent() {
        let w = wav();
        let mut b = w[..DATA_HEAD].to_vec();
        let mut fmt2 = w[FMT - 8..FMT + 16].to_vec();
        // 8 kHz instead of 16 kHz (byte rate to match, so the chunk alone is consistent).
        fmt2[8 + 4..8 + 8].copy_from_slice(&8_000u32.to_le_bytes());
        fmt2[8 + 8..8 + 12].copy_from_slice(&16_000u32.to_le_bytes());
        b.extend_from_slice(&fmt2);
        b.extend_from_slice(&w[DATA_HEAD..]);
        assert!(matches!(ms(&b), Measured::Inconsistent(_)), "{:?}", ms(&b));
        // The same fmt twice is fine.
        let mut same = w[..DATA_HEAD].to_vec();
        same.extend_from_slice(&w[FMT - 8..FMT + 16]);
        same.extend_from_slice(&w[DATA_HEAD..]);
        assert_eq!(ms(&same), Measured::Ms(5_000));
    }

    #[test]
    fn float_and_extensible_formats() {
        let w = wav();
        // The same 160 000 bytes read as mono 32-bit float at 8 kHz (4-byte frames): still 5 s.
        let mut float = w.clone();
        float[FMT..FMT + 2].copy_from_slice(&IEEE_FLOAT.to_le_bytes());
        float[FMT + 4..FMT + 8].copy_from_slice(&8_000u32.to_le_bytes());
        float[FMT + 8..FMT + 12].copy_from_slice(&32_000u32.to_le_bytes());
        float[FMT + 12..FMT + 14].copy_from_slice(&4u16.to_le_bytes());
        float[FMT + 14..FMT + 16].copy_from_slice(&32u16.to_le_bytes());
        assert_eq!(ms(&float), Measured::Ms(5_000));
        // WAVE_FORMAT_EXTENSIBLE (fmt of 40 bytes) with the PCM sub-format.
        let mut ext = w[..FMT - 4].to_vec();
        ext.extend_from_slice(&40u32.to_le_bytes());
        let mut body = w[FMT..FMT + 16].to_vec();
        body[0..2].copy_from_slice(&EXTENSIBLE.to_le_bytes());
        ext.extend_from_slice(&body);
        ext.extend_from_slice(&22u16.to_le_bytes()); // cbSize
        ext.extend_from_slice(&16u16.to_le_bytes()); // valid bits
        ext.extend_from_slice(&4u32.to_le_bytes()); // channel mask
        ext.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
        ext.extend_from_slice(&w[FMT + 16..]);
        assert_eq!(ms(&ext), Measured::Ms(5_000));
        // An extensible sub-format we cannot time (ADPCM's tag 2): Unknown.
        let at = ext.len() - (w.len() - FMT - 16) - 16;
        ext[at] = 2;
        assert!(matches!(ms(&ext), Measured::Unknown(_)), "{:?}", ms(&ext));
    }

    #[test]
    fn what_a_wav_cannot_say_is_unknown() {
        let w = wav();
        let mut zero = w.clone();
        zero[FMT + 4..FMT + 12].copy_from_slice(&[0; 8]); // sample rate and byte rate 0
        let mut adpcm = w.clone();
        adpcm[FMT..FMT + 2].copy_from_slice(&2u16.to_le_bytes());
        let no_fmt = [&b"RIFF\0\0\0\0WAVE"[..], &w[DATA_HEAD..]].concat();
        for (name, b) in [
            ("zero rate", zero),
            ("adpcm", adpcm),
            ("no data", w[..DATA_HEAD].to_vec()),
            ("not riff", w[4..].to_vec()),
            ("short fmt", [&w[..FMT - 4], &[8, 0, 0, 0], &w[FMT..FMT + 8]].concat()),
        ] {
            assert!(matches!(ms(&b), Measured::Unknown(_)), "{name}: {:?}", ms(&b));
        }
        assert!(matches!(ms(&no_fmt), Measured::Inconsistent(_)));
    }
}
