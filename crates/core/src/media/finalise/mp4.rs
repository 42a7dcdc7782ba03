//! Fragmented MP4: the final header region `client/finalise/mp4.mjs` writes at `finish()` (the
//! durations in `mvhd`/`tkhd`/`mdhd`/`mehd`, and a `sidx` at the end of the reserved space), from the
//! provisional one and the fragments the meter walked (docs/mp4-finalise.md has the layout).
//!
//! The provisional header region is recognised exactly: parsed as the finaliser parses a
//! recording's header, the provisional region it would write is rebuilt, and the two must be the
//! same bytes. The fragments are followed as the finaliser follows them (`mp4-walk.mjs`): each
//! `moof`'s offset, its audio `tfdt`, the `trun` durations, WebKit's repeated `moof`; at most
//! 2 × MAX_REFERENCES positions are kept (every other one goes and the stride doubles).

use super::keep_every_other;

/// The most references the `sidx` holds (MAX_REFERENCES).
pub const MAX_REFERENCES: usize = 1024;
const SIDX_FIXED: usize = 40;
const SIDX_REFERENCE: usize = 12;
const FREE_HEADER: usize = 8;
/// What the provisional header keeps free: a `free` box as long as the largest `sidx` and its header.
pub const HEADER_RESERVE: usize = FREE_HEADER + SIDX_FIXED + SIDX_REFERENCE * MAX_REFERENCES;
const HEAD_LIMIT: usize = 1024 * 1024;
const SIZE_LIMIT: u64 = 1 << 40;
/// Integers the finaliser holds as JS numbers are exact only below this.
const SAFE: u128 = 1 << 53;

/// A fragment as the finaliser keeps it: its `moof`'s offset and size, and its audio span.
#[derive(Debug, Clone, Copy)]
struct Frag {
    offset: u64,
    size: u64,
    start: Option<u128>,
    end: Option<u128>,
    waiting: bool,
}

/// The `traf` being walked: whether it is the audio track's, its `tfdt`, the `trun` units.
#[derive(Debug, Clone, Copy, Default)]
struct Traf {
    audio: bool,
    start: Option<u128>,
    units: u128,
}

/// What the MP4 meter records for the writer while it walks (it calls the methods below).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    first_moof: Option<u64>,
    /// The meter's audio track ID and its default sample duration, at the first `moof`.
    track: Option<(u32, u64)>,
    /// Where the element now being met starts.
    boundary: u64,
    /// The open `moof` and `traf` (their ends).
    moof_end: Option<u64>,
    traf_end: Option<u64>,
    traf: Option<Traf>,
    fragments: u64,
    stride: u64,
    entries: Vec<Frag>,
    /// The current fragment, when it is not the last of `entries`.
    loose: Option<Frag>,
    current_in_entries: bool,
    running: u128,
    first_start: Option<u128>,
    track_end: Option<u128>,
    to_end: bool,
    broken: bool,
}

impl Layout {
    pub fn header_len(&self) -> Option<u64> {
        self.first_moof
    }

    fn current_ref(&self) -> Option<&Frag> {
        if self.current_in_entries {
            self.entries.last()
        } else {
            self.loose.as_ref()
        }
    }

    fn current(&mut self) -> Option<&mut Frag> {
        if self.current_in_entries {
            self.entries.last_mut()
        } else {
            self.loose.as_mut()
        }
    }

    /// The walk is between two boxes at `at`: close the `traf` and `moof` that ended there.
    pub(crate) fn boundary(&mut self, at: u64) {
        self.boundary = at;
        if self.traf_end.is_some_and(|end| end <= at) {
            self.traf_end = None;
            self.end_traf();
        }
        if self.moof_end.is_some_and(|end| end <= at) {
            self.moof_end = None;
            if let Some(f) = self.current() {
                f.waiting = true;
            }
        }
    }

    /// A box header: its type, payload size (`None`: to the end) and where the payload starts.
    /// `track` is the meter's audio track (ID, default duration) as known now.
    pub(crate) fn header(&mut self, kind: &[u8; 4], size: Option<u64>, at: u64, track: Option<(u32, u64)>) {
        let start = self.boundary;
        if self.first_moof.is_none() {
            if kind != b"moof" || self.to_end {
                return;
            }
            self.first_moof = Some(start);
            self.track = track;
            self.stride = 1;
        }
        if self.to_end {
            self.broken = true;
            return;
        }
        let end = size.map(|s| at.saturating_add(s));
        if let Some(traf_end) = self.traf_end {
            if end.is_none_or(|e| e > traf_end) {
                self.broken = true;
            }
            if kind == b"trun" && self.traf.is_some_and(|t| t.audio) && size.is_none_or(|s| s < 8) {
                self.broken = true;
            }
            return;
        }
        if let Some(moof_end) = self.moof_end {
            if end.is_none_or(|e| e > moof_end) {
                self.broken = true;
            } else if kind == b"traf" {
                self.traf = Some(Traf::default());
                self.traf_end = end;
            }
            return;
        }
        match (kind, end) {
            (b"moof", Some(end)) => self.start_fragment(start, end - start),
            (b"mdat", _) => {
                self.mdat_done();
                self.to_end = end.is_none();
            }
            // A second moov or ftyp, or any other box of size 0: the finaliser refuses the file.
            (b"moov" | b"ftyp", _) | (_, None) => self.broken = true,
            _ => {}
        }
    }

    fn start_fragment(&mut self, start: u64, size: u64) {
        let end = start.saturating_add(size);
        if let Some(f) = self.current_ref().copied().filter(|f| f.waiting) {
            // WebKit writes the moof it ends with twice, the same bytes: the first counts nothing.
            if f.size != size {
                self.broken = true;
            }
            if self.current_in_entries {
                self.entries.pop();
            }
            self.fragments = self.fragments.saturating_sub(1);
        }
        let index = self.fragments;
        self.fragments += 1;
        let frag = Frag { offset: start, size, start: None, end: None, waiting: false };
        self.moof_end = Some(end);
        if index.is_multiple_of(self.stride.max(1)) {
            self.entries.push(frag);
            self.current_in_entries = true;
            self.loose = None;
            if self.entries.len() >= 2 * MAX_REFERENCES {
                // Every other one goes (the last, the current one, among them), twice the stride.
                let last = self.entries.pop();
                keep_every_other(&mut self.entries);
                self.loose = last;
                self.current_in_entries = false;
                self.stride = self.stride.saturating_mul(2);
            }
        } else {
            self.loose = Some(frag);
            self.current_in_entries = false;
        }
    }

    /// A `tfhd` of the open `traf` (its payload's first bytes: version/flags, track ID, ...).
    pub(crate) fn tfhd(&mut self, v: &[u8]) {
        let (Some(mut traf), Some((id, _))) = (self.traf, self.track) else { return };
        if v.len() < 8 {
            self.broken = true;
            return;
        }
        let flags = u32::from_be_bytes([0, v[1], v[2], v[3]]);
        // An absolute base data offset would be wrong once the header region changes.
        if flags & 0x1 != 0 {
            self.broken = true;
        }
        if u32::from_be_bytes([v[4], v[5], v[6], v[7]]) != id {
            return;
        }
        traf.audio = true;
        self.traf = Some(traf);
    }

    /// A `tfdt` of the open `traf`.
    pub(crate) fn tfdt(&mut self, v: &[u8]) {
        let Some(traf) = self.traf.as_mut().filter(|t| t.audio) else { return };
        let wide = v.first() == Some(&1);
        let start = match (wide, v.get(4..12), v.get(4..8)) {
            (true, Some(b), _) => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            (false, _, Some(b)) if v.len() >= 8 => u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            _ => {
                self.broken = true;
                return;
            }
        };
        if u128::from(start) >= SAFE {
            self.broken = true;
        }
        traf.start = Some(u128::from(start));
    }

    /// A whole `trun` of the audio `traf`: its samples' durations (`complete`: all its records
    /// were there).
    pub(crate) fn trun(&mut self, units: u128, complete: bool) {
        if !complete {
            self.broken = true;
        }
        if let Some(t) = self.traf.as_mut().filter(|t| t.audio) {
            t.units = t.units.saturating_add(units);
        }
    }

    fn end_traf(&mut self) {
        let Some(t) = self.traf.take().filter(|t| t.audio) else { return };
        let running = self.running;
        let Some(f) = self.current() else { return };
        let start = t.start.or(f.end).unwrap_or(running);
        if f.start.is_none() {
            f.start = Some(start);
        }
        f.end = Some(f.end.unwrap_or(0).max(start.saturating_add(t.units)));
    }

    fn mdat_done(&mut self) {
        let running = self.running;
        let Some(f) = self.current().filter(|f| f.waiting) else { return };
        f.waiting = false;
        if f.start.is_none() {
            (f.start, f.end) = (Some(running), Some(running));
        }
        let (start, end) = (f.start.unwrap_or(running), f.end.unwrap_or(running));
        if self.first_start.is_none() && end > start {
            self.first_start = Some(start);
        }
        if end > start || self.track_end.is_none() {
            self.track_end = Some(self.track_end.unwrap_or(0).max(end));
        }
        self.running = end;
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A box in memory: (type, start, data start, end).
type Span = ([u8; 4], usize, usize, usize);

/// The box at `at`; `None` when cut off, of size 0, or invalid.
fn box_at(b: &[u8], at: usize, end: usize) -> Option<Span> {
    let size32 = u32_at(&b[..end], at)?;
    let kind: [u8; 4] = b.get(at + 4..at + 8)?.try_into().ok()?;
    let (size, header) = match size32 {
        0 => return None,
        1 => (u64_at(&b[..end], at + 8)?, 16),
        n => (u64::from(n), 8),
    };
    if size < header as u64 || size > SIZE_LIMIT {
        return None;
    }
    let stop = at.checked_add(usize::try_from(size).ok()?)?;
    (stop <= end).then_some((kind, at, at + header, stop))
}

fn boxes(b: &[u8], start: usize, end: usize) -> Option<Vec<Span>> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let c = box_at(b, at, end)?;
        at = c.3;
        out.push(c);
    }
    Some(out)
}

/// Where a full box's duration field is: (offset, 8 bytes wide).
fn duration_field(b: &[u8], (kind, _, data, end): Span) -> Option<(usize, bool)> {
    let v1 = b.get(data) == Some(&1);
    let rel = if &kind == b"tkhd" {
        if v1 {
            28
        } else {
            20
        }
    } else if v1 {
        24
    } else {
        16
    };
    (end - data >= rel + if v1 { 8 } else { 4 }).then_some((data + rel, v1))
}

/// The header region's fields the final one writes, positions in the kept bytes.
pub(super) struct Moov {
    mvhd: (usize, bool),
    movie_scale: u32,
    mehd: Option<(usize, bool)>,
    track: (u32, u32, (usize, bool), (usize, bool)),
    default_duration: u64,
}

fn read_moov(b: &[u8], data: usize, end: usize, shift: isize) -> Option<Moov> {
    let at = |(p, w): (usize, bool)| Some((p.checked_add_signed(shift)?, w));
    let (mut mvhd, mut movie_scale, mut mehd, mut track, mut trex) = (None, 0, None, None, Vec::new());
    for c in boxes(b, data, end)? {
        match &c.0 {
            b"mvhd" => {
                let f = duration_field(b, c)?;
                movie_scale = u32_at(b, f.0 - 4)?;
                mvhd = Some(at(f)?);
            }
            b"mvex" => {
                for m in boxes(b, c.2, c.3)? {
                    if &m.0 == b"trex" && m.3 - m.2 >= 24 {
                        trex.push((u32_at(b, m.2 + 4)?, u32_at(b, m.2 + 12)?));
                    }
                    if &m.0 == b"mehd" && m.3 - m.2 >= 8 {
                        let wide = b[m.2] == 1;
                        if !wide || m.3 - m.2 >= 12 {
                            mehd = Some(at((m.2 + 4, wide))?);
                        }
                    }
                }
            }
            b"trak" if track.is_none() => {
                let (mut tkhd, mut mdhd, mut sound) = (None, None, false);
                for t in boxes(b, c.2, c.3)? {
                    if &t.0 == b"tkhd" {
                        tkhd = Some(t);
                    }
                    if &t.0 != b"mdia" {
                        continue;
                    }
                    for m in boxes(b, t.2, t.3)? {
                        if &m.0 == b"mdhd" {
                            mdhd = Some(m);
                        }
                        if &m.0 == b"hdlr" && m.3 - m.2 >= 12 && b.get(m.2 + 8..m.2 + 12) == Some(b"soun") {
                            sound = true;
                        }
                    }
                }
                if !sound {
                    continue;
                }
                let (tk, md) = (duration_field(b, tkhd?)?, duration_field(b, mdhd?)?);
                let (id, scale) = (u32_at(b, tk.0 - 8)?, u32_at(b, md.0 - 4)?);
                if scale == 0 {
                    return None;
                }
                track = Some((id, scale, at(tk)?, at(md)?));
            }
            _ => {}
        }
    }
    if movie_scale == 0 {
        return None;
    }
    let track = track?;
    // The last trex of the track wins, as in the finaliser's Map.
    let default_duration = trex.iter().rev().find(|t| t.0 == track.0).map_or(0, |t| u64::from(t.1));
    Some(Moov { mvhd: mvhd?, movie_scale, mehd, track, default_duration })
}

fn put(b: &mut [u8], (at, wide): (usize, bool), v: u64) -> Option<()> {
    if wide {
        b.get_mut(at..at + 8)?.copy_from_slice(&v.to_be_bytes());
    } else {
        let v = u32::try_from(v).ok().filter(|v| *v < u32::MAX).unwrap_or(0);
        b.get_mut(at..at + 4)?.copy_from_slice(&v.to_be_bytes());
    }
    Some(())
}

fn free(payload: usize) -> Vec<u8> {
    let mut out = vec![0; FREE_HEADER + payload];
    out[..4].copy_from_slice(&((FREE_HEADER + payload) as u32).to_be_bytes());
    out[4..8].copy_from_slice(b"free");
    out
}

/// The header region's kept boxes and moov fields, if it is exactly the provisional one the
/// finaliser writes.
pub(super) fn recognised(b: &[u8]) -> Option<(Vec<u8>, Moov)> {
    if b.len() > HEAD_LIMIT || b.get(4..8) != Some(b"ftyp") {
        return None;
    }
    // The header as the finaliser reads it: sidx, free and skip dropped, the rest kept.
    let mut kept = Vec::new();
    let mut moov = None;
    for c in boxes(b, 0, b.len())? {
        match &c.0 {
            b"sidx" | b"free" | b"skip" => continue,
            b"mdat" => return None,
            b"moov" if moov.is_some() => return None,
            b"moov" => moov = Some(read_moov(b, c.2, c.3, kept.len() as isize - c.1 as isize)?),
            _ => {}
        }
        kept.extend_from_slice(&b[c.1..c.3]);
    }
    let moov = moov?;
    if [kept.as_slice(), &free(HEADER_RESERVE - FREE_HEADER)].concat() != b {
        return None;
    }
    Some((kept, moov))
}

/// The final header region for a blob of `total` bytes whose header region is `provisional`.
pub fn final_header(provisional: &[u8], l: &Layout, total: u64) -> Option<Vec<u8>> {
    let b = provisional;
    if l.broken {
        return None;
    }
    let (mut kept, moov) = recognised(b)?;
    // The meter's track is this one, with the same default duration; the walk ended cleanly.
    let (id, scale, tkhd, mdhd) = moov.track;
    if l.track? != (id, moov.default_duration) || l.moof_end.is_some() || l.traf.is_some() {
        return None;
    }
    if l.current_ref().is_some_and(|f| f.waiting) || l.first_moof? != b.len() as u64 {
        return None;
    }
    let first_start = l.first_start?;
    let track_end = l.track_end?;
    // The sidx references, grouped as `finish()` groups them.
    let mut entries: Vec<Frag> = l.entries.iter().copied().filter(|e| e.start.is_some()).collect();
    while entries.len() > MAX_REFERENCES {
        keep_every_other(&mut entries);
    }
    if entries.first().is_none_or(|e| e.offset != b.len() as u64) {
        entries.insert(0, *l.entries.first()?);
    }
    let mut refs = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let next = entries.get(i + 1);
        let t0 = if i == 0 { first_start } else { e.start? };
        let size = next.map_or(total, |n| n.offset).checked_sub(e.offset)?;
        let duration = next.map_or(Some(track_end), |n| n.start)?.checked_sub(t0)?;
        let size = u32::try_from(size).ok().filter(|s| *s < 1 << 31)?;
        refs.push((size, u32::try_from(duration).ok()?));
    }
    let units = track_end.checked_sub(first_start)?;
    if units >= SAFE || track_end >= SAFE {
        return None;
    }
    let mut sidx = vec![0u8; SIDX_FIXED + SIDX_REFERENCE * refs.len()];
    let sidx_len = sidx.len() as u32;
    sidx[..4].copy_from_slice(&sidx_len.to_be_bytes());
    sidx[4..8].copy_from_slice(b"sidx");
    sidx[8] = 1; // version 1: 64-bit earliest time and first offset
    sidx[12..16].copy_from_slice(&id.to_be_bytes());
    sidx[16..20].copy_from_slice(&scale.to_be_bytes());
    sidx[20..28].copy_from_slice(&(first_start as u64).to_be_bytes());
    sidx[38..40].copy_from_slice(&(refs.len() as u16).to_be_bytes());
    for (i, (size, duration)) in refs.iter().enumerate() {
        let at = SIDX_FIXED + SIDX_REFERENCE * i;
        sidx[at..at + 4].copy_from_slice(&size.to_be_bytes());
        sidx[at + 4..at + 8].copy_from_slice(&duration.to_be_bytes());
        sidx[at + 8..at + 12].copy_from_slice(&0x9000_0000u32.to_be_bytes());
    }
    // The durations, the movie's as the finaliser rounds it (a float, as in JS).
    let movie = (units as f64 * f64::from(moov.movie_scale) / f64::from(scale)).round();
    if !(0.0..SAFE as f64).contains(&movie) {
        return None;
    }
    let (movie, units) = (movie as u64, units as u64);
    put(&mut kept, moov.mvhd, movie)?;
    put(&mut kept, tkhd, movie)?;
    put(&mut kept, mdhd, units)?;
    if let Some(mehd) = moov.mehd {
        put(&mut kept, mehd, movie)?;
    }
    let pad = free(HEADER_RESERVE.checked_sub(FREE_HEADER + sidx.len())?);
    Some([kept, pad, sidx].concat())
}
