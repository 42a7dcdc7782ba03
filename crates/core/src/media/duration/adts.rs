//! ADTS (raw AAC), and the frame walker MP3 shares (`Frames`).
//!
//! Measured: the frames actually present, walked by their own `frame_length`, each holding
//! (number_of_raw_data_blocks + 1) × 1024 samples at the header's sample rate. There is no
//! header claim to cross-check.
//!
//! Junk (a stray byte, a run of garbage, an ID3 tag at the start or the end) does not end the count:
//! the walker resyncs as decoders do, scanning forward for the next 0xFFF sync with a valid header.
//! A header found by scanning is believed only when another valid header with the same fixed fields
//! (MPEG version, layer, profile, sample rate, channels) starts exactly where its frame_length says
//! the frame ends, so sync-like bits inside a tag or junk do not count as frames. Once two frames
//! confirmed each other, the walk follows frame_length from header to header until a header is
//! invalid, and then scans again. A frame is counted when all its bytes arrived; a last frame found
//! by scanning with nothing after it counts when it ends exactly at the end of the body.
//! An ID3 tag is not skipped by its size (a size that lies could swallow the audio): its bytes are
//! scanned like any junk.
//!
//! `Inconsistent`: confirmed frames of two different sample rates (a stream that changes format
//! midway; no recorder writes this).
//! `Unknown`: no confirmed frames.

use super::*;
use std::collections::VecDeque;
use std::marker::PhantomData;

/// One frame, as its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Frame {
    /// The whole frame, header included, in bytes.
    pub(super) len: usize,
    /// PCM samples (per channel) it decodes to.
    pub(super) samples: u32,
    pub(super) rate: u32,
    /// The header fields that must be the same in the next frame.
    pub(super) key: u32,
}

/// A frame-sync format: how to read one header.
pub(super) trait Framing {
    /// Bytes needed to read a header (at most 8).
    const HEAD: usize;
    /// The longest frame the format can have, plus `HEAD`: the bytes held while scanning, so a
    /// candidate's frame and the next header fit.
    const WINDOW: usize;
    /// The frame a header at the start of `h` (`HEAD` bytes) announces, if it is a valid header.
    fn header(h: &[u8]) -> Option<Frame>;
}

/// Walks frames with resync (see the top of this file); counts what it confirmed.
pub(super) struct Frames<F: Framing> {
    /// While scanning: the bytes from the first position not yet decided. While locked: bytes
    /// received while scanning that the locked walk has not consumed yet.
    win: VecDeque<u8>,
    /// Locked: the fixed fields every next header must repeat.
    lock_key: Option<u32>,
    /// Locked: the frame whose bytes are arriving (counted once they all did), and how many are left.
    current: Option<Frame>,
    skip: usize,
    /// Locked: the next header's bytes.
    head: [u8; 8],
    head_len: usize,
    /// Counted frames, their samples, their sample rate (the first one), and whether another rate
    /// was confirmed too.
    pub(super) frames: u64,
    pub(super) samples: u128,
    pub(super) rate: u32,
    pub(super) mixed_rates: bool,
    /// The first counted frame and its first `keep_first` bytes (MP3 reads Xing/LAME there).
    pub(super) first: Option<(Frame, Vec<u8>)>,
    keep_first: usize,
    _format: PhantomData<F>,
}

impl<F: Framing> Frames<F> {
    pub(super) fn new(keep_first: usize) -> Self {
        Frames {
            win: VecDeque::new(),
            lock_key: None,
            current: None,
            skip: 0,
            head: [0; 8],
            head_len: 0,
            frames: 0,
            samples: 0,
            rate: 0,
            mixed_rates: false,
            first: None,
            keep_first,
            _format: PhantomData,
        }
    }

    fn count(&mut self, f: Frame) {
        self.frames = self.frames.saturating_add(1);
        self.samples = self.samples.saturating_add(u128::from(f.samples));
        if self.rate == 0 {
            self.rate = f.rate;
        } else if self.rate != f.rate {
            self.mixed_rates = true;
        }
    }

    /// `HEAD` bytes of the window from `at`, if held.
    fn window_head(&self, at: usize) -> Option<[u8; 8]> {
        let mut h = [0u8; 8];
        for (i, slot) in h.iter_mut().enumerate().take(F::HEAD) {
            *slot = *self.win.get(at + i)?;
        }
        Some(h)
    }

    /// Every loop pass that consumes bytes or decides something adds one to `steps`; a pass that only
    /// finds it must wait for more bytes ends the call, so it is not counted.
    pub(super) fn feed(&mut self, mut chunk: &[u8], steps: &mut u64) {
        loop {
            if self.lock_key.is_some() {
                if self.skip > 0 {
                    // The current frame's body: from what the window still holds, then the chunk.
                    if !self.win.is_empty() {
                        let n = self.skip.min(self.win.len());
                        self.win.drain(..n);
                        self.skip -= n;
                    } else if !chunk.is_empty() {
                        let n = self.skip.min(chunk.len());
                        chunk = &chunk[n..];
                        self.skip -= n;
                    } else {
                        return;
                    }
                    *steps += 1;
                    if self.skip == 0 {
                        if let Some(f) = self.current.take() {
                            self.count(f);
                        }
                    }
                    continue;
                }
                if self.head_len < F::HEAD {
                    // The next header's bytes: from the window, then the chunk.
                    let before = self.head_len;
                    while self.head_len < F::HEAD {
                        let Some(b) = self.win.pop_front() else { break };
                        self.head[self.head_len] = b;
                        self.head_len += 1;
                    }
                    let n = (F::HEAD - self.head_len).min(chunk.len());
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&chunk[..n]);
                    self.head_len += n;
                    chunk = &chunk[n..];
                    if self.head_len == before {
                        return;
                    }
                    *steps += 1;
                    continue;
                }
                *steps += 1;
                self.head_len = 0;
                match F::header(&self.head[..F::HEAD]) {
                    Some(f) if Some(f.key) == self.lock_key && f.len >= F::HEAD => {
                        self.skip = f.len - F::HEAD;
                        if self.skip == 0 {
                            self.count(f);
                        } else {
                            self.current = Some(f);
                        }
                    }
                    _ => {
                        // Lost sync: scan again from this header's first byte.
                        self.lock_key = None;
                        for &b in self.head[..F::HEAD].iter().rev() {
                            self.win.push_front(b);
                        }
                    }
                }
                continue;
            }
            if !chunk.is_empty() {
                // `scan` only waits for bytes while the window has room (see there).
                *steps += 1;
                let n = F::WINDOW.saturating_sub(self.win.len()).min(chunk.len());
                self.win.extend(&chunk[..n]);
                chunk = &chunk[n..];
            }
            if self.scan(steps) {
                continue;
            }
            if chunk.is_empty() {
                return;
            }
        }
    }

    /// Scan the window for a confirmed frame; true when one was found (the walk is then locked).
    /// Returns false only when more bytes are needed, which happens only while the window has room:
    /// a candidate whose frame and next header cannot fit in `WINDOW` is dropped.
    fn scan(&mut self, steps: &mut u64) -> bool {
        while let Some(h) = self.window_head(0) {
            let Some(f) = F::header(&h[..F::HEAD]).filter(|f| f.len >= F::HEAD && f.len + F::HEAD <= F::WINDOW) else {
                *steps += 1;
                self.win.pop_front();
                continue;
            };
            let Some(next) = self.window_head(f.len) else { return false };
            *steps += 1;
            if !matches!(F::header(&next[..F::HEAD]), Some(g) if g.key == f.key) {
                self.win.pop_front();
                continue;
            }
            if self.first.is_none() {
                let kept = self.win.iter().take(f.len.min(self.keep_first)).copied().collect();
                self.first = Some((f, kept));
            }
            self.count(f);
            self.win.drain(..f.len);
            self.lock_key = Some(f.key);
            self.current = None;
            self.skip = 0;
            self.head_len = 0;
            return true;
        }
        false
    }

    /// A last frame found by scanning, with nothing after it: it counts when it ends exactly at the
    /// end of the body.
    pub(super) fn unconfirmed_tail(&self) -> Option<Frame> {
        if self.lock_key.is_some() {
            return None;
        }
        let h = self.window_head(0)?;
        F::header(&h[..F::HEAD]).filter(|f| f.len == self.win.len() && f.len >= F::HEAD)
    }

    /// The duration of what was counted, with `extra` frames (the unconfirmed tail) and less
    /// `minus` samples (MP3's Xing frame and encoder delay).
    pub(super) fn measured(&self, minus: u128, none: &'static str) -> Measured {
        if self.mixed_rates {
            return Measured::Inconsistent("frames of two different sample rates");
        }
        let mut samples = self.samples;
        let mut rate = self.rate;
        if let Some(tail) = self.unconfirmed_tail() {
            if rate == 0 || rate == tail.rate {
                rate = tail.rate;
                samples = samples.saturating_add(u128::from(tail.samples));
            }
        }
        if rate == 0 {
            return Measured::Unknown(none);
        }
        ms_or(samples.saturating_sub(minus), u128::from(rate), none)
    }
}

const ADTS_RATES: [u32; 13] =
    [96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350];

pub(super) struct AdtsFraming;

impl Framing for AdtsFraming {
    const HEAD: usize = 7;
    /// frame_length is 13 bits.
    const WINDOW: usize = 8191 + 7;

    fn header(h: &[u8]) -> Option<Frame> {
        let h = h.get(..7)?;
        // Sync (12 bits), layer 0.
        if h[0] != 0xFF || h[1] & 0xF6 != 0xF0 {
            return None;
        }
        let rate = *ADTS_RATES.get(usize::from((h[2] >> 2) & 0x0F))?;
        let len = (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | (usize::from(h[5]) >> 5);
        // The header (9 bytes with its CRC) and at least one byte of raw data.
        let header_len = if h[1] & 1 == 0 { 9 } else { 7 };
        if len <= header_len {
            return None;
        }
        let blocks = u32::from(h[6] & 0x03) + 1;
        // Fixed fields: ID, layer, profile, sampling index, channel configuration.
        let key = (u32::from(h[1] & 0x0E) << 16) | (u32::from(h[2] & 0xFD) << 8) | u32::from(h[3] & 0xC0);
        Some(Frame { len, samples: blocks * 1024, rate, key })
    }
}

pub(super) struct Adts {
    frames: Frames<AdtsFraming>,
}

impl Default for Adts {
    fn default() -> Self {
        Adts { frames: Frames::new(0) }
    }
}

impl Measure for Adts {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.frames.feed(chunk, steps);
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        self.frames.measured(0, "ADTS without frames")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::media::duration::tests::{fixture, in_every_chunking, near};
    use crate::media::Container;

    fn ms(body: &[u8]) -> Measured {
        in_every_chunking(Container::Adts, body)
    }

    /// Where each frame of an honest file starts.
    pub(in crate::media::duration) fn frame_starts<F: Framing>(b: &[u8], first: usize) -> Vec<usize> {
        let mut at = first;
        let mut out = Vec::new();
        while let Some(f) = b.get(at..).and_then(F::header) {
            out.push(at);
            at += f.len;
        }
        out
    }

    /// `body` with `junk` inserted before the frames (at `starts`) of the given indexes.
    pub(in crate::media::duration) fn with_junk_at(
        body: &[u8],
        starts: &[usize],
        at_frames: &[usize],
        junk: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut from = 0;
        for &i in at_frames {
            out.extend_from_slice(&body[from..starts[i]]);
            out.extend_from_slice(junk);
            from = starts[i];
        }
        out.extend_from_slice(&body[from..]);
        out
    }

    fn with_junk_at_adts(body: &[u8], at_frames: &[usize], junk: &[u8]) -> Vec<u8> {
        with_junk_at(body, &frame_starts::<AdtsFraming>(body, 0), at_frames, junk)
    }

    #[test]
    fn lie_one_junk_byte_after_some_frames() {
        let aac = fixture("tone-5s.aac");
        assert!(frame_starts::<AdtsFraming>(&aac, 0).len() > 200);
        near(ms(&with_junk_at_adts(&aac, &[60], &[0x00])), 5_000);
        // A junk byte that is itself half a sync word.
        near(ms(&with_junk_at_adts(&aac, &[60], &[0xFF])), 5_000);
    }

    #[test]
    fn lie_several_junk_runs() {
        let aac = fixture("tone-5s.aac");
        let noise: Vec<u8> = (0..700u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        near(ms(&with_junk_at_adts(&aac, &[10, 50, 51, 120, 200], &noise)), 5_000);
        // Junk made of sync-like fake headers whose frame_length points into the real frames.
        let mut fakes = Vec::new();
        for len in [100u16, 333, 4000, 8000] {
            fakes.extend_from_slice(&[
                0xFF,
                0xF1,
                0x4C,
                0x40 | (len >> 11) as u8,
                (len >> 3) as u8,
                (len << 5) as u8 | 0x1F,
                0xFC,
            ]);
            fakes.extend_from_slice(b"junk");
        }
        near(ms(&with_junk_at_adts(&aac, &[5, 90, 91, 180], &fakes)), 5_000);
    }

    #[test]
    fn id3_tags_at_the_start_and_end_do_not_break_the_walk() {
        let aac = fixture("tone-5s.aac");
        let mut b = b"ID3\x04\0\0\0\0\x01\x00".to_vec();
        b.extend_from_slice(&[0xFF; 128]);
        b.extend_from_slice(&aac);
        b.extend_from_slice(b"TAG");
        b.extend_from_slice(&[0xFF; 125]);
        near(ms(&b), 5_000);
        // A start tag whose size claims the whole file does not swallow it.
        let mut swallow = b"ID3\x04\0\0\x7F\x7F\x7F\x7F".to_vec();
        swallow.extend_from_slice(&aac);
        near(ms(&swallow), 5_000);
    }

    #[test]
    fn lie_sample_rate_changes_midway_is_inconsistent() {
        let mut aac = fixture("tone-5s.aac");
        let starts = frame_starts::<AdtsFraming>(&aac, 0);
        for &at in &starts[starts.len() / 2..] {
            // 48 kHz (index 3) → 24 kHz (index 6).
            aac[at + 2] = (aac[at + 2] & !0x3C) | (6 << 2);
        }
        assert!(matches!(ms(&aac), Measured::Inconsistent(_)), "{:?}", ms(&aac));
    }

    #[test]
    fn a_cut_file_counts_the_whole_frames_that_arrived() {
        let aac = fixture("tone-5s.aac");
        let starts = frame_starts::<AdtsFraming>(&aac, 0);
        // Half the frames, plus half of the next one.
        let half = starts.len() / 2;
        let cut = &aac[..starts[half] + 20];
        let Measured::Ms(got) = ms(cut) else { panic!() };
        let want = half as u64 * 1024 * 1000 / 48_000;
        assert_eq!(got, want);
        // Noise alone, and a lone header: no frames.
        assert!(matches!(ms(&[0xFF, 0xF1, 0x4C, 0x40, 0x18]), Measured::Unknown(_)));
        let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert!(matches!(ms(&noise), Measured::Unknown(_)));
    }
}
