//! The final header region of a recording the recorder uploaded with its PROVISIONAL one
//! (docs/stop-to-transcribing.md, option C): the route writes it itself, from what the duration
//! meter recorded while it read the blob, never from anything the client claims.
//!
//! The recorder's finalisers (`client/finalise/webm.mjs`, `mp4.mjs`) write a provisional header
//! region of a fixed length while recording and the final one, the same length, at `finish()`. The
//! writers here take the provisional header region (the stored blob's first bytes, up to the first
//! Cluster or `moof`) and the `Layout` the meter recorded, and return exactly what `finish()`
//! returns for the same recording, or `None`: the header region is not a provisional one recognised
//! byte for byte (already final, another writer's, altered), the layout is not one the finaliser
//! would have finished (a cut inside an element, no audio, unchecked Cues), or the result would not
//! have the same length. `None` means "store the blob as it is": the rewrite never guesses.
//!
//! Pure: no I/O. Work and memory are bounded by the bytes the meter read: the positions kept are
//! capped as the finalisers cap them (65 536 cue points, 2 048 fragment positions).

pub mod mp4;
pub mod webm;

/// What the meter recorded for the writer: one per container that has a finaliser.
#[derive(Debug, Clone)]
pub enum Layout {
    WebM(webm::Layout),
    Mp4(mp4::Layout),
}

impl Layout {
    /// Where the header region ends (the first Cluster or `moof`), if the walk got there.
    pub fn header_len(&self) -> Option<u64> {
        match self {
            Layout::WebM(l) => l.header_len(),
            Layout::Mp4(l) => l.header_len(),
        }
    }
}

/// The final header region for a blob of `total` bytes whose first bytes are `provisional` (exactly
/// its header region: `layout.header_len()` bytes), or `None` (see the module comment).
pub fn final_header(provisional: &[u8], layout: &Layout, total: u64) -> Option<Vec<u8>> {
    if layout.header_len()? != provisional.len() as u64 {
        return None;
    }
    let out = match layout {
        Layout::WebM(l) => webm::final_header(provisional, l, total)?,
        Layout::Mp4(l) => mp4::final_header(provisional, l, total)?,
    };
    // The final header region replaces the provisional one in place: same length or nothing.
    (out.len() == provisional.len()).then_some(out)
}

/// Whether `region` (a blob's bytes up to its first Cluster or `moof`) is exactly a provisional
/// header region the finaliser writes: the completion decides from it, once the first part is
/// read, whether to send the parts after it to a rewrite before the whole read is done.
pub fn provisional(container: crate::media::Container, region: &[u8]) -> bool {
    match container {
        crate::media::Container::WebM => webm::recognised(region).is_some(),
        crate::media::Container::Mp4 => mp4::recognised(region).is_some(),
        _ => false,
    }
}

/// Keeps the 1st, 3rd, 5th, … of `v` (the finalisers' `filter((_, i) => i % 2 === 0)`): how both
/// caps make room, so the positions kept stay every `stride`-th one with the stride doubled.
fn keep_every_other<T>(v: &mut Vec<T>) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        i % 2 == 1
    });
}

/// Big-endian bytes of `v`, minimal (at least one byte): the finalisers' `uintBytes`.
fn uint_bytes(v: u64) -> Vec<u8> {
    let n = (8 - v.leading_zeros() as usize / 8).max(1);
    v.to_be_bytes()[8 - n..].to_vec()
}

/// The final header region of a whole body held in memory (the meter fed it in one piece), or
/// `None`: what the test hook of the addon (`src/test_hooks.rs`) compares with `finish()`.
pub fn final_header_of(container: crate::media::Container, body: &[u8]) -> Option<Vec<u8>> {
    let mut meter = crate::media::duration::Meter::new(container);
    meter.feed(body);
    let layout = meter.layout()?;
    let head = usize::try_from(layout.header_len()?).ok()?;
    final_header(body.get(..head)?, &layout, body.len() as u64)
}

#[cfg(test)]
mod tests;
