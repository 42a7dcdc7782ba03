use super::*;

/// MP4 boxes: `<size 4><type 4>` (size 1: a 64-bit size follows; 0: to the end). Containers we
/// need are entered; `mvhd`, `mehd`, `mdhd`, `tfhd`, `trun` are read (`trun` up to a bound);
/// everything else, `mdat` above all, is skipped.
#[derive(Default)]
pub(super) struct Mp4 {
    head: Collect,
    skip: u64,
    reading: Option<[u8; 4]>,
    value: Collect,
    movie: Option<(u64, u32)>,
    fragment_total: Option<u64>,
    /// The audio track's timescale (the first `mdhd`), and `trex`/`tfhd` default sample duration.
    media_timescale: Option<u32>,
    default_duration: u32,
    frag_units: u128,
    failed: bool,
}

/// The most of a `trun` we read: 8 bytes a sample covers over 2 hours of AAC at 48 kHz per fragment.
const MAX_TRUN_BYTES: u64 = 1 << 20;

impl Mp4 {
    fn feed_chunk(&mut self, mut chunk: &[u8], steps: &mut u64) {
        while !chunk.is_empty() && !self.failed {
            *steps += 1;
            if let Some(kind) = self.reading {
                let (part, rest) = take(&mut self.skip, chunk);
                chunk = rest;
                let want = self.value.buf.len() + part.len();
                self.value.fill(part, want);
                if self.skip == 0 {
                    self.reading = None;
                    self.leaf(kind, steps);
                    self.value.buf.clear();
                }
                continue;
            }
            if self.skip > 0 {
                chunk = take(&mut self.skip, chunk).1;
                continue;
            }
            let want = if self.head.buf.len() >= 8 && u32_be(&self.head.buf[..4]) == 1 { 16 } else { 8 };
            let used = self.head.fill(chunk, want);
            chunk = &chunk[used..];
            if self.head.buf.len() < want {
                continue;
            }
            if want == 8 && u32_be(&self.head.buf[..4]) == 1 {
                continue; // a 64-bit size follows
            }
            let h = &self.head.buf;
            let kind = [h[4], h[5], h[6], h[7]];
            let size = match u32_be(&h[..4]) {
                0 => u64::MAX, // to the end
                1 => u64_be(&h[8..16]),
                n => u64::from(n),
            };
            let header = want as u64;
            self.head.buf.clear();
            if size < header {
                self.failed = true;
                return;
            }
            let payload = if size == u64::MAX { u64::MAX } else { size - header };
            match &kind {
                b"moov" | b"trak" | b"mdia" | b"mvex" | b"moof" | b"traf" => {}
                b"mvhd" | b"mehd" | b"mdhd" | b"tfhd" | b"trex" if payload <= 256 => {
                    self.skip = payload;
                    self.reading = Some(kind);
                }
                b"trun" if payload <= MAX_TRUN_BYTES => {
                    self.skip = payload;
                    self.reading = Some(kind);
                }
                b"trun" => {
                    self.frag_units = u128::MAX; // too big to read: the fragments are not summed
                    self.skip = payload;
                }
                _ => self.skip = payload,
            }
            if payload == 0 && self.reading.is_some() {
                self.reading = None;
            }
        }
    }

    fn leaf(&mut self, kind: [u8; 4], steps: &mut u64) {
        let b = &self.value.buf;
        if b.len() < 4 {
            return;
        }
        let version = b[0];
        let flags = u32_be(b) & 0x00FF_FFFF;
        let body = &b[4..];
        match &kind {
            b"mvhd" | b"mdhd" => {
                // v0: created 4, modified 4, timescale 4, duration 4; v1: 8, 8, 4, 8.
                let (scale, duration) = match version {
                    0 if body.len() >= 16 => (u32_be(&body[8..12]), u64::from(u32_be(&body[12..16]))),
                    1 if body.len() >= 28 => (u32_be(&body[16..20]), u64_be(&body[20..28])),
                    _ => return,
                };
                // All ones: "unknown".
                let duration = if duration == u64::from(u32::MAX) || duration == u64::MAX { 0 } else { duration };
                if &kind == b"mvhd" {
                    self.movie = Some((duration, scale));
                } else if self.media_timescale.is_none() {
                    self.media_timescale = Some(scale);
                }
            }
            b"mehd" => {
                let d = match version {
                    0 if body.len() >= 4 => u64::from(u32_be(body)),
                    1 if body.len() >= 8 => u64_be(body),
                    _ => return,
                };
                self.fragment_total = Some(d);
            }
            b"trex" if body.len() >= 16 => self.default_duration = u32_be(&body[8..12]),
            b"tfhd" => {
                // track id 4, then optional fields by flag.
                let mut at = 4usize;
                for (flag, len) in [(0x1, 8), (0x2, 4)] {
                    if flags & flag != 0 {
                        at += len;
                    }
                }
                if flags & 0x8 != 0 && body.len() >= at + 4 {
                    self.default_duration = u32_be(&body[at..at + 4]);
                }
            }
            b"trun" => {
                if self.frag_units == u128::MAX || body.len() < 4 {
                    return;
                }
                let count = u32_be(body) as usize;
                let mut at = 4usize;
                if flags & 0x1 != 0 {
                    at += 4; // data offset
                }
                if flags & 0x4 != 0 {
                    at += 4; // first sample flags
                }
                let per_sample: usize = [(0x100, 4), (0x200, 4), (0x400, 4), (0x800, 4)]
                    .iter()
                    .filter(|(f, _)| flags & f != 0)
                    .map(|(_, l)| l)
                    .sum();
                let has_duration = flags & 0x100 != 0;
                // Without per-sample durations every sample lasts the default: a product, not a
                // loop over a count read from the file. With them, the loop is bounded by the
                // bytes of this box (it stops where they end).
                let units: u128 = if has_duration {
                    let mut units: u128 = 0;
                    for i in 0..count.min(body.len() / per_sample.max(1)) {
                        *steps += 1;
                        let p = at + i * per_sample;
                        if body.len() < p + 4 {
                            return;
                        }
                        units = units.saturating_add(u128::from(u32_be(&body[p..p + 4])));
                    }
                    units
                } else {
                    (count as u128).saturating_mul(u128::from(self.default_duration))
                };
                self.frag_units = self.frag_units.saturating_add(units);
            }
            _ => {}
        }
    }

    fn finish_inner(&self) -> Measured {
        if let Some((duration, scale)) = self.movie {
            if duration > 0 {
                return ms_or(u128::from(duration), u128::from(scale), "MP4 mvhd without a timescale");
            }
            if let Some(total) = self.fragment_total.filter(|t| *t > 0) {
                return ms_or(u128::from(total), u128::from(scale), "MP4 mehd without a timescale");
            }
        }
        match (self.frag_units, self.media_timescale) {
            (u128::MAX, _) => Measured::Unknown("MP4 fragment too large to sum"),
            (units, Some(scale)) if units > 0 => ms_or(units, u128::from(scale), "MP4 mdhd without a timescale"),
            _ => Measured::Unknown("MP4 without a movie duration or fragments"),
        }
    }
}

impl Measure for Mp4 {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.feed_chunk(chunk, steps);
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner()
    }
}
