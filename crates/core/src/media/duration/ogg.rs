//! Ogg (Opus and Vorbis): the packets of the first logical stream, each timed by its codec.
//!
//! Measured: pages are walked by their lacing tables and the first stream's packets put back
//! together (packets span pages; only a packet's first bytes are kept). Only pages that arrive whole
//! count: a page cut off at the end of the upload adds nothing, as a decoder would drop it.
//! - Opus: the two header packets (OpusHead, OpusTags) are skipped; every audio packet lasts what its
//!   TOC byte says (frame size from the config, 1 or 2 frames for codes 0–2, the count byte for
//!   code 3; a packet over 120 ms is invalid and plays nothing). The sum, less OpusHead's pre-skip.
//! - Vorbis: the three header packets are skipped; the block size of every audio packet comes from
//!   its mode, whose block flag is read from the end of the setup header (the modes are its last
//!   bits, so only its last bytes are kept and read backwards, as libavcodec does, without parsing
//!   the codebooks). Each packet after the first plays a quarter of the previous block plus a
//!   quarter of its own.
//!
//! Cross-checked: the granule position of the last whole page (start offset removed: the first audio
//! page's granule less the samples on it, when positive). An encoder may trim the end of the stream
//! with a smaller final granule, so a granule up to one packet short of the packets shortens the
//! measurement to it; it can never lengthen it. A granule further off than max(2 %, 1 s), either
//! way, is a file that lies about itself: `Inconsistent`. (A granule is the Ogg "header claim" here:
//! 1 s of granule in front of 5 s of packets is refused, not believed.)
//!
//! Unknown: a first stream that is neither Opus nor Vorbis, a Vorbis setup header whose modes cannot
//! be found, no audio packet. Page CRCs are not verified.

use super::*;

/// The most of the Vorbis setup header's end we keep: the modes take at most 64 × 41 + 7 bits.
const SETUP_TAIL: usize = 512;

#[derive(Default)]
enum Codec {
    #[default]
    Pending,
    Opus {
        pre_skip: u64,
    },
    Vorbis {
        rate: u64,
        blocksizes: [u64; 2],
        /// Each mode's block flag, once the setup header was read.
        modes: Option<Vec<bool>>,
        prev_block: Option<u64>,
    },
    /// Another codec, or a header we could not read.
    Other(&'static str),
}

/// Ogg pages: `OggS`, version, flags, granule (8, LE), serial, sequence, CRC, segment count, the
/// lacing table, then the payload. Only the first logical stream is followed.
#[derive(Default)]
pub(super) struct Ogg {
    /// The page header being collected: 27 bytes and the lacing table (at most 255 more).
    head: Collect,
    /// Payload bytes of another stream's page still to skip.
    skip: u64,
    serial: Option<u32>,
    /// Within one of our pages: the segment being read and its bytes still to come.
    in_page: bool,
    seg: usize,
    seg_left: u64,
    /// The packet being put back together: its first bytes, and whether one is open across pages
    /// or is the remains of a packet whose start we never saw (dropped, as a decoder does).
    packet: Collect,
    open: bool,
    discard: bool,
    /// Packets completed so far (headers included).
    packets: u64,
    setup_tail: Vec<u8>,
    codec: Codec,
    /// Audio samples on the current page (committed when the page is whole) and its last packet's.
    page_units: u128,
    page_last: u64,
    /// Audio samples of whole pages, and the last packet's.
    units: u128,
    last_packet: u64,
    /// The first audio page's granule less the samples through it (a stream that starts late).
    start: Option<u128>,
    /// The last whole page's granule, with the samples and last packet through that page.
    granule: Option<(u128, u128, u64)>,
    failed: bool,
}

/// The samples (48 kHz) an Opus packet plays, from its TOC byte and, for code 3, the next byte.
pub(super) fn opus_samples(toc: u8, count: Option<u8>) -> u64 {
    let config = usize::from(toc >> 3);
    let frame: u64 = match config {
        0..=11 => [480, 960, 1920, 2880][config & 3],
        12..=15 => [480, 960][config & 1],
        _ => [120, 240, 480, 960][config & 3],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => count.map_or(0, |c| u64::from(c & 0x3F)),
    };
    let samples = frame * frames;
    // Over 120 ms is an invalid packet: a decoder rejects it.
    if samples > 5760 {
        0
    } else {
        samples
    }
}

/// Each mode's block flag, from the end of a Vorbis setup header (`tail`: its last bytes), read
/// backwards: after the framing bit come (backwards) modes of mapping (8 bits), transform and
/// window types (16 bits each, always zero) and the block flag; before them the mode count (6 bits)
/// that must equal the modes found. The longest run of modes whose count agrees wins.
fn vorbis_modes(tail: &[u8], steps: &mut u64) -> Option<Vec<bool>> {
    let bit = |i: usize| tail.get(i / 8).map_or(0u32, |b| u32::from(b >> (i % 8)) & 1);
    // The framing bit: the highest set bit of the last non-zero byte (one pass per byte).
    let mut last = tail.len();
    while last > 0 && tail.get(last - 1) == Some(&0) {
        *steps += 1;
        last -= 1;
    }
    let top = tail.get(last.checked_sub(1)?)?;
    // `pos` is the number of bits before the read position; reading backwards takes from pos-1.
    let mut pos = (last - 1) * 8 + (8 - top.leading_zeros() as usize);
    pos = pos.checked_sub(1)?; // the framing bit
    let first = pos;
    let read = |pos: &mut usize, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            *pos = pos.checked_sub(1)?;
            v = (v << 1) | bit(*pos);
        }
        Some(v)
    };
    let mut count = 0usize;
    let mut found = None;
    while pos >= 97 && count < 64 {
        *steps += 1;
        let mapping = read(&mut pos, 8)?;
        if mapping > 63 || read(&mut pos, 16)? != 0 || read(&mut pos, 16)? != 0 {
            break;
        }
        pos -= 1; // the block flag
        count += 1;
        let mut at = pos;
        if read(&mut at, 6)? as usize + 1 == count {
            found = Some(count);
        }
    }
    let count = found?;
    // Read forwards from the first mode (the one furthest back): flag, then 40 bits.
    let mut modes = Vec::with_capacity(count);
    for i in (0..count).rev() {
        *steps += 1;
        let flag_at = first.checked_sub((i + 1) * 41)?;
        modes.push(bit(flag_at) == 1);
    }
    Some(modes)
}

impl Ogg {
    /// Bytes of the current segment: the current packet's, of which only the first few are kept.
    fn packet_bytes(&mut self, part: &[u8]) {
        self.open = true;
        if self.discard {
            return;
        }
        let keep = if self.packets == 0 { 30 } else { 2 };
        self.packet.fill(part, keep);
        if self.packets == 2 && matches!(self.codec, Codec::Vorbis { .. }) {
            self.setup_tail.extend_from_slice(part);
            if self.setup_tail.len() > 2 * SETUP_TAIL {
                let cut = self.setup_tail.len() - SETUP_TAIL;
                self.setup_tail.drain(..cut);
            }
        }
    }

    /// Past every segment whose bytes are all in: a lacing value under 255 ends a packet; the end of
    /// the lacing table ends the page. One pass per lacing value, each a byte already fed.
    fn advance(&mut self, steps: &mut u64) {
        while self.in_page && self.seg_left == 0 {
            *steps += 1;
            let lacing = &self.head.buf[27..];
            let Some(&len) = lacing.get(self.seg) else {
                self.end_page();
                return;
            };
            if len < 255 {
                self.open = true;
                self.end_packet(steps);
            }
            self.seg += 1;
            self.seg_left = self.head.buf.get(27 + self.seg).map_or(0, |&l| u64::from(l));
        }
    }

    fn end_packet(&mut self, steps: &mut u64) {
        let was_discard = std::mem::take(&mut self.discard);
        self.open = false;
        let first = std::mem::take(&mut self.packet.buf);
        if was_discard {
            return;
        }
        let index = self.packets;
        self.packets = self.packets.saturating_add(1);
        match (&mut self.codec, index) {
            (Codec::Pending, 0) => self.codec = ident(&first),
            (Codec::Opus { .. }, 1) => {}
            (Codec::Opus { .. }, _) => {
                let samples = match first.first() {
                    Some(&toc) => opus_samples(toc, first.get(1).copied()),
                    None => 0,
                };
                self.page_units += u128::from(samples);
                self.page_last = samples;
            }
            (Codec::Vorbis { modes, .. }, 2) => {
                *modes = if first.first() == Some(&5) { vorbis_modes(&self.setup_tail, steps) } else { None };
                self.setup_tail = Vec::new();
                if modes.is_none() {
                    self.codec = Codec::Other("Ogg Vorbis setup header without readable modes");
                }
            }
            (Codec::Vorbis { .. }, 1) => {}
            (Codec::Vorbis { blocksizes, modes: Some(modes), prev_block, .. }, _) => {
                // An audio packet: bit 0 clear, then the mode number in ilog(modes - 1) bits.
                let Some(&byte) = first.first() else { return };
                let bits = usize::BITS - modes.len().saturating_sub(1).leading_zeros();
                let mode = usize::from(byte >> 1) & ((1usize << bits) - 1);
                let Some(&long) = modes.get(mode).filter(|_| byte & 1 == 0) else { return };
                let block = blocksizes[usize::from(long)];
                let samples = prev_block.map_or(0, |prev| (prev + block) / 4);
                *prev_block = Some(block);
                self.page_units += u128::from(samples);
                self.page_last = samples;
            }
            _ => {}
        }
    }

    fn end_page(&mut self) {
        self.in_page = false;
        let h = &self.head.buf;
        let granule = u64::from_le_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]);
        if self.page_units > 0 {
            self.units = self.units.saturating_add(self.page_units);
            self.last_packet = self.page_last;
        }
        // -1: no packet ends on this page. Header pages (no audio yet) carry granule 0.
        if granule != u64::MAX && self.units > 0 {
            let granule = u128::from(granule);
            let start = *self.start.get_or_insert(granule.saturating_sub(self.units));
            self.granule = Some((granule.saturating_sub(start), self.units, self.last_packet));
        }
        self.page_units = 0;
        self.head.buf.clear();
    }
}

/// The codec from the first packet's first 30 bytes.
fn ident(first: &[u8]) -> Codec {
    if first.len() >= 19 && first.starts_with(b"OpusHead") {
        if first[8] >> 4 != 0 || first[9] == 0 {
            return Codec::Other("Ogg Opus header of an unknown version");
        }
        return Codec::Opus { pre_skip: u64::from(u16_le(&first[10..12])) };
    }
    if first.len() >= 30 && first[0] == 1 && &first[1..7] == b"vorbis" {
        let rate = u64::from(u32_le(&first[12..16]));
        let (small, large) = (first[28] & 0x0F, first[28] >> 4);
        if rate == 0 || !(6..=13).contains(&small) || !(small..=13).contains(&large) {
            return Codec::Other("Ogg Vorbis identification header out of range");
        }
        return Codec::Vorbis { rate, blocksizes: [1 << small, 1 << large], modes: None, prev_block: None };
    }
    Codec::Other("Ogg codec other than Opus or Vorbis")
}

impl Measure for Ogg {
    fn feed(&mut self, mut chunk: &[u8], steps: &mut u64) {
        while !chunk.is_empty() && !self.failed {
            *steps += 1;
            if self.skip > 0 {
                chunk = take(&mut self.skip, chunk).1;
                continue;
            }
            if self.in_page {
                let (part, rest) = take(&mut self.seg_left, chunk);
                chunk = rest;
                self.packet_bytes(part);
                self.advance(steps);
                continue;
            }
            // The fixed header (27), then as many lacing values as it says (possibly none).
            if self.head.buf.len() < 27 {
                let used = self.head.fill(chunk, 27);
                chunk = &chunk[used..];
                if self.head.buf.len() < 27 {
                    continue;
                }
                if &self.head.buf[..4] != b"OggS" {
                    self.failed = true;
                    return;
                }
            }
            let want = 27 + usize::from(self.head.buf[26]);
            let used = self.head.fill(chunk, want);
            chunk = &chunk[used..];
            if self.head.buf.len() < want {
                continue;
            }
            let serial = u32_le(&self.head.buf[14..18]);
            if *self.serial.get_or_insert(serial) != serial {
                self.skip = self.head.buf[27..].iter().map(|&l| u64::from(l)).sum();
                self.head.buf.clear();
                continue;
            }
            // A page that continues a packet we do not hold: its first packet is dropped. A page
            // that does not continue the packet we hold: that packet is dropped.
            let continued = self.head.buf[5] & 1 != 0;
            if continued && !self.open {
                self.discard = true;
            } else if !continued && self.open {
                self.packet.buf.clear();
                self.open = false;
            }
            self.in_page = true;
            self.seg = 0;
            self.seg_left = self.head.buf.get(27).map_or(0, |&l| u64::from(l));
            self.advance(steps);
        }
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        let (rate, pre_skip) = match &self.codec {
            Codec::Opus { pre_skip } => (48_000u128, u128::from(*pre_skip)),
            Codec::Vorbis { rate, .. } => (u128::from(*rate), 0),
            Codec::Other(why) => return Measured::Unknown(why),
            Codec::Pending => return Measured::Unknown("Ogg without a codec header"),
        };
        let (units, last) = (self.units, u128::from(self.last_packet));
        if units == 0 {
            return Measured::Unknown("Ogg without audio packets");
        }
        let mut played = units;
        if let Some((granule, through, last_then)) = self.granule {
            let tolerance = (through / 50).max(rate);
            let low = through.saturating_sub(u128::from(last_then)).saturating_sub(tolerance);
            if granule < low || granule > through.saturating_add(tolerance) {
                return Measured::Inconsistent("Ogg granule position disagrees with the packets");
            }
            if through == units {
                // End trimming: at most the last packet, never longer than the packets.
                played = granule.clamp(units.saturating_sub(last), units);
            }
        }
        ms_or(played.saturating_sub(pre_skip), rate, "Ogg duration out of range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::duration::tests::fixture;
    use crate::media::Container;

    /// Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0, over the page with its
    /// CRC field zeroed.
    fn ogg_crc(page: &[u8]) -> u32 {
        let mut crc = 0u32;
        for &b in page {
            crc ^= u32::from(b) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
            }
        }
        crc
    }

    /// Where each page starts.
    fn pages(body: &[u8]) -> Vec<usize> {
        let mut at = 0;
        let mut out = Vec::new();
        while at + 27 <= body.len() {
            out.push(at);
            let n = usize::from(body[at + 26]);
            at += 27 + n + body[at + 27..at + 27 + n].iter().map(|&l| usize::from(l)).sum::<usize>();
        }
        out
    }

    /// The body with the last page's granule set to `granule` and its CRC recomputed.
    fn with_last_granule(name: &str, granule: u64) -> Vec<u8> {
        let mut body = fixture(name);
        let last = *pages(&body).last().unwrap();
        body[last + 6..last + 14].copy_from_slice(&granule.to_le_bytes());
        body[last + 22..last + 26].copy_from_slice(&[0; 4]);
        let crc = ogg_crc(&body[last..]);
        body[last + 22..last + 26].copy_from_slice(&crc.to_le_bytes());
        body
    }

    #[test]
    fn the_crc_helper_matches_the_fixture() {
        let body = fixture("tone-5s.ogg");
        let last = *pages(&body).last().unwrap();
        let mut page = body[last..].to_vec();
        let stored = u32_le(&page[22..26]);
        page[22..26].copy_from_slice(&[0; 4]);
        assert_eq!(ogg_crc(&page), stored);
    }

    #[test]
    fn opus_end_trimming_is_honoured_to_the_sample() {
        // 240 960 samples of packets, granule 240 312, pre-skip 312: exactly 5 s.
        assert_eq!(measure(Container::Ogg, &fixture("tone-5s.ogg")), Measured::Ms(5_000));
        assert_eq!(measure(Container::Ogg, &fixture("tone-5s-vorbis.ogg")), Measured::Ms(5_000));
    }

    #[test]
    fn lie_opus_last_granule_says_1s() {
        let body = with_last_granule("tone-5s.ogg", 48_000 + 312);
        assert!(matches!(measure(Container::Ogg, &body), Measured::Inconsistent(_)));
    }

    #[test]
    fn lie_opus_last_granule_says_60s() {
        let body = with_last_granule("tone-5s.ogg", 60 * 48_000 + 312);
        assert!(matches!(measure(Container::Ogg, &body), Measured::Inconsistent(_)));
    }

    #[test]
    fn lie_opus_granule_trims_more_than_one_packet_within_tolerance_is_clamped() {
        // 0.5 s short: inside max(2 %, 1 s), so not refused, but trimming stops at one packet.
        // 240 960 samples of packets, the last 960: trimming stops at 240 000 less the pre-skip.
        let body = with_last_granule("tone-5s.ogg", 240_312 - 24_000);
        assert_eq!(measure(Container::Ogg, &body), Measured::Ms((240_000 - 312) / 48));
    }

    #[test]
    fn lie_vorbis_last_granule_says_1s() {
        let body = with_last_granule("tone-5s-vorbis.ogg", 48_000);
        assert!(matches!(measure(Container::Ogg, &body), Measured::Inconsistent(_)));
    }

    #[test]
    fn a_page_cut_off_adds_nothing() {
        // The last page is cut: what is measured is the pages before it, shorter than 5 s.
        for name in ["tone-5s.ogg", "tone-5s-vorbis.ogg"] {
            let body = fixture(name);
            let last = *pages(&body).last().unwrap();
            let Measured::Ms(ms) = measure(Container::Ogg, &body[..body.len() - 10]) else { panic!("{name}") };
            let Measured::Ms(before) = measure(Container::Ogg, &body[..last]) else { panic!("{name}") };
            assert_eq!(ms, before, "{name}");
            assert!(ms < 5_000, "{name}: {ms}");
        }
    }

    #[test]
    fn work_is_bounded_by_the_bytes() {
        for name in ["tone-5s.ogg", "tone-5s-vorbis.ogg"] {
            for chunk in [1, 7, 4096, usize::MAX] {
                crate::media::duration::tests::assert_bounded(Container::Ogg, &fixture(name), chunk);
            }
        }
        // A setup header of zeros after an empty comment packet: its end is scanned a byte at a
        // time, not a bit at a time; no modes are found.
        let mut body = fixture("tone-5s-vorbis.ogg")[..58].to_vec();
        let mut page = body[..26].to_vec();
        page[18..22].copy_from_slice(&1u32.to_le_bytes()); // sequence
        page.push(9);
        page.extend_from_slice(&[0, 255, 255, 255, 255, 255, 255, 255, 215]);
        page.push(5);
        page.extend(std::iter::repeat_n(0u8, 1999));
        body.extend_from_slice(&page);
        crate::media::duration::tests::assert_bounded(Container::Ogg, &body, 1);
        assert!(matches!(measure(Container::Ogg, &body), Measured::Unknown(_)));
    }

    #[test]
    fn opus_toc_durations() {
        // (toc, count byte, samples at 48 kHz)
        let toc = |config: u8, code: u8| config << 3 | code;
        let table: &[(u8, Option<u8>, u64)] = &[
            (toc(0, 0), None, 480),            // SILK 10 ms, one frame
            (toc(3, 0), None, 2880),           // SILK 60 ms
            (toc(3, 1), None, 5760),           // two 60 ms frames: 120 ms, the most
            (toc(15, 0), None, 960),           // hybrid 20 ms
            (toc(16, 0), None, 120),           // CELT 2.5 ms
            (toc(31, 2), None, 1920),          // CELT 20 ms, two frames
            (toc(31, 3), Some(3), 2880),       // code 3, three 20 ms frames
            (toc(31, 3), Some(0xC5), 5 * 960), // count in the low 6 bits only
            (toc(31, 3), Some(7), 0),          // 140 ms: invalid, plays nothing
            (toc(31, 3), None, 0),             // code 3 without its count byte
        ];
        for &(byte, count, want) in table {
            assert_eq!(opus_samples(byte, count), want, "{byte:08b} {count:?}");
        }
    }

    #[test]
    fn unknown_codecs_and_headers_are_unknown() {
        let mut body = fixture("tone-5s.ogg");
        let first = pages(&body)[0];
        body[first + 28..first + 36].copy_from_slice(b"SpeexHdr"); // the first packet's magic
        assert!(matches!(measure(Container::Ogg, &body), Measured::Unknown(_)));
    }
}
