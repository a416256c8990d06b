//! Time for connectors: the clock, and RFC 3339 timestamps (as webhook payloads carry them) to
//! and from [`TimestampMs`](crate::TimestampMs), milliseconds since the Unix epoch.
//!
//! ```
//! use patchbay_sdk::time::{ms_to_rfc3339, rfc3339_to_ms};
//!
//! assert_eq!(rfc3339_to_ms("2024-02-29T14:34:56.789+02:00"), Some(1_709_210_096_789));
//! assert_eq!(ms_to_rfc3339(1_709_210_096_789).as_deref(), Some("2024-02-29T12:34:56.789Z"));
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

/// The latest time [`ms_to_rfc3339`] can write: 9999-12-31T23:59:59.999Z.
pub const MAX_RFC3339_MS: u64 = 253_402_300_799_999;

/// The host's wall clock in milliseconds since the Unix epoch (WASI `wall-clock`); 0 if the clock
/// reads before 1970.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `ms` as RFC 3339 in UTC with milliseconds, e.g. `2024-02-29T12:34:56.789Z`; `None` after
/// [`MAX_RFC3339_MS`] (RFC 3339 years have four digits).
pub fn ms_to_rfc3339(ms: u64) -> Option<String> {
    if ms > MAX_RFC3339_MS {
        return None;
    }
    let (days, day_ms) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(i64::try_from(days).ok()?);
    let (secs, millis) = (day_ms / 1000, day_ms % 1000);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`; `None` for anything else. Digits past the
/// milliseconds are dropped (truncated).
pub fn rfc3339_to_ms(value: &str) -> Option<u64> {
    let b = value.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        let mut scaled = fraction[..len].iter().take(3).map(|&c| u64::from(c - b'0')).collect::<Vec<_>>();
        scaled.resize(3, 0);
        millis = scaled[0] * 100 + scaled[1] * 10 + scaled[2];
        rest = &fraction[len..];
    }
    let offset_secs: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let secs = i64::try_from(digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60).ok()?;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };

    let days = days_from_civil(i64::try_from(year).ok()?, month, day);
    let local = days * 86_400 + i64::try_from(hour * 3600 + minute * 60 + second).ok()?;
    let utc = u64::try_from(local - offset_secs).ok()?;
    utc.checked_mul(1000)?.checked_add(millis)
}

fn digits(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let (month, day) = (month as i64, day as i64);
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u64;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u64;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_github_timestamps() {
        assert_eq!(rfc3339_to_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_to_ms("2024-02-29T12:34:56Z"), Some(1_709_210_096_000));
        assert_eq!(rfc3339_to_ms("2024-02-29T12:34:56.789Z"), Some(1_709_210_096_789));
        assert_eq!(rfc3339_to_ms("2024-02-29T04:34:56-08:00"), Some(1_709_210_096_000));
        assert_eq!(rfc3339_to_ms("2024-02-29T14:34:56+02:00"), Some(1_709_210_096_000));
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(ms_to_rfc3339(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(ms_to_rfc3339(951_782_400_000).as_deref(), Some("2000-02-29T00:00:00.000Z"));
        assert_eq!(ms_to_rfc3339(MAX_RFC3339_MS).as_deref(), Some("9999-12-31T23:59:59.999Z"));
        assert_eq!(ms_to_rfc3339(MAX_RFC3339_MS + 1), None);
        // Every day boundary over a few centuries (leap years, centuries, 2000) survives a round trip.
        let mut ms = 0;
        while ms < 13_000_000_000_000 {
            let text = ms_to_rfc3339(ms).expect("in range");
            assert_eq!(rfc3339_to_ms(&text), Some(ms), "{text}");
            ms += 86_400_000 * 7 + 3_723_456;
        }
        // The spec's example, with microseconds.
        assert_eq!(rfc3339_to_ms("2022-11-03T20:26:10.344522Z"), Some(1_667_507_170_344));
    }

    #[test]
    fn the_clock_reads_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in
            ["", "2024-02-29", "2024-02-29T12:34:56", "2024-13-01T00:00:00Z", "1969-12-31T23:59:59Z", "yesterday"]
        {
            assert_eq!(rfc3339_to_ms(bad), None, "{bad}");
        }
    }
}
