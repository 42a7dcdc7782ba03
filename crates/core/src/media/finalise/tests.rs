//! The writers on the recorder's fixtures: what they refuse. What they write is held to
//! `client/finalise`'s `finish()` byte for byte by `__test__/finalise-agreement.spec.ts`.

use super::*;
use crate::media::duration::tests::fixture;
use crate::media::duration::Meter;
use crate::media::Container;

/// The meter's layout of `body` and the writer's answer for it.
fn write(container: Container, body: &[u8]) -> Option<Vec<u8>> {
    let mut meter = Meter::new(container);
    for piece in body.chunks(4093) {
        meter.feed(piece);
    }
    let layout = meter.layout()?;
    let head = usize::try_from(layout.header_len()?).ok()?;
    final_header(body.get(..head)?, &layout, body.len() as u64)
}

#[test]
fn what_is_not_a_provisional_header_region_is_never_rewritten() {
    let table: &[(Container, &str)] = &[
        // MediaRecorder's own bytes: no reserve (the finaliser never ran).
        (Container::WebM, "chromium-20s-timeslice.webm"),
        (Container::WebM, "tone-5s-live.webm"),
        (Container::Mp4, "chromium-20s-timeslice.m4a"),
        (Container::Mp4, "webkit-20s.m4a"),
        // Final files (a Duration, a SeekHead or a sidx), and other writers' files.
        (Container::WebM, "tone-5s.webm"),
        (Container::WebM, "sweep-60s.webm"),
        (Container::Mp4, "tone-5s.m4a"),
        (Container::Mp4, "tone-5s-fragmented.m4a"),
    ];
    for (container, name) in table {
        let body = fixture(name);
        assert_eq!(write(*container, &body), None, "{name}");
        for cut in [body.len() / 3, body.len() / 2, body.len() - 1] {
            assert_eq!(write(*container, &body[..cut]), None, "{name} cut at {cut}");
        }
    }
}

#[test]
fn uint_bytes_are_minimal() {
    let table: &[(u64, &[u8])] = &[(0, &[0]), (1, &[1]), (255, &[255]), (256, &[1, 0]), (u64::MAX, &[255; 8])];
    for (v, want) in table {
        assert_eq!(uint_bytes(*v), *want, "{v}");
    }
}

#[test]
fn any_bytes_in_the_header_region_are_an_answer_never_a_panic() {
    // Noise, and every byte of a real header region set to each of a few values in turn (sizes
    // of every length, all ones, IDs of 5 bytes and more).
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let layouts = [Layout::WebM(webm::Layout::default()), Layout::Mp4(mp4::Layout::default())];
    for layout in &layouts {
        for n in [0, 1, 12, 200, 4096] {
            assert_eq!(final_header(&noise[..n], layout, 10_000), None);
        }
    }
    // The guess from the file's end: noise, or a real recording's end, with any header region.
    let webm = fixture("chromium-20s-timeslice.webm");
    for (region, tail) in [(&noise[..], &noise[..]), (&webm[..300], &webm[webm.len() - 4096..]), (&[][..], &[][..])] {
        for at in [0, 5, 1 << 40] {
            assert_eq!(webm::header_from_end(region, tail, at, at + tail.len() as u64), None);
        }
    }
    for (container, name, head) in
        [(Container::WebM, "chromium-20s-timeslice.webm", 300), (Container::Mp4, "chromium-20s-timeslice.m4a", 2000)]
    {
        let body = fixture(name);
        for at in 0..head.min(body.len()) {
            for v in [0x00, 0x01, 0x08, 0x10, 0x80, 0xFF] {
                let mut b = body.clone();
                b[at] = v;
                let _ = write(container, &b);
            }
        }
    }
}

#[test]
fn keep_every_other_keeps_the_first_and_every_second_after_it() {
    let table: &[(usize, &[usize])] = &[(0, &[]), (1, &[0]), (2, &[0]), (3, &[0, 2]), (4, &[0, 2]), (7, &[0, 2, 4, 6])];
    for (n, want) in table {
        let mut v: Vec<usize> = (0..*n).collect();
        keep_every_other(&mut v);
        assert_eq!(v, *want, "{n}");
    }
}

/// One tiny fragment of the provisional MP4 below: a moof (mfhd; one traf: tfhd with the base at
/// the moof, a version 1 tfdt at `time`, a trun of one 960-unit sample of 4 bytes) and its mdat.
fn tiny_fragment(seq: u32, time: u64) -> Vec<u8> {
    fn boxed(kind: &[u8; 4], payload: &[&[u8]]) -> Vec<u8> {
        let len = 8 + payload.iter().map(|p| p.len()).sum::<usize>();
        let mut out = (len as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        payload.iter().for_each(|p| out.extend_from_slice(p));
        out
    }
    let mfhd = boxed(b"mfhd", &[&[0; 4], &seq.to_be_bytes()]);
    let tfhd = boxed(b"tfhd", &[&0x0002_0000u32.to_be_bytes(), &1u32.to_be_bytes()]);
    let tfdt = boxed(b"tfdt", &[&[1, 0, 0, 0], &time.to_be_bytes()]);
    // Flags: a data offset (the moof's 96 bytes and the mdat's header), each sample's duration and size.
    let trun = boxed(
        b"trun",
        &[
            &0x0301u32.to_be_bytes(),
            &1u32.to_be_bytes(),
            &104u32.to_be_bytes(),
            &960u32.to_be_bytes(),
            &4u32.to_be_bytes(),
        ],
    );
    let traf = boxed(b"traf", &[&tfhd, &tfdt, &trun]);
    let moof = boxed(b"moof", &[&mfhd, &traf]);
    assert_eq!(moof.len(), 96);
    [moof, boxed(b"mdat", &[&[0xAB; 4]])].concat()
}

#[test]
fn past_max_references_each_reference_covers_more_fragments_and_they_sum_to_the_file() {
    // (fragments, references, fragments a reference covers): the walk keeps ≤ 2 × 1 024 positions
    // (halving at the 2 048th, the stride doubled) and the writer halves what it kept until ≤ 1 024.
    let table: &[(usize, usize, usize)] =
        &[(1, 1, 1), (1024, 1024, 1), (1025, 513, 2), (2047, 1024, 2), (2048, 1024, 2), (2049, 513, 4), (4100, 513, 8)];
    // The Chromium recording's ftyp and moov, then the finaliser's reserve: its provisional region.
    let head = &fixture("chromium-20s-timeslice.m4a")[..641];
    for &(fragments, references, per) in table {
        let mut body = head.to_vec();
        body.extend_from_slice(&(mp4::HEADER_RESERVE as u32).to_be_bytes());
        body.extend_from_slice(b"free");
        body.resize(head.len() + mp4::HEADER_RESERVE, 0);
        let header_len = body.len();
        for k in 0..fragments {
            body.extend_from_slice(&tiny_fragment(k as u32 + 1, 960 * k as u64));
        }
        let header = write(Container::Mp4, &body).unwrap_or_else(|| panic!("{fragments}: no header"));
        assert_eq!(header.len(), header_len, "{fragments}");
        // The free box after the kept ones, then the sidx to the region's end.
        let free = u32::from_be_bytes(header[641..645].try_into().unwrap_or_default()) as usize;
        let sidx = &header[641 + free..];
        assert_eq!(&sidx[4..8], b"sidx", "{fragments}");
        let count = usize::from(u16::from_be_bytes([sidx[38], sidx[39]]));
        assert_eq!((count, sidx.len()), (references, 40 + 12 * references), "{fragments}");
        let at = |i: usize, o: usize| {
            u32::from_be_bytes(sidx[40 + 12 * i + o..44 + 12 * i + o].try_into().unwrap_or_default())
        };
        let (mut bytes, mut units) = (0, 0);
        for i in 0..count {
            // Each reference covers `per` fragments of 108 bytes and 960 units, the last what is left.
            let covered = per.min(fragments - i * per);
            assert_eq!(
                (at(i, 0) as usize, at(i, 4)),
                (108 * covered, 960 * covered as u32),
                "{fragments}: reference {i}"
            );
            assert_eq!(at(i, 8), 0x9000_0000);
            bytes += at(i, 0) as usize;
            units += at(i, 4) as usize;
        }
        assert_eq!((bytes, units), (body.len() - header_len, 960 * fragments), "{fragments}");
    }
}
