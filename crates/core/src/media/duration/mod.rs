//! The duration of an upload, measured from what its bytes hold while they pass (a `Meter` is fed
//! every chunk once; nothing is read twice and at most a few KiB are held). Pure: no I/O.
//!
//! One file per container, each behind `Measure`. What each believes is said at the top of its
//! file. The rules every meter keeps, because every byte and every number in it is from outside:
//! - work is bounded by the bytes fed: no loop runs on a count read from the input, and a count is
//!   never believed beyond the bytes that could hold it. Every pass of every loop adds one to the
//!   `steps` counter it is given; the property tests hold `steps` to a small multiple of the bytes;
//! - all arithmetic saturates or is checked; a value that makes no sense is `Unknown` or
//!   `Inconsistent`, never a panic.

use crate::media::Container;

pub(crate) mod adts;
mod flac;
mod mp3;
mod mp4;
mod ogg;
#[cfg(test)]
pub(crate) mod tests;
mod walker;
mod wav;
mod webm;

/// What a measurement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measured {
    Ms(u64),
    /// The bytes do not say how long the audio is (no frames found, a codec we cannot time).
    Unknown(&'static str),
    /// The file contradicts itself (a header value that disagrees with the frames present, or with
    /// the format it declares): refused, whatever was declared.
    Inconsistent(&'static str),
}

/// One container's streaming meter.
trait Measure: Send {
    /// The next bytes of the body, in order. Adds one to `steps` for every pass of every loop.
    fn feed(&mut self, chunk: &[u8], steps: &mut u64);
    /// The duration, once the whole body (`total` bytes) was fed.
    fn finish(&self, total: u64, steps: &mut u64) -> Measured;
    /// The duration of a body whose header region the route replaces with the one it writes
    /// (media/finalise): the header's own duration claims are not the stored file's, so they are
    /// not cross-checked (MediaRecorder's provisional MP4 header says 21 ms in `mdhd`, which the
    /// final header replaces with the samples' length).
    fn finish_rewritten(&self, total: u64, steps: &mut u64) -> Measured {
        self.finish(total, steps)
    }
    /// What the header writer needs (media/finalise): only the containers the recorder writes.
    fn layout(&self) -> Option<crate::media::finalise::Layout> {
        None
    }
}

/// A streaming duration meter for one container.
pub struct Meter {
    inner: Box<dyn Measure>,
    /// Bytes fed so far.
    total: u64,
    /// Loop passes so far (see the module comment): exposed for the bounded-work tests.
    steps: u64,
}

impl Meter {
    pub fn new(container: Container) -> Meter {
        let inner: Box<dyn Measure> = match container {
            Container::Wav => Box::<wav::Wav>::default(),
            Container::Flac => Box::<flac::Flac>::default(),
            Container::Ogg => Box::<ogg::Ogg>::default(),
            Container::WebM => Box::<webm::WebM>::default(),
            Container::Mp4 => Box::<mp4::Mp4>::default(),
            Container::Mp3 => Box::<mp3::Mp3>::default(),
            Container::Adts => Box::<adts::Adts>::default(),
        };
        Meter { inner, total: 0, steps: 0 }
    }

    /// The next bytes of the body, in order.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.total = self.total.saturating_add(chunk.len() as u64);
        self.steps = self.steps.saturating_add(1);
        self.inner.feed(chunk, &mut self.steps);
    }

    /// The duration, once the whole body was fed.
    pub fn finish(&mut self) -> Measured {
        self.inner.finish(self.total, &mut self.steps)
    }

    /// `finish` for a body whose header region the route rewrites (`Measure::finish_rewritten`).
    pub fn finish_rewritten(&mut self) -> Measured {
        self.inner.finish_rewritten(self.total, &mut self.steps)
    }

    /// What the walk recorded for the final header region (WebM, MP4), once the body was fed.
    pub fn layout(&self) -> Option<crate::media::finalise::Layout> {
        self.inner.layout()
    }

    /// Bytes fed so far.
    pub fn fed(&self) -> u64 {
        self.total
    }

    /// Loop passes so far: what the bounded-work tests hold against the bytes fed.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

/// Measure a whole body at once.
pub fn measure(container: Container, body: &[u8]) -> Measured {
    let mut meter = Meter::new(container);
    meter.feed(body);
    meter.finish()
}

/// `units / rate` seconds in ms, or `None` when the rate is zero or the result absurd (over a year).
fn to_ms(units: u128, rate: u128) -> Option<u64> {
    if rate == 0 {
        return None;
    }
    let ms = units.checked_mul(1000)? / rate;
    u64::try_from(ms).ok().filter(|ms| *ms <= 366 * 24 * 3600 * 1000)
}

fn ms_or(units: u128, rate: u128, why: &'static str) -> Measured {
    to_ms(units, rate).map_or(Measured::Unknown(why), Measured::Ms)
}

/// The next up to `*left` bytes of `chunk` (a payload being skipped or read), and the rest.
fn take<'a>(left: &mut u64, chunk: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    let n = (*left).min(chunk.len() as u64) as usize;
    *left -= n as u64;
    chunk.split_at(n)
}

/// Bytes collected up to a bound (headers that span chunks).
#[derive(Default)]
struct Collect {
    buf: Vec<u8>,
}

impl Collect {
    /// Append from `chunk` until `want` bytes are held; returns how many bytes of `chunk` were used.
    fn fill(&mut self, chunk: &[u8], want: usize) -> usize {
        let take = want.saturating_sub(self.buf.len()).min(chunk.len());
        self.buf.extend_from_slice(&chunk[..take]);
        take
    }
}

fn u16_le(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn u32_be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn u64_be(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}
