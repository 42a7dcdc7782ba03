use super::*;

const EBML_SEGMENT: u32 = 0x1853_8067;
const EBML_CLUSTER: u32 = 0x1F43_B675;
const EBML_BLOCK_GROUP: u32 = 0xA0;
const EBML_INFO: u32 = 0x1549_A966;
const EBML_TIMECODE_SCALE: u32 = 0x2A_D7B1;
const EBML_DURATION: u32 = 0x4489;
const EBML_CLUSTER_TIMECODE: u32 = 0xE7;
const EBML_SIMPLE_BLOCK: u32 = 0xA3;
const EBML_BLOCK: u32 = 0xA1;

/// A flat walk over EBML elements: the masters we need (Segment, Info, Cluster, BlockGroup) are
/// entered (their children follow at once, unknown sizes included); everything else is skipped,
/// except the few values we read (at most 8 bytes, or a block's first 4).
pub(super) struct WebM {
    head: Collect,
    skip: u64,
    /// The element whose payload is being collected, and how many bytes of it we keep.
    reading: Option<(u32, usize)>,
    value: Collect,
    scale_ns: u64,
    duration: Option<f64>,
    cluster_tc: Option<u64>,
    /// The last two block times (timecode units): the last one, and the step before it.
    last_block: Option<i128>,
    step: Option<i128>,
    failed: bool,
}

impl Default for WebM {
    fn default() -> Self {
        WebM {
            head: Collect::default(),
            skip: 0,
            reading: None,
            value: Collect::default(),
            scale_ns: 1_000_000,
            duration: None,
            cluster_tc: None,
            last_block: None,
            step: None,
            failed: false,
        }
    }
}

/// An EBML variable-length integer at the start of `b`: (length, value with the marker removed),
/// `None` while more bytes are needed or when invalid (`Some((0, _))`).
fn vint(b: &[u8], keep_marker: bool) -> Option<(usize, u64)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return Some((0, 0));
    }
    if b.len() < len {
        return None;
    }
    let mut v = if keep_marker { u64::from(first) } else { u64::from(first) & (0xFF_u64 >> len) };
    for &byte in &b[1..len] {
        v = (v << 8) | u64::from(byte);
    }
    Some((len, v))
}

impl WebM {
    fn feed_chunk(&mut self, mut chunk: &[u8], steps: &mut u64) {
        while !chunk.is_empty() && !self.failed {
            *steps += 1;
            if let Some((id, keep)) = self.reading {
                let (part, rest) = take(&mut self.skip, chunk);
                chunk = rest;
                self.value.fill(part, keep);
                if self.skip == 0 {
                    self.reading = None;
                    self.element(id);
                    self.value.buf.clear();
                }
                continue;
            }
            if self.skip > 0 {
                chunk = take(&mut self.skip, chunk).1;
                continue;
            }
            // An element header: ID (1–4 bytes, marker kept), size (1–8 bytes). Taken a byte
            // count at a time, so nothing past the header is ever consumed here.
            let want = match self.head.buf.first() {
                None => 1,
                Some(&first) => {
                    let id_len = first.leading_zeros() as usize + 1;
                    match self.head.buf.get(id_len) {
                        _ if id_len > 4 => {
                            self.failed = true;
                            return;
                        }
                        None => id_len + 1,
                        Some(&size_first) => id_len + size_first.leading_zeros() as usize + 1,
                    }
                }
            };
            if want > 12 {
                self.failed = true;
                return;
            }
            let used = self.head.fill(chunk, want);
            chunk = &chunk[used..];
            if self.head.buf.len() < want {
                continue;
            }
            // `want` grows as the header's first bytes arrive (the ID's length, then the size's).
            // Go round again only while it is still growing: the next pass takes more bytes. A
            // header that can never complete ends the measurement (going round would spin forever).
            let id_len = self.head.buf[0].leading_zeros() as usize + 1;
            let Some(&size_first) = self.head.buf.get(id_len) else { continue };
            let size_len = size_first.leading_zeros() as usize + 1;
            if size_len > 8 {
                self.failed = true;
                return;
            }
            if self.head.buf.len() < id_len + size_len {
                continue;
            }
            let parsed = vint(&self.head.buf, true).zip(vint(&self.head.buf[id_len..], false));
            let Some(((_, id), (_, size))) = parsed else {
                self.failed = true;
                return;
            };
            let unknown = size == (1u64 << (7 * size_len)) - 1;
            self.head.buf.clear();
            self.enter(id as u32, if unknown { None } else { Some(size) });
        }
    }

    fn enter(&mut self, id: u32, size: Option<u64>) {
        match id {
            EBML_SEGMENT | EBML_CLUSTER | EBML_BLOCK_GROUP | EBML_INFO => {} // children follow
            EBML_TIMECODE_SCALE | EBML_DURATION | EBML_CLUSTER_TIMECODE | EBML_SIMPLE_BLOCK | EBML_BLOCK => {
                let Some(size) = size else {
                    self.failed = true;
                    return;
                };
                let keep = if matches!(id, EBML_SIMPLE_BLOCK | EBML_BLOCK) { 4 } else { 8 };
                if size == 0 {
                    return;
                }
                self.skip = size;
                self.reading = Some((id, keep));
            }
            _ => match size {
                Some(size) => self.skip = size,
                // An unknown-size element we do not enter: nothing after it can be placed.
                None => self.failed = true,
            },
        }
    }

    fn element(&mut self, id: u32) {
        let v = &self.value.buf;
        let uint = || v.iter().take(8).fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        match id {
            EBML_TIMECODE_SCALE => self.scale_ns = uint().max(1),
            EBML_DURATION => {
                self.duration = match v.len() {
                    4 => Some(f64::from(f32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
                    8 => Some(f64::from_bits(u64_be(v))),
                    _ => None,
                }
            }
            EBML_CLUSTER_TIMECODE => self.cluster_tc = Some(uint()),
            EBML_SIMPLE_BLOCK | EBML_BLOCK => {
                let (Some(cluster), Some((track_len, _))) = (self.cluster_tc, vint(v, false)) else { return };
                if track_len == 0 || v.len() < track_len + 2 {
                    return;
                }
                let rel = i16::from_be_bytes([v[track_len], v[track_len + 1]]);
                let at = i128::from(cluster) + i128::from(rel);
                if let Some(prev) = self.last_block {
                    if at > prev {
                        self.step = Some(at - prev);
                    }
                }
                self.last_block = Some(self.last_block.map_or(at, |p| p.max(at)));
            }
            _ => {}
        }
    }

    fn finish_inner(&self) -> Measured {
        let scale = u128::from(self.scale_ns);
        if let Some(d) = self.duration.filter(|d| d.is_finite() && *d > 0.0 && *d < 1e15) {
            // `Duration` is a float in timecode-scale units.
            let ms = d * self.scale_ns as f64 / 1e6;
            return if (0.0..366.0 * 24.0 * 3600.0 * 1000.0).contains(&ms) {
                Measured::Ms(ms.round() as u64)
            } else {
                Measured::Unknown("WebM Duration out of range")
            };
        }
        match self.last_block {
            Some(last) if last >= 0 => {
                let end = last.saturating_add(self.step.unwrap_or(0));
                ms_or(
                    u128::try_from(end).unwrap_or(0).saturating_mul(scale),
                    1_000_000_000,
                    "WebM timecodes out of range",
                )
            }
            _ => Measured::Unknown("WebM without Duration or blocks"),
        }
    }
}

impl Measure for WebM {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.feed_chunk(chunk, steps);
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner()
    }
}
