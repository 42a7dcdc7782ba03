//! The duration of an upload, measured from its container while the bytes pass (a `Meter` is fed
//! every chunk once; nothing is read twice and at most a few KiB are held). Pure: no I/O.
//!
//! Per container, what is believed:
//! - WAV: the `data` chunk's size over the `fmt ` byte rate (a streamed WAV whose sizes say
//!   0 or 0xFFFFFFFF: the bytes that actually followed the `data` header).
//! - FLAC: STREAMINFO's total samples over its sample rate (0 total samples: unknown).
//! - Ogg (Opus, Vorbis): the last page's granule position, less Opus pre-skip, over the rate.
//! - WebM/Matroska: `Duration` in `Info` when present; otherwise, as MediaRecorder writes it, the
//!   last block's time (cluster timecode + block offset) plus one block's length.
//! - MP4/M4A: `mvhd` (or `mehd`) duration over its timescale; for fragments without either, the
//!   sum of the fragments' sample durations (`trun`, `tfhd` defaults) over the track's timescale.
//! - MP3: a Xing/Info or VBRI frame count; otherwise the CBR estimate from the first frame's bitrate
//!   and the audio bytes (ID3v2 and ID3v1 tags excluded).
//! - ADTS: the number of frames, 1024 samples each, over the sample rate.
//!
//! Every number read is from outside: all arithmetic saturates or is checked, and a value that
//! makes no sense is `Unknown`, never a panic.

use crate::media::Container;

/// What a measurement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measured {
    Ms(u64),
    /// The container does not say (reliably): the declared duration stands, and the record says so.
    Unknown(&'static str),
}

/// A streaming duration meter for one container.
pub struct Meter {
    inner: Inner,
    /// Bytes fed so far.
    total: u64,
}

enum Inner {
    Wav(Wav),
    Flac(Flac),
    Ogg(Ogg),
    WebM(WebM),
    Mp4(Mp4),
    Mp3(Mp3),
    Adts(Adts),
}

impl Meter {
    pub fn new(container: Container) -> Meter {
        let inner = match container {
            Container::Wav => Inner::Wav(Wav::default()),
            Container::Flac => Inner::Flac(Flac::default()),
            Container::Ogg => Inner::Ogg(Ogg::default()),
            Container::WebM => Inner::WebM(WebM::default()),
            Container::Mp4 => Inner::Mp4(Mp4::default()),
            Container::Mp3 => Inner::Mp3(Mp3::default()),
            Container::Adts => Inner::Adts(Adts::default()),
        };
        Meter { inner, total: 0 }
    }

    /// The next bytes of the body, in order.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.total = self.total.saturating_add(chunk.len() as u64);
        match &mut self.inner {
            Inner::Wav(m) => m.feed(chunk),
            Inner::Flac(m) => m.feed(chunk),
            Inner::Ogg(m) => m.feed(chunk),
            Inner::WebM(m) => m.feed(chunk),
            Inner::Mp4(m) => m.feed(chunk),
            Inner::Mp3(m) => m.feed(chunk),
            Inner::Adts(m) => m.feed(chunk),
        }
    }

    /// Whether the bytes fed so far already decide the duration, given the blob's full `size`
    /// (a reader of a stored blob can stop): the header says it.
    pub fn settled(&self) -> bool {
        match &self.inner {
            Inner::Wav(m) => m.data_declared.is_some_and(|d| !matches!(d, 0 | u32::MAX)) && m.byte_rate > 0,
            Inner::Flac(m) => m.head.buf.len() >= 42,
            Inner::WebM(m) => m.duration.is_some(),
            Inner::Mp4(m) => m.movie.is_some_and(|(d, _)| d > 0),
            Inner::Mp3(m) => m.frame.buf.len() >= MP3_FIRST_FRAME && m.has_frame_count(),
            Inner::Ogg(_) | Inner::Adts(_) => false,
        }
    }

    /// Forget any half-read element: the next byte fed starts a new element, page or box (a reader
    /// jumping to `tail_start`). What the header taught (rates, scales, the codec) is kept.
    pub fn resync(&mut self) {
        match &mut self.inner {
            Inner::WebM(m) => {
                m.head.buf.clear();
                m.skip = 0;
                m.reading = None;
                m.value.buf.clear();
                m.failed = false;
            }
            Inner::Ogg(m) => {
                m.head.buf.clear();
                m.skip = 0;
                m.capture = 0;
                m.failed = false;
            }
            Inner::Mp4(m) => {
                m.head.buf.clear();
                m.skip = 0;
                m.reading = None;
                m.value.buf.clear();
                m.failed = false;
            }
            Inner::Wav(_) | Inner::Flac(_) | Inner::Mp3(_) | Inner::Adts(_) => {}
        }
    }

    /// The duration when only parts of a blob of `size` bytes were fed (its head, maybe its tail).
    pub fn finish_sized(&self, size: u64) -> Measured {
        match &self.inner {
            Inner::Wav(m) => m.finish_sized(size),
            Inner::Mp3(m) => m.finish(size),
            _ => self.finish(),
        }
    }

    /// The duration, once the whole body was fed.
    pub fn finish(&self) -> Measured {
        match &self.inner {
            Inner::Wav(m) => m.finish(),
            Inner::Flac(m) => m.finish(),
            Inner::Ogg(m) => m.finish(),
            Inner::WebM(m) => m.finish(),
            Inner::Mp4(m) => m.finish(),
            Inner::Mp3(m) => m.finish(self.total),
            Inner::Adts(m) => m.finish(),
        }
    }
}

/// Where, in the last bytes of a blob, a reader can resume feeding a meter after `resync`: the
/// start of the last WebM cluster (with its timecode), of the first whole Ogg page, or of an MP4
/// `moov` box that ends the file. `None`: the tail does not help; read the whole blob instead.
pub fn tail_start(container: Container, tail: &[u8]) -> Option<usize> {
    match container {
        Container::WebM => (0..tail.len().saturating_sub(6)).rev().find(|&p| {
            if tail[p..p + 4] != [0x1F, 0x43, 0xB6, 0x75] {
                return false;
            }
            let Some((size_len, _)) = vint(&tail[p + 4..], false).filter(|(l, _)| *l > 0) else { return false };
            let child = p + 4 + size_len;
            tail.get(child) == Some(&0xE7) && tail.get(child + 1).is_some_and(|&b| (0x81..=0x88).contains(&b))
        }),
        Container::Ogg => (0..tail.len().saturating_sub(27)).find(|&p| {
            let h = &tail[p..];
            if &h[..4] != b"OggS" || h[4] != 0 || h[5] > 7 || h.len() < 27 + usize::from(h[26]) {
                return false;
            }
            // The page must end exactly where another begins, or at the end of the blob.
            let payload: usize = h[27..27 + usize::from(h[26])].iter().map(|&l| usize::from(l)).sum();
            let end = p + 27 + usize::from(h[26]) + payload;
            end == tail.len() || tail.get(end..end + 4) == Some(b"OggS")
        }),
        Container::Mp4 => (4..tail.len().saturating_sub(4))
            .find(|&p| &tail[p..p + 4] == b"moov" && u32_be(&tail[p - 4..p]) as usize == tail.len() - (p - 4))
            .map(|p| p - 4),
        _ => None,
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

// ---------------------------------------------------------------- WAV

/// RIFF chunks: `RIFF <size> WAVE`, then `<id> <size> <payload, padded to even>`…
#[derive(Default)]
struct Wav {
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
    fn finish_sized(&self, size: u64) -> Measured {
        let (Some(declared), Some(start)) = (self.data_declared, self.data_start) else { return self.finish() };
        let present = size.saturating_sub(start);
        let bytes = match declared {
            0 | u32::MAX => present,
            n => u64::from(n).min(present),
        };
        ms_or(u128::from(bytes), u128::from(self.byte_rate), "WAV without a byte rate")
    }

    fn feed(&mut self, chunk: &[u8]) {
        let (at, len) = (self.fed, chunk.len());
        self.fed = self.fed.saturating_add(len as u64);
        self.walk(chunk, at, len);
    }

    /// `at`: the offset of `chunk`'s first byte in the body, `len` its length.
    fn walk(&mut self, mut chunk: &[u8], at: u64, len: usize) {
        while !chunk.is_empty() && !self.failed {
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

    fn finish(&self) -> Measured {
        let Some(declared) = self.data_declared else { return Measured::Unknown("WAV without a data chunk") };
        // The smaller of what the header says and what arrived: a header cannot add audio.
        let bytes = match declared {
            0 | u32::MAX => self.data_seen,
            n => u64::from(n).min(self.data_seen),
        };
        ms_or(u128::from(bytes), u128::from(self.byte_rate), "WAV without a byte rate")
    }
}

// ---------------------------------------------------------------- FLAC

#[derive(Default)]
struct Flac {
    head: Collect,
}

impl Flac {
    fn feed(&mut self, chunk: &[u8]) {
        // "fLaC", then the STREAMINFO block header (4) and its 34 bytes.
        self.head.fill(chunk, 4 + 4 + 34);
    }

    fn finish(&self) -> Measured {
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

// ---------------------------------------------------------------- Ogg

/// Ogg pages: `OggS`, version, flags, granule (8, LE), serial, sequence, CRC, segment count, the
/// lacing table, then the payload. Only the first logical stream is followed.
#[derive(Default)]
struct Ogg {
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
    fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.failed {
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

    fn finish(&self) -> Measured {
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

// ---------------------------------------------------------------- WebM / Matroska

const EBML_SEGMENT: u32 = 0x1853_8067;
const EBML_CLUSTER: u32 = 0x1F43_B675;
const EBML_BLOCK_GROUP: u32 = 0xA0;
const EBML_INFO: u32 = 0x1549_A966;
const EBML_TIMECODE_SCALE: u32 = 0x2A_D7B1;
const EBML_DURATION: u32 = 0x4489;
const EBML_CLUSTER_TIMECODE: u32 = 0xE7;
const EBML_SIMPLE_BLOCK: u32 = 0xA3;
const EBML_BLOCK: u32 = 0xA1;

/// A flat walk over EBML elements: the masters we need (Segment, Info, Cluster, BlockGroup) are
/// entered (their children follow at once, unknown sizes included); everything else is skipped,
/// except the few values we read (at most 8 bytes, or a block's first 4).
struct WebM {
    head: Collect,
    skip: u64,
    /// The element whose payload is being collected, and how many bytes of it we keep.
    reading: Option<(u32, usize)>,
    value: Collect,
    scale_ns: u64,
    duration: Option<f64>,
    cluster_tc: Option<u64>,
    /// The last two block times (timecode units): the last one, and the step before it.
    last_block: Option<i128>,
    step: Option<i128>,
    failed: bool,
}

impl Default for WebM {
    fn default() -> Self {
        WebM {
            head: Collect::default(),
            skip: 0,
            reading: None,
            value: Collect::default(),
            scale_ns: 1_000_000,
            duration: None,
            cluster_tc: None,
            last_block: None,
            step: None,
            failed: false,
        }
    }
}

/// An EBML variable-length integer at the start of `b`: (length, value with the marker removed),
/// `None` while more bytes are needed or when invalid (`Some((0, _))`).
fn vint(b: &[u8], keep_marker: bool) -> Option<(usize, u64)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return Some((0, 0));
    }
    if b.len() < len {
        return None;
    }
    let mut v = if keep_marker { u64::from(first) } else { u64::from(first) & (0xFF_u64 >> len) };
    for &byte in &b[1..len] {
        v = (v << 8) | u64::from(byte);
    }
    Some((len, v))
}

impl WebM {
    fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.failed {
            if let Some((id, keep)) = self.reading {
                let (part, rest) = take(&mut self.skip, chunk);
                chunk = rest;
                self.value.fill(part, keep);
                if self.skip == 0 {
                    self.reading = None;
                    self.element(id);
                    self.value.buf.clear();
                }
                continue;
            }
            if self.skip > 0 {
                chunk = take(&mut self.skip, chunk).1;
                continue;
            }
            // An element header: ID (1–4 bytes, marker kept), size (1–8 bytes). Taken a byte
            // count at a time, so nothing past the header is ever consumed here.
            let want = match self.head.buf.first() {
                None => 1,
                Some(&first) => {
                    let id_len = first.leading_zeros() as usize + 1;
                    match self.head.buf.get(id_len) {
                        _ if id_len > 4 => {
                            self.failed = true;
                            return;
                        }
                        None => id_len + 1,
                        Some(&size_first) => id_len + size_first.leading_zeros() as usize + 1,
                    }
                }
            };
            if want > 12 {
                self.failed = true;
                return;
            }
            let used = self.head.fill(chunk, want);
            chunk = &chunk[used..];
            if self.head.buf.len() < want {
                continue;
            }
            // `want` grows as the header's first bytes arrive (the ID's length, then the size's).
            // Go round again only while it is still growing: the next pass takes more bytes. A
            // header that can never complete ends the measurement (going round would spin forever).
            let id_len = self.head.buf[0].leading_zeros() as usize + 1;
            let Some(&size_first) = self.head.buf.get(id_len) else { continue };
            let size_len = size_first.leading_zeros() as usize + 1;
            if size_len > 8 {
                self.failed = true;
                return;
            }
            if self.head.buf.len() < id_len + size_len {
                continue;
            }
            let parsed = vint(&self.head.buf, true).zip(vint(&self.head.buf[id_len..], false));
            let Some(((_, id), (_, size))) = parsed else {
                self.failed = true;
                return;
            };
            let unknown = size == (1u64 << (7 * size_len)) - 1;
            self.head.buf.clear();
            self.enter(id as u32, if unknown { None } else { Some(size) });
        }
    }

    fn enter(&mut self, id: u32, size: Option<u64>) {
        match id {
            EBML_SEGMENT | EBML_CLUSTER | EBML_BLOCK_GROUP | EBML_INFO => {} // children follow
            EBML_TIMECODE_SCALE | EBML_DURATION | EBML_CLUSTER_TIMECODE | EBML_SIMPLE_BLOCK | EBML_BLOCK => {
                let Some(size) = size else {
                    self.failed = true;
                    return;
                };
                let keep = if matches!(id, EBML_SIMPLE_BLOCK | EBML_BLOCK) { 4 } else { 8 };
                if size == 0 {
                    return;
                }
                self.skip = size;
                self.reading = Some((id, keep));
            }
            _ => match size {
                Some(size) => self.skip = size,
                // An unknown-size element we do not enter: nothing after it can be placed.
                None => self.failed = true,
            },
        }
    }

    fn element(&mut self, id: u32) {
        let v = &self.value.buf;
        let uint = || v.iter().take(8).fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        match id {
            EBML_TIMECODE_SCALE => self.scale_ns = uint().max(1),
            EBML_DURATION => {
                self.duration = match v.len() {
                    4 => Some(f64::from(f32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
                    8 => Some(f64::from_bits(u64_be(v))),
                    _ => None,
                }
            }
            EBML_CLUSTER_TIMECODE => self.cluster_tc = Some(uint()),
            EBML_SIMPLE_BLOCK | EBML_BLOCK => {
                let (Some(cluster), Some((track_len, _))) = (self.cluster_tc, vint(v, false)) else { return };
                if track_len == 0 || v.len() < track_len + 2 {
                    return;
                }
                let rel = i16::from_be_bytes([v[track_len], v[track_len + 1]]);
                let at = i128::from(cluster) + i128::from(rel);
                if let Some(prev) = self.last_block {
                    if at > prev {
                        self.step = Some(at - prev);
                    }
                }
                self.last_block = Some(self.last_block.map_or(at, |p| p.max(at)));
            }
            _ => {}
        }
    }

    fn finish(&self) -> Measured {
        let scale = u128::from(self.scale_ns);
        if let Some(d) = self.duration.filter(|d| d.is_finite() && *d > 0.0 && *d < 1e15) {
            // `Duration` is a float in timecode-scale units.
            let ms = d * self.scale_ns as f64 / 1e6;
            return if (0.0..366.0 * 24.0 * 3600.0 * 1000.0).contains(&ms) {
                Measured::Ms(ms.round() as u64)
            } else {
                Measured::Unknown("WebM Duration out of range")
            };
        }
        match self.last_block {
            Some(last) if last >= 0 => {
                let end = last.saturating_add(self.step.unwrap_or(0));
                ms_or(
                    u128::try_from(end).unwrap_or(0).saturating_mul(scale),
                    1_000_000_000,
                    "WebM timecodes out of range",
                )
            }
            _ => Measured::Unknown("WebM without Duration or blocks"),
        }
    }
}

// ---------------------------------------------------------------- MP4

/// MP4 boxes: `<size 4><type 4>` (size 1: a 64-bit size follows; 0: to the end). Containers we
/// need are entered; `mvhd`, `mehd`, `mdhd`, `tfhd`, `trun` are read (`trun` up to a bound);
/// everything else, `mdat` above all, is skipped.
#[derive(Default)]
struct Mp4 {
    head: Collect,
    skip: u64,
    reading: Option<[u8; 4]>,
    value: Collect,
    movie: Option<(u64, u32)>,
    fragment_total: Option<u64>,
    /// The audio track's timescale (the first `mdhd`), and `trex`/`tfhd` default sample duration.
    media_timescale: Option<u32>,
    default_duration: u32,
    frag_units: u128,
    failed: bool,
}

/// The most of a `trun` we read: 8 bytes a sample covers over 2 hours of AAC at 48 kHz per fragment.
const MAX_TRUN_BYTES: u64 = 1 << 20;

impl Mp4 {
    fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.failed {
            if let Some(kind) = self.reading {
                let (part, rest) = take(&mut self.skip, chunk);
                chunk = rest;
                let want = self.value.buf.len() + part.len();
                self.value.fill(part, want);
                if self.skip == 0 {
                    self.reading = None;
                    self.leaf(kind);
                    self.value.buf.clear();
                }
                continue;
            }
            if self.skip > 0 {
                chunk = take(&mut self.skip, chunk).1;
                continue;
            }
            let want = if self.head.buf.len() >= 8 && u32_be(&self.head.buf[..4]) == 1 { 16 } else { 8 };
            let used = self.head.fill(chunk, want);
            chunk = &chunk[used..];
            if self.head.buf.len() < want {
                continue;
            }
            if want == 8 && u32_be(&self.head.buf[..4]) == 1 {
                continue; // a 64-bit size follows
            }
            let h = &self.head.buf;
            let kind = [h[4], h[5], h[6], h[7]];
            let size = match u32_be(&h[..4]) {
                0 => u64::MAX, // to the end
                1 => u64_be(&h[8..16]),
                n => u64::from(n),
            };
            let header = want as u64;
            self.head.buf.clear();
            if size < header {
                self.failed = true;
                return;
            }
            let payload = if size == u64::MAX { u64::MAX } else { size - header };
            match &kind {
                b"moov" | b"trak" | b"mdia" | b"mvex" | b"moof" | b"traf" => {}
                b"mvhd" | b"mehd" | b"mdhd" | b"tfhd" | b"trex" if payload <= 256 => {
                    self.skip = payload;
                    self.reading = Some(kind);
                }
                b"trun" if payload <= MAX_TRUN_BYTES => {
                    self.skip = payload;
                    self.reading = Some(kind);
                }
                b"trun" => {
                    self.frag_units = u128::MAX; // too big to read: the fragments are not summed
                    self.skip = payload;
                }
                _ => self.skip = payload,
            }
            if payload == 0 && self.reading.is_some() {
                self.reading = None;
            }
        }
    }

    fn leaf(&mut self, kind: [u8; 4]) {
        let b = &self.value.buf;
        if b.len() < 4 {
            return;
        }
        let version = b[0];
        let flags = u32_be(b) & 0x00FF_FFFF;
        let body = &b[4..];
        match &kind {
            b"mvhd" | b"mdhd" => {
                // v0: created 4, modified 4, timescale 4, duration 4; v1: 8, 8, 4, 8.
                let (scale, duration) = match version {
                    0 if body.len() >= 16 => (u32_be(&body[8..12]), u64::from(u32_be(&body[12..16]))),
                    1 if body.len() >= 28 => (u32_be(&body[16..20]), u64_be(&body[20..28])),
                    _ => return,
                };
                // All ones: "unknown".
                let duration = if duration == u64::from(u32::MAX) || duration == u64::MAX { 0 } else { duration };
                if &kind == b"mvhd" {
                    self.movie = Some((duration, scale));
                } else if self.media_timescale.is_none() {
                    self.media_timescale = Some(scale);
                }
            }
            b"mehd" => {
                let d = match version {
                    0 if body.len() >= 4 => u64::from(u32_be(body)),
                    1 if body.len() >= 8 => u64_be(body),
                    _ => return,
                };
                self.fragment_total = Some(d);
            }
            b"trex" if body.len() >= 16 => self.default_duration = u32_be(&body[8..12]),
            b"tfhd" => {
                // track id 4, then optional fields by flag.
                let mut at = 4usize;
                for (flag, len) in [(0x1, 8), (0x2, 4)] {
                    if flags & flag != 0 {
                        at += len;
                    }
                }
                if flags & 0x8 != 0 && body.len() >= at + 4 {
                    self.default_duration = u32_be(&body[at..at + 4]);
                }
            }
            b"trun" => {
                if self.frag_units == u128::MAX || body.len() < 4 {
                    return;
                }
                let count = u32_be(body) as usize;
                let mut at = 4usize;
                if flags & 0x1 != 0 {
                    at += 4; // data offset
                }
                if flags & 0x4 != 0 {
                    at += 4; // first sample flags
                }
                let per_sample: usize = [(0x100, 4), (0x200, 4), (0x400, 4), (0x800, 4)]
                    .iter()
                    .filter(|(f, _)| flags & f != 0)
                    .map(|(_, l)| l)
                    .sum();
                let has_duration = flags & 0x100 != 0;
                let mut units: u128 = 0;
                for i in 0..count {
                    let d = if has_duration {
                        let p = at + i * per_sample;
                        if body.len() < p + 4 {
                            return;
                        }
                        u32_be(&body[p..p + 4])
                    } else {
                        self.default_duration
                    };
                    units = units.saturating_add(u128::from(d));
                }
                self.frag_units = self.frag_units.saturating_add(units);
            }
            _ => {}
        }
    }

    fn finish(&self) -> Measured {
        if let Some((duration, scale)) = self.movie {
            if duration > 0 {
                return ms_or(u128::from(duration), u128::from(scale), "MP4 mvhd without a timescale");
            }
            if let Some(total) = self.fragment_total.filter(|t| *t > 0) {
                return ms_or(u128::from(total), u128::from(scale), "MP4 mehd without a timescale");
            }
        }
        match (self.frag_units, self.media_timescale) {
            (u128::MAX, _) => Measured::Unknown("MP4 fragment too large to sum"),
            (units, Some(scale)) if units > 0 => ms_or(units, u128::from(scale), "MP4 mdhd without a timescale"),
            _ => Measured::Unknown("MP4 without a movie duration or fragments"),
        }
    }
}

// ---------------------------------------------------------------- MP3

/// An ID3v2 tag (skipped), the first frame (read whole enough for Xing/VBRI), the last 128 bytes
/// (an ID3v1 tag is not audio).
#[derive(Default)]
struct Mp3 {
    head: Collect,
    /// Bytes before the first frame (ID3v2 tags).
    skip: u64,
    leading: u64,
    tag_checked: bool,
    frame: Collect,
    tail: Vec<u8>,
}

/// The first frame's bytes read: header (4) + side info (≤ 32) + Xing (120) and the LAME tag's
/// encoder delay and padding (24 more), or VBRI (26 at 32).
const MP3_FIRST_FRAME: usize = 4 + 32 + 144;

/// An MPEG audio frame header: (samples per frame, sample rate, bitrate in bit/s), or `None`.
fn mp3_header(h: &[u8]) -> Option<(u32, u32, u32)> {
    if h.len() < 4 || h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: 2.5, 2: 2, 3: 1
    let layer = (h[1] >> 1) & 3; // 1: III, 2: II, 3: I
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let rate = [44_100, 48_000, 32_000][rate_index]
        >> match version {
            3 => 0,
            2 => 1,
            _ => 2,
        };
    const V1: [[u32; 15]; 3] = [
        [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
        [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    ];
    const V2: [[u32; 15]; 2] = [
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ];
    let kbps = match (version, layer) {
        (3, 3) => V1[0][bitrate_index],
        (3, 2) => V1[1][bitrate_index],
        (3, _) => V1[2][bitrate_index],
        (_, 3) => V2[0][bitrate_index],
        _ => V2[1][bitrate_index],
    };
    let samples = match (version, layer) {
        (_, 3) => 384,
        (3, _) | (_, 2) => 1152,
        _ => 576,
    };
    Some((samples, rate, kbps * 1000))
}

impl Mp3 {
    fn feed(&mut self, mut chunk: &[u8]) {
        // Keep the last 128 bytes for an ID3v1 tag.
        let keep = 128usize;
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
        while !chunk.is_empty() {
            if !self.tag_checked {
                let used = self.head.fill(chunk, 10);
                chunk = &chunk[used..];
                if self.head.buf.len() < 10 {
                    return;
                }
                self.tag_checked = true;
                let h = &self.head.buf;
                if &h[..3] == b"ID3" {
                    // Syncsafe size, plus a footer when flagged.
                    let size = h[6..10].iter().fold(0u64, |acc, &b| (acc << 7) | u64::from(b & 0x7F));
                    let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
                    self.skip = size + footer;
                    self.leading = 10 + size + footer;
                } else {
                    // No tag: these 10 bytes are the start of the first frame.
                    let first = std::mem::take(&mut self.head.buf);
                    self.frame.fill(&first, MP3_FIRST_FRAME);
                }
                continue;
            }
            if self.skip > 0 {
                chunk = take(&mut self.skip, chunk).1;
                continue;
            }
            self.frame.fill(chunk, MP3_FIRST_FRAME);
            return;
        }
    }

    /// Whether the first frame carries a frame count (Xing/Info with frames, or VBRI).
    fn has_frame_count(&self) -> bool {
        self.counted().is_some()
    }

    /// The duration from a Xing/Info or VBRI frame count, if the first frame has one.
    fn counted(&self) -> Option<Measured> {
        let f = &self.frame.buf;
        let (samples, rate, _) = mp3_header(f)?;
        // Xing/Info sits after the side information; VBRI at a fixed 32 bytes after the header.
        let mono = f[3] >> 6 == 3;
        let mpeg1 = (f[1] >> 3) & 3 == 3;
        let side = match (mpeg1, mono) {
            (true, false) => 32,
            (true, true) | (false, false) => 17,
            (false, true) => 9,
        };
        let xing = &f[(4 + side).min(f.len())..];
        if xing.len() >= 12 && (xing.starts_with(b"Xing") || xing.starts_with(b"Info")) && xing[7] & 1 != 0 {
            let frames = u32_be(&xing[8..12]);
            let mut total_samples = u128::from(frames) * u128::from(samples);
            // A LAME-style tag after the Xing fields (all four fields present, as encoders write
            // them) gives the encoder delay and padding: samples that are not audio.
            if xing[7] & 0x0F == 0x0F && xing.len() >= 144 && xing[120..124].iter().all(u8::is_ascii_alphanumeric) {
                let d = &xing[141..144];
                let delay = (u32::from(d[0]) << 4) | u32::from(d[1] >> 4);
                let padding = (u32::from(d[1] & 0x0F) << 8) | u32::from(d[2]);
                total_samples = total_samples.saturating_sub(u128::from(delay + padding));
            }
            return Some(ms_or(total_samples, u128::from(rate), "MP3 Xing"));
        }
        let vbri = &f[(4 + 32).min(f.len())..];
        if vbri.len() >= 18 && vbri.starts_with(b"VBRI") {
            let frames = u32_be(&vbri[14..18]);
            return Some(ms_or(u128::from(frames) * u128::from(samples), u128::from(rate), "MP3 VBRI"));
        }
        None
    }

    fn finish(&self, total: u64) -> Measured {
        let Some((_, _, bitrate)) = mp3_header(&self.frame.buf) else {
            return Measured::Unknown("MP3 without a frame header after its tags");
        };
        if let Some(counted) = self.counted() {
            return counted;
        }
        // CBR: the audio bytes at the first frame's bitrate. A VBR file without a header is
        // estimated wrongly; the README lists it.
        let id3v1 = if self.tail.len() == 128 && self.tail.starts_with(b"TAG") { 128 } else { 0 };
        let audio = total.saturating_sub(self.leading).saturating_sub(id3v1);
        ms_or(u128::from(audio) * 8, u128::from(bitrate), "MP3 without a bitrate")
    }
}

// ---------------------------------------------------------------- ADTS

#[derive(Default)]
struct Adts {
    head: Collect,
    skip: u64,
    frames: u64,
    rate: u32,
    failed: bool,
}

const ADTS_RATES: [u32; 13] =
    [96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350];

impl Adts {
    fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() && !self.failed {
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

    fn finish(&self) -> Measured {
        ms_or(u128::from(self.frames) * 1024, u128::from(self.rate), "ADTS without frames")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../../__test__/fixtures/audio/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn what_cannot_be_measured_is_unknown_never_a_panic() {
        let flac = fixture("tone-5s.flac");
        let mut no_total = flac.clone();
        no_total[8 + 13] &= 0xF0; // STREAMINFO total samples: 0 ("unknown")
        no_total[8 + 14..8 + 18].copy_from_slice(&[0, 0, 0, 0]);
        let wav = fixture("tone-5s.wav");
        let mut zero_rate = wav.clone();
        zero_rate[28..32].copy_from_slice(&[0, 0, 0, 0]);
        let cases: Vec<(Container, Vec<u8>)> = vec![
            (Container::Flac, no_total),
            (Container::Wav, zero_rate),
            (Container::Wav, wav[..36].to_vec()), // no data chunk
            (Container::Ogg, b"OggS".to_vec()),
            (Container::WebM, vec![0x1A, 0x45, 0xDF, 0xA3, 0x01]),
            (Container::Mp4, b"\0\0\0\x08ftyp".to_vec()),
            (Container::Mp3, b"ID3\x04\0\0\0\0\0\x05junk".to_vec()),
            (Container::Adts, vec![0xFF, 0xF1]),
        ];
        for (container, body) in cases {
            assert!(
                matches!(measure(container, &body), Measured::Unknown(_)),
                "{container:?} {:?}",
                measure(container, &body)
            );
        }
        // Every format on every other format's bytes, and on noise: an answer, never a panic.
        let names =
            ["tone-5s.wav", "tone-5s.flac", "tone-5s.ogg", "tone-5s.webm", "tone-5s.m4a", "tone-5s.mp3", "tone-5s.aac"];
        let noise: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for c in crate::media::DEFAULT_ALLOWED {
            for n in names {
                let _ = measure(*c, &fixture(n));
            }
            let _ = measure(*c, &noise);
        }
    }

    #[test]
    fn a_header_cannot_claim_more_audio_than_arrived() {
        // A WAV whose data chunk says 160 000 bytes, cut after 16 000: 0.5 s, not 5 s.
        let wav = fixture("tone-5s.wav");
        let cut = &wav[..wav.len() - 144_000];
        assert_eq!(measure(Container::Wav, cut), Measured::Ms(500));
    }

    /// What a reader of a stored blob does: the head, and if that does not settle it, the tail from
    /// `tail_start` after a `resync`. The same answer as reading it all, within 1 %.
    fn measure_head_and_tail(container: Container, body: &[u8], head: usize, tail: usize) -> Measured {
        let mut meter = Meter::new(container);
        meter.feed(&body[..head.min(body.len())]);
        if meter.settled() {
            return meter.finish_sized(body.len() as u64);
        }
        let from = body.len().saturating_sub(tail);
        let t = &body[from..];
        match (container, tail_start(container, t)) {
            (Container::Mp3, _) => meter.feed(&t[t.len().saturating_sub(128)..]),
            (_, Some(p)) => {
                meter.resync();
                meter.feed(&t[p..]);
            }
            (_, None) => return measure(container, body),
        }
        meter.finish_sized(body.len() as u64)
    }

    #[test]
    fn head_and_tail_reads_agree_with_whole_reads() {
        let names = [
            ("tone-5s.wav", Container::Wav),
            ("tone-5s.flac", Container::Flac),
            ("tone-5s.ogg", Container::Ogg),
            ("tone-5s-vorbis.ogg", Container::Ogg),
            ("tone-5s.webm", Container::WebM),
            ("tone-5s-live.webm", Container::WebM),
            ("sweep-60s.webm", Container::WebM),
            ("tone-5s.m4a", Container::Mp4),
            ("tone-5s-fragmented.m4a", Container::Mp4),
            ("tone-5s.mp3", Container::Mp3),
            ("tone-5s-cbr.mp3", Container::Mp3),
            ("sweep-60s.mp3", Container::Mp3),
            ("tone-5s.aac", Container::Adts),
        ];
        for (name, container) in names {
            let body = fixture(name);
            let Measured::Ms(whole) = measure(container, &body) else { panic!("{name}") };
            for (head, tail) in [(4096, 4096), (16_384, 8_192), (1024, 65_536)] {
                let Measured::Ms(parts) = measure_head_and_tail(container, &body, head, tail) else {
                    panic!("{name} head {head} tail {tail}: {:?}", measure_head_and_tail(container, &body, head, tail))
                };
                let off = (parts as f64 - whole as f64).abs() / whole as f64;
                assert!(off <= 0.01, "{name} head {head} tail {tail}: {parts} vs {whole}");
            }
        }
    }

    /// Every fixture, measured whole and fed in every chunking from 1 byte up, within 1 %.
    #[test]
    fn every_fixture_is_measured_within_one_percent() {
        let table: &[(&str, Container, u64)] = &[
            ("tone-5s.wav", Container::Wav, 5_000),
            ("tone-5s.flac", Container::Flac, 5_000),
            ("tone-5s.ogg", Container::Ogg, 5_000),
            ("tone-5s.webm", Container::WebM, 5_000),
            ("tone-5s.m4a", Container::Mp4, 5_000),
            ("tone-5s.mp3", Container::Mp3, 5_000),
            ("tone-5s.aac", Container::Adts, 5_000),
            ("sweep-60s.webm", Container::WebM, 60_000),
            ("sweep-60s.mp3", Container::Mp3, 60_000),
            ("tone-5s-live.webm", Container::WebM, 5_000),
            ("tone-5s-fragmented.m4a", Container::Mp4, 5_000),
            ("tone-5s-streamed.wav", Container::Wav, 5_000),
            ("tone-5s-cbr.mp3", Container::Mp3, 5_000),
            ("tone-5s-vorbis.ogg", Container::Ogg, 5_000),
        ];
        for (name, container, want) in table {
            let body = fixture(name);
            for chunk in [usize::MAX, 1, 3, 7, 100, 4096] {
                let mut meter = Meter::new(*container);
                for piece in body.chunks(chunk.min(body.len())) {
                    meter.feed(piece);
                }
                let Measured::Ms(ms) = meter.finish() else {
                    panic!("{name} in {chunk}-byte chunks: {:?}", meter.finish())
                };
                let off = (ms as f64 - *want as f64).abs() / *want as f64;
                assert!(off <= 0.01, "{name} in {chunk}-byte chunks: {ms} ms, want {want} ± 1 %");
            }
        }
    }
}
