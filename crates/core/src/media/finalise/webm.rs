//! WebM: the final header region `client/finalise/webm.mjs` writes at `finish()`, from the
//! provisional one and what the meter recorded (docs/webm-finalise.md has the layout).
//!
//! The provisional header region is recognised exactly: it is parsed as the finaliser parses a
//! recording's header, the provisional region the finaliser would write from it is rebuilt, and the
//! two must be the same bytes. The Cues are the client's (it appends them after the last Cluster):
//! the meter compares them, byte for byte, with the Cues it builds from the Clusters it walked, so
//! the SeekHead points at Cues that are exactly what `finish()` writes, or nothing is rewritten.
//! Checking them costs what writing our own would, and keeps the file's length: the route's upload
//! of the bytes after part 1 can run ahead while the walk goes on.

use super::{keep_every_other, uint_bytes};

const ID_EBML: u32 = 0x1A45_DFA3;
const ID_DOCTYPE: u32 = 0x4282;
const ID_SEGMENT: u32 = 0x1853_8067;
const ID_SEEK_HEAD: u32 = 0x114D_9B74;
const ID_SEEK: u32 = 0x4DBB;
const ID_SEEK_ID: u32 = 0x53AB;
const ID_SEEK_POSITION: u32 = 0x53AC;
const ID_INFO: u32 = 0x1549_A966;
const ID_TIMECODE_SCALE: u32 = 0x2A_D7B1;
const ID_DURATION: u32 = 0x4489;
const ID_TRACKS: u32 = 0x1654_AE6B;
const ID_TRACK_ENTRY: u32 = 0xAE;
const ID_TRACK_NUMBER: u32 = 0xD7;
const ID_TRACK_TYPE: u32 = 0x83;
const ID_CODEC_ID: u32 = 0x86;
pub(crate) const ID_CUES: u32 = 0x1C53_BB6B;
const ID_CUE_POINT: u32 = 0xBB;
const ID_CUE_TIME: u32 = 0xB3;
const ID_CUE_TRACK_POSITIONS: u32 = 0xB7;
const ID_CUE_TRACK: u32 = 0xF7;
const ID_CUE_CLUSTER_POSITION: u32 = 0xF1;
const ID_VOID: u32 = 0xEC;
const ID_CRC32: u32 = 0xBF;

/// The most CuePoints kept (the finaliser's MAX_CUE_POINTS): then every other one goes.
pub const MAX_CUE_POINTS: usize = 65_536;
/// The SeekHead of the final header: Info, Tracks, Cues, each with an 8-byte position.
const SEEK_HEAD_BYTES: usize = 4 + 1 + 3 * (2 + 1 + (2 + 1 + 4) + (2 + 1 + 8));
/// Duration as an 8-byte float.
const DURATION_BYTES: usize = 2 + 1 + 8;
/// Void header: ID and an 8-byte size.
const VOID_HEADER: usize = 9;
/// What the provisional header keeps free (the finaliser's HEADER_RESERVE: 128 bytes).
pub const HEADER_RESERVE: usize = SEEK_HEAD_BYTES + DURATION_BYTES + VOID_HEADER + 40;
/// The finaliser reads the header region whole up to this (HEAD_LIMIT).
const HEAD_LIMIT: usize = 1024 * 1024;
/// No element claims more than this (the finaliser's SIZE_LIMIT).
const SIZE_LIMIT: u64 = 1 << 40;
/// The Segment header of the provisional region: the ID and an 8-byte "unknown" size.
const SEGMENT_UNKNOWN: [u8; 12] = [0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
/// Integers the finaliser holds as JS numbers are exact only below this.
const SAFE: i128 = 1 << 53;

/// The client's Cues, compared as they stream past with the Cues the Clusters call for.
#[derive(Debug, Clone)]
struct CuesCheck {
    start: u64,
    end: u64,
    expected: Vec<u8>,
    /// Payload bytes compared so far (all equal), or `None` once one differed.
    matched: Option<usize>,
}

/// What the WebM meter records for the writer while it walks (it calls the methods below).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    segment_data: Option<u64>,
    first_cluster: Option<u64>,
    /// The meter's audio track at the first Cluster: its number and whether it is Opus.
    track: Option<(u64, bool)>,
    /// Cue candidates: each kept Cluster's offset and its Timecode (none: no CuePoint).
    clusters: Vec<(u64, Option<u64>)>,
    stride: u64,
    count: u64,
    cue_this: bool,
    current_time: Option<u64>,
    last_time: Option<i128>,
    prev_time: Option<i128>,
    last_frame_ns: Option<i128>,
    cues: Option<CuesCheck>,
    /// Something the finaliser would have refused (it throws; we do not rewrite).
    broken: bool,
}

impl Layout {
    pub fn header_len(&self) -> Option<u64> {
        self.first_cluster
    }

    /// The Segment's data starts at `at`.
    pub(crate) fn segment(&mut self, at: u64) {
        if self.segment_data.is_some() {
            self.broken = true; // a second Segment
        }
        self.segment_data = Some(at);
    }

    /// A Cluster starts at `start`; `track` is the meter's audio track as known now.
    pub(crate) fn cluster(&mut self, start: u64, track: Option<(u64, bool)>) {
        if self.cues.is_some() {
            self.broken = true; // Cues not at the end: not the client's layout
        }
        if self.first_cluster.is_none() {
            self.first_cluster = Some(start);
            self.track = track;
            self.stride = 1;
        }
        // As the finaliser: at the cap, every other candidate goes and the stride doubles.
        if self.clusters.len() >= MAX_CUE_POINTS {
            keep_every_other(&mut self.clusters);
            self.stride = self.stride.saturating_mul(2);
        }
        self.cue_this = self.count.is_multiple_of(self.stride.max(1));
        self.count = self.count.saturating_add(1);
        self.current_time = None;
        if self.cue_this {
            self.clusters.push((start, None));
        }
    }

    /// The current Cluster's Timecode.
    pub(crate) fn timecode(&mut self, v: u64) {
        if self.first_cluster.is_none() {
            return;
        }
        self.current_time = Some(v);
        if self.cue_this {
            if let Some(last) = self.clusters.last_mut() {
                last.1 = Some(v);
            }
        }
    }

    /// A block's header of `size` payload bytes (the finaliser refuses one under 4).
    pub(crate) fn block_size(&mut self, size: Option<u64>) {
        if self.first_cluster.is_some() && size.is_none_or(|s| s < 4) {
            self.broken = true;
        }
    }

    /// A block's first bytes (up to 13): track number, relative time, flags, Opus TOC.
    pub(crate) fn block(&mut self, v: &[u8]) {
        let Some((number, opus)) = self.track.filter(|_| self.first_cluster.is_some()) else { return };
        let track_len = v.first().map_or(0, |b| b.leading_zeros() as usize + 1);
        if track_len > 8 || track_len + 3 > v.len() {
            self.broken = true;
            return;
        }
        let track =
            v[..track_len].iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)) & (u64::MAX >> (64 - 7 * track_len));
        if track != number {
            return;
        }
        let Some(base) = self.current_time else { return };
        let rel = i16::from_be_bytes([v[track_len], v[track_len + 1]]);
        let time = i128::from(base) + i128::from(rel);
        let laced = v[track_len + 2] & 0x06 != 0;
        let payload = track_len + 3;
        self.prev_time = self.last_time;
        self.last_time = Some(time);
        self.last_frame_ns = if opus && !laced && payload < v.len() {
            opus_packet_ns(v[payload], v.get(payload + 1).copied())
        } else {
            None
        };
    }

    /// A top-level Cues element: `start` its first byte, `data` its payload's. Returns whether the
    /// meter should hand its payload over (to `cues_bytes`) for the comparison.
    pub(crate) fn cues(&mut self, start: u64, data: u64, size: Option<u64>) -> bool {
        let (Some(seg), Some(_), Some((track, _))) = (self.segment_data, self.first_cluster, self.track) else {
            return false;
        };
        let Some(size) = size.filter(|_| self.cues.is_none()) else {
            self.broken = true;
            return false;
        };
        let mut payload = Vec::new();
        for &(at, time) in &self.clusters {
            let Some(time) = time else { continue };
            let positions = [
                element(ID_CUE_TRACK, &uint_bytes(track)),
                element(ID_CUE_CLUSTER_POSITION, &uint_bytes(at.saturating_sub(seg))),
            ]
            .concat();
            let point = [element(ID_CUE_TIME, &uint_bytes(time)), element(ID_CUE_TRACK_POSITIONS, &positions)].concat();
            payload.extend_from_slice(&element(ID_CUE_POINT, &point));
        }
        // The header as `finish()` writes it: the ID, then a minimal size.
        let same_header = data.saturating_sub(start) == 4 + size_vint(payload.len() as u64).len() as u64
            && size == payload.len() as u64;
        self.cues = Some(CuesCheck {
            start,
            end: data.saturating_add(size),
            expected: payload,
            matched: same_header.then_some(0),
        });
        same_header && size > 0
    }

    /// The next bytes of the Cues' payload.
    pub(crate) fn cues_bytes(&mut self, bytes: &[u8]) {
        let Some(check) = self.cues.as_mut() else { return };
        let Some(at) = check.matched else { return };
        let end = at.saturating_add(bytes.len());
        check.matched = (check.expected.get(at..end) == Some(bytes)).then_some(end);
    }
}

/// Nanoseconds of one Opus packet from its TOC byte and the next (RFC 6716 §3.1): the finaliser's
/// `opusPacketNs`, so the Duration is the same float.
fn opus_packet_ns(toc: u8, next: Option<u8>) -> Option<i128> {
    let config = toc >> 3;
    let frame_us: i128 = if config < 12 {
        [10_000, 20_000, 40_000, 60_000][usize::from(config & 3)]
    } else if config < 16 {
        [10_000, 20_000][usize::from(config & 1)]
    } else {
        [2_500, 5_000, 10_000, 20_000][usize::from(config & 3)]
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => i128::from(next? & 0x3F),
    };
    (frames > 0).then_some(frames * frame_us * 1000)
}

/// A minimal size vint (the finaliser's `sizeVint`: never all ones).
fn size_vint(size: u64) -> Vec<u8> {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let mut out = size.to_be_bytes()[8 - len..].to_vec();
    out[0] |= 0x80 >> (len - 1);
    out
}

/// An 8-byte size vint (0x01 and 7 bytes): fixed length.
fn size8(size: u64) -> [u8; 8] {
    let mut out = size.to_be_bytes();
    out[0] = 0x01;
    out
}

fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    [uint_bytes(u64::from(id)), size_vint(payload.len() as u64), payload.to_vec()].concat()
}

/// An element header in memory: (id, size, header length); `None` when cut off or invalid.
fn header(b: &[u8], at: usize) -> Option<(u32, Option<u64>, usize)> {
    let id_len = b.get(at)?.leading_zeros() as usize + 1;
    if id_len > 4 {
        return None;
    }
    let id = b.get(at..at + id_len)?.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
    let first = *b.get(at + id_len)?;
    let size_len = first.leading_zeros() as usize + 1;
    if size_len > 8 {
        return None;
    }
    let bytes = b.get(at + id_len..at + id_len + size_len)?;
    // The size's first byte without its length marker (8-byte sizes: nothing of it is left).
    let mask = (0xFFu16 >> size_len) as u8;
    let size = bytes[1..].iter().fold(u64::from(first & mask), |a, &x| (a << 8) | u64::from(x));
    let all_ones = first & mask == mask && bytes[1..].iter().all(|&x| x == 0xFF);
    if all_ones {
        return Some((id, None, id_len + size_len));
    }
    (size <= SIZE_LIMIT).then_some((id, Some(size), id_len + size_len))
}

/// The children of a known-size master in memory: (id, start, data start, end). `None` if any is
/// cut off, of unknown size or overruns `end`. One step per child, each at least 2 bytes.
fn children(b: &[u8], start: usize, end: usize) -> Option<Vec<(u32, usize, usize, usize)>> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let (id, size, hl) = header(&b[..end], at)?;
        let data = at + hl;
        let stop = data.checked_add(usize::try_from(size?).ok()?)?;
        if stop > end {
            return None;
        }
        out.push((id, at, data, stop));
        at = stop;
    }
    Some(out)
}

fn read_uint(b: &[u8]) -> Option<u64> {
    if b.len() > 8 {
        return None;
    }
    let v = b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x));
    (i128::from(v) < SAFE).then_some(v)
}

/// What the header region holds, parsed as the finaliser parses a recording's header.
pub(super) struct Head<'a> {
    ebml: &'a [u8],
    info_kept: Vec<u8>,
    kept: Vec<&'a [u8]>,
    scale: u64,
    track: (u64, bool),
}

fn parse_head(b: &[u8]) -> Option<Head<'_>> {
    if b.len() > HEAD_LIMIT {
        return None;
    }
    let (id, size, hl) = header(b, 0)?;
    if id != ID_EBML || size? > 4096 {
        return None;
    }
    let ebml_end = hl.checked_add(usize::try_from(size?).ok()?)?;
    let ebml = b.get(..ebml_end)?;
    let doc = children(b, hl, ebml_end)?.into_iter().find(|c| c.0 == ID_DOCTYPE);
    let name = doc.map_or(&[][..], |(_, _, d, e)| &b[d..e]);
    if name != b"webm" && name != b"matroska" {
        return None;
    }
    if b.get(ebml_end..ebml_end + 12)? != SEGMENT_UNKNOWN {
        return None;
    }
    let mut at = ebml_end + 12;
    let (mut info_kept, mut kept, mut scale, mut track) = (None, Vec::new(), 1_000_000u64, None::<(u64, u64, bool)>);
    while at < b.len() {
        let (id, size, hl) = header(b, at)?;
        let end = (at + hl).checked_add(usize::try_from(size?).ok()?)?;
        if end > b.len() {
            return None;
        }
        match id {
            ID_INFO => {
                let mut k = Vec::new();
                for (cid, s, d, e) in children(b, at + hl, end)? {
                    match cid {
                        ID_TIMECODE_SCALE => scale = read_uint(&b[d..e])?,
                        // A Duration: final already, or not the finaliser's provisional shape.
                        ID_DURATION => return None,
                        _ => {}
                    }
                    if cid != ID_CRC32 && cid != ID_VOID {
                        k.extend_from_slice(&b[s..e]);
                    }
                }
                if scale == 0 {
                    return None;
                }
                info_kept = Some(k);
            }
            ID_TRACKS => {
                for (eid, _, d, e) in children(b, at + hl, end)? {
                    if eid != ID_TRACK_ENTRY {
                        continue;
                    }
                    let (mut number, mut kind, mut opus) = (None, None, false);
                    for (cid, _, cd, ce) in children(b, d, e)? {
                        match cid {
                            ID_TRACK_NUMBER => number = Some(read_uint(&b[cd..ce])?),
                            ID_TRACK_TYPE => kind = Some(read_uint(&b[cd..ce])?),
                            ID_CODEC_ID => opus = &b[cd..ce.min(cd + 32)] == b"A_OPUS",
                            _ => {}
                        }
                    }
                    // The finaliser's rule: the first numbered track, replaced by the first audio one.
                    if let Some(n) = number.filter(|n| *n > 0) {
                        if track.is_none_or(|(_, t, _)| kind == Some(2) && t != 2) {
                            track = Some((n, kind.unwrap_or(0), opus));
                        }
                    }
                }
                kept.push(&b[at..end]);
            }
            // The Void filling the region: checked by the rebuild below.
            ID_VOID => {}
            // A SeekHead, Cues or CRC-32 here: not the provisional shape.
            ID_SEEK_HEAD | ID_CUES | ID_CRC32 => return None,
            _ => kept.push(&b[at..end]),
        }
        at = end;
    }
    let (n, _, opus) = track?;
    Some(Head { ebml, info_kept: info_kept?, kept, scale, track: (n, opus) })
}

/// The header region as the finaliser writes it: provisional (`fin` none) or final (the Duration
/// in timecode units, the Segment's size, the Cues' position in the Segment).
fn region(h: &Head<'_>, fin: Option<(f64, u64, u64)>) -> Option<Vec<u8>> {
    let mut info_payload = h.info_kept.clone();
    if let Some((duration, _, _)) = fin {
        info_payload.extend_from_slice(&[0x44, 0x89, 0x88]);
        info_payload.extend_from_slice(&duration.to_be_bytes());
    }
    let info = [uint_bytes(u64::from(ID_INFO)), size8(info_payload.len() as u64).to_vec(), info_payload].concat();
    let mut out = h.ebml.to_vec();
    let mut used = 0;
    match fin {
        None => out.extend_from_slice(&SEGMENT_UNKNOWN),
        Some((_, segment_size, cues_at)) => {
            out.extend_from_slice(&uint_bytes(u64::from(ID_SEGMENT)));
            out.extend_from_slice(&size8(segment_size));
            let mut tracks_at = 0usize;
            for k in &h.kept {
                if header(k, 0).map(|x| x.0) == Some(ID_TRACKS) {
                    break;
                }
                tracks_at += k.len();
            }
            let mut seeks = Vec::new();
            for (id, pos) in [
                (ID_INFO, SEEK_HEAD_BYTES as u64),
                (ID_TRACKS, (SEEK_HEAD_BYTES + info.len() + tracks_at) as u64),
                (ID_CUES, cues_at),
            ] {
                let seek =
                    [element(ID_SEEK_ID, &uint_bytes(u64::from(id))), element(ID_SEEK_POSITION, &pos.to_be_bytes())]
                        .concat();
                seeks.extend_from_slice(&element(ID_SEEK, &seek));
            }
            let seek_head = element(ID_SEEK_HEAD, &seeks);
            if seek_head.len() != SEEK_HEAD_BYTES {
                return None;
            }
            out.extend_from_slice(&seek_head);
            used = SEEK_HEAD_BYTES + DURATION_BYTES;
        }
    }
    out.extend_from_slice(&info);
    for k in &h.kept {
        out.extend_from_slice(k);
    }
    let void = HEADER_RESERVE - used;
    out.push(0xEC);
    out.extend_from_slice(&size8((void - VOID_HEADER) as u64));
    out.resize(out.len() + void - VOID_HEADER, 0);
    Some(out)
}

/// The header region parsed, if it is exactly the provisional one the finaliser writes.
pub(super) fn recognised(provisional: &[u8]) -> Option<Head<'_>> {
    let h = parse_head(provisional)?;
    (region(&h, None)? == provisional).then_some(h)
}

/// The final header region for a blob of `total` bytes whose header region is `provisional`.
pub fn final_header(provisional: &[u8], l: &Layout, total: u64) -> Option<Vec<u8>> {
    // The client's Cues: exactly the ones the Clusters call for, and the file's last bytes.
    let cues = l.cues.as_ref()?;
    if cues.matched? != cues.expected.len() || cues.end != total {
        return None;
    }
    header_with_cues_at(provisional, l, total, cues.start)
}

/// The final header region with the Cues at `cues_start` (taken as given: `final_header` checks
/// them; `header_from_end` guesses them and the whole read confirms).
fn header_with_cues_at(provisional: &[u8], l: &Layout, total: u64, cues_start: u64) -> Option<Vec<u8>> {
    if l.broken {
        return None;
    }
    let h = recognised(provisional)?;
    // The same Segment and the same audio track as the meter walked.
    let seg = l.segment_data?;
    if seg != h.ebml.len() as u64 + 12 || l.track? != h.track {
        return None;
    }
    // The Duration as `finish()` computes it (timecode units: the last block's time plus its
    // packet's length, or the step before it).
    let scale = i128::from(h.scale);
    let last = l.last_time?;
    let step = l.prev_time.map_or(0, |p| (last - p) * scale);
    let end_ns = last * scale + l.last_frame_ns.unwrap_or(step);
    if !(0..SAFE).contains(&end_ns) || last.abs() * scale >= SAFE {
        return None;
    }
    let duration = end_ns as f64 / scale as f64;
    region(&h, Some((duration, total.checked_sub(seg)?, cues_start.checked_sub(seg)?)))
}

/// The final header region guessed from the file's end before the whole read (the shortcut of
/// docs/stop-to-transcribing.md, C): `tail` is the blob's bytes from `tail_at` to its end (`total`).
/// The Cues are the last element (found from the end: an ID whose size reaches the end exactly);
/// their last CuePoint names the last Cluster, which the meter walks after the header region for
/// the Duration. A guess: the route sends part 1 with it early and `final_header`, after the whole
/// read, is what counts (a guess that differs is replaced, part 1 sent again).
pub fn header_from_end(provisional: &[u8], tail: &[u8], tail_at: u64, total: u64) -> Option<Vec<u8>> {
    if tail_at.checked_add(tail.len() as u64)? != total {
        return None;
    }
    let h = recognised(provisional)?;
    let seg = h.ebml.len() as u64 + 12;
    // The Cues: the last place in the tail where a Cues header's size ends exactly at the end.
    let cues_at = (0..tail.len().saturating_sub(4)).rev().find(|&i| {
        header(tail, i).is_some_and(|(id, size, hl)| id == ID_CUES && size == Some((tail.len() - i - hl) as u64))
    })?;
    let (_, _, hl) = header(tail, cues_at)?;
    let points = children(tail, cues_at + hl, tail.len())?;
    let (_, _, pd, pe) = *points.iter().rev().find(|c| c.0 == ID_CUE_POINT)?;
    let positions = children(tail, pd, pe)?.into_iter().find(|c| c.0 == ID_CUE_TRACK_POSITIONS)?;
    let position = children(tail, positions.2, positions.3)?.into_iter().find(|c| c.0 == ID_CUE_CLUSTER_POSITION)?;
    let cluster = seg.checked_add(read_uint(&tail[position.2..position.3])?)?;
    let from = usize::try_from(cluster.checked_sub(tail_at)?).ok()?;
    // The header region, then the last Cluster and what follows it: the meter times its blocks.
    let mut meter = crate::media::duration::Meter::new(crate::media::Container::WebM);
    meter.feed(provisional);
    meter.feed(tail.get(from..)?);
    let Some(super::Layout::WebM(layout)) = meter.layout() else { return None };
    header_with_cues_at(provisional, &layout, total, tail_at + cues_at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_max_cue_points_every_other_goes_and_the_stride_doubles() {
        // (Clusters, CuePoints kept, the stride at the end): at the cap, before the next Cluster
        // counts, every other candidate goes; the kept ones stay every `stride`-th Cluster.
        let table: &[(u64, usize, u64)] = &[
            (1, 1, 1),
            (65_535, 65_535, 1),
            (65_536, 65_536, 1),
            (65_537, 32_769, 2),
            (65_538, 32_769, 2),
            (65_539, 32_770, 2),
            (131_071, 65_536, 2),
            (131_072, 32_768, 4),
            (131_100, 32_775, 4),
        ];
        for &(clusters, kept, stride) in table {
            let mut l = Layout::default();
            l.segment(0);
            for k in 0..clusters {
                l.cluster(32 * k, Some((1, true)));
                l.timecode(60 * k);
            }
            assert_eq!((l.clusters.len(), l.stride), (kept, stride), "{clusters}");
            for (i, c) in l.clusters.iter().enumerate() {
                let k = i as u64 * stride;
                assert_eq!(*c, (32 * k, Some(60 * k)), "{clusters}: CuePoint {i}");
            }
        }
    }
}
