//! The walk the two length-prefixed containers share: MP4 boxes (`size type`; size 1: a 64-bit
//! size follows; 0: to the end) and EBML elements (WebM: an ID vint with its marker, a size vint;
//! all ones: unknown). A `Walker` collects one header at a time across chunks, then, as the meter
//! decides for that element, steps into it (its children follow), skips its payload, or hands its
//! payload over as it arrives. What a header means is the meter's; how headers are written is the
//! `Syntax`'s. Every pass of the loop adds a step and consumes bytes, or ends the call.

use std::marker::PhantomData;

use super::{u32_be, u64_be, Collect};

/// How one container writes an element header.
pub(super) trait Syntax {
    type Id: Copy;
    /// How many header bytes are needed, judging by those held (the count grows as the first bytes
    /// arrive); `None`: these bytes can never start a valid header.
    fn want(head: &[u8]) -> Option<usize>;
    /// A complete header: its id and payload size (`None`: unknown, or to the end); `None` when
    /// the header is invalid.
    fn parse(head: &[u8]) -> Option<(Self::Id, Option<u64>)>;
}

/// What the walk met.
pub(super) enum Event<'a, Id> {
    /// Between two elements, `at` bytes from the start: before the next header's first byte.
    Boundary { at: u64 },
    /// A header; its payload starts `at` bytes from the start. The meter answers with `skip`,
    /// `read`, or nothing (step in: the children follow) before the next call.
    Header { id: Id, size: Option<u64>, at: u64 },
    /// The next bytes of the payload being read; `last`: the payload is complete.
    Payload { bytes: &'a [u8], last: bool },
}

pub(super) struct Walker<S: Syntax> {
    head: Collect,
    /// Payload bytes still to skip or to hand over.
    left: u64,
    reading: bool,
    /// Bytes consumed so far.
    pos: u64,
    /// A `Boundary` was reported for the header now being collected.
    at_boundary: bool,
    pub failed: bool,
    syntax: PhantomData<S>,
}

impl<S: Syntax> Default for Walker<S> {
    fn default() -> Self {
        Walker {
            head: Collect::default(),
            left: 0,
            reading: false,
            pos: 0,
            at_boundary: false,
            failed: false,
            syntax: PhantomData,
        }
    }
}

impl<S: Syntax> Walker<S> {
    /// Skip the `n` payload bytes of the element just met.
    pub fn skip(&mut self, n: u64) {
        self.left = n;
        self.reading = false;
    }

    /// Hand over the `n` payload bytes of the element just met (none for an empty payload).
    pub fn read(&mut self, n: u64) {
        self.left = n;
        self.reading = n > 0;
    }

    /// Stop walking: nothing after this can be placed.
    pub fn fail(&mut self) {
        self.failed = true;
    }

    /// The next event from `chunk` (which it advances), or `None` once the chunk is used up or the
    /// walk has failed.
    pub fn next<'a>(&mut self, chunk: &mut &'a [u8], steps: &mut u64) -> Option<Event<'a, S::Id>> {
        loop {
            if chunk.is_empty() || self.failed {
                return None;
            }
            *steps += 1;
            if self.left > 0 {
                let n = usize::try_from(self.left).unwrap_or(usize::MAX).min(chunk.len());
                let (part, rest) = chunk.split_at(n);
                *chunk = rest;
                self.left -= n as u64;
                self.pos = self.pos.saturating_add(n as u64);
                if self.reading {
                    let last = self.left == 0;
                    self.reading = !last;
                    return Some(Event::Payload { bytes: part, last });
                }
                continue;
            }
            if self.head.buf.is_empty() && !self.at_boundary {
                self.at_boundary = true;
                return Some(Event::Boundary { at: self.pos });
            }
            let Some(want) = S::want(&self.head.buf) else {
                self.failed = true;
                return None;
            };
            let used = self.head.fill(chunk, want);
            *chunk = &chunk[used..];
            self.pos = self.pos.saturating_add(used as u64);
            // `want` grows as the header's first bytes arrive: go round while it is still growing.
            match S::want(&self.head.buf) {
                None => {
                    self.failed = true;
                    return None;
                }
                Some(want) if want > self.head.buf.len() => continue,
                Some(_) => {}
            }
            let parsed = S::parse(&self.head.buf);
            self.head.buf.clear();
            self.at_boundary = false;
            let Some((id, size)) = parsed else {
                self.failed = true;
                return None;
            };
            return Some(Event::Header { id, size, at: self.pos });
        }
    }
}

/// MP4 boxes: `<size 4><type 4>`, size 1: a 64-bit size follows, 0: the box runs to the end.
pub(super) struct Boxes;

impl Syntax for Boxes {
    type Id = [u8; 4];

    fn want(head: &[u8]) -> Option<usize> {
        Some(if head.len() >= 8 && u32_be(&head[..4]) == 1 { 16 } else { 8 })
    }

    fn parse(h: &[u8]) -> Option<([u8; 4], Option<u64>)> {
        let header = h.len() as u64;
        let kind = [h[4], h[5], h[6], h[7]];
        let size = match u32_be(&h[..4]) {
            0 => return Some((kind, None)),
            1 => u64_be(&h[8..16]),
            n => u64::from(n),
        };
        // A box smaller than its own header places nothing after it.
        (size >= header).then(|| (kind, Some(size - header)))
    }
}

/// EBML elements: an ID (1–4 bytes, its length marker kept), a size (1–8 bytes; all ones:
/// unknown).
pub(super) struct Elements;

/// An EBML variable-length integer at the start of `b`: (length, value with the marker removed),
/// `None` while more bytes are needed or when invalid (`Some((0, _))`).
pub(super) fn vint(b: &[u8], keep_marker: bool) -> Option<(usize, u64)> {
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

impl Syntax for Elements {
    type Id = u32;

    fn want(head: &[u8]) -> Option<usize> {
        let Some(&first) = head.first() else { return Some(1) };
        let id_len = first.leading_zeros() as usize + 1;
        if id_len > 4 {
            return None;
        }
        let Some(&size_first) = head.get(id_len) else { return Some(id_len + 1) };
        let size_len = size_first.leading_zeros() as usize + 1;
        (size_len <= 8).then_some(id_len + size_len)
    }

    fn parse(head: &[u8]) -> Option<(u32, Option<u64>)> {
        let id_len = head.first()?.leading_zeros() as usize + 1;
        let ((_, id), (size_len, size)) = vint(head, true).zip(vint(head.get(id_len..)?, false))?;
        if size_len == 0 {
            return None;
        }
        let unknown = size == (1u64 << (7 * size_len)) - 1;
        Some((u32::try_from(id).ok()?, (!unknown).then_some(size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_syntax_table() {
        // MP4: size and type; 1 = a 64-bit size follows; 0 = to the end; smaller than its header.
        assert_eq!(Boxes::want(b""), Some(8));
        assert_eq!(Boxes::want(b"\0\0\0\x01mdat"), Some(16));
        assert_eq!(Boxes::parse(b"\0\0\0\x10moov"), Some((*b"moov", Some(8))));
        assert_eq!(Boxes::parse(b"\0\0\0\0mdat"), Some((*b"mdat", None)));
        assert_eq!(Boxes::parse(b"\0\0\0\x01mdat\0\0\0\0\0\0\0\x20"), Some((*b"mdat", Some(16))));
        assert_eq!(Boxes::parse(b"\0\0\0\x04free"), None);
        // EBML: the ID keeps its marker; a size of all ones is unknown; an ID over 4 bytes or a
        // size over 8 can never be valid.
        assert_eq!(Elements::want(b""), Some(1));
        assert_eq!(Elements::want(&[0x1A]), Some(5));
        assert_eq!(Elements::want(&[0x1A, 0x45, 0xDF, 0xA3, 0x84]), Some(5));
        assert_eq!(Elements::parse(&[0x1A, 0x45, 0xDF, 0xA3, 0x84]), Some((0x1A45_DFA3, Some(4))));
        assert_eq!(Elements::parse(&[0xA3, 0xFF]), Some((0xA3, None)));
        assert_eq!(Elements::want(&[0x08]), None);
        assert_eq!(Elements::want(&[0xA3, 0x00]), None);
    }

    #[test]
    fn a_walk_in_any_chunking_meets_the_same_events() {
        // moov(trak(tkhd payload 4)), mdat payload 3, then a half header.
        let body = b"\0\0\0\x1cmoov\0\0\0\x14trak\0\0\0\x0ctkhdABCD\0\0\0\x0bmdatxyz\0\0";
        let events = |chunk: usize| {
            let mut w = Walker::<Boxes>::default();
            let mut out = Vec::new();
            let mut steps = 0;
            for mut piece in body.chunks(chunk) {
                while let Some(e) = w.next(&mut piece, &mut steps) {
                    match e {
                        Event::Boundary { at } => out.push(format!("|{at}")),
                        Event::Header { id, size, at } => {
                            out.push(format!("{}:{size:?}@{at}", String::from_utf8_lossy(&id)));
                            match &id {
                                b"tkhd" => w.read(size.unwrap_or(0)),
                                b"mdat" => w.skip(size.unwrap_or(0)),
                                _ => {}
                            }
                        }
                        Event::Payload { bytes, last } => {
                            out.push(format!("{}{}", String::from_utf8_lossy(bytes), if last { "." } else { "" }))
                        }
                    }
                }
            }
            assert!(steps <= 4 * body.len() as u64 + 8, "{steps} steps");
            out.join(" ")
        };
        let whole = events(body.len());
        assert_eq!(whole, "|0 moov:Some(20)@8 |8 trak:Some(12)@16 |16 tkhd:Some(4)@24 ABCD. |28 mdat:Some(3)@36 |39");
        for chunk in [1, 2, 3, 5] {
            let got = events(chunk);
            // Payload may arrive in pieces; the headers, their places and the boundaries do not move.
            let squash =
                |s: &str| s.split(' ').filter(|t| t.contains(':') || t.starts_with('|')).collect::<Vec<_>>().join(" ");
            assert_eq!(squash(&got), squash(&whole), "{chunk}-byte chunks");
        }
    }
}
