use super::*;

#[derive(Default)]
pub(super) struct Flac {
    head: Collect,
}

impl Flac {
    fn feed_chunk(&mut self, chunk: &[u8], _steps: &mut u64) {
        // "fLaC", then the STREAMINFO block header (4) and its 34 bytes.
        self.head.fill(chunk, 4 + 4 + 34);
    }

    fn finish_inner(&self) -> Measured {
        let b = &self.head.buf;
        if b.len() < 42 || &b[..4] != b"fLaC" || b[4] & 0x7F != 0 {
            return Measured::Unknown("FLAC without STREAMINFO");
        }
        let info = &b[8..42];
        let rate = (u32::from(info[10]) << 12) | (u32::from(info[11]) << 4) | (u32::from(info[12]) >> 4);
        let samples = (u64::from(info[13] & 0x0F) << 32) | u64::from(u32_be(&info[14..18]));
        if samples == 0 {
            return Measured::Unknown("FLAC STREAMINFO without a total sample count");
        }
        ms_or(u128::from(samples), u128::from(rate), "FLAC without a sample rate")
    }
}

impl Measure for Flac {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.feed_chunk(chunk, steps);
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner()
    }
}
