use super::*;

/// RIFF chunks: `RIFF <size> WAVE`, then `<id> <size> <payload, padded to even>`…
#[derive(Default)]
pub(super) struct Wav {
    /// Header bytes of the chunk being read (8), or the RIFF header (12).
    head: Collect,
    started: bool,
    /// Payload bytes of the current chunk still to skip (or to count, for `data`).
    skip: u64,
    in_data: bool,
    fmt: Collect,
    fmt_left: u64,
    byte_rate: u32,
    data_declared: Option<u32>,
    data_seen: u64,
    /// Bytes fed before the `data` payload (for a blob of known size read in parts).
    fed: u64,
    data_start: Option<u64>,
    failed: bool,
}

impl Wav {
    fn feed_chunk(&mut self, chunk: &[u8], steps: &mut u64) {
        let (at, len) = (self.fed, chunk.len());
        self.fed = self.fed.saturating_add(len as u64);
        self.walk(chunk, at, len, steps);
    }

    /// `at`: the offset of `chunk`'s first byte in the body, `len` its length.
    fn walk(&mut self, mut chunk: &[u8], at: u64, len: usize, steps: &mut u64) {
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
            if self.fmt_left > 0 {
                // Keep the first 64 bytes of `fmt ` (the byte rate is at 8..12), skip the rest.
                let n = self.fmt_left.min(chunk.len() as u64) as usize;
                let want = self.fmt.buf.len() + n;
                self.fmt.fill(&chunk[..n], want.min(64));
                self.fmt_left -= n as u64;
                chunk = &chunk[n..];
                if self.fmt_left == 0 && self.fmt.buf.len() >= 12 {
                    self.byte_rate = u32_le(&self.fmt.buf[8..12]);
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(chunk.len() as u64);
                if self.in_data {
                    self.data_seen = self.data_seen.saturating_add(n);
                }
                self.skip -= n;
                chunk = &chunk[n as usize..];
                continue;
            }
            if self.in_data {
                // Past the declared data: a streamed WAV (size 0 or 0xFFFFFFFF) keeps counting.
                if matches!(self.data_declared, Some(0) | Some(u32::MAX)) {
                    self.data_seen = self.data_seen.saturating_add(chunk.len() as u64);
                    return;
                }
                self.in_data = false;
            }
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
                b"fmt " => self.fmt_left = padded,
                b"data" if self.data_declared.is_none() => {
                    self.data_declared = Some(size);
                    self.data_start = Some(at + (len - chunk.len()) as u64);
                    self.in_data = true;
                    self.skip = if matches!(size, 0 | u32::MAX) { u64::MAX } else { padded };
                }
                _ => self.skip = padded,
            }
        }
    }

    fn finish_inner(&self) -> Measured {
        let Some(declared) = self.data_declared else { return Measured::Unknown("WAV without a data chunk") };
        // The smaller of what the header says and what arrived: a header cannot add audio.
        let bytes = match declared {
            0 | u32::MAX => self.data_seen,
            n => u64::from(n).min(self.data_seen),
        };
        ms_or(u128::from(bytes), u128::from(self.byte_rate), "WAV without a byte rate")
    }
}

impl Measure for Wav {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.feed_chunk(chunk, steps);
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner()
    }
}
