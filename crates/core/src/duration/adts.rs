use super::*;

#[derive(Default)]
pub(super) struct Adts {
    head: Collect,
    skip: u64,
    frames: u64,
    rate: u32,
    failed: bool,
}

const ADTS_RATES: [u32; 13] =
    [96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350];

impl Adts {
    fn feed_chunk(&mut self, mut chunk: &[u8], steps: &mut u64) {
        while !chunk.is_empty() && !self.failed {
            *steps += 1;
            if self.skip > 0 {
                chunk = take(&mut self.skip, chunk).1;
                continue;
            }
            let used = self.head.fill(chunk, 7);
            chunk = &chunk[used..];
            if self.head.buf.len() < 7 {
                return;
            }
            let h = &self.head.buf;
            if h[0] != 0xFF || h[1] & 0xF6 != 0xF0 {
                // Lost sync (an ID3 tag at the end, junk): stop counting here.
                self.failed = true;
                return;
            }
            let rate_index = usize::from((h[2] >> 2) & 0x0F);
            let length = (u64::from(h[3] & 0x03) << 11) | (u64::from(h[4]) << 3) | (u64::from(h[5]) >> 5);
            let blocks = u64::from(h[6] & 0x03) + 1;
            if length < 7 || rate_index >= ADTS_RATES.len() {
                self.failed = true;
                return;
            }
            if self.rate == 0 {
                self.rate = ADTS_RATES[rate_index];
            }
            self.frames = self.frames.saturating_add(blocks);
            self.skip = length - 7;
            self.head.buf.clear();
        }
    }

    fn finish_inner(&self) -> Measured {
        ms_or(u128::from(self.frames) * 1024, u128::from(self.rate), "ADTS without frames")
    }
}

impl Measure for Adts {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.feed_chunk(chunk, steps);
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner()
    }
}
