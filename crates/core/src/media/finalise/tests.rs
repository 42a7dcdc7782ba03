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
