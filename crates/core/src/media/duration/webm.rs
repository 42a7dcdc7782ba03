//! WebM/Matroska: the audio track's blocks.
//!
//! Measured: the blocks of the audio track (the first TrackEntry with TrackType 2; MediaRecorder
//! writes one track). For Opus (CodecID `A_OPUS`) every SimpleBlock or Block holds one Opus packet,
//! timed by its TOC byte (the same table as Ogg Opus), and the sum less the track's CodecDelay is
//! the duration. A laced Opus block (several packets in one block: neither MediaRecorder nor ffmpeg
//! writes them) is not timed: the file is `Unknown`. For other codecs (Vorbis in WebM is rare) the
//! blocks' timestamps are all there is: from the first block to the last block plus one block step.
//!
//! Cross-checked, Opus: the span of the block timestamps (cluster timecode plus the block's relative
//! time, to the last block's end) and the Info `Duration`. Either claiming LESS audio than the
//! packets by more than max(2 %, 1 s) is a file that lies about itself (`Inconsistent`): no honest
//! writer stamps 37 s of packets as 5 s. Either claiming MORE stands aside and the packets are the
//! answer: a cut-off upload keeps its Duration, and a jump in the timestamps (a cluster at +1 h)
//! holds no audio, so it adds none. Other codecs: a `Duration` shorter than the timestamps by more
//! than that is `Inconsistent` too; a longer one is ignored.
//!
//! Unknown: no audio track or no blocks of it, laced Opus blocks, values out of range.

use super::ogg::opus_samples;
use super::walker::{vint, Elements, Event, Walker};
use super::*;
use crate::media::finalise::{self, webm::ID_CUES};

const EBML_SEGMENT: u32 = 0x1853_8067;
const EBML_CLUSTER: u32 = 0x1F43_B675;
const EBML_BLOCK_GROUP: u32 = 0xA0;
const EBML_INFO: u32 = 0x1549_A966;
const EBML_TRACKS: u32 = 0x1654_AE6B;
const EBML_TRACK_ENTRY: u32 = 0xAE;
const EBML_TRACK_NUMBER: u32 = 0xD7;
const EBML_TRACK_TYPE: u32 = 0x83;
const EBML_CODEC_ID: u32 = 0x86;
const EBML_CODEC_DELAY: u32 = 0x56AA;
const EBML_TIMECODE_SCALE: u32 = 0x2A_D7B1;
const EBML_DURATION: u32 = 0x4489;
const EBML_CLUSTER_TIMECODE: u32 = 0xE7;
const EBML_SIMPLE_BLOCK: u32 = 0xA3;
const EBML_BLOCK: u32 = 0xA1;

/// The block bytes kept: track number (up to 8), relative time (2), flags (1), Opus TOC and count.
const BLOCK_KEEP: usize = 13;

/// The TrackEntry being read (its children come in any order).
#[derive(Default)]
struct Entry {
    number: Option<u64>,
    kind: Option<u64>,
    opus: bool,
    delay_ns: u64,
}

/// A flat walk over EBML elements: the masters we need (Segment, Info, Tracks, TrackEntry, Cluster,
/// BlockGroup) are entered (their children follow at once, unknown sizes included); everything else
/// is skipped, except the few values we read (at most 16 bytes, or a block's first 13).
pub(super) struct WebM {
    walk: Walker<Elements>,
    /// The element whose payload is being collected, and how many bytes of it we keep.
    reading: Option<(u32, usize)>,
    value: Collect,
    scale_ns: u64,
    duration: Option<f64>,
    cluster_tc: Option<u64>,
    entry: Option<Entry>,
    /// The audio track: its number, whether it is Opus, its CodecDelay.
    track: Option<(u64, bool, u64)>,
    /// Opus samples (48 kHz) of the audio track's blocks.
    units: u128,
    laced: bool,
    /// The earliest block start and the latest block end (ns), and the last block time and the
    /// step before it (timecode units), for codecs we cannot time.
    first_ns: Option<i128>,
    end_ns: Option<i128>,
    last_block: Option<i128>,
    step: Option<i128>,
    /// Where the element now being met starts (the walk's last boundary).
    boundary: u64,
    /// What the route's header writer needs (media/finalise/webm.rs).
    layout: finalise::webm::Layout,
}

impl Default for WebM {
    fn default() -> Self {
        WebM {
            walk: Walker::default(),
            reading: None,
            value: Collect::default(),
            scale_ns: 1_000_000,
            duration: None,
            cluster_tc: None,
            entry: None,
            track: None,
            units: 0,
            laced: false,
            first_ns: None,
            end_ns: None,
            last_block: None,
            step: None,
            boundary: 0,
            layout: finalise::webm::Layout::default(),
        }
    }
}

impl WebM {
    fn enter(&mut self, id: u32, size: Option<u64>, at: u64) {
        match id {
            EBML_TRACK_ENTRY => {
                self.commit_entry();
                self.entry = Some(Entry::default());
            }
            EBML_CLUSTER => {
                self.commit_entry();
                self.layout.cluster(self.boundary, self.track.map(|(number, opus, _)| (number, opus)));
            }
            EBML_SEGMENT => self.layout.segment(at),
            EBML_SIMPLE_BLOCK | EBML_BLOCK => self.layout.block_size(size),
            // The client's Cues after the Clusters: compared as they pass (finalise/webm.rs).
            ID_CUES if self.layout.cues(self.boundary, at, size) => {
                self.walk.read(size.unwrap_or(0));
                self.reading = Some((ID_CUES, 0));
                return;
            }
            _ => {}
        }
        match id {
            EBML_SEGMENT | EBML_CLUSTER | EBML_BLOCK_GROUP | EBML_INFO | EBML_TRACKS | EBML_TRACK_ENTRY => {}
            EBML_TIMECODE_SCALE
            | EBML_DURATION
            | EBML_CLUSTER_TIMECODE
            | EBML_SIMPLE_BLOCK
            | EBML_BLOCK
            | EBML_TRACK_NUMBER
            | EBML_TRACK_TYPE
            | EBML_CODEC_ID
            | EBML_CODEC_DELAY => {
                let Some(size) = size else {
                    self.walk.fail();
                    return;
                };
                let keep = match id {
                    EBML_SIMPLE_BLOCK | EBML_BLOCK => BLOCK_KEEP,
                    EBML_CODEC_ID => 16,
                    _ => 8,
                };
                self.walk.read(size);
                self.reading = (size > 0).then_some((id, keep));
            }
            _ => match size {
                Some(size) => self.walk.skip(size),
                // An unknown-size element we do not enter: nothing after it can be placed.
                None => self.walk.fail(),
            },
        }
    }

    /// The TrackEntry read so far becomes the audio track if it is the first audio one.
    fn commit_entry(&mut self) {
        let Some(entry) = self.entry.take() else { return };
        if let (None, Some(2), Some(number)) = (self.track, entry.kind, entry.number) {
            self.track = Some((number, entry.opus, entry.delay_ns));
        }
    }

    fn element(&mut self, id: u32) {
        let v = &self.value.buf;
        let uint = v.iter().take(8).fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        match id {
            EBML_TIMECODE_SCALE => self.scale_ns = uint.max(1),
            EBML_DURATION => {
                self.duration = match v.len() {
                    4 => Some(f64::from(f32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
                    8 => Some(f64::from_bits(u64_be(v))),
                    _ => None,
                }
            }
            EBML_CLUSTER_TIMECODE => {
                self.cluster_tc = Some(uint);
                self.layout.timecode(uint);
            }
            EBML_TRACK_NUMBER | EBML_TRACK_TYPE | EBML_CODEC_ID | EBML_CODEC_DELAY => {
                let Some(entry) = self.entry.as_mut() else { return };
                match id {
                    EBML_TRACK_NUMBER => entry.number = Some(uint),
                    EBML_TRACK_TYPE => entry.kind = Some(uint),
                    EBML_CODEC_ID => entry.opus = v.as_slice() == b"A_OPUS",
                    _ => entry.delay_ns = uint,
                }
            }
            EBML_SIMPLE_BLOCK | EBML_BLOCK => self.block(),
            _ => {}
        }
    }

    /// A block's first bytes: track number, relative time, flags, then the first frame.
    fn block(&mut self) {
        self.commit_entry();
        self.layout.block(&self.value.buf);
        let v = &self.value.buf;
        let (Some((number, opus, _)), Some((track_len, track))) = (self.track, vint(v, false)) else { return };
        if track_len == 0 || track != number || v.len() < track_len + 3 {
            return;
        }
        let Some(cluster) = self.cluster_tc else { return };
        let rel = i16::from_be_bytes([v[track_len], v[track_len + 1]]);
        let flags = v[track_len + 2];
        let data = &v[track_len + 3..];
        let at = i128::from(cluster) + i128::from(rel);
        let at_ns = at.saturating_mul(i128::from(self.scale_ns));
        let mut end_ns = at_ns;
        if opus {
            if flags & 0x06 != 0 {
                self.laced = true;
                return;
            }
            let samples = data.first().map_or(0, |&toc| opus_samples(toc, data.get(1).copied()));
            self.units = self.units.saturating_add(u128::from(samples));
            end_ns = at_ns.saturating_add(i128::from(samples) * 1_000_000_000 / 48_000);
        }
        self.first_ns = Some(self.first_ns.map_or(at_ns, |f| f.min(at_ns)));
        self.end_ns = Some(self.end_ns.map_or(end_ns, |e| e.max(end_ns)));
        if let Some(prev) = self.last_block {
            if at > prev {
                self.step = Some(at - prev);
            }
        }
        self.last_block = Some(self.last_block.map_or(at, |p| p.max(at)));
    }
}

/// max(2 %, 1 s) of `ns`.
fn tolerance_ns(ns: i128) -> i128 {
    (ns / 50).max(1_000_000_000)
}

impl Measure for WebM {
    fn feed(&mut self, mut chunk: &[u8], steps: &mut u64) {
        while let Some(event) = self.walk.next(&mut chunk, steps) {
            match event {
                Event::Boundary { at } => self.boundary = at,
                Event::Header { id, size, at } => self.enter(id, size, at),
                Event::Payload { bytes, last } => {
                    let Some((id, keep)) = self.reading else { continue };
                    if id == ID_CUES {
                        self.layout.cues_bytes(bytes);
                        self.reading = self.reading.filter(|_| !last);
                        continue;
                    }
                    self.value.fill(bytes, keep);
                    if last {
                        self.reading = None;
                        self.element(id);
                        self.value.buf.clear();
                    }
                }
            }
        }
    }

    fn layout(&self) -> Option<finalise::Layout> {
        Some(finalise::Layout::WebM(self.layout.clone()))
    }

    fn finish(&self, _total: u64, _steps: &mut u64) -> Measured {
        let Some((_, opus, delay_ns)) = self.track else {
            return Measured::Unknown("WebM without an audio track");
        };
        let (Some(first_ns), Some(end_ns)) = (self.first_ns, self.end_ns) else {
            return Measured::Unknown("WebM without audio blocks");
        };
        let span_ns = end_ns.saturating_sub(first_ns).max(0);
        let measured_ns: i128 = if opus {
            if self.laced {
                return Measured::Unknown("WebM with laced Opus blocks");
            }
            let ns = i128::try_from(self.units.saturating_mul(1_000_000_000) / 48_000).unwrap_or(i128::MAX);
            // Block timestamps claiming less than the packets: a file that lies about itself.
            if span_ns < ns.saturating_sub(tolerance_ns(ns)) {
                return Measured::Inconsistent("WebM block timestamps span less than the packets they hold");
            }
            ns.saturating_sub(i128::from(delay_ns)).max(0)
        } else {
            let Some(last) = self.last_block else { return Measured::Unknown("WebM without audio blocks") };
            let end = last.saturating_add(self.step.unwrap_or(0)).saturating_mul(i128::from(self.scale_ns));
            end.saturating_sub(first_ns).max(0)
        };
        if let Some(d) = self.duration.filter(|d| d.is_finite() && *d >= 0.0) {
            // `Duration` is a float in timecode-scale units.
            let claimed_ns = d * self.scale_ns as f64;
            if claimed_ns < (measured_ns.saturating_sub(tolerance_ns(measured_ns))) as f64 {
                return Measured::Inconsistent("WebM Duration is shorter than the blocks");
            }
        }
        let ms = u128::try_from(measured_ns / 1_000_000).unwrap_or(0);
        ms_or(ms, 1000, "WebM duration out of range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::duration::tests::fixture;
    use crate::media::Container;

    /// The elements of a flat walk like the meter's: (ID, where the payload starts, payload size).
    fn elements(body: &[u8]) -> Vec<(u32, usize, usize)> {
        let masters = [EBML_SEGMENT, EBML_CLUSTER, EBML_BLOCK_GROUP, EBML_INFO, EBML_TRACKS, EBML_TRACK_ENTRY];
        let mut out = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let (id_len, id) = vint(&body[at..], true).unwrap();
            let (size_len, size) = vint(&body[at + id_len..], false).unwrap();
            let data = at + id_len + size_len;
            out.push((id as u32, data, size as usize));
            at = if masters.contains(&(id as u32)) { data } else { data + size as usize };
        }
        out
    }

    fn ms(body: &[u8]) -> u64 {
        match measure(Container::WebM, body) {
            Measured::Ms(ms) => ms,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lie_info_duration_says_5s_in_front_of_60s_of_blocks() {
        let mut body = fixture("sweep-60s.webm");
        let (_, at, size) = elements(&body).into_iter().find(|e| e.0 == EBML_DURATION).unwrap();
        assert_eq!(size, 8);
        body[at..at + 8].copy_from_slice(&5000f64.to_be_bytes());
        assert!(matches!(measure(Container::WebM, &body), Measured::Inconsistent(_)));
        // The same claim as a 4-byte float, a Void element filling the 4 bytes freed.
        let mut s = fixture("sweep-60s.webm");
        s[at - 1] = 0x84;
        s[at..at + 4].copy_from_slice(&5000f32.to_be_bytes());
        s[at + 4..at + 8].copy_from_slice(&[0xEC, 0x82, 0, 0]);
        assert!(matches!(measure(Container::WebM, &s), Measured::Inconsistent(_)));
    }

    #[test]
    fn a_duration_longer_than_the_blocks_is_a_cut_off_upload_measured_as_it_arrived() {
        let body = fixture("sweep-60s.webm");
        let half = ms(&body[..body.len() / 2]);
        assert!((20_000..40_000).contains(&half), "{half}");
    }

    #[test]
    fn lie_cluster_timecode_jumps_to_plus_1h_with_no_audio_between() {
        // The live file: unknown-size Segment and Clusters, so bytes can be inserted. The second
        // cluster's timecode becomes itself + 1 h (a 4-byte value in place of a 1- or 2-byte one).
        let body = fixture("tone-5s-live.webm");
        let (_, at, size) = elements(&body).into_iter().filter(|e| e.0 == EBML_CLUSTER_TIMECODE).nth(1).unwrap();
        let old = body[at..at + size].iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        let mut lie = body[..at - 1].to_vec();
        lie.push(0x84);
        lie.extend_from_slice(&(old + 3_600_000).to_be_bytes());
        lie.extend_from_slice(&body[at + size..]);
        let got = ms(&lie);
        assert!((4_950..=5_050).contains(&got), "{got}");
    }

    #[test]
    fn lie_block_timestamps_squeezed_into_one_instant() {
        // Every cluster's timecode and every block's relative time set to 0: 5 s of packets
        // stamped as one instant.
        let mut body = fixture("tone-5s.webm");
        let all = elements(&body);
        let blocks: Vec<usize> =
            all.iter().filter(|e| matches!(e.0, EBML_SIMPLE_BLOCK | EBML_BLOCK)).map(|e| e.1).collect();
        assert!(blocks.len() > 200);
        for at in blocks {
            body[at + 1..at + 3].copy_from_slice(&[0, 0]); // track number 0x81, then the time
        }
        for &(_, at, size) in all.iter().filter(|e| e.0 == EBML_CLUSTER_TIMECODE) {
            body[at..at + size].fill(0);
        }
        let got = measure(Container::WebM, &body);
        assert!(matches!(got, Measured::Inconsistent(_)), "{got:?}");
    }

    #[test]
    fn laced_opus_blocks_and_tracks_without_audio_are_unknown() {
        let mut laced = fixture("tone-5s.webm");
        let (_, at, _) = elements(&laced).into_iter().find(|e| e.0 == EBML_SIMPLE_BLOCK).unwrap();
        laced[at + 3] |= 0x02; // Xiph lacing
        assert!(matches!(measure(Container::WebM, &laced), Measured::Unknown(_)));
        let mut video = fixture("tone-5s.webm");
        let (_, at, _) = elements(&video).into_iter().find(|e| e.0 == EBML_TRACK_TYPE).unwrap();
        video[at] = 1;
        assert!(matches!(measure(Container::WebM, &video), Measured::Unknown(_)));
    }

    #[test]
    fn codec_delay_is_taken_off_the_packets() {
        // 250 packets of 20 ms less 6.5 ms of CodecDelay.
        assert_eq!(ms(&fixture("tone-5s.webm")), 5_013);
    }
}
