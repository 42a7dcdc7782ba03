//! MP4/M4A: the audio track's sample tables.
//!
//! Measured: the samples of the audio track (the first `trak` whose `hdlr` says `soun`), over its
//! `mdhd` timescale.
//! - A plain file: `stts` (per entry, sample count × sample duration: a product, never a loop over
//!   the count). Its sample count must equal `stsz`'s, and the sample bytes `stsz` describes (each
//!   size, or count × the constant size) and the sample count itself (a sample takes at least one
//!   byte) must fit in the `mdat` bytes actually present; otherwise the file is `Inconsistent`.
//! - A fragmented file: every `trun` of the audio track (per-sample durations and sizes, or the
//!   `tfhd`/`trex` defaults: a product again). A fragment counts once the `mdat` after its `moof`
//!   holds its samples' bytes (and at least a byte a sample). A fragment without them is
//!   `Inconsistent` in the middle of the file; at the end (a cut-off upload) it adds nothing.
//!   Where a fragment's `tfdt` starts it after the samples before it ended, the gap counts up to one
//!   sample of the fragment before (Chromium stamps each fragment's last sample short); a wider gap
//!   is a hole and adds nothing.
//! - The edit list (`elst`, its one non-empty edit) may shorten what plays by its media time
//!   (encoder priming) and segment duration, never lengthen it, and only by up to max(2 %, 1 s):
//!   a longer cut is not applied, as not every player honours it.
//!
//! Cross-checked: `mdhd` against the samples, `mvhd`, `tkhd` and `mehd` against the edited samples.
//! A duration claiming LESS than the samples by more than max(2 %, 1 s) (durations divided by 10)
//! is `Inconsistent`: no writer stamps 37 s of samples as 3.7 s. A longer claim stands aside (a cut
//! or still-growing fragmented recording) and the samples are the answer. 0 and all ones mean
//! "unknown" and check nothing.
//!
//! Unknown: no audio track timescale, no samples.

use super::walker::{Boxes, Event, Walker};
use super::*;
use crate::media::finalise;

/// The most of a small box (`mvhd`, `tkhd`, `mdhd`, `hdlr`, `elst`, ...) we keep.
const SMALL_BOX: usize = 256;

/// A sample table being read as it streams: a fixed prefix, then fixed-size records.
#[derive(Default)]
struct Table {
    kind: [u8; 4],
    flags: u32,
    started: bool,
    /// Records still to read, and the bytes of one (0: none, the prefix said it all).
    left: u64,
    rec_len: usize,
    default_duration: u64,
    default_size: u64,
    units: u128,
    bytes: u128,
    samples: u128,
    /// The longest sample.
    max: u64,
}

impl Table {
    /// The prefix's length once its first 4 bytes (version and flags) are known.
    fn prefix_len(&self) -> usize {
        match &self.kind {
            b"stsz" => 12,
            b"trun" => 8 + if self.flags & 0x1 != 0 { 4 } else { 0 } + if self.flags & 0x4 != 0 { 4 } else { 0 },
            _ => 8,
        }
    }

    fn start(&mut self, prefix: &[u8]) {
        let Some(count) = prefix.get(4..8).map(u32_be) else { return };
        let count = u64::from(count);
        match &self.kind {
            b"stsz" => {
                // sample size (0: a table of sizes follows), then the sample count.
                let (size, count) = (count, u64::from(prefix.get(8..12).map_or(0, u32_be)));
                if size != 0 {
                    self.samples = u128::from(count);
                    self.bytes = u128::from(count) * u128::from(size);
                } else {
                    (self.left, self.rec_len) = (count, 4);
                }
            }
            b"trun" => {
                let fields = (self.flags >> 8 & 0xF).count_ones() as usize;
                if fields == 0 {
                    // Every sample takes the defaults: products, not a loop over the count.
                    self.samples = u128::from(count);
                    self.units = u128::from(count) * u128::from(self.default_duration);
                    self.max = if count > 0 { self.default_duration } else { 0 };
                    self.bytes = u128::from(count) * u128::from(self.default_size);
                } else {
                    (self.left, self.rec_len) = (count, 4 * fields);
                }
            }
            _ => (self.left, self.rec_len) = (count, 8), // stts: (count, delta)
        }
    }

    fn record(&mut self, rec: &[u8]) {
        match &self.kind {
            b"stts" => {
                let (count, delta) = (u32_be(rec), u32_be(&rec[4..]));
                self.samples += u128::from(count);
                self.units += u128::from(count) * u128::from(delta);
            }
            b"stsz" => {
                self.samples += 1;
                self.bytes += u128::from(u32_be(rec));
            }
            _ => {
                let mut at = 0;
                let mut field = |flag: u32, default: u64| {
                    if self.flags & flag == 0 {
                        return default;
                    }
                    let v = rec.get(at..at + 4).map_or(0, u32_be);
                    at += 4;
                    u64::from(v)
                };
                let duration = field(0x100, self.default_duration);
                let size = field(0x200, self.default_size);
                self.samples += 1;
                self.units += u128::from(duration);
                self.max = self.max.max(duration);
                self.bytes += u128::from(size);
            }
        }
    }
}

/// Samples, their bytes and their duration (media timescale units); for a fragment, also where its
/// `tfdt` puts it and its longest sample.
#[derive(Default, Clone, Copy)]
struct Samples {
    units: u128,
    bytes: u128,
    count: u128,
    start: Option<u128>,
    max: u64,
}

/// Counts fragment `p` after the fragments in `total`, whose timeline ended at `last` (end, longest
/// sample). Chromium's MediaRecorder stamps the last sample of every fragment short (1008 units of a
/// 2880-unit Opus packet) and puts the next fragment where the packet really ended (its `tfdt`): the
/// gap up to the next `tfdt` is believed, but never more than one sample of the fragment before. A
/// wider gap (a hole) and an overlap add nothing.
fn count_fragment(total: &mut Samples, last: &mut Option<(u128, u64)>, p: Samples) {
    let mut end = None;
    if let Some((before, max)) = *last {
        match p.start {
            Some(start) if start >= before => {
                let gap = start - before;
                if gap <= u128::from(max) {
                    total.units = total.units.saturating_add(gap);
                }
            }
            Some(_) => {}
            None => end = Some(before.saturating_add(p.units)),
        }
    }
    total.units = total.units.saturating_add(p.units);
    total.count = total.count.saturating_add(p.count);
    *last = p.start.map(|s| s.saturating_add(p.units)).or(end).map(|e| (e, p.max));
}

/// MP4 boxes: `<size 4><type 4>` (size 1: a 64-bit size follows; 0: to the end). The containers on
/// the way to the sample tables are entered; small boxes are read (up to 256 bytes), sample tables
/// streamed a record at a time; everything else, `mdat` above all, is skipped (its bytes counted).
#[derive(Default)]
pub(super) struct Mp4 {
    walk: Walker<Boxes>,
    reading: Option<[u8; 4]>,
    value: Collect,
    table: Option<Table>,
    /// The open `mdat`: where its payload started and its declared size.
    mdat: Option<(u64, u64)>,
    mdat_bytes: u128,
    /// Tracks seen, the audio one's index, and what the current one said before its `hdlr`.
    traks: u32,
    audio_trak: Option<u32>,
    cur_tkhd: Option<(u32, u64)>,
    cur_mdhd: Option<(u32, u64)>,
    cur_elst: Option<(i64, u64)>,
    /// The audio track: id, `tkhd` duration, `mdhd` timescale and duration, the edit.
    track_id: Option<u32>,
    tkhd_duration: u64,
    timescale: Option<u32>,
    mdhd_duration: u64,
    edit: Option<(i64, u64)>,
    movie: Option<(u32, u64)>,
    mehd: u64,
    /// `stts` and `stsz` of the audio track.
    stts: Option<Samples>,
    stsz: Option<Samples>,
    /// Fragments: the current `traf`'s track and defaults, the `trex` defaults, the samples of the
    /// current `moof` waiting for their `mdat`, and those that found it.
    traf_track: Option<u32>,
    trex: (u64, u64),
    defaults: (u64, u64),
    pending: Option<Samples>,
    fragments: Samples,
    /// The current `traf`'s `tfdt`, and where the counted fragments' timeline ended.
    traf_tfdt: Option<u128>,
    last_fragment: Option<(u128, u64)>,
    /// The last `moof`'s payload size: a `moof` repeated without its `mdat` (WebKit) is told apart.
    moof_size: Option<u64>,
    inconsistent: Option<&'static str>,
    /// What the route's header writer needs (media/finalise/mp4.rs).
    layout: finalise::mp4::Layout,
}

impl Mp4 {
    fn feed_chunk(&mut self, mut chunk: &[u8], steps: &mut u64) {
        while let Some(event) = self.walk.next(&mut chunk, steps) {
            match event {
                Event::Boundary { at } => {
                    self.close_mdat(at);
                    self.layout.boundary(at);
                }
                // Size 0 runs to the end.
                Event::Header { id, size, at } => {
                    let track = self.track_id.map(|id| (id, self.trex.0));
                    self.layout.header(&id, size, at, track);
                    self.enter(id, size.unwrap_or(u64::MAX), at);
                }
                Event::Payload { bytes, last } => {
                    if let Some(mut table) = self.table.take() {
                        self.table_bytes(&mut table, bytes, steps);
                        if last {
                            self.table_end(table);
                        } else {
                            self.table = Some(table);
                        }
                    } else if let Some(kind) = self.reading {
                        let want = (self.value.buf.len() + bytes.len()).min(SMALL_BOX);
                        self.value.fill(bytes, want);
                        if last {
                            self.reading = None;
                            self.leaf(kind, steps);
                            self.value.buf.clear();
                        }
                    }
                }
            }
        }
    }

    fn enter(&mut self, kind: [u8; 4], payload: u64, at: u64) {
        let audio = self.audio_trak.is_some() && self.audio_trak == Some(self.traks);
        match &kind {
            b"trak" => {
                self.traks = self.traks.saturating_add(1);
                (self.cur_tkhd, self.cur_mdhd, self.cur_elst) = (None, None, None);
            }
            b"moof" => {
                // A moof whose mdat never came contradicts the file, unless the next moof has its
                // size: WebKit writes the moof of the fragment it ends with at `stop()` twice, the
                // same bytes. Then the first counts nothing (only the second has media data).
                if self.pending.take().is_some() && self.moof_size != Some(payload) {
                    self.inconsistent = Some("MP4 fragment without its media data");
                }
                self.moof_size = Some(payload);
            }
            b"moov" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"mvex" | b"traf" => {}
            b"mvhd" | b"mehd" | b"tkhd" | b"mdhd" | b"hdlr" | b"elst" | b"tfhd" | b"trex" | b"tfdt" => {
                self.walk.read(payload);
                self.reading = (payload > 0).then_some(kind);
            }
            b"stts" | b"stsz" if audio => self.start_table(kind, payload),
            b"trun" if self.traf_track.is_some() && self.traf_track == self.track_id.or(self.traf_track) => {
                self.start_table(kind, payload)
            }
            b"mdat" => {
                self.mdat = Some((at, payload));
                self.walk.skip(payload);
            }
            _ => self.walk.skip(payload),
        }
    }

    fn start_table(&mut self, kind: [u8; 4], payload: u64) {
        self.walk.read(payload);
        if payload > 0 {
            let (default_duration, default_size) = self.defaults;
            self.table = Some(Table { kind, default_duration, default_size, ..Table::default() });
        }
    }

    /// The open `mdat` ends (`now`: bytes fed when it ended): its bytes count, and the fragment
    /// waiting for it counts if they hold its samples.
    fn close_mdat(&mut self, now: u64) {
        let Some((at, declared)) = self.mdat.take() else { return };
        let present = u128::from(now.saturating_sub(at).min(declared));
        self.mdat_bytes = self.mdat_bytes.saturating_add(present);
        if let Some(p) = self.pending.take() {
            if p.bytes <= present && p.count <= present {
                count_fragment(&mut self.fragments, &mut self.last_fragment, p);
            } else if declared == u64::MAX || present == u128::from(declared) {
                // A whole mdat too small for its fragment. (One cut short is the end of a cut-off
                // upload: its fragment adds nothing.)
                self.inconsistent = Some("MP4 fragment describes more samples than its media data holds");
            }
        }
    }

    /// Bytes of a sample table: its prefix, then records, each handled once whole. Every pass
    /// consumes bytes, and records are read only while the box's bytes last.
    fn table_bytes(&mut self, t: &mut Table, mut part: &[u8], steps: &mut u64) {
        while !part.is_empty() {
            *steps += 1;
            if !t.started {
                let want = if self.value.buf.len() < 4 { 4 } else { t.prefix_len() };
                let used = self.value.fill(part, want);
                part = &part[used..];
                if self.value.buf.len() < want {
                    continue;
                }
                if want == 4 {
                    t.flags = u32_be(&self.value.buf) & 0x00FF_FFFF;
                    continue;
                }
                t.start(&self.value.buf);
                t.started = true;
                self.value.buf.clear();
                continue;
            }
            if t.left == 0 {
                return;
            }
            let used = self.value.fill(part, t.rec_len);
            part = &part[used..];
            if self.value.buf.len() == t.rec_len {
                t.record(&self.value.buf);
                t.left -= 1;
                self.value.buf.clear();
            }
        }
    }

    fn table_end(&mut self, t: Table) {
        self.value.buf.clear();
        if &t.kind == b"trun" {
            self.layout.trun(t.units, t.started && t.left == 0);
        }
        if !t.started {
            return;
        }
        if t.left > 0 {
            self.inconsistent = Some("MP4 sample table shorter than its entry count");
            return;
        }
        let s = Samples { units: t.units, bytes: t.bytes, count: t.samples, start: self.traf_tfdt, max: t.max };
        let add = |a: Option<Samples>| {
            let a = a.unwrap_or_default();
            Some(Samples {
                units: a.units.saturating_add(s.units),
                bytes: a.bytes.saturating_add(s.bytes),
                count: a.count.saturating_add(s.count),
                start: a.start.or(s.start),
                max: a.max.max(s.max),
            })
        };
        match &t.kind {
            b"stts" => self.stts = add(self.stts),
            b"stsz" => self.stsz = add(self.stsz),
            _ => self.pending = add(self.pending),
        }
    }

    fn leaf(&mut self, kind: [u8; 4], steps: &mut u64) {
        match &kind {
            b"tfhd" => self.layout.tfhd(&self.value.buf),
            b"tfdt" => self.layout.tfdt(&self.value.buf),
            _ => {}
        }
        let b = &self.value.buf;
        if b.len() < 4 {
            return;
        }
        let version = b[0];
        let flags = u32_be(b) & 0x00FF_FFFF;
        let body = &b[4..];
        // All ones: "unknown".
        let known = |d: u64| if d == u64::from(u32::MAX) || d == u64::MAX { 0 } else { d };
        match &kind {
            b"mvhd" | b"mdhd" => {
                // v0: created 4, modified 4, timescale 4, duration 4; v1: 8, 8, 4, 8.
                let (scale, duration) = match version {
                    0 if body.len() >= 16 => (u32_be(&body[8..12]), u64::from(u32_be(&body[12..16]))),
                    1 if body.len() >= 28 => (u32_be(&body[16..20]), u64_be(&body[20..28])),
                    _ => return,
                };
                if &kind == b"mvhd" {
                    self.movie = Some((scale, known(duration)));
                } else {
                    self.cur_mdhd = Some((scale, known(duration)));
                }
            }
            b"tkhd" => {
                // v0: created 4, modified 4, track id 4, reserved 4, duration 4; v1: 8, 8, 4, 4, 8.
                let (id, duration) = match version {
                    0 if body.len() >= 20 => (u32_be(&body[8..12]), u64::from(u32_be(&body[16..20]))),
                    1 if body.len() >= 32 => (u32_be(&body[16..20]), u64_be(&body[24..32])),
                    _ => return,
                };
                self.cur_tkhd = Some((id, known(duration)));
            }
            b"elst" => {
                // The one non-empty edit (media time -1 is an empty edit: a delay, never applied).
                let entry = if version == 1 { 20 } else { 12 };
                let count = body.get(..4).map_or(0, u32_be) as usize;
                let mut edit = None;
                for e in body.get(4..).unwrap_or(&[]).chunks_exact(entry).take(count) {
                    *steps += 1;
                    let (segment, media) = if version == 1 {
                        (u64_be(e), u64_be(&e[8..]) as i64)
                    } else {
                        (u64::from(u32_be(e)), i64::from(u32_be(&e[4..]) as i32))
                    };
                    if media == -1 {
                        continue;
                    }
                    if edit.is_some() {
                        edit = None; // more than one: not applied
                        break;
                    }
                    edit = Some((media, segment));
                }
                self.cur_elst = edit;
            }
            b"hdlr" if body.len() >= 8 && &body[4..8] == b"soun" && self.audio_trak.is_none() => {
                self.audio_trak = Some(self.traks);
                self.track_id = self.cur_tkhd.map(|(id, _)| id);
                self.tkhd_duration = self.cur_tkhd.map_or(0, |(_, d)| d);
                self.timescale = self.cur_mdhd.map(|(s, _)| s);
                self.mdhd_duration = self.cur_mdhd.map_or(0, |(_, d)| d);
                self.edit = self.cur_elst;
            }
            b"mehd" => {
                self.mehd = match version {
                    0 if body.len() >= 4 => known(u64::from(u32_be(body))),
                    1 if body.len() >= 8 => known(u64_be(body)),
                    _ => return,
                };
            }
            // track id, sample description index, default duration, default size, default flags.
            b"trex" if body.len() >= 20 && self.track_id.is_none_or(|id| id == u32_be(body)) => {
                self.trex = (u64::from(u32_be(&body[8..12])), u64::from(u32_be(&body[12..16])));
            }
            b"tfdt" => {
                // The fragment's start on the track's timeline (v0: 32 bits, v1: 64).
                self.traf_tfdt = match version {
                    0 if body.len() >= 4 => Some(u128::from(u32_be(body))),
                    1 if body.len() >= 8 => Some(u128::from(u64_be(body))),
                    _ => None,
                };
            }
            b"tfhd" if body.len() >= 4 => {
                // track id 4, then optional fields by flag.
                self.traf_track = Some(u32_be(body));
                self.traf_tfdt = None;
                let mut at = 4usize;
                let mut field = |flag: u32, len: usize| {
                    let v = (flags & flag != 0).then(|| body.get(at..at + 4).map(u32_be)).flatten();
                    if flags & flag != 0 {
                        at += len;
                    }
                    v
                };
                let _ = field(0x1, 8);
                let _ = field(0x2, 4);
                let duration = field(0x8, 4).map_or(self.trex.0, u64::from);
                let size = field(0x10, 4).map_or(self.trex.1, u64::from);
                self.defaults = (duration, size);
            }
            _ => {}
        }
    }

    /// `claims`: cross-check the header's durations (false: the route writes them itself).
    fn finish_inner(&self, total: u64, claims: bool) -> Measured {
        let mut closed = Mp4Totals { mdat_bytes: self.mdat_bytes, fragments: self.fragments };
        if let Some((at, declared)) = self.mdat {
            // The last mdat, as far as it arrived.
            let present = u128::from(total.saturating_sub(at).min(declared));
            closed.mdat_bytes = closed.mdat_bytes.saturating_add(present);
            match self.pending {
                Some(p) if p.bytes <= present && p.count <= present => {
                    let mut last = self.last_fragment;
                    count_fragment(&mut closed.fragments, &mut last, p);
                }
                Some(_) if present == u128::from(declared) => {
                    return Measured::Inconsistent("MP4 fragment describes more samples than its media data holds");
                }
                _ => {}
            }
        }
        if let Some(why) = self.inconsistent {
            return Measured::Inconsistent(why);
        }
        let Some(scale) = self.timescale.filter(|s| *s > 0) else {
            return Measured::Unknown("MP4 without an audio track timescale");
        };
        let scale = u128::from(scale);
        let stts = self.stts.unwrap_or_default();
        if let Some(stsz) = self.stsz {
            if stsz.count != stts.count {
                return Measured::Inconsistent("MP4 stts and stsz disagree on the sample count");
            }
            if stsz.bytes > closed.mdat_bytes {
                return Measured::Inconsistent("MP4 sample sizes exceed the media data present");
            }
        }
        if stts.count > closed.mdat_bytes {
            return Measured::Inconsistent("MP4 sample count exceeds the media data present");
        }
        let units = stts.units.saturating_add(closed.fragments.units);
        if units == 0 {
            return Measured::Unknown("MP4 without audio samples");
        }
        let tolerance = |u: u128| (u / 50).max(scale);
        // The edit: priming off the front, the segment's length at most; only ever shorter.
        let movie_scale = self.movie.map_or(0, |(s, _)| u128::from(s));
        let mut edited = units;
        if let Some((media, segment)) = self.edit {
            edited = edited.saturating_sub(u128::try_from(media).unwrap_or(0));
            if segment > 0 && movie_scale > 0 {
                edited = edited.min(u128::from(segment).saturating_mul(scale) / movie_scale);
            }
        }
        // Header durations: shorter than the samples beyond the tolerance is a lie.
        let short = |claim: u128, measured: u128| claim > 0 && claim < measured.saturating_sub(tolerance(measured));
        let claim = |d: u64| if claims { d } else { 0 };
        if short(u128::from(claim(self.mdhd_duration)), units) {
            return Measured::Inconsistent("MP4 mdhd duration is shorter than the samples");
        }
        for (claim, box_name) in [
            (claim(self.movie.map_or(0, |(_, d)| d)), "MP4 mvhd duration is shorter than the samples"),
            (claim(self.tkhd_duration), "MP4 tkhd duration is shorter than the samples"),
            (claim(self.mehd), "MP4 mehd duration is shorter than the samples"),
        ] {
            // In the movie's timescale (none: nothing to check).
            let claim = u128::from(claim).saturating_mul(scale).checked_div(movie_scale).unwrap_or(0);
            if short(claim, edited) {
                return Measured::Inconsistent(box_name);
            }
        }
        let played = if units - edited <= tolerance(units) { edited } else { units };
        ms_or(played, scale, "MP4 duration out of range")
    }
}

/// What the `mdat`s held, counting the last one as far as it arrived.
struct Mp4Totals {
    mdat_bytes: u128,
    fragments: Samples,
}

impl Measure for Mp4 {
    fn feed(&mut self, chunk: &[u8], steps: &mut u64) {
        self.feed_chunk(chunk, steps);
    }

    fn finish(&self, total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner(total, true)
    }

    fn finish_rewritten(&self, total: u64, _steps: &mut u64) -> Measured {
        self.finish_inner(total, false)
    }

    fn layout(&self) -> Option<finalise::Layout> {
        Some(finalise::Layout::Mp4(self.layout.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::duration::tests::fixture;
    use crate::media::Container;

    /// Every box of a walk entering the containers: (type, where the box starts, its size).
    fn boxes(body: &[u8]) -> Vec<([u8; 4], usize, usize)> {
        let containers: [&[u8; 4]; 9] =
            [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"mvex", b"moof", b"traf"];
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= body.len() {
            let size = u32_be(&body[at..]) as usize;
            let kind = [body[at + 4], body[at + 5], body[at + 6], body[at + 7]];
            out.push((kind, at, size));
            at += if containers.contains(&&kind) { 8 } else { size };
        }
        out
    }

    fn find(body: &[u8], kind: &[u8; 4]) -> usize {
        boxes(body).into_iter().find(|b| &b.0 == kind).unwrap().1
    }

    #[test]
    fn the_edit_list_trims_the_priming_samples() {
        // 241 024 samples, the edit starts at 1024 and lasts 5000 ms: exactly 5 s.
        assert_eq!(measure(Container::Mp4, &fixture("tone-5s.m4a")), Measured::Ms(5_000));
        // No edit list: 47 × 5 × 1024 + 384 samples.
        assert_eq!(measure(Container::Mp4, &fixture("tone-5s-fragmented.m4a")), Measured::Ms(5_021));
    }

    #[test]
    fn lie_mvhd_mdhd_tkhd_durations_divided_by_10() {
        let mut body = fixture("tone-5s.m4a");
        for (kind, offset) in [(b"mvhd", 8 + 16), (b"mdhd", 8 + 16), (b"tkhd", 8 + 20)] {
            let at = find(&body, kind) + offset;
            let d = u32_be(&body[at..]);
            body[at..at + 4].copy_from_slice(&(d / 10).to_be_bytes());
        }
        assert!(matches!(measure(Container::Mp4, &body), Measured::Inconsistent(_)));
        // Each alone is caught too.
        for (kind, offset) in [(b"mvhd", 8 + 16), (b"mdhd", 8 + 16), (b"tkhd", 8 + 20)] {
            let mut one = fixture("tone-5s.m4a");
            let at = find(&one, kind) + offset;
            let d = u32_be(&one[at..]);
            one[at..at + 4].copy_from_slice(&(d / 10).to_be_bytes());
            assert!(matches!(measure(Container::Mp4, &one), Measured::Inconsistent(_)), "{kind:?}");
        }
        // Longer claims stand aside: the samples are the answer.
        let mut longer = fixture("tone-5s.m4a");
        let at = find(&longer, b"mvhd") + 8 + 16;
        longer[at..at + 4].copy_from_slice(&50_000u32.to_be_bytes());
        assert_eq!(measure(Container::Mp4, &longer), Measured::Ms(5_000));
    }

    #[test]
    fn lie_stts_claims_10x_the_samples_the_mdat_can_hold() {
        // stts: 2350 × 1024 + 10 × 384; stsz: 2360 samples of a constant 171 bytes (the average).
        let mut body = fixture("tone-5s.m4a");
        let stts = find(&body, b"stts");
        body[stts + 16..stts + 20].copy_from_slice(&2350u32.to_be_bytes());
        body[stts + 24..stts + 28].copy_from_slice(&10u32.to_be_bytes());
        assert!(matches!(measure(Container::Mp4, &body), Measured::Inconsistent(_)));
        let stsz = find(&body, b"stsz");
        body[stsz + 12..stsz + 16].copy_from_slice(&171u32.to_be_bytes());
        body[stsz + 16..stsz + 20].copy_from_slice(&2360u32.to_be_bytes());
        assert!(matches!(measure(Container::Mp4, &body), Measured::Inconsistent(_)));
        // Samples of a constant 1 byte fit the mdat, but mdhd, tkhd and mvhd still say 5 s.
        body[stsz + 12..stsz + 16].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(measure(Container::Mp4, &body), Measured::Inconsistent(_)));
        // A count beyond the mdat's bytes (a sample takes at least one), headers agreeing.
        let mut many = fixture("tone-5s.m4a");
        let (stts, stsz) = (find(&many, b"stts"), find(&many, b"stsz"));
        many[stts + 16..stts + 20].copy_from_slice(&60_000u32.to_be_bytes());
        many[stsz + 12..stsz + 16].copy_from_slice(&1u32.to_be_bytes()); // a constant 1 byte
        many[stsz + 16..stsz + 20].copy_from_slice(&60_001u32.to_be_bytes());
        for (kind, offset) in [(b"mvhd", 8 + 16), (b"mdhd", 8 + 16), (b"tkhd", 8 + 20)] {
            let at = find(&many, kind) + offset;
            many[at..at + 4].copy_from_slice(&0u32.to_be_bytes()); // "unknown"
        }
        assert_eq!(
            measure(Container::Mp4, &many),
            Measured::Inconsistent("MP4 sample sizes exceed the media data present")
        );
    }

    /// A `moof` whose one `trun` claims 2^32-1 samples of the default duration (1024), no
    /// per-sample fields, and no bytes.
    fn lying_moof() -> Vec<u8> {
        let mut tfhd = 20u32.to_be_bytes().to_vec();
        tfhd.extend_from_slice(b"tfhd\0\0\0\x08\0\0\0\x01");
        tfhd.extend_from_slice(&1024u32.to_be_bytes());
        let trun = b"\0\0\0\x10trun\0\0\0\0\xff\xff\xff\xff";
        let traf_len = 8 + tfhd.len() + trun.len();
        let mut moof = ((traf_len + 8) as u32).to_be_bytes().to_vec();
        moof.extend_from_slice(b"moof");
        moof.extend_from_slice(&(traf_len as u32).to_be_bytes());
        moof.extend_from_slice(b"traf");
        moof.extend_from_slice(&tfhd);
        moof.extend_from_slice(trun);
        moof
    }

    #[test]
    fn lie_trun_claims_2_32_samples_with_no_bytes_behind_them() {
        let body = fixture("tone-5s-fragmented.m4a");
        // At the end (where a cut-off upload ends too): it adds nothing.
        let mut at_end = body.clone();
        at_end.extend_from_slice(&lying_moof());
        assert_eq!(measure(Container::Mp4, &at_end), Measured::Ms(5_021));
        // In the middle, before the next fragment: the file contradicts itself.
        let second = boxes(&body).into_iter().filter(|b| &b.0 == b"moof").nth(1).unwrap().1;
        let mut middle = body[..second].to_vec();
        middle.extend_from_slice(&lying_moof());
        middle.extend_from_slice(&body[second..]);
        assert!(matches!(measure(Container::Mp4, &middle), Measured::Inconsistent(_)));
        // With a small mdat behind it: still not believed.
        let mut small = body[..second].to_vec();
        small.extend_from_slice(&lying_moof());
        small.extend_from_slice(b"\0\0\0\x10mdat01234567");
        small.extend_from_slice(&body[second..]);
        assert!(matches!(measure(Container::Mp4, &small), Measured::Inconsistent(_)));
        for chunk in [1, 7, 4096] {
            crate::media::duration::tests::assert_bounded(Container::Mp4, &middle, chunk);
        }
    }

    /// Chromium's MediaRecorder MP4 with its tkhd and mdhd (1041 units, not its length) set unknown.
    fn chromium() -> Vec<u8> {
        let mut body = fixture("chromium-20s-timeslice.m4a");
        for (kind, offset) in [(b"tkhd", 8 + 28), (b"mdhd", 8 + 24)] {
            let at = find(&body, kind) + offset;
            body[at..at + 8].copy_from_slice(&0u64.to_be_bytes());
        }
        body
    }

    #[test]
    fn chromium_fragments_end_where_the_next_tfdt_says() {
        // 333 Opus packets; each fragment's last stamped 1008 units instead of 2880: the samples add
        // up to 19.2 s, the timeline (last tfdt + its samples) to 957 168 units, 19.941 s.
        assert_eq!(measure(Container::Mp4, &chromium()), Measured::Ms(19_941));
        // As Chromium wrote it: mdhd claims 1041 units, far less than the samples.
        assert!(matches!(measure(Container::Mp4, &fixture("chromium-20s-timeslice.m4a")), Measured::Inconsistent(_)));
        // A hole (the last fragment 1 s later) is not believed: only its own gap goes.
        let mut hole = chromium();
        let last = boxes(&hole).into_iter().rfind(|b| &b.0 == b"tfdt").unwrap().1 + 12;
        let t = u64_be(&hole[last..]) + 48_000;
        hole[last..last + 8].copy_from_slice(&t.to_be_bytes());
        assert_eq!(measure(Container::Mp4, &hole), Measured::Ms((957_168 - 1_872) * 1000 / 48_000));
        for chunk in [1, 7, 4096] {
            crate::media::duration::tests::assert_bounded(Container::Mp4, &chromium(), chunk);
        }
    }

    #[test]
    fn a_cut_off_fragmented_upload_measures_the_whole_fragments() {
        let body = fixture("tone-5s-fragmented.m4a");
        let Measured::Ms(ms) = measure(Container::Mp4, &body[..body.len() / 2]) else { panic!() };
        assert_eq!(ms, 2 * 47 * 1024 * 1000 / 48_000); // two fragments of 47 samples
    }

    /// WebKit's MediaRecorder (WebKitGTK 2.50, `audio/mp4`, `start(1000)`, stopped at 20.3 s): two
    /// `ftyp` boxes, durations 0 everywhere, AAC at 44.1 kHz in 20 fragments of 43 samples, then the
    /// part-fragment written at `stop()` with its `moof` twice (the first without its `mdat`).
    /// GStreamer 1.22 (`qtdemux ! avdec_aac`) decodes 892 928 samples: 20.248 s.
    #[test]
    fn webkit_recording_measures_what_it_decodes_to() {
        let body = fixture("webkit-20s.m4a");
        let decoded_ms = 892_928 * 1000 / 44_100;
        let Measured::Ms(ms) = measure(Container::Mp4, &body) else { panic!("{:?}", measure(Container::Mp4, &body)) };
        assert!(ms.abs_diff(decoded_ms) * 100 <= decoded_ms, "{ms} ms against {decoded_ms} ms decoded");
        assert_eq!(ms, decoded_ms);
        // The duplicated moof counts once: turned into padding, the same length.
        let mut repaired = body.clone();
        let moofs: Vec<usize> = boxes(&body).into_iter().filter(|b| &b.0 == b"moof").map(|b| b.1).collect();
        let first_of_pair = moofs[moofs.len() - 2];
        repaired[first_of_pair + 4..first_of_pair + 8].copy_from_slice(b"free");
        assert_eq!(measure(Container::Mp4, &repaired), Measured::Ms(decoded_ms));
        for chunk in [1, 7, 4096] {
            crate::media::duration::tests::assert_bounded(Container::Mp4, &body, chunk);
        }
    }

    #[test]
    fn a_moof_without_its_mdat_counts_nothing() {
        // A fragment's moof twice (the same size): the first one's samples have no media data.
        let body = fixture("webkit-20s.m4a");
        let b = boxes(&body);
        let (_, at, size) = b.iter().copied().find(|x| &x.0 == b"moof").unwrap();
        let mut doubled = body[..at + size].to_vec();
        doubled.extend_from_slice(&body[at..]);
        assert_eq!(measure(Container::Mp4, &doubled), measure(Container::Mp4, &body));
    }
}
