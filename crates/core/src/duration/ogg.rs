use super::*;

/// Ogg pages: `OggS`, version, flags, granule (8, LE), serial, sequence, CRC, segment count, the
/// lacing table, then the payload. Only the first logical stream is followed.
#[derive(Default)]
pub(super) struct Ogg {
    head: Collect,
    /// Payload bytes of the current page still to skip.
    skip: u64,
    serial: Option<u32>,
    /// The first packet of the stream (codec identification), up to 64 bytes.
    ident: Collect,
    capture: u64,
    last_granule: Option<u64>,
    failed: bool,
}

impl Ogg {
    fn feed_chunk(&mut self, mut chunk: &[u8], steps: &mut u64) {
        while !chunk.is_empty() && !self.failed {
            *steps += 1;
            if self.skip > 0 {
                let n = self.skip.min(chunk.len() as u64) as usize;
                if self.capture > 0 {
                    let want = self.ident.buf.len() + n.min(self.capture as usize);
                    self.ident.fill(&chunk[..n], want.min(64));
                    self.capture = self.capture.saturating_sub(n as u64);
                }
                self.skip -= n as u64;
                chunk = &chunk[n..];
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
            let h = &self.head.buf;
            let granule = u64::from_le_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]);
            let serial = u32_le(&h[14..18]);
            let payload: u64 = h[27..].iter().map(|&l| u64::from(l)).sum();
            let first = *self.serial.get_or_insert(serial) == serial && self.ident.buf.is_empty() && self.capture == 0;
            if serial == self.serial.unwrap_or(serial) {
                // -1 means "no packet ends on this page".
                if granule != u64::MAX {
                    self.last_granule = Some(granule);
                }
                if first {
                    self.capture = payload;
                }
            }
            self.skip = payload;
            self.head.buf.clear();
        }
    }

    fn finish_inner(&self) -> Measured {
        let id = &self.ident.buf;
        let Some(granule) = self.last_granule else { return Measured::Unknown("Ogg without a granule position") };
        if id.len() >= 19 && id.starts_with(b"OpusHead") {
            // Opus granules count 48 kHz samples from the start, pre-skip included.
            let pre_skip = u64::from(u16_le(&id[10..12]));
            return ms_or(u128::from(granule.saturating_sub(pre_skip)), 48_000, "Ogg Opus");
        }
        if id.len() >= 16 && id[0] == 1 && &id[1..7] == b"vorbis" {
            let rate = u32_le(&id[12..16]);
            return ms_or(u128::from(granule), u128::from(rate), "Ogg Vorbis without a sample rate");
        }
        Measured::Unknown("Ogg codec other than Opus or Vorbis")
    }
}

impl Measure for Ogg {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.feed_chunk(chunk, steps);
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner()
    }
}
