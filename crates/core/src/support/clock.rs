//! The clocks: now, and the one date format we read (Blob's `uploadedAt`). Every "now" in the
//! crate is read here, so a test can see what a decision was given.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since the epoch (JWT times).
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `2026-11-23T04:10:00.123Z` (RFC 3339, UTC, as Blob writes `uploadedAt`) → ms since the epoch.
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
    };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let rest = &s[19..];
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            (&r[..digits], &r[digits..])
        }
        None => ("", rest),
    };
    if !matches!(zone, "Z" | "z" | "+00:00") {
        return None;
    }
    let ms =
        frac.bytes().take(3).fold((0i64, 100i64), |(acc, unit), c| (acc + i64::from(c - b'0') * unit, unit / 10)).0;
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

/// Whether a blob stored at `uploaded_at` (RFC 3339) is older than `max_age` at `now_ms`. An
/// unreadable or missing date is not old: the store always sends one, and refusing on our own
/// parse failure would delete a good upload.
pub fn too_old(uploaded_at: Option<&str>, now_ms: u64, max_age: Duration) -> bool {
    let Some(at) = uploaded_at.and_then(parse_rfc3339_utc) else { return false };
    let age_ms = i128::from(now_ms) - i128::from(at);
    age_ms > i128::try_from(max_age.as_millis()).unwrap_or(i128::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_table() {
        let table: &[(&str, Option<i64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1970-01-01T00:00:01.5Z", Some(1500)),
            ("2000-03-01T00:00:00.000Z", Some(951_868_800_000)),
            ("2026-11-23T04:10:00.123Z", Some(1_795_407_000_123)),
            ("2024-02-29T12:00:00+00:00", Some(1_709_208_000_000)),
            ("2026-11-23T04:10:00+01:00", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-23 04:10:00Z", None),
            ("yesterday", None),
            ("", None),
            ("２０２６-11-23T04:10:00Z", None),
        ];
        for (raw, want) in table {
            assert_eq!(parse_rfc3339_utc(raw), *want, "{raw}");
        }
    }

    #[test]
    fn age_table() {
        let at = "2026-11-29T12:00:00.000Z";
        let t0 = parse_rfc3339_utc(at).unwrap() as u64;
        let hour = Duration::from_secs(3600);
        // (uploaded_at, now, max age) → too old?
        let cases: &[(Option<&str>, u64, bool)] = &[
            (Some(at), t0, false),
            (Some(at), t0 + 3_600_000, false), // exactly the lifetime: still attachable
            (Some(at), t0 + 3_600_001, true),
            (Some(at), t0.saturating_sub(60_000), false), // the store's clock ahead of ours
            (Some("yesterday"), t0, false),               // unreadable: not ours to refuse
            (None, t0, false),
        ];
        for (uploaded, now, want) in cases {
            assert_eq!(too_old(*uploaded, *now, hour), *want, "{uploaded:?} at {now}");
        }
        // The sweep's floor lies beyond every age a completion still attaches, by the longest a
        // completion can take after checking it.
        let total = Duration::from_secs(900);
        assert_eq!(crate::config::sweep_floor(hour, total), hour + total + Duration::from_secs(300));
        assert!(crate::config::sweep_floor(hour, total) > hour + total);
    }
}
