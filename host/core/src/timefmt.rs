//! RFC 3339 timestamps (UTC, millisecond precision) from and to unix milliseconds, and the
//! relative durations (`90s`, `15m`, `2h`, `7d`) the logs API accepts for `since`.

/// Formats unix milliseconds as `2026-11-21T23:05:09.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` into unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let f = &frac[..digits];
        let padded = format!("{:0<3}", &f[..f.len().min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs) * 1000 + millis)
}

/// A time as an API query accepts it: unix milliseconds, an age like `15m` (before `now_ms`),
/// or RFC 3339.
pub fn parse_time_param(s: &str, now_ms: i64) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    if let Some(age) = parse_relative(s) {
        return now_ms.checked_sub(age);
    }
    parse_rfc3339(s)
}

/// Parses `YYYY-MM-DD` (a sunset date) and checks it exists.
pub fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (s[0..4].parse::<i64>(), s[5..7].parse::<i64>(), s[8..10].parse::<i64>()) else {
        return false;
    };
    (1..=12).contains(&m) && d >= 1 && civil_from_days(days_from_civil(y, m, d)) == (y, m, d)
}

/// `90s`, `15m`, `2h`, `7d` as milliseconds: digits and one ASCII unit, nothing else (no sign,
/// so an age never means the future); `None` for anything else, multi-byte text included.
pub(crate) fn parse_relative(s: &str) -> Option<i64> {
    let unit_at = s.len().checked_sub(1)?;
    if !s.is_char_boundary(unit_at) {
        return None;
    }
    let (n, unit) = s.split_at(unit_at);
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.

/// The date `(y, m, d)` of a number of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of the date `y-m-d` (`m` 1-12, `d` 1-31).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding: an age ending in a multi-byte character panicked the handler; `-5m` meant the
    /// future and a huge negative age overflowed.
    #[test]
    fn ages_are_digits_and_a_unit() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time_param("15m", now), Some(now - 900_000));
        for bad in ["1é", "5€", "é", "€", "-5m", "+5m", "-106751991167d", "106751991167999d", "m", " 5m", "5 m", "5M"]
        {
            assert_eq!(parse_time_param(bad, now), None, "{bad}");
        }
        assert_eq!(parse_time_param("9223372036854775807d", now), None);
    }

    #[test]
    fn round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        let t = 1_795_302_309_123; // 2026-11-21T...
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("2026-11-21T23:05:09Z"), parse_rfc3339("2026-11-22T01:05:09+02:00"));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00.5Z"), Some(951_782_400_500));
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn dates_and_durations() {
        assert!(valid_date("2027-02-28"));
        assert!(!valid_date("2027-02-29"));
        assert!(!valid_date("2027-2-28"));
        assert_eq!(parse_relative("15m"), Some(900_000));
        assert_eq!(parse_relative("m"), None);
        assert_eq!(parse_relative("5y"), None);
        assert_eq!(parse_time_param("1000", 5_000), Some(1000));
        assert_eq!(parse_time_param("2s", 5_000), Some(3000));
        assert_eq!(parse_time_param("1970-01-01T00:00:01Z", 5_000), Some(1000));
        assert_eq!(parse_time_param("soon", 5_000), None);
    }
}
